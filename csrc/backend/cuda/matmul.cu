/* matmul.cu — every matrix product of the CUDA backend through cuBLASLt, with its kernel planned.
 *
 * Why (issue 5): cuBLAS picks a kernel per exact shape, and with CUDA's lazy module loading the first
 * call of a kernel loads it — 2 MiB of device memory outside the arena, in the middle of a request
 * (measured on the H200: a 232.9 s align, after 300 / 269 / 180 s ones had run). Here a call's shape is
 * reduced to a key in which the one dimension that varies between requests (the token count) is
 * replaced by its bucket (../cuda_mm_buckets.h: ~x1.5 steps, or the five old ones with
 * QA_CUDA_MM_BUCKETS=old); the first call of a key asks cuBLASLt's heuristic for an algorithm at the
 * bucket's representative size, keeps the first candidate that cublasLtMatmulAlgoCheck accepts at both
 * ends of the bucket, and every later call of the key runs that algorithm — never a choice timed at run
 * time, so two processes run the same kernels and give the same bits. So a loaded model has a
 * small, fixed set of kernels — load_models' warm-up runs requests that touch every bucket the plan
 * allows (qwen3align/models.py), and qa_cuda_mem_stats.gemm_plans counts keys, so a key first seen
 * after load shows in memory_report() as an allocation after load.
 * Numbers: the same math as cublasGemmEx with the same compute types (FP32 compute without TF32 for
 * FP32 and BF16 inputs, FP64 for the mel DFT); the algorithm choice only changes summation order.
 * Descriptors use the *Init forms on caller-owned opaque structs: cuBLASLt allocates nothing per call.
 * A Linear's bias is added in cuBLASLt's epilogue (CUBLASLT_EPILOGUE_BIAS: alpha·AB + beta·C + bias in FP32,
 * the sum the separate bias pass made) instead of a read-and-write pass over the output; the epilogue is part
 * of the key, since the algorithms that support it differ.
 */
#include <stdio.h>
#include <string.h>

#include "cuda_ctx.cuh"

/* The buckets of the varying dimension: c->mm_buckets (../cuda_mm_buckets.h, QA_CUDA_MM_BUCKETS at open). */
#define N_CANDIDATES 8

/* What decides a plan: the shape with the varying dimension replaced by its bucket's top, and instead
 * of the pointers and leading dimensions the smallest of their byte alignments (<= 16; the mel's
 * output ld is the request's frame count, so a single-bucket key takes its element size, the
 * alignment every request has). No padding: hashed and compared as bytes. */
typedef struct mm_key {
    long long sa, sb, sc;
    int opA, opB, ta, tb, tc, compute, m, n, k, batch, var, var_max, al, bias;
} mm_key;
static_assert(sizeof(mm_key) == 3 * 8 + 14 * 4, "mm_key must have no padding bytes");

struct qa_mm_plan {
    mm_key key;
    int used;
    cublasLtMatmulAlgo_t algo;
};

static int bucket_of(const qa_mm_buckets *bk, const qa_mm *g, int v)
{
    if (g->var_max > 0)
        return 0;
    int b = 0;
    while (b < bk->n - 1 && v > bk->hi[b])
        b++;
    return b;
}

static int bucket_lo(const qa_mm_buckets *bk, const qa_mm *g, int b)
{
    return g->var_max > 0 || b == 0 ? 1 : bk->hi[b - 1] + 1;
}
static int bucket_hi(const qa_mm_buckets *bk, const qa_mm *g, int b) { return g->var_max > 0 ? g->var_max : bk->hi[b]; }
static int bucket_at(const qa_mm_buckets *bk, const qa_mm *g, int b) { return g->var_max > 0 ? g->var_max : bk->at[b]; }

static int *var_dim(qa_mm *g) { return g->var == QA_MM_VAR_M ? &g->m : g->var == QA_MM_VAR_N ? &g->n : &g->batch; }
static int var_of(const qa_mm *g) { return g->var == QA_MM_VAR_M ? g->m : g->var == QA_MM_VAR_N ? g->n : g->batch; }

static int align_of(uintptr_t a)
{
    int al = 16;
    while (al > 1 && (a & (uintptr_t)(al - 1)))
        al >>= 1;
    return al;
}

static int type_bytes(int t) { return t == CUDA_R_64F ? 8 : t == CUDA_R_32F ? 4 : 2; }

static int min_type_bytes(const qa_mm *g)
{
    int a = type_bytes(g->ta), b = type_bytes(g->tb), c = type_bytes(g->tc);
    return a < b ? (a < c ? a : c) : (b < c ? b : c);
}

/* The smallest ld >= need whose rows start `al`-aligned and no better (al <= 16): the worst layout a
 * key of alignment al can bring, which the plan's algorithm must accept. */
static long long ld_worst(long long need, int elem, int al)
{
    long long ld = need;
    while (align_of((uintptr_t)ld * (uintptr_t)elem) != (al < 16 ? al : 16) && ld < need + 16)
        ld++;
    return ld;
}

