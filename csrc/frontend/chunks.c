/* chunks.c — quiet-point boundaries for cutting long audio into model-sized chunks.
 *
 * Contract (chunks.h): given 16 kHz samples, a target chunk length and a ± search range, return
 * the chunk boundaries; the chunks tile the audio exactly (no gap, no overlap).
 * Reference: Qwen3-ASR qwen_asr/inference/utils.py split_audio_into_chunks (MODEL_FACTS §9): while
 * more than max_len samples remain, cut = start + max_len; over [cut − 5 s, cut + 5 s] ∩ [start, end]
 * the moving sum of |x| over 100 ms windows (np.convolve 'valid'); the window with the minimum sum
 * (np.argmin: first on ties); the boundary = that window's start + argmin |x| inside it; clamped to
 * [start + 1, end]. The reference sums in float32 through np.convolve; here the running sum is kept
 * in double (subtracting the sample that leaves the window), which picks the same window except
 * where two window sums tie to float32 precision — both are equally quiet then.
 */
#include "chunks.h"

#include <math.h>

size_t qa_chunk_bounds_cap(size_t n, size_t max_len, size_t search)
{
    /* Every chunk but the last is at least max(1, max_len - search) samples long. */
    size_t step = max_len > search ? max_len - search : 1;
    return n / step + 2;
}

/* Index of the smallest |x[i]| in x[lo, hi) (first on ties); hi > lo. */
static size_t argmin_abs(const float *x, size_t lo, size_t hi)
{
    size_t best = lo;
    float bv = fabsf(x[lo]);
    for (size_t i = lo + 1; i < hi; i++) {
        float v = fabsf(x[i]);
        if (v < bv) {
            bv = v;
            best = i;
        }
    }
    return best;
}

/* Start of the win-sample window of x[lo, hi) with the smallest sum of |x| (first on ties);
 * hi - lo > win. One pass: add the sample entering, subtract the one leaving. */
static size_t quietest_window(const float *x, size_t lo, size_t hi, size_t win)
{
    double sum = 0.0;
    for (size_t i = lo; i < lo + win; i++)
        sum += fabsf(x[i]);
    double best = sum;
    size_t best_at = lo;
    for (size_t s = lo + 1; s + win <= hi; s++) {
        sum += (double)fabsf(x[s + win - 1]) - (double)fabsf(x[s - 1]);
        if (sum < best) {
            best = sum;
            best_at = s;
        }
    }
    return best_at;
}

/* The boundary of the chunk that starts at `start` (more than max_len samples remain). */
static size_t next_cut(const float *x, size_t n, size_t start, size_t max_len, size_t search, size_t win)
{
    size_t cut = start + max_len;
    size_t left = cut - start > search ? cut - search : start;
    size_t right = n - cut > search ? cut + search : n;
    size_t b = cut;
    if (right - left > win) {
        size_t w = quietest_window(x, left, right, win);
        b = argmin_abs(x, w, w + win);
    }
    if (b < start + 1)
        b = start + 1;
    return b > n ? n : b;
}

qa_status qa_chunk_bounds(const float *x, size_t n, size_t max_len, size_t search, size_t win, size_t *bounds,
                          size_t cap, size_t *n_bounds, qa_err *e)
{
    if (max_len == 0 || win == 0)
        return QA_FAIL(e, QA_ERR_INPUT, "chunk_bounds: max_len and window must be positive (got %zu and %zu)",
                       max_len, win);
    size_t need = qa_chunk_bounds_cap(n, max_len, search);
    if (cap < need)
        return QA_FAIL(e, QA_ERR_INPUT, "chunk_bounds: room for %zu boundaries, expected at least %zu", cap, need);
    size_t k = 0, start = 0;
    bounds[k++] = 0;
    while (n - start > max_len) {
        start = next_cut(x, n, start, max_len, search, win);
        bounds[k++] = start;
    }
    if (bounds[k - 1] != n || k == 1)
        bounds[k++] = n;
    *n_bounds = k;
    return QA_OK;
}
