/* backend.cu — the CUDA implementation of the backend.h op table (qa_backend_cuda_init).
 *
 * Contract: backend.h, op by op; this file only checks arguments (shapes of the qa_tensors, int
 * ranges for cuBLASLt and grids; the checks and RUN are in run.cuh, the cuda_api.h table in api.cu),
 * binds be->scratch, and forwards to the launchers of ops.cuh and the
 * GEMMs of gemm.cu / norm_gemm.cu. Every op runs asynchronously on the context's stream; copy(D2H) and sync() wait.
 * Every op first refuses to run on a broken context, makes the context's device current for the calling
 * thread, and records a new CUDA error as the breaking one (cuda_ctx.cuh), so after e.g. an illegal
 * address every later call reports the first failure.
 * Scratch (arena view set by the engine): [cuBLASLt workspace 32 MiB | work area | counters], the work area
 * holding either a GEMM's BF16 activation rows (QA_CUDA_STAGE_ROWS at a time; norm_gemm / norm_mlp: the
 * normalised rows, BF16 or FP32) or the im2col matrices
 * of as many conv chunks as fit (scratch_need sizes it for two FP32 chunks, four BF16 ones).
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ctx.cuh"
#include "ops.cuh"
#include "run.cuh"

/* ---- lifetime and memory ------------------------------------------------------------------- */

static void be_destroy(qa_backend *be)
{
    qa_cuda_ctx_close(ctx_of(be));
    be->ctx = NULL;
}

static qa_status be_mem_alloc(qa_backend *be, void **out, size_t bytes, qa_err *e)
{
    RUN(be, e, qa_cuda_dev_alloc(ctx_of(be), out, bytes, e));
}

static void be_mem_free(qa_backend *be, void *p)
{
    qa_cuda_ctx *c = ctx_of(be);
    if (!p)
        return;
    if (c) { /* wait for work that may still use the block */
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream);
    } else {
        cudaDeviceSynchronize(); /* freed after destroy: the block must still go back to the driver */
    }
    cudaFree(p);
}

static qa_status mem_info_impl(qa_cuda_ctx *c, size_t *fr, size_t *tot, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    QA_CUDA_CHECK(e, cudaMemGetInfo(fr, tot));
    return QA_OK;
}

static qa_status be_mem_info(qa_backend *be, size_t *fr, size_t *tot, qa_err *e)
{
    RUN(be, e, mem_info_impl(ctx_of(be), fr, tot, e));
}

static size_t be_scratch_need(const qa_backend *be, const qa_scratch_dims *d)
{
    return qa_backend_cuda_scratch_need(d);
}

static qa_status copy_impl(qa_cuda_ctx *c, void *dst, const void *src, size_t bytes, qa_copy_kind kind, qa_err *e)
{
    static const cudaMemcpyKind kinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                           cudaMemcpyDeviceToDevice};
    if ((int)kind < 0 || (int)kind > 2)
        return QA_FAIL(e, QA_ERR_INTERNAL, "copy: unknown kind %d", (int)kind);
    if (!bytes)
        return QA_OK;
    QA_CUDA_CHECK(e, cudaMemcpyAsync(dst, src, bytes, kinds[kind], c->stream));
    if (kind == QA_COPY_D2H) /* backend.h: the data is on the host when it returns */
        QA_CUDA_CHECK(e, cudaStreamSynchronize(c->stream));
    return QA_OK;
}

static qa_status be_copy(qa_backend *be, void *dst, const void *src, size_t bytes, qa_copy_kind kind, qa_err *e)
{
    RUN(be, e, copy_impl(ctx_of(be), dst, src, bytes, kind, e));
}

static qa_status memset_impl(qa_cuda_ctx *c, void *dst, size_t bytes, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaMemsetAsync(dst, 0, bytes, c->stream));
    return QA_OK;
}

static qa_status be_memset0(qa_backend *be, void *dst, size_t bytes, qa_err *e)
{
    RUN(be, e, memset_impl(ctx_of(be), dst, bytes, e));
}

static qa_status sync_impl(qa_cuda_ctx *c, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaStreamSynchronize(c->stream));
    return QA_OK;
}

static qa_status be_sync(qa_backend *be, qa_err *e) { RUN(be, e, sync_impl(ctx_of(be), e)); }

/* ---- linear algebra ------------------------------------------------------------------------ */

static qa_status gemm_impl(qa_backend *be, float *y, const float *x, const qa_tensor *W, const qa_tensor *b,
                           int64_t T, int64_t K, int64_t N, qa_act act, int accumulate, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    INT_DIMS(e, "gemm", T, K, N);
    QA_TRY(weight_ok(e, "gemm", W, N, K));
    if (b)
        QA_TRY(vec_ok(e, "gemm", "bias", b, N));
    if (accumulate && act != QA_ACT_NONE)
        return QA_FAIL(e, QA_ERR_INTERNAL, "gemm: accumulate with an activation is not defined");
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    QA_TRY(qa_cuda_gemm_bias(c, y, (int)N, x, (int)K, W->data, W->dtype, (int)T, (int)N, (int)K,
                             accumulate ? 1.f : 0.f, b ? (const float *)b->data : NULL, e));
    return act == QA_ACT_GELU ? qa_cu_gelu(c->stream, y, y, (size_t)T * N, e) : QA_OK;
}

static qa_status be_gemm(qa_backend *be, float *y, const float *x, const qa_tensor *W, const qa_tensor *b, int64_t T,
                         int64_t K, int64_t N, qa_act act, int accumulate, qa_err *e)
{
    RUN_AS(be, e, T == 1 ? "gemm T=1" : W->ndim == 4 ? "gemm conv" : "gemm",
           gemm_impl(be, y, x, W, b, T, K, N, act, accumulate, e));
}

/* BF16 operands wherever gemm.cu would stage FP32 rows to BF16: BF16 weights and more rows than its GEMV
 * takes (the GEMV reads FP32 rows). K % 8 == 0 keeps every row block of a 16-byte aligned operand 16-byte
 * aligned, as the staging area is: matmul.cu's plan key (hence the algorithm and the bits) sees the same
 * alignment. A pure function of the call: no context entered. */
