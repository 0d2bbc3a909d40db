/* norm_gemm.cu — the decoder's RMSNorm-then-Linear pairs (backend.h norm_gemm: q/k/v; norm_mlp: Qwen3MLP with
 * its post_attention_layernorm and the residual add) in fewer, larger kernels.
 *
 * Contract: backend.h and cuda_ctx.cuh. The numbers are those of rmsnorm followed by gemm.cu's GEMMs (and
 * act.cu's silu·mul) up to the FP32 summation order:
 * - BF16 weights, 1..4 rows (a decode step, issue #6: ~450 small kernels per token): ONE launch for all the
 *   weights of the call. Every block normalises the rows itself with norm.cu's row code (the row of
 *   K = 2048 FP32 comes from L2; 256 threads, as norm.cu uses for K >= 1024, so the same bits), rounds
 *   it to BF16 into shared memory as gemm.cu stages its input, and then each warp streams the BF16 weight
 *   rows of NG_ROWS outputs side by side with 16-byte loads, FP32 sums in gemv.cu's order per row.
 *   norm_mlp computes the gate and up rows of one output j in the same warp and writes silu(g)·u (act.cu's
 *   formula), which the down GEMV (gemv.cu) then reads: two launches for the whole MLP instead of five.
 * - BF16 weights, more rows: RMSNorm writes BF16 straight into the work area (the staging gemm.cu would
 *   fill from an FP32 copy), the cuBLAS GEMMs read it; norm_mlp's silu·mul writes the down GEMM's BF16
 *   staging the same way. Row blocks when the work area is smaller than the rows.
 * - FP32 weights (dtype="float32"): RMSNorm into an FP32 block of the work area, then gemm.cu's exact
 *   FP32 GEMMs (no TF32), act.cu's silu·mul — the separate ops to the bit.
 */
#include <limits.h>
#include <string.h>

#include "cuda_ctx.cuh"
#include "ops.cuh"

#define NG_WARPS 8 /* 256 threads: norm.cu's row kernel's block size for K >= 1024 */
#define NG_ROWS 2  /* output rows per warp: each block normalises x again, so fewer blocks read less of L2 */
#define NG_SMEM_BYTES (48 << 10) /* the normalised rows in shared memory without an opt-in */

typedef struct ngemv_args {
    qa_cu_ngemv_seg seg[QA_NORM_GEMM_MAX];
    int n;
    const float *x, *w;
    float eps, beta;
    int K;
} ngemv_args;

/* acc[t] += W row chunk c (8 BF16) · normalised row t chunk c, gemv.cu's expression order. */
template <int TT>
__device__ __forceinline__ void ngemv_fma8(float (&acc)[TT], const __nv_bfloat16 *wrow, const __nv_bfloat16 *xs,
                                           int K, int c)
{
    float wf[8];
    qa_bf16x8(__ldg((const uint4 *)wrow + c), wf);
#pragma unroll
    for (int t = 0; t < TT; t++) {
        float xf[8];
        qa_bf16x8(((const uint4 *)(xs + t * K))[c], xf);
        acc[t] += wf[0] * xf[0] + wf[1] * xf[1] + wf[2] * xf[2] + wf[3] * xf[3] + wf[4] * xf[4] + wf[5] * xf[5] +
                  wf[6] * xf[6] + wf[7] * xf[7];
    }
}

/* Output row j of the list of seg[0..n) rows concatenated: its weight row (w NULL past the end), output, width
 * and index within its weight. Unrolled, so the arguments stay in the parameter bank (no local copy for a
 * dynamic index). */
typedef struct ngemv_row {
    const __nv_bfloat16 *w;
    float *y;
    int N, j;
} ngemv_row;

__device__ __forceinline__ ngemv_row ngemv_find(const ngemv_args &a, int n, int j)
{
    ngemv_row r = {NULL, NULL, 0, 0};
#pragma unroll
    for (int i = 0; i < QA_NORM_GEMM_MAX; i++) {
        if (r.w || i >= n)
            continue;
        if (j < a.seg[i].N)
            r = ngemv_row{(const __nv_bfloat16 *)a.seg[i].W + (size_t)j * a.K, a.seg[i].y, a.seg[i].N, j};
        else
            j -= a.seg[i].N;
    }
    return r;
}

