/* timestamps.c — LIS-based repair of non-monotonic aligner timestamps (see timestamps.h).
 *
 * Reference: transformers 5.17 processing_qwen3_asr.py `_fix_timestamps` (identical to the original
 * Qwen3ForceAlignProcessor.fix_timestamp). The reference finds the longest non-decreasing
 * subsequence with an O(n²) DP: dp[i] = 1 + max dp[j] over j < i with x[j] <= x[i], parent = the
 * FIRST such j reaching that max, end = first index of the overall max. Here the same DP runs in
 * O(n log n): a Fenwick tree over the ranks of the values answers "best (dp, -j) among processed
 * j with rank <= rank(x[i])", and ordering by (dp, then smaller j) reproduces the tie-breaking
 * exactly (tests compare against a transcription of the O(n²) code on random inputs).
 * Filling (runs of non-kept indices [s, e), c = e - s): c <= 2 snaps each k to the left value if
 * k - (s-1) <= e - k else the right one (a missing side takes the other); c > 2 interpolates
 * left + (right-left)/(c+1)·(k-s+1) in float64, or copies the only existing side.
 */
#include "timestamps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"

typedef struct best {
    int32_t dp;  /* 0 = nothing yet */
    int32_t idx; /* index reaching dp (smallest on ties) */
} best;

static int better(best a, best b)
{
    return a.dp > b.dp || (a.dp == b.dp && a.dp > 0 && a.idx < b.idx);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 1-based rank of v among the sorted distinct values u[0..m). */
static size_t rank_of(const double *u, size_t m, double v)
{
    size_t lo = 0, hi = m;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo + 1;
}

/* Mark the longest non-decreasing subsequence of x (reference tie-breaking) in normal[]. */
static void mark_lis(const double *x, size_t n, double *sorted, best *tree, int32_t *dp, int32_t *parent,
                     unsigned char *normal)
{
    memcpy(sorted, x, n * sizeof *x);
    qsort(sorted, n, sizeof *sorted, cmp_double);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || sorted[i] != sorted[m - 1])
            sorted[m++] = sorted[i];
    memset(tree, 0, (m + 1) * sizeof *tree);
    size_t end = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = rank_of(sorted, m, x[i]);
        best q = {0, 0};
        for (size_t k = r; k > 0; k -= k & -k)
            if (better(tree[k], q))
                q = tree[k];
        dp[i] = q.dp + 1;
        parent[i] = q.dp ? q.idx : -1;
        best me = {dp[i], (int32_t)i};
        for (size_t k = r; k <= m; k += k & -k)
            if (better(me, tree[k]))
                tree[k] = me;
        if (dp[i] > dp[end])
            end = i; /* strict: the first index of the maximum, like dp.index(max(dp)) */
    }
    memset(normal, 0, n);
    for (int32_t k = (int32_t)end; k >= 0; k = parent[k])
        normal[k] = 1;
}

/* Fill the run of non-normal indices [s, e) from the kept neighbours (v holds the values). */
static void fill_run(double *v, size_t n, size_t s, size_t e)
{
    int has_left = s > 0, has_right = e < n; /* s-1 and e are normal by maximality of the run */
    double left = has_left ? v[s - 1] : 0, right = has_right ? v[e] : 0;
    size_t c = e - s;
    for (size_t k = s; k < e; k++) {
        if (!has_left)
            v[k] = right;
        else if (!has_right)
            v[k] = left;
        else if (c <= 2)
            v[k] = (k - (s - 1)) <= (e - k) ? left : right;
        else
            v[k] = left + (right - left) / (double)(c + 1) * (double)(k - s + 1);
    }
}

qa_status qa_repair_timestamps(const double *raw, size_t n, int64_t *out, qa_err *e)
{
    if (n == 0)
        return QA_OK;
    if (n > INT32_MAX)
        return QA_FAIL(e, QA_ERR_INPUT, "repair_timestamps: %zu values, at most %d", n, INT32_MAX);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(raw[i]) || fabs(raw[i]) > 9007199254740992.0)
            return QA_FAIL(e, QA_ERR_INPUT, "repair_timestamps: value %zu (%g) is not a finite millisecond count",
                           i, raw[i]);
    double *v = qa_malloc_n(n, sizeof *v, e), *sorted = qa_malloc_n(n, sizeof *sorted, e);
    best *tree = qa_malloc_n(n + 1, sizeof *tree, e);
    int32_t *dp = qa_malloc_n(n, sizeof *dp, e), *parent = qa_malloc_n(n, sizeof *parent, e);
    unsigned char *normal = qa_malloc(n, e);
    qa_status st = (v && sorted && tree && dp && parent && normal) ? QA_OK : QA_ERR_OOM;
    if (st == QA_OK) {
        mark_lis(raw, n, sorted, tree, dp, parent, normal);
        memcpy(v, raw, n * sizeof *v);
        for (size_t s = 0; s < n;) {
            if (normal[s]) {
                s++;
                continue;
            }
            size_t end = s;
            while (end < n && !normal[end])
                end++;
            fill_run(v, n, s, end);
            s = end;
        }
        for (size_t i = 0; i < n; i++)
            out[i] = (int64_t)v[i]; /* int(): truncation toward zero */
    }
    qa_free(v);
    qa_free(sorted);
    qa_free(tree);
    qa_free(dp);
    qa_free(parent);
    qa_free(normal);
    return st;
}