static qa_dtype be_gemm_in_dtype(const qa_backend *be, const qa_tensor *W, int64_t T)
{
    const qa_cuda_ctx *c = ctx_of(be);
    return c && c->bf16_handoff && W && W->dtype == QA_BF16 && W->ndim == 2 && W->shape[1] % 8 == 0 &&
                   T > QA_CU_GEMV_MAX_ROWS
               ? QA_BF16
               : QA_F32;
}

static qa_status gemm_bf16x_impl(qa_backend *be, float *y, const void *x, const qa_tensor *W, const qa_tensor *b,
                                 int64_t T, int64_t K, int64_t N, int accumulate, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    INT_DIMS(e, "gemm_bf16x", T, K, N);
    QA_TRY(weight_ok(e, "gemm_bf16x", W, N, K));
    if (b)
        QA_TRY(vec_ok(e, "gemm_bf16x", "bias", b, N));
    if (be_gemm_in_dtype(be, W, T) != QA_BF16)
        return QA_FAIL(e, QA_ERR_INTERNAL, "gemm_bf16x: %lld rows of weight dtype %d take FP32 rows (gemm_in_dtype)",
                       (long long)T, (int)W->dtype);
    if ((uintptr_t)x & 15)
        return QA_FAIL(e, QA_ERR_INTERNAL, "gemm_bf16x: the BF16 rows at %p are not 16-byte aligned", x);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    return qa_cuda_gemm_bf16x(c, y, (int)N, (const __nv_bfloat16 *)x, W->data, (int)T, (int)N, (int)K,
                              accumulate ? 1.f : 0.f, b ? (const float *)b->data : NULL, e);
}

static qa_status be_gemm_bf16x(qa_backend *be, float *y, const void *x, const qa_tensor *W, const qa_tensor *b,
                               int64_t T, int64_t K, int64_t N, int accumulate, qa_err *e)
{
    RUN(be, e, gemm_bf16x_impl(be, y, x, W, b, T, K, N, accumulate, e));
}

/* The weights of one fused norm + GEMM op: each (N[i], K), all of one dtype (returned in *wt). */
static qa_status weights_ok(qa_err *e, const char *op, const qa_tensor *const W[], const int64_t N[], int n, int64_t K,
                            qa_dtype *wt)
{
    for (int i = 0; i < n; i++) {
        QA_TRY(weight_ok(e, op, W[i], N[i], K));
        if (W[i]->dtype != W[0]->dtype)
            return QA_FAIL(e, QA_ERR_INTERNAL, "%s: weight %d has dtype %d, weight 0 dtype %d (one dtype per call)", op,
                           i, (int)W[i]->dtype, (int)W[0]->dtype);
    }
    *wt = W[0]->dtype;
    return QA_OK;
}

/* The checked weights (and biases, b may be NULL) of a norm_gemm / ln_gemm call, as the CUDA side takes them. */
typedef struct gemm_list {
    int N[QA_NORM_GEMM_MAX];
    const void *W[QA_NORM_GEMM_MAX];
    const float *b[QA_NORM_GEMM_MAX];
    qa_dtype wt;
} gemm_list;

static qa_status gemm_list_ok(qa_err *e, const char *op, const qa_tensor *const W[], const qa_tensor *const b[],
                              const int64_t N[], int n, int64_t T, int64_t K, gemm_list *g)
{
    if (n < 1 || n > QA_NORM_GEMM_MAX)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: %d weights, expected 1 to %d", op, n, QA_NORM_GEMM_MAX);
    INT_DIMS(e, op, T, K);
    QA_TRY(weights_ok(e, op, W, N, n, K, &g->wt));
    for (int i = 0; i < n; i++) {
        INT_DIMS(e, op, N[i]);
        if (b && b[i])
            QA_TRY(vec_ok(e, op, "bias", b[i], N[i]));
        g->N[i] = (int)N[i];
        g->W[i] = W[i]->data;
        g->b[i] = b && b[i] ? (const float *)b[i]->data : NULL;
    }
    return QA_OK;
}

static qa_status norm_gemm_impl(qa_backend *be, float *const y[], int64_t ldy, const float *x,
                                const qa_tensor *norm_w, float eps, const qa_tensor *const W[], const int64_t N[], int n,
                                int64_t T, int64_t K, int accumulate, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    gemm_list g;
    QA_TRY(gemm_list_ok(e, "norm_gemm", W, NULL, N, n, T, K, &g));
    QA_TRY(vec_ok(e, "norm_gemm", "norm weight", norm_w, K));
    INT_DIMS(e, "norm_gemm", ldy, T * ldy);
    for (int i = 0; i < n; i++)
        if (ldy != 0 && ldy < N[i])
            return QA_FAIL(e, QA_ERR_INTERNAL, "norm_gemm: row stride %lld below weight %d's %lld outputs",
                           (long long)ldy, i, (long long)N[i]);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    return qa_cuda_norm_gemm(c, y, (int)ldy, x, (const float *)norm_w->data, eps, g.W, g.wt, g.N, n, (int)T, (int)K,
                             accumulate ? 1.f : 0.f, e);
}

static qa_status be_norm_gemm(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *norm_w,
                              float eps, const qa_tensor *const W[], const int64_t N[], int n, int64_t T, int64_t K,
                              int accumulate, qa_err *e)
{
    RUN_AS(be, e, T == 1 ? "norm_gemm T=1" : "norm_gemm",
           norm_gemm_impl(be, y, ldy, x, norm_w, eps, W, N, n, T, K, accumulate, e));
}

static qa_status ln_gemm_impl(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *ln_w,
                              const qa_tensor *ln_b, float eps, const qa_tensor *const W[], const qa_tensor *const b[],
                              const int64_t N[], int n, int64_t T, int64_t K, qa_act act, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    gemm_list g;
    QA_TRY(gemm_list_ok(e, "ln_gemm", W, b, N, n, T, K, &g));
    QA_TRY(vec_ok(e, "ln_gemm", "norm weight", ln_w, K));
    QA_TRY(vec_ok(e, "ln_gemm", "norm bias", ln_b, K));
    INT_DIMS(e, "ln_gemm", ldy, T * ldy);
    for (int i = 0; i < n; i++)
        if (ldy != 0 && (ldy < N[i] || (act == QA_ACT_GELU && ldy != N[i])))
            return QA_FAIL(e, QA_ERR_INTERNAL, "ln_gemm: row stride %lld for weight %d's %lld outputs (GELU: equal)",
                           (long long)ldy, i, (long long)N[i]);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    return qa_cuda_ln_gemm(c, y, (int)ldy, x, (const float *)ln_w->data, (const float *)ln_b->data, eps, g.W, g.wt,
                           g.b, g.N, n, (int)T, (int)K, act == QA_ACT_GELU, e);
}