/* SILU == 0: output rows of seg[0..n) concatenated; each warp owns NG_ROWS consecutive rows of that list.
 * SILU != 0: each warp owns NG_ROWS rows j of both seg[0] (gate) and seg[1] (up) and writes silu(g)·u to
 * seg[0].y. The rows of a warp are streamed side by side (more loads in flight per warp). */
template <int TT, int SILU>
__global__ void __launch_bounds__(NG_WARPS * 32) ngemv_kernel(const ngemv_args a)
{
    extern __shared__ __align__(16) unsigned char ng_smem[];
    __shared__ float part[32];
    __nv_bfloat16 *xs = (__nv_bfloat16 *)ng_smem; /* [TT, K] */
    const int K = a.K;
    for (int t = 0; t < TT; t++) /* every thread takes part: no early exit before this */
        qa_rmsnorm_row(xs + t * K, a.x + (size_t)t * K, a.w, K, a.eps, part);
    __syncthreads();

    const int lane = threadIdx.x & 31, K8 = K / 8, first = (blockIdx.x * NG_WARPS + (threadIdx.x >> 5)) * NG_ROWS;
    ngemv_row row[NG_ROWS];
    const __nv_bfloat16 *wu[NG_ROWS];
    float acc[NG_ROWS][TT], acc_up[NG_ROWS][TT];
#pragma unroll
    for (int r = 0; r < NG_ROWS; r++) {
        row[r] = ngemv_find(a, SILU ? 1 : a.n, first + r);
        wu[r] = SILU && row[r].w ? (const __nv_bfloat16 *)a.seg[1].W + (size_t)row[r].j * K : NULL;
#pragma unroll
        for (int t = 0; t < TT; t++)
            acc[r][t] = acc_up[r][t] = 0.f;
    }
    if (!row[0].w) /* the rows of a warp are consecutive: none left */
        return;
#pragma unroll 4
    for (int c = lane; c < K8; c += 32) {
#pragma unroll
        for (int r = 0; r < NG_ROWS; r++) {
            if (!row[r].w)
                continue;
            ngemv_fma8<TT>(acc[r], row[r].w, xs, K, c);
            if (SILU)
                ngemv_fma8<TT>(acc_up[r], wu[r], xs, K, c);
        }
    }
#pragma unroll
    for (int r = 0; r < NG_ROWS; r++) {
        if (!row[r].w)
            continue;
#pragma unroll
        for (int t = 0; t < TT; t++) {
            float g = qa_warp_sum(acc[r][t]);
            float *o = row[r].y + (size_t)t * row[r].N + row[r].j;
            if (SILU) {
                float u = qa_warp_sum(acc_up[r][t]);
                if (lane == 0)
                    *o = g / (1.0f + expf(-g)) * u; /* act.cu silu_mul */
            } else if (lane == 0) {
                *o = a.beta != 0.f ? g + a.beta * *o : g;
            }
        }
    }
}

int qa_cu_norm_gemv_fits(const float *x, const void *const W[], int n, int T, int K)
{
    if (T < 1 || T > QA_CU_GEMV_MAX_ROWS || K <= 0 || K % 8 != 0 || ((uintptr_t)x & 15) != 0 ||
        (size_t)T * K * sizeof(__nv_bfloat16) > NG_SMEM_BYTES)
        return 0;
    for (int i = 0; i < n; i++)
        if (((uintptr_t)W[i] & 15) != 0)
            return 0;
    return 1;
}