static mm_key key_of(const qa_mm_buckets *bk, const qa_mm *g, int b, const void *A, const void *B, const void *C)
{
    mm_key k = {g->sa, g->sb, g->sc, g->opA, g->opB, g->ta, g->tb, g->tc, g->compute, g->m, g->n, g->k, g->batch,
                g->var, g->var_max, 16, g->bias != NULL};
    int *v = g->var == QA_MM_VAR_M ? &k.m : g->var == QA_MM_VAR_N ? &k.n : &k.batch;
    *v = bucket_hi(bk, g, b);
    const int al[] = {align_of((uintptr_t)A), align_of((uintptr_t)B), align_of((uintptr_t)C),
                      align_of((uintptr_t)g->lda * (uintptr_t)type_bytes(g->ta)),
                      align_of((uintptr_t)g->ldb * (uintptr_t)type_bytes(g->tb)),
                      align_of((uintptr_t)g->ldc * (uintptr_t)type_bytes(g->tc)),
                      g->var_max > 0 ? min_type_bytes(g) : 16};
    for (int i = 0; i < (int)(sizeof al / sizeof al[0]); i++)
        k.al = al[i] < k.al ? al[i] : k.al;
    return k;
}

static cudaDataType_t scale_type(int ct) { return ct == CUBLAS_COMPUTE_64F ? CUDA_R_64F : CUDA_R_32F; }

/* The descriptors of one call (on the caller's stack). */
typedef struct mm_desc {
    cublasLtMatmulDescOpaque_t op;
    cublasLtMatrixLayoutOpaque_t a, b, c;
} mm_desc;

static cublasStatus_t layout(cublasLtMatrixLayoutOpaque_t *l, int t, int op, int rows, int cols, long long ld,
                             int batch, long long stride)
{
    /* the stored matrix (column-major): op(X) is rows x cols, so X is cols x rows when transposed */
    int r = op == CUBLAS_OP_N ? rows : cols, c = op == CUBLAS_OP_N ? cols : rows;
    cublasStatus_t st = cublasLtMatrixLayoutInit(l, (cudaDataType_t)t, (uint64_t)r, (uint64_t)c, ld);
    if (st == CUBLAS_STATUS_SUCCESS && batch > 1) {
        int32_t n = batch;
        int64_t s = stride;
        st = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n);
        if (st == CUBLAS_STATUS_SUCCESS)
            st = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s, sizeof s);
    }
    return st;
}