static qa_status be_ln_gemm(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *ln_w,
                            const qa_tensor *ln_b, float eps, const qa_tensor *const W[], const qa_tensor *const b[],
                            const int64_t N[], int n, int64_t T, int64_t K, qa_act act, qa_err *e)
{
    RUN(be, e, ln_gemm_impl(be, y, ldy, x, ln_w, ln_b, eps, W, b, N, n, T, K, act, e));
}

static qa_status ln_mlp_impl(qa_backend *be, float *x, const qa_tensor *ln_w, const qa_tensor *ln_b, float eps,
                             const qa_tensor *W1, const qa_tensor *b1, const qa_tensor *W2, const qa_tensor *b2,
                             float *f, int64_t T, int64_t E, int64_t F, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    INT_DIMS(e, "ln_mlp", T, E, F);
    QA_TRY(vec_ok(e, "ln_mlp", "norm weight", ln_w, E));
    QA_TRY(vec_ok(e, "ln_mlp", "norm bias", ln_b, E));
    QA_TRY(weight_ok(e, "ln_mlp", W1, F, E));
    QA_TRY(weight_ok(e, "ln_mlp", W2, E, F));
    if (W2->dtype != W1->dtype)
        return QA_FAIL(e, QA_ERR_INTERNAL, "ln_mlp: fc2 weight dtype %d, fc1 dtype %d (one dtype per call)",
                       (int)W2->dtype, (int)W1->dtype);
    if (b1)
        QA_TRY(vec_ok(e, "ln_mlp", "fc1 bias", b1, F));
    if (b2)
        QA_TRY(vec_ok(e, "ln_mlp", "fc2 bias", b2, E));
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    return qa_cuda_ln_mlp(c, x, (const float *)ln_w->data, (const float *)ln_b->data, eps, W1->data,
                          b1 ? (const float *)b1->data : NULL, W2->data, b2 ? (const float *)b2->data : NULL,
                          W1->dtype, f, (int)T, (int)E, (int)F, e);
}

static qa_status be_ln_mlp(qa_backend *be, float *x, const qa_tensor *ln_w, const qa_tensor *ln_b, float eps,
                           const qa_tensor *W1, const qa_tensor *b1, const qa_tensor *W2, const qa_tensor *b2, float *f,
                           int64_t T, int64_t E, int64_t F, qa_err *e)
{
    RUN(be, e, ln_mlp_impl(be, x, ln_w, ln_b, eps, W1, b1, W2, b2, f, T, E, F, e));
}

static qa_status norm_mlp_impl(qa_backend *be, float *x, const qa_tensor *norm_w, float eps, const qa_tensor *Wg,
                               const qa_tensor *Wu, const qa_tensor *Wd, float *gu, int64_t T, int64_t D, int64_t F,
                               qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    const qa_tensor *const W[2] = {Wg, Wu};
    const int64_t N[2] = {F, F};
    qa_dtype wt = QA_F32;
    INT_DIMS(e, "norm_mlp", T, D, F, 2 * F);
    QA_TRY(vec_ok(e, "norm_mlp", "norm weight", norm_w, D));
    QA_TRY(weights_ok(e, "norm_mlp", W, N, 2, D, &wt));
    QA_TRY(weight_ok(e, "norm_mlp", Wd, D, F));
    if (Wd->dtype != wt)
        return QA_FAIL(e, QA_ERR_INTERNAL, "norm_mlp: down weight dtype %d, gate dtype %d (one dtype per call)",
                       (int)Wd->dtype, (int)Wg->dtype);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    return qa_cuda_norm_mlp(c, x, (const float *)norm_w->data, eps, Wg->data, Wu->data, Wd->data, wt, gu, (int)T,
                            (int)D, (int)F, e);
}

static qa_status be_norm_mlp(qa_backend *be, float *x, const qa_tensor *norm_w, float eps, const qa_tensor *Wg,
                             const qa_tensor *Wu, const qa_tensor *Wd, float *gu, int64_t T, int64_t D, int64_t F,
                             qa_err *e)
{
    RUN_AS(be, e, T == 1 ? "norm_mlp T=1" : "norm_mlp", norm_mlp_impl(be, x, norm_w, eps, Wg, Wu, Wd, gu, T, D, F, e));
}

/* ---- normalisation and positions ----------------------------------------------------------- */

static qa_status layernorm_impl(qa_cuda_ctx *c, float *y, const float *x, const qa_tensor *w, const qa_tensor *b,
                                int64_t T, int64_t D, float eps, qa_err *e)
{
    INT_DIMS(e, "layernorm", T, D);
    QA_TRY(vec_ok(e, "layernorm", "weight", w, D));
    QA_TRY(vec_ok(e, "layernorm", "bias", b, D));
    return qa_cu_layernorm(c->stream, y, x, w->data, b->data, QA_F32, (int)T, (int)D, eps, e);
}

static qa_status be_layernorm(qa_backend *be, float *y, const float *x, const qa_tensor *w, const qa_tensor *b,
                              int64_t T, int64_t D, float eps, qa_err *e)
{
    RUN(be, e, layernorm_impl(ctx_of(be), y, x, w, b, T, D, eps, e));
}

static qa_status rmsnorm_impl(qa_cuda_ctx *c, float *y, const float *x, const qa_tensor *w, int64_t T, int64_t D,
                              float eps, qa_err *e)
{
    INT_DIMS(e, "rmsnorm", T, D);
    QA_TRY(vec_ok(e, "rmsnorm", "weight", w, D));
    return qa_cu_rmsnorm(c->stream, y, x, w->data, QA_F32, (int)T, (int)D, eps, e);
}