template <int SILU> static void ngemv_launch(cudaStream_t s, const ngemv_args &a, int T, unsigned blocks)
{
    size_t smem = (size_t)T * a.K * sizeof(__nv_bfloat16);
    switch (T) {
    case 1: ngemv_kernel<1, SILU><<<blocks, NG_WARPS * 32, smem, s>>>(a); break;
    case 2: ngemv_kernel<2, SILU><<<blocks, NG_WARPS * 32, smem, s>>>(a); break;
    case 3: ngemv_kernel<3, SILU><<<blocks, NG_WARPS * 32, smem, s>>>(a); break;
    default: ngemv_kernel<4, SILU><<<blocks, NG_WARPS * 32, smem, s>>>(a); break;
    }
}

qa_status qa_cu_norm_gemv(cudaStream_t s, const qa_cu_ngemv_seg *seg, int n, int silu, const float *x,
                          const float *w, float eps, int T, int K, float beta, qa_err *e)
{
    const void *W[QA_NORM_GEMM_MAX];
    if (n < 1 || n > QA_NORM_GEMM_MAX || (silu && (n != 2 || seg[0].N != seg[1].N)))
        return QA_FAIL(e, QA_ERR_INTERNAL, "norm_gemv: %d weights (silu %d) outside its contract", n, silu);
    ngemv_args a;
    memset(&a, 0, sizeof a);
    size_t rows = 0;
    for (int i = 0; i < n; i++) {
        a.seg[i] = seg[i];
        W[i] = seg[i].W;
        rows += seg[i].N > 0 ? (size_t)seg[i].N : 0;
    }
    if (!qa_cu_norm_gemv_fits(x, W, n, T, K))
        return QA_FAIL(e, QA_ERR_INTERNAL, "norm_gemv: %d rows of K=%d outside its contract", T, K);
    if (silu)
        rows = (size_t)seg[0].N;
    if (rows == 0)
        return QA_OK;
    if (rows > (size_t)INT_MAX - NG_WARPS * NG_ROWS) /* the kernel numbers the rows with int */
        return QA_FAIL(e, QA_ERR_INTERNAL, "norm_gemv: %zu output rows exceed the int range", rows);
    a.n = n;
    a.x = x;
    a.w = w;
    a.eps = eps;
    a.beta = beta;
    a.K = K;
    if (silu)
        ngemv_launch<1>(s, a, T, qa_cuda_blocks(rows, NG_WARPS * NG_ROWS));
    else
        ngemv_launch<0>(s, a, T, qa_cuda_blocks(rows, NG_WARPS * NG_ROWS));
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

/* ---- the ops --------------------------------------------------------------------------------------------- */

qa_status qa_cuda_norm_gemm(qa_cuda_ctx *c, float *const y[], const float *x, const float *nw, float eps,
                            const void *const W[], qa_dtype wt, const int N[], int n, int T, int K, float beta,
                            qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    if (wt == QA_BF16 && qa_cu_norm_gemv_fits(x, W, n, T, K)) {
        qa_cu_ngemv_seg seg[QA_NORM_GEMM_MAX];
        for (int i = 0; i < n; i++)
            seg[i] = qa_cu_ngemv_seg{W[i], y[i], N[i]};
        return qa_cu_norm_gemv(c->stream, seg, n, 0, x, nw, eps, T, K, beta, e);
    }
    int bf16 = wt == QA_BF16, rows = 0;
    QA_TRY(qa_cuda_work_rows(c, (size_t)K * (bf16 ? sizeof(__nv_bfloat16) : sizeof(float)), T, "norm_gemm", &rows,
                             e));
    for (int t0 = 0; t0 < T; t0 += rows) {
        int nr = T - t0 < rows ? T - t0 : rows;
        const float *xr = x + (size_t)t0 * K;
        if (bf16)
            QA_TRY(qa_cu_rmsnorm_bf16(c->stream, (__nv_bfloat16 *)c->work, xr, nw, nr, K, eps, e));
        else
            QA_TRY(qa_cu_rmsnorm(c->stream, (float *)c->work, xr, nw, QA_F32, nr, K, eps, e));
        for (int i = 0; i < n; i++) {
            float *yr = y[i] + (size_t)t0 * N[i];
            if (bf16)
                QA_TRY(qa_cuda_gemm_staged(c, yr, N[i], (const __nv_bfloat16 *)c->work, W[i], nr, N[i], K, beta, e));
            else
                QA_TRY(qa_cuda_gemm(c, yr, N[i], (const float *)c->work, K, W[i], QA_F32, nr, N[i], K, beta, e));
        }
    }
    return QA_OK;
}

/* BF16 rows beyond the fused kernel: per row block, RMSNorm -> BF16 staging, gate and up GEMMs, silu·up ->
 * BF16 staging (the normalised rows are consumed by then: stream order), down GEMM onto x. */
static qa_status mlp_staged(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                            const void *Wd, float *g, float *u, int T, int D, int F, qa_err *e)
{
    int rows = 0, width = D > F ? D : F;
    QA_TRY(qa_cuda_work_rows(c, (size_t)width * sizeof(__nv_bfloat16), T, "norm_mlp", &rows, e));
    __nv_bfloat16 *stage = (__nv_bfloat16 *)c->work;
    for (int t0 = 0; t0 < T; t0 += rows) {
        int nr = T - t0 < rows ? T - t0 : rows;
        float *xr = x + (size_t)t0 * D;
        QA_TRY(qa_cu_rmsnorm_bf16(c->stream, stage, xr, nw, nr, D, eps, e));
        QA_TRY(qa_cuda_gemm_staged(c, g, F, stage, Wg, nr, F, D, 0.f, e));
        QA_TRY(qa_cuda_gemm_staged(c, u, F, stage, Wu, nr, F, D, 0.f, e));
        QA_TRY(qa_cu_silu_mul_bf16(c->stream, stage, g, u, (size_t)nr * F, e));
        QA_TRY(qa_cuda_gemm_staged(c, xr, D, stage, Wd, nr, D, F, 1.f, e));
    }
    return QA_OK;
}

/* FP32 weights: the separate ops' exact sequence, RMSNorm rows in the work area. */
static qa_status mlp_f32(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                         const void *Wd, float *g, float *u, int T, int D, int F, qa_err *e)
{
    int rows = 0;
    QA_TRY(qa_cuda_work_rows(c, (size_t)D * sizeof(float), T, "norm_mlp", &rows, e));
    float *h = (float *)c->work;
    for (int t0 = 0; t0 < T; t0 += rows) {
        int nr = T - t0 < rows ? T - t0 : rows;
        float *xr = x + (size_t)t0 * D;
        QA_TRY(qa_cu_rmsnorm(c->stream, h, xr, nw, QA_F32, nr, D, eps, e));
        QA_TRY(qa_cuda_gemm(c, g, F, h, D, Wg, QA_F32, nr, F, D, 0.f, e));
        QA_TRY(qa_cuda_gemm(c, u, F, h, D, Wu, QA_F32, nr, F, D, 0.f, e));
        QA_TRY(qa_cu_silu_mul(c->stream, g, g, u, (size_t)nr * F, e));
        QA_TRY(qa_cuda_gemm(c, xr, D, g, F, Wd, QA_F32, nr, D, F, 1.f, e));
    }
    return QA_OK;
}

qa_status qa_cuda_norm_mlp(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                           const void *Wd, qa_dtype wt, float *g, float *u, int T, int D, int F, qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    if (wt == QA_F32)
        return mlp_f32(c, x, nw, eps, Wg, Wu, Wd, g, u, T, D, F, e);
    const void *gu[2] = {Wg, Wu};
    if (!qa_cu_norm_gemv_fits(x, gu, 2, T, D) || !qa_cu_gemv_bf16_fits(g, F, Wd, T, F))
        return mlp_staged(c, x, nw, eps, Wg, Wu, Wd, g, u, T, D, F, e);
    const qa_cu_ngemv_seg seg[2] = {{Wg, g, F}, {Wu, NULL, F}};
    QA_TRY(qa_cu_norm_gemv(c->stream, seg, 2, 1, x, nw, eps, T, D, 0.f, e));
    return qa_cu_gemv_bf16(c->stream, x, D, g, F, Wd, T, D, F, 1.f, e); /* x += silu(g)·u · Wd^T */
}