static cublasStatus_t describe(const qa_mm *g, mm_desc *d)
{
    cublasStatus_t st = cublasLtMatmulDescInit(&d->op, (cublasComputeType_t)g->compute, scale_type(g->compute));
    int32_t ta = g->opA, tb = g->opB;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(&d->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(&d->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (st == CUBLAS_STATUS_SUCCESS && g->bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        st = cublasLtMatmulDescSetAttribute(&d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
        if (st == CUBLAS_STATUS_SUCCESS)
            st = cublasLtMatmulDescSetAttribute(&d->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias, sizeof g->bias);
    }
    if (st == CUBLAS_STATUS_SUCCESS)
        st = layout(&d->a, g->ta, g->opA, g->m, g->k, g->lda, g->batch, g->sa);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = layout(&d->b, g->tb, g->opB, g->k, g->n, g->ldb, g->batch, g->sb);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = layout(&d->c, g->tc, CUBLAS_OP_N, g->m, g->n, g->ldc, g->batch, g->sc);
    return st;
}

/* g with its varying dimension set to v and the worst leading dimensions of alignment al that hold it. */
static qa_mm at_size(const qa_mm *g, int v, int al)
{
    qa_mm s = *g;
    *var_dim(&s) = v;
    long long ra = s.opA == CUBLAS_OP_N ? s.m : s.k, rb = s.opB == CUBLAS_OP_N ? s.k : s.n;
    s.lda = ld_worst(s.lda > ra ? s.lda : ra, type_bytes(s.ta), al);
    s.ldb = ld_worst(s.ldb > rb ? s.ldb : rb, type_bytes(s.tb), al);
    s.ldc = ld_worst(s.ldc > s.m ? s.ldc : s.m, type_bytes(s.tc), al);
    return s;
}

/* Whether algo runs shape g with the workspace we have (cublasLtMatmulAlgoCheck). */
static int algo_fits(cublasLtHandle_t lt, const qa_mm *g, const cublasLtMatmulAlgo_t *algo)
{
    mm_desc d;
    cublasLtMatmulHeuristicResult_t r;
    if (describe(g, &d) != CUBLAS_STATUS_SUCCESS)
        return 0;
    return cublasLtMatmulAlgoCheck(lt, &d.op, &d.a, &d.b, &d.c, &d.c, algo, &r) == CUBLAS_STATUS_SUCCESS &&
           r.workspaceSize <= QA_CUDA_BLAS_WS_BYTES;
}

/* Choose the algorithm of bucket b of shape g for pointers aligned to `align` bytes (file comment). */
static qa_status plan(qa_cuda_ctx *c, const qa_mm *g, int b, int align, cublasLtMatmulAlgo_t *out, qa_err *e)
{
    const qa_mm_buckets *bk = c->mm_buckets;
    qa_mm at = at_size(g, bucket_at(bk, g, b), align), lo = at_size(g, bucket_lo(bk, g, b), align);
    qa_mm hi = at_size(g, bucket_hi(bk, g, b), align);
    mm_desc d;
    QA_CUBLAS_CHECK(e, describe(&at, &d));
    cublasLtMatmulPreferenceOpaque_t pref;
    QA_CUBLAS_CHECK(e, cublasLtMatmulPreferenceInit(&pref));
    uint64_t ws = QA_CUDA_BLAS_WS_BYTES;
    uint32_t al = (uint32_t)align;
    QA_CUBLAS_CHECK(e, cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof ws));
    const cublasLtMatmulPreferenceAttributes_t aligns[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        QA_CUBLAS_CHECK(e, cublasLtMatmulPreferenceSetAttribute(&pref, aligns[i], &al, sizeof al));
    cublasLtMatmulHeuristicResult_t cand[N_CANDIDATES];
    int n = 0;
    QA_CUBLAS_CHECK(e, cublasLtMatmulAlgoGetHeuristic(c->lt, &d.op, &d.a, &d.b, &d.c, &d.c, &pref, N_CANDIDATES,
                                                      cand, &n));
    for (int i = 0; i < n; i++)
        if (cand[i].state == CUBLAS_STATUS_SUCCESS && algo_fits(c->lt, &lo, &cand[i].algo) &&
            algo_fits(c->lt, &hi, &cand[i].algo)) {
            *out = cand[i].algo;
            return QA_OK;
        }
    /* not a device failure: the context stays usable (QA_ERR_CUDA would mark it broken) */
    return QA_FAIL(e, QA_ERR_INTERNAL, "cuBLASLt has no algorithm for a %dx%dx%d product (batch %d, types %d/%d/%d) "
                   "valid for the whole bucket %d..%d of its varying dimension", at.m, at.n, at.k, at.batch, g->ta,
                   g->tb, g->tc, bucket_lo(bk, g, b), bucket_hi(bk, g, b));
}

static uint32_t hash_key(const mm_key *k)
{
    const unsigned char *p = (const unsigned char *)k;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The algorithm of call g (planned now when its key is new). */
static qa_status algo_of(qa_cuda_ctx *c, const qa_mm *g, const void *A, const void *B, const void *C,
                         const cublasLtMatmulAlgo_t **out, qa_err *e)
{
    int b = bucket_of(c->mm_buckets, g, var_of(g));
    mm_key key = key_of(c->mm_buckets, g, b, A, B, C);
    uint32_t h = hash_key(&key);
    for (int probe = 0; probe < QA_MM_PLANS; probe++) {
        qa_mm_plan *p = &c->mm_plans[(h + (uint32_t)probe) % QA_MM_PLANS];
        if (p->used && memcmp(&p->key, &key, sizeof key) == 0) {
            *out = &p->algo;
            return QA_OK;
        }
        if (!p->used) {
            QA_TRY(plan(c, g, b, key.al, &p->algo, e));
            p->key = key;
            p->used = 1;
            c->n_mm_plans++;
            if (c->memwatch) /* which shape a plan after load came from (issue 5's trace) */
                fprintf(stderr, "QA_CUDA_MEMWATCH matmul plan %llu: m %d n %d k %d batch %d types %d/%d/%d var %d "
                        "bucket %d..%d align %d bias %d\n", c->n_mm_plans, g->m, g->n, g->k, g->batch, g->ta, g->tb,
                        g->tc, g->var, bucket_lo(c->mm_buckets, g, b), bucket_hi(c->mm_buckets, g, b), key.al,
                        key.bias);
            *out = &p->algo;
            return QA_OK;
        }
    }
    return QA_FAIL(e, QA_ERR_INTERNAL, "more than %d matrix-product shapes: raise QA_MM_PLANS", QA_MM_PLANS);
}

qa_status qa_cuda_matmul(qa_cuda_ctx *c, const qa_mm *g, const void *alpha, const void *A, const void *B,
                         const void *beta, void *C, qa_err *e)
{
    if (g->m <= 0 || g->n <= 0 || g->batch <= 0)
        return QA_OK;
    if (!c->scratch)
        return QA_FAIL(e, QA_ERR_INTERNAL, "matmul: scratch (the cuBLASLt workspace) is not bound");
    const cublasLtMatmulAlgo_t *algo = NULL;
    QA_TRY(algo_of(c, g, A, B, C, &algo, e));
    mm_desc d;
    QA_CUBLAS_CHECK(e, describe(g, &d));
    QA_CUBLAS_CHECK(e, cublasLtMatmul(c->lt, &d.op, alpha, A, &d.a, B, &d.b, beta, C, &d.c, C, &d.c, algo,
                                      c->scratch, QA_CUDA_BLAS_WS_BYTES, c->stream));
    return QA_OK;
}

size_t qa_cuda_mm_plans_bytes(void) { return QA_MM_PLANS * sizeof(qa_mm_plan); }