static qa_status be_rmsnorm(qa_backend *be, float *y, const float *x, const qa_tensor *w, int64_t T, int64_t D,
                            float eps, qa_err *e)
{
    RUN(be, e, rmsnorm_impl(ctx_of(be), y, x, w, T, D, eps, e));
}

/* K / V element types the attention kernels and qkv_prep are built for. */
static qa_status kv_dtype_ok(qa_err *e, const char *op, qa_dtype t)
{
    if (t != QA_F32 && t != QA_BF16)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: K / V dtype %d is neither f32 nor bf16", op, (int)t);
    return QA_OK;
}

static qa_status qkv_prep_impl(qa_cuda_ctx *c, float *qo, const float *q, int64_t ldq, void *kdst, void *vdst,
                               qa_dtype dt, const float *k, const float *v, int64_t ldkv, const qa_tensor *qn,
                               const qa_tensor *kn, int64_t T, int64_t H, int64_t Hk, int64_t Dh, int64_t pos0,
                               const int32_t *pos, int64_t max_rows, float theta, float eps, qa_err *e)
{
    /* 32-bit index math in the kernel: every element offset and the grid's items fit an int */
    INT_DIMS(e, "qkv_prep", T, H, Hk, Dh, max_rows, pos0, pos0 + T, T * (H + 2 * Hk), T * H * Dh, T * Hk * Dh,
             max_rows * Hk * Dh, T * ldq, T * ldkv);
    if (ldq < H * Dh || ldkv < Hk * Dh || ldq % 4 != 0 || ldkv % 4 != 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "qkv_prep: row strides q %lld, k / v %lld must be multiples of 4 and at "
                       "least %lld / %lld", (long long)ldq, (long long)ldkv, (long long)(H * Dh), (long long)(Hk * Dh));
    QA_TRY(kv_dtype_ok(e, "qkv_prep", dt));
    QA_TRY(vec_ok(e, "qkv_prep", "q_norm", qn, Dh));
    QA_TRY(vec_ok(e, "qkv_prep", "k_norm", kn, Dh));
    if (Dh > 2 * (int64_t)(sizeof c->rope_inv / sizeof c->rope_inv[0]) || Dh % 4 != 0 || Dh > QA_CU_QKV_MAX_DH)
        return QA_FAIL(e, QA_ERR_INTERNAL, "qkv_prep: head dim %lld must be a multiple of 4 and <= %d", (long long)Dh,
                       QA_CU_QKV_MAX_DH);
    if (c->rope_dh != (int)Dh || c->rope_theta != theta) {
        qa_cu_rope_inv(c->rope_inv, (int)Dh, theta);
        c->rope_dh = (int)Dh;
        c->rope_theta = theta;
    }
    return qa_cu_qkv_prep(c->stream, qo, q, (int)ldq, kdst, vdst, dt == QA_BF16, k, v, (int)ldkv,
                          (const float *)qn->data, (const float *)kn->data, (int)T, (int)H, (int)Hk, (int)Dh, (int)pos0,
                          pos, (int)max_rows, c->rope_inv, eps, e);
}

static qa_status be_qkv_prep(qa_backend *be, float *qo, const float *q, int64_t ldq, void *kdst, void *vdst,
                             qa_dtype dt, const float *k, const float *v, int64_t ldkv, const qa_tensor *qn,
                             const qa_tensor *kn, int64_t T, int64_t H, int64_t Hk, int64_t Dh, int64_t pos0,
                             const int32_t *pos, int64_t max_rows, float theta, float eps, qa_err *e)
{
    RUN(be, e, qkv_prep_impl(ctx_of(be), qo, q, ldq, kdst, vdst, dt, k, v, ldkv, qn, kn, T, H, Hk, Dh, pos0, pos,
                             max_rows, theta, eps, e));
}

static qa_status sinusoid_impl(qa_cuda_ctx *c, float *x, int64_t T, int64_t E, int64_t period, qa_err *e)
{
    INT_DIMS(e, "add_sinusoid", E);
    return qa_cu_add_sinusoid(c->stream, x, T, (int)E, period, e);
}

static qa_status be_add_sinusoid(qa_backend *be, float *x, int64_t T, int64_t E, int64_t period, qa_err *e)
{
    RUN(be, e, sinusoid_impl(ctx_of(be), x, T, E, period, e));
}

/* ---- attention ------------------------------------------------------------------------------ */

/* BF16 tensor-core attention for dtype="bfloat16" (attention_tc.cu: attention_mma.cu's kernel, or the first
 * WMMA kernel with QA_CUDA_ATTN=wmma; the context's attn_tc picks), unless QA_CUDA_ATTN=fp32 asks for the FP32 CUDA-core kernel
 * (attention.cu) everywhere. Few query rows (decode steps) stay on the FP32 kernel: its 16-row blocks
 * waste less than the 64-row tensor-core blocks there. */
#define QA_TC_MIN_ROWS 16

/* The arrival counters of the split decode attention's one-kernel merge (cuda_scratch.h; scratch bound), NULL with
 * QA_CUDA_DEC_MERGE=two. */
static unsigned *dec_counters(const qa_cuda_ctx *c) { return c->dec_merge ? c->sync : NULL; }

/* The split decode attention's partials fit the work area (scratch_need sizes it for max_heads). */
static qa_status decode_partials_fit(const qa_cuda_ctx *c, int64_t H, qa_err *e)
{
    size_t need = (size_t)H * QA_CUDA_DEC_SPLITS * (QA_CUDA_DEC_MAX_DH + 2) * sizeof(float);
    if (need > c->work_bytes)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: %zu bytes of decode partials, the work area has %zu "
                       "(scratch smaller than scratch_need for max_heads)", need, c->work_bytes);
    return QA_OK;
}

static qa_status attention_impl(const qa_backend *be, void *out, const float *q, const void *k, const void *v,
                                qa_dtype dt, int64_t ldq64, int64_t ldkv64, int64_t Tq, int64_t Tkv, int64_t H,
                                int64_t Hk, int64_t Dh, int64_t q_pos0, int causal, int64_t window, qa_dtype od,
                                qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    ldq64 = ldq64 ? ldq64 : H * Dh;
    ldkv64 = ldkv64 ? ldkv64 : Hk * Dh;
    INT_DIMS(e, "attention", Tq, Tkv, H, Hk, Dh, H * Dh, Hk * Dh, q_pos0, q_pos0 + Tq, window, ldq64, ldkv64);
    QA_TRY(kv_dtype_ok(e, "attention", dt));
    if (od != QA_F32 && od != QA_BF16)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: out dtype %d is neither f32 nor bf16", (int)od);
    /* every kernel below writes either dtype (attn_out.cuh), so the choice of kernel does not depend on it */
    int bf = dt == QA_BF16, ob = od == QA_BF16;
    if (!causal && window <= 0 && Tkv <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: no keys");
    if (ldq64 < H * Dh || ldkv64 < Hk * Dh || ldq64 % 4 != 0 || ldkv64 % 4 != 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: row strides q %lld, k / v %lld must be multiples of 4 and at "
                       "least %lld / %lld", (long long)ldq64, (long long)ldkv64, (long long)(H * Dh),
                       (long long)(Hk * Dh));
    int ldq = (int)ldq64, ldk = (int)ldkv64, ldo = (int)(H * Dh);
    float scale = (float)(1.0 / sqrt((double)Dh)); /* head_dim ** -0.5 */
    if (Tq == 1 && causal && window <= 0 && qa_cu_attention_decode_supported((int)Dh, (int)H, (int)Hk)) {
        /* a decode step: split over the keys (attention_decode.cu); the one visible key range is [0, q0] */
        int n = (int)(q_pos0 + 1 < Tkv ? q_pos0 + 1 : Tkv);
        QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
        QA_TRY(decode_partials_fit(c, H, e));
        return qa_cu_attention_decode(c->stream, out, ob, q, k, ldk, v, ldk, bf, (float *)c->work, dec_counters(c),
                                      (int)H, (int)Hk, (int)Dh, n, NULL, n, scale, e);
    }
    /* the audio encoder's windows: one block per (window, head), attention_enc.cu (QA_CUDA_ENC_ATTN=old: below) */
    if (be->dtype == QA_BF16 && c->attn_enc &&
        qa_cu_attention_enc_fits((int)Dh, (int)H, (int)Hk, bf, causal, (int)q_pos0, (int)Tq, (int)Tkv, (int)window, q,
                                 ldq, k, v, ldk, out, ldo))
        return qa_cu_attention_enc(c->stream, out, ob, ldo, q, ldq, (const float *)k, (const float *)v, ldk, (int)Tq,
                                   (int)H, (int)window, scale, e);
    /* BF16 K / V rows must start on 16 bytes for the tensor-core kernels' cp.async (checked there too):
     * a cache region's base is 256-aligned and its rows Hk·Dh·2 bytes, a multiple of 16 for Hk·Dh % 8 == 0 */
    if (be->dtype == QA_BF16 && !c->attn_fp32 && Tq >= QA_TC_MIN_ROWS &&
        qa_cu_attention_tc_supported((int)Dh, q, ldq, k, ldk, v, ldk, ldo, out, bf))
        return qa_cu_attention_tc(c->stream, out, ob, ldo, q, ldq, k, ldk, v, ldk, bf, (int)Tq, (int)Tkv, (int)H,
                                  (int)Hk, (int)Dh, (int)q_pos0, causal, (int)window, scale, &c->attn_tc, e);
    return qa_cu_attention(c->stream, out, ob, ldo, q, ldq, k, ldk, v, ldk, bf, (int)Tq, (int)Tkv, (int)H, (int)Hk,
                           (int)Dh, (int)q_pos0, causal, (int)window, scale, e);
}

static qa_status be_attention(qa_backend *be, void *out, const float *q, const void *k, const void *v, qa_dtype dt,
                              int64_t ldq, int64_t ldkv, int64_t Tq, int64_t Tkv, int64_t H, int64_t Hk, int64_t Dh,
                              int64_t q_pos0, int causal, int64_t window, qa_dtype od, qa_err *e)
{
    RUN_AS(be, e, Tq == 1 ? "attention Tq=1" : window ? "attention window" : "attention causal",
           attention_impl(be, out, q, k, v, dt, ldq, ldkv, Tq, Tkv, H, Hk, Dh, q_pos0, causal, window, od, e));
}

/* ---- elementwise ---------------------------------------------------------------------------- */

static qa_status be_gelu(qa_backend *be, float *y, const float *x, int64_t n, qa_err *e)
{
    RUN(be, e, qa_cu_gelu(ctx_of(be)->stream, y, x, n > 0 ? (size_t)n : 0, e));
}

static qa_status be_add(qa_backend *be, float *y, const float *a, const float *b, int64_t n, qa_err *e)
{
    RUN(be, e, qa_cu_add(ctx_of(be)->stream, y, a, b, n > 0 ? (size_t)n : 0, e));
}

/* ---- audio front ---------------------------------------------------------------------------- */

static qa_status mel_chunks_impl(qa_cuda_ctx *c, float *y, const float *feat, int64_t M, int64_t ld, int64_t frame0,
                                 int64_t valid, int64_t N, int64_t L, qa_err *e)
{
    INT_DIMS(e, "mel_chunks", M, N, L);
    return qa_cu_mel_chunks(c->stream, y, feat, (int)M, ld, frame0, valid, (int)N, (int)L, e);
}

static qa_status be_mel_chunks(qa_backend *be, float *y, const float *feat, int64_t M, int64_t ld, int64_t frame0,
                               int64_t valid, int64_t N, int64_t L, qa_err *e)
{
    RUN(be, e, mel_chunks_impl(ctx_of(be), y, feat, M, ld, frame0, valid, N, L, e));
}

/* conv1 (one input channel): the direct kernel, bias and GELU in it; else im2col (applying the input's
 * deferred bias + GELU) + one strided-batched GEMM per work-area-full of chunks, then bias / GELU if asked. */
static qa_status conv2d_impl(qa_backend *be, float *y, const float *x, const qa_tensor *xb, const qa_tensor *w,
                             const qa_tensor *b, int64_t N, int64_t Cin, int64_t Hi, int64_t Wi, int64_t Cout, qa_act act,
                             qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    int64_t Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1, K = Cin * 9, P = Ho * Wo;
    INT_DIMS(e, "conv2d", N, Cin, Hi, Wi, Cout, K, P, K * P);
    QA_TRY(weight_ok(e, "conv2d", w, Cout, K));
    if (b)
        QA_TRY(vec_ok(e, "conv2d", "bias", b, Cout));
    if (xb)
        QA_TRY(vec_ok(e, "conv2d", "input bias", xb, Cin));
    int bf16 = w->dtype == QA_BF16, gelu = act == QA_ACT_GELU;
    const float *bias = b ? (const float *)b->data : NULL, *in_bias = xb ? (const float *)xb->data : NULL;
    if (Cin == 1 && !in_bias)
        return qa_cu_conv1ch3s2(c->stream, y, x, w->data, bf16, bias, (int)N, (int)Hi, (int)Wi, (int)Cout, gelu, e);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    size_t per_image = (size_t)K * P * (bf16 ? 2 : 4);
    size_t fit = c->work_bytes / per_image;
    if (fit == 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "conv2d: work area of %zu bytes cannot hold one im2col of %zu bytes "
                       "(scratch smaller than scratch_need for max_im2col)", c->work_bytes, per_image);
    for (int64_t n0 = 0; n0 < N; n0 += (int64_t)fit) {
        int nb = (int)(N - n0 < (int64_t)fit ? N - n0 : (int64_t)fit);
        QA_TRY(qa_cu_im2col3s2(c->stream, c->work, bf16, !c->conv_old, x + (size_t)n0 * Cin * Hi * Wi, in_bias, nb,
                               (int)Cin, (int)Hi, (int)Wi, e));
        QA_TRY(qa_cuda_gemm_wx_batched(c, y + (size_t)n0 * Cout * P, w->data, w->dtype, c->work, (int)Cout, (int)P,
                                       (int)K, nb, e));
    }
    return qa_cu_bias_act(c->stream, y, bias, (size_t)N * Cout * P, (int)Cout, (size_t)P, gelu, e);
}

static qa_status be_conv2d(qa_backend *be, float *y, const float *x, const qa_tensor *xb, const qa_tensor *w,
                           const qa_tensor *b, int64_t N, int64_t Cin, int64_t Hi, int64_t Wi, int64_t Cout, qa_act act,
                           qa_err *e)
{
    RUN_AS(be, e, Cin == 1 ? "conv2d 1ch" : "conv2d", conv2d_impl(be, y, x, xb, w, b, N, Cin, Hi, Wi, Cout, act, e));
}

/* conv1 + conv2: with BF16 weights the fused kernel writes conv2's im2col straight from conv1 (no conv1 map),
 * then the batched GEMM; else — FP32 weights, planes past the kernel's shared memory, QA_CUDA_CONV=old — the
 * two conv2d through tmp. Both give the same bits. */
static qa_status conv2d_pair_impl(qa_backend *be, float *y, float *tmp, const float *x, const qa_tensor *w1,
                                  const qa_tensor *b1, const qa_tensor *w2, int64_t N, int64_t Hi, int64_t Wi,
                                  int64_t C1, int64_t C2, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    int64_t H1 = (Hi - 1) / 2 + 1, W1 = (Wi - 1) / 2 + 1, K = C1 * 9, P = ((H1 - 1) / 2 + 1) * ((W1 - 1) / 2 + 1);
    INT_DIMS(e, "conv2d_pair", N, Hi, Wi, C1, C2, K, P, K * P);
    QA_TRY(weight_ok(e, "conv2d_pair", w1, C1, 9));
    QA_TRY(weight_ok(e, "conv2d_pair", w2, C2, K));
    if (b1)
        QA_TRY(vec_ok(e, "conv2d_pair", "bias", b1, C1));
    if (c->conv_old || w1->dtype != QA_BF16 || w2->dtype != QA_BF16 || !qa_cu_conv1_im2col_fits((int)Hi, (int)Wi)) {
        QA_TRY(conv2d_impl(be, tmp, x, NULL, w1, b1, N, 1, Hi, Wi, C1, QA_ACT_GELU, e));
        return conv2d_impl(be, y, tmp, NULL, w2, NULL, N, C1, H1, W1, C2, QA_ACT_NONE, e);
    }
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    size_t per_image = (size_t)K * P * 2, fit = c->work_bytes / per_image;
    if (fit == 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "conv2d_pair: work area of %zu bytes cannot hold one im2col of %zu bytes "
                       "(scratch smaller than scratch_need for max_im2col)", c->work_bytes, per_image);
    const float *bias = b1 ? (const float *)b1->data : NULL;
    for (int64_t n0 = 0; n0 < N; n0 += (int64_t)fit) {
        int nb = (int)(N - n0 < (int64_t)fit ? N - n0 : (int64_t)fit);
        QA_TRY(qa_cu_conv1_im2col(c->stream, c->work, x + (size_t)n0 * Hi * Wi, w1->data, bias, nb, (int)C1, (int)Hi,
                                  (int)Wi, e));
        QA_TRY(qa_cuda_gemm_wx_batched(c, y + (size_t)n0 * C2 * P, w2->data, QA_BF16, c->work, (int)C2, (int)P, (int)K,
                                       nb, e));
    }
    return QA_OK;
}

static qa_status be_conv2d_pair(qa_backend *be, float *y, float *tmp, const float *x, const qa_tensor *w1,
                                const qa_tensor *b1, const qa_tensor *w2, int64_t N, int64_t Hi, int64_t Wi, int64_t C1,
                                int64_t C2, qa_err *e)
{
    RUN_AS(be, e, "conv2d pair", conv2d_pair_impl(be, y, tmp, x, w1, b1, w2, N, Hi, Wi, C1, C2, e));
}

static qa_status flatten_impl(qa_cuda_ctx *c, float *y, const float *x, const qa_tensor *xb, int64_t N, int64_t C,
                              int64_t Fq, int64_t Tc, qa_err *e)
{
    INT_DIMS(e, "chunk_flatten", N, C, Fq, Tc);
    if (xb)
        QA_TRY(vec_ok(e, "chunk_flatten", "input bias", xb, C));
    return qa_cu_conv_flatten(c->stream, y, x, xb ? (const float *)xb->data : NULL, (int)N, (int)C, (int)Fq, (int)Tc,
                              e);
}

static qa_status be_chunk_flatten(qa_backend *be, float *y, const float *x, const qa_tensor *xb, int64_t N, int64_t C,
                                  int64_t Fq, int64_t Tc, qa_err *e)
{
    RUN(be, e, flatten_impl(ctx_of(be), y, x, xb, N, C, Fq, Tc, e));
}

/* ---- tokens --------------------------------------------------------------------------------- */

static qa_status embed_impl(qa_cuda_ctx *c, float *y, const qa_tensor *table, const int32_t *ids, int64_t T,
                            qa_err *e)
{
    if (!table || !table->data || table->ndim != 2)
        return QA_FAIL(e, QA_ERR_INTERNAL, "embed: table must be a 2-D tensor");
    INT_DIMS(e, "embed", T, table->shape[0], table->shape[1]);
    return qa_cu_embed(c->stream, y, table->data, table->dtype, ids, (int)T, (int)table->shape[1],
                       (int)table->shape[0], NULL, e);
}

static qa_status be_embed(qa_backend *be, float *y, const qa_tensor *table, const int32_t *ids, int64_t T, qa_err *e)
{
    RUN(be, e, embed_impl(ctx_of(be), y, table, ids, T, e));
}

static qa_status argmax_impl(qa_backend *be, int32_t *idx, float *prob, const float *x, int64_t R, int64_t V,
                             const int32_t *suppress, int n_suppress, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    INT_DIMS(e, "argmax", R, V);
    if (be->scratch) /* the split path's partials; without scratch, one block per row */
        QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    if (n_suppress < 0 || n_suppress > QA_CU_MAX_SUPPRESS)
        return QA_FAIL(e, QA_ERR_INTERNAL, "argmax: %d suppressed ids, at most %d", n_suppress, QA_CU_MAX_SUPPRESS);
    qa_cu_suppress sup;
    memset(&sup, 0, sizeof sup);
    sup.n = n_suppress;
    for (int i = 0; i < n_suppress; i++)
        sup.ids[i] = suppress[i];
    return qa_cu_argmax(c->stream, idx, prob, x, (int)R, (int)V, &sup, be->scratch ? c->work : NULL,
                        be->scratch ? c->work_bytes : 0, NULL, NULL, 0, e);
}

static qa_status be_argmax(qa_backend *be, int32_t *idx, float *prob, const float *x, int64_t R, int64_t V,
                           const int32_t *suppress, int n_suppress, qa_err *e)
{
    RUN(be, e, argmax_impl(be, idx, prob, x, R, V, suppress, n_suppress, e));
}

/* ---- log-mel (mel.cu) ------------------------------------------------------------------------ */

static qa_status be_mel_tables(qa_backend *be, void *tables, const float *filters_host, qa_err *e)
{
    RUN(be, e, qa_cuda_mel_tables(ctx_of(be), tables, filters_host, e));
}

static qa_status log_mel_impl(qa_backend *be, float *feat, const float *x, int64_t n, const void *tables, void *work,
                              size_t work_bytes, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e)); /* cuBLAS' workspace */
    return qa_cuda_log_mel(c, feat, x, n, tables, work, work_bytes, e);
}

static qa_status be_log_mel(qa_backend *be, float *feat, const float *x, int64_t n, const void *tables, void *work,
                            size_t work_bytes, qa_err *e)
{
    RUN(be, e, log_mel_impl(be, feat, x, n, tables, work, work_bytes, e));
}

/* ---- decode steps with the position in device memory (backend.h API 4) ------------------------ */

static qa_status attention_at_impl(const qa_backend *be, float *out, const float *q, const void *k, const void *v,
                                   qa_dtype dt, int64_t Tq, int64_t max_kv, int64_t H, int64_t Hk, int64_t Dh,
                                   const int32_t *pos, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    INT_DIMS(e, "attention_at", Tq, max_kv, H, Hk, Dh, H * Dh, Hk * Dh);
    QA_TRY(kv_dtype_ok(e, "attention_at", dt));
    if (Tq != 1 || !qa_cu_attention_decode_supported((int)Dh, (int)H, (int)Hk))
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_at: built for one query row with head dim 16/32/64/128 and "
                       "1/2/4/8 query heads per kv head; got %lld rows, Dh %lld, %lld/%lld heads", (long long)Tq,
                       (long long)Dh, (long long)H, (long long)Hk);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e));
    QA_TRY(decode_partials_fit(c, H, e));
    int ldk = (int)(Hk * Dh);
    float scale = (float)(1.0 / sqrt((double)Dh)); /* the same rounding as attention_impl */
    return qa_cu_attention_decode(c->stream, out, 0, q, k, ldk, v, ldk, dt == QA_BF16, (float *)c->work,
                                  dec_counters(c), (int)H, (int)Hk, (int)Dh, 0, pos, (int)max_kv, scale, e);
}

static qa_status be_attention_at(qa_backend *be, float *out, const float *q, const void *k, const void *v, qa_dtype dt,
                                 int64_t Tq, int64_t max_kv, int64_t H, int64_t Hk, int64_t Dh, const int32_t *pos,
                                 qa_err *e)
{
    RUN(be, e, attention_at_impl(be, out, q, k, v, dt, Tq, max_kv, H, Hk, Dh, pos, e));
}

static qa_status argmax_at_impl(qa_backend *be, int32_t *ids, int64_t cap, int32_t *tok, const float *x, int64_t V,
                                const int32_t *suppress, int n_suppress, const int32_t *state, qa_err *e)
{
    qa_cuda_ctx *c = ctx_of(be);
    INT_DIMS(e, "argmax_at", V, cap);
    if (n_suppress < 0 || n_suppress > QA_CU_MAX_SUPPRESS)
        return QA_FAIL(e, QA_ERR_INTERNAL, "argmax_at: %d suppressed ids, at most %d", n_suppress,
                       QA_CU_MAX_SUPPRESS);
    QA_TRY(qa_cuda_bind_scratch(c, be->scratch, be->scratch_bytes, e)); /* the split path's partials */
    qa_cu_suppress sup;
    memset(&sup, 0, sizeof sup);
    sup.n = n_suppress;
    for (int i = 0; i < n_suppress; i++)
        sup.ids[i] = suppress[i];
    return qa_cu_argmax(c->stream, tok, NULL, x, 1, (int)V, &sup, c->work, c->work_bytes, state, ids, (int)cap, e);
}

static qa_status be_argmax_at(qa_backend *be, int32_t *ids, int64_t cap, int32_t *tok, const float *x, int64_t V,
                              const int32_t *suppress, int n_suppress, const int32_t *state, qa_err *e)
{
    RUN(be, e, argmax_at_impl(be, ids, cap, tok, x, V, suppress, n_suppress, state, e));
}

static qa_status be_step_advance(qa_backend *be, int32_t *state, qa_err *e)
{
    RUN(be, e, qa_cu_step_advance(ctx_of(be)->stream, state, e));
}

static qa_status be_graph_begin(qa_backend *be, qa_err *e) { RUN(be, e, qa_cuda_graph_begin(ctx_of(be), e)); }

static qa_status be_graph_end(qa_backend *be, int slot, const void *key, qa_err *e)
{
    RUN(be, e, qa_cuda_graph_end(ctx_of(be), slot, key, e));
}

static qa_status be_graph_launch(qa_backend *be, int slot, qa_err *e)
{
    RUN(be, e, qa_cuda_graph_launch(ctx_of(be), slot, e));
}

static int be_graph_ready(const qa_backend *be, int slot, const void *key)
{
    return qa_cuda_graph_ready(ctx_of(be), slot, key);
}

static qa_status graph_begin_loop_impl(qa_backend *be, const int32_t *state, const int32_t *tok,
                                       const int32_t *stop, int n_stop, int64_t block, qa_err *e)
{
    if (!state || !tok || n_stop < 0 || n_stop > QA_CU_MAX_SUPPRESS || block < 1 || block > INT_MAX)
        return QA_FAIL(e, QA_ERR_INTERNAL, "graph_begin_loop: state and tok needed, at most %d stop ids (got %d), "
                       "block >= 1 (got %lld)", QA_CU_MAX_SUPPRESS, n_stop, (long long)block);
    qa_cu_loop loop;
    memset(&loop, 0, sizeof loop);
    loop.state = state;
    loop.tok = tok;
    loop.stop.n = n_stop;
    for (int i = 0; i < n_stop; i++)
        loop.stop.ids[i] = stop[i];
    loop.block = (int)block;
    return qa_cuda_graph_begin_loop(ctx_of(be), &loop, e);
}

static qa_status be_graph_begin_loop(qa_backend *be, const int32_t *state, const int32_t *tok, const int32_t *stop,
                                     int n_stop, int64_t block, qa_err *e)
{
    RUN(be, e, graph_begin_loop_impl(be, state, tok, stop, n_stop, block, e));
}

/* QA_CUDA_GRAPH, read once at open: "0" the plain per-token loop, "steps" the device-state loop without
 * graphs (to tell a recording problem from a step problem), anything else / unset: graphs, looping on the
 * device (LOOP) unless QA_CUDA_DECODE_LOOP=host launches the step graph once per token from the host (GRAPH,
 * the loop before API 9: the reference the device loop is compared with, bit for bit).
 * QA_CUDA_PROFILE waits for every op, which a recording cannot contain: the profiler gets the steps loop
 * (the same kernels, launched one by one). */
static qa_decode_mode decode_mode_from_env(void)
{
    const char *g = getenv("QA_CUDA_GRAPH"), *prof = getenv("QA_CUDA_PROFILE"), *loop = getenv("QA_CUDA_DECODE_LOOP");
    if (prof && *prof && strcmp(prof, "0") != 0)
        return QA_DECODE_STEPS;
    if (g && strcmp(g, "0") == 0)
        return QA_DECODE_PLAIN;
    if (g && strcmp(g, "steps") == 0)
        return QA_DECODE_STEPS;
    if (loop && strcmp(loop, "host") == 0)
        return QA_DECODE_GRAPH;
    return QA_DECODE_LOOP;
}

/* ---- the table -------------------------------------------------------------------------------- */

extern "C" __attribute__((visibility("default"))) qa_status qa_backend_cuda_init(qa_backend *be, int device,
                                                                                 qa_err *e)
{
    memset(be, 0, sizeof *be);
    qa_cuda_ctx *c;
    QA_TRY(qa_cuda_ctx_open(&c, device, e));
    be->api_version = QA_BACKEND_API_VERSION;
    be->name = "cuda";
    be->ctx = c;
    be->destroy = be_destroy;
    be->mem_alloc = be_mem_alloc;
    be->mem_free = be_mem_free;
    be->mem_info = be_mem_info;
    be->scratch_need = be_scratch_need;
    be->copy = be_copy;
    be->memset0 = be_memset0;
    be->sync = be_sync;
    be->gemm = be_gemm;
    be->norm_gemm = be_norm_gemm;
    be->norm_mlp = be_norm_mlp;
    be->ln_gemm = be_ln_gemm;
    be->ln_mlp = be_ln_mlp;
    be->layernorm = be_layernorm;
    be->rmsnorm = be_rmsnorm;
    be->qkv_prep = be_qkv_prep;
    be->add_sinusoid = be_add_sinusoid;
    be->attention = be_attention;
    be->gemm_in_dtype = be_gemm_in_dtype;
    be->gemm_bf16x = be_gemm_bf16x;
    be->gelu = be_gelu;
    be->add = be_add;
    be->mel_chunks = be_mel_chunks;
    be->conv2d = be_conv2d;
    be->conv2d_pair = be_conv2d_pair;
    be->chunk_flatten = be_chunk_flatten;
    be->embed = be_embed;
    be->argmax = be_argmax;
    be->mel_tables = be_mel_tables;
    be->log_mel = be_log_mel;
    be->attention_at = be_attention_at;
    be->argmax_at = be_argmax_at;
    be->step_advance = be_step_advance;
    be->graph_begin = be_graph_begin;
    be->graph_end = be_graph_end;
    be->graph_launch = be_graph_launch;
    be->graph_ready = be_graph_ready;
    be->graph_begin_loop = be_graph_begin_loop;
    be->decode_mode = decode_mode_from_env();
    return QA_OK;
}
