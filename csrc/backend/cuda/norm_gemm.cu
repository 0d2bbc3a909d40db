/* norm_gemm.cu — the decoder's RMSNorm-then-Linear pairs (backend.h norm_gemm: q/k/v; norm_mlp: Qwen3MLP with
 * its post_attention_layernorm and the residual add) in fewer, larger kernels.
 *
 * Contract: backend.h and cuda_ctx.cuh. The numbers are those of rmsnorm followed by gemm.cu's GEMMs (and
 * act.cu's silu·mul) up to the FP32 summation order:
 * - BF16 weights, 1..4 rows (a decode step, issue #6: ~450 small kernels per token): ONE launch for all the
 *   weights of the call. Every block normalises the rows itself with norm.cu's row code (the row of
 *   K = 2048 FP32 comes from L2; 256 threads, as norm.cu uses for K >= 1024, so the same bits), rounds
 *   it to BF16 into shared memory as gemm.cu stages its input, and then each warp streams the BF16 weight
 *   rows of NG_ROWS outputs side by side with gemv.cu's warp loop (gemv.cuh), FP32 sums in its order per row.
 *   Launched with PDL (pdl.cuh): the first two batches of weight loads are issued before the wait and the norm.
 *   norm_mlp computes the gate and up rows of one output j in the same warp and writes silu(g)·u (act.cu's
 *   formula), which the down GEMV (gemv.cu) then reads: two launches for the whole MLP instead of five.
 *   QA_CUDA_GEMV_VARIANT (gemv.cuh) 1 (default) to 3 run that gate/up kernel persistent (ngemv_silu_rows_kernel).
 * - BF16 weights, more rows: RMSNorm writes BF16 straight into the work area (the staging gemm.cu would
 *   fill from an FP32 copy), the cuBLAS GEMMs read it; norm_mlp's silu·mul writes the down GEMM's BF16
 *   staging the same way. Row blocks when the work area is smaller than the rows.
 * - FP32 weights (dtype="float32"): RMSNorm into an FP32 block of the work area, then gemm.cu's exact
 *   FP32 GEMMs (no TF32), act.cu's silu·mul — the separate ops to the bit.
 */
#include <limits.h>
#include <string.h>

#include "cuda_ctx.cuh"
#include "gemv.cuh"
#include "ops.cuh"

#define NG_WARPS 8 /* 256 threads: norm.cu's row kernel's block size for K >= 1024 */
/* Output rows per warp: each block normalises x again, so fewer blocks read less of L2. norm_mlp streams the
 * gate and the up row of each output, so one output row per warp is already two weight rows (and 3x as
 * many blocks as q/k/v: finer load balance over the SMs for the 50 MB of gate / up). */
#define NG_ROWS 2
#define NG_SILU_ROWS 1
#define NG_SMEM_BYTES (48 << 10) /* the normalised rows in shared memory without an opt-in */

typedef struct ngemv_args {
    qa_cu_ngemv_seg seg[QA_NORM_GEMM_MAX];
    int n;
    const float *x, *w;
    float eps, beta;
    int K;
} ngemv_args;

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

/* The normalised rows in shared memory, BF16 [TT, K] (x of the warp loop in gemv.cuh). */
struct ngemv_x {
    const __nv_bfloat16 *xs;
    int K;
    __device__ __forceinline__ void get(int t, int c, float f[8]) const
    {
        qa_bf16x8(((const uint4 *)(xs + (size_t)t * K))[c], f);
    }
};

/* SILU == 0: output rows of seg[0..n) concatenated; each warp owns NG_ROWS consecutive rows of that list.
 * SILU != 0: each warp owns NG_SILU_ROWS rows j of both seg[0] (gate) and seg[1] (up) and writes silu(g)·u
 * to seg[0].y. The weight rows of a warp are streamed side by side (gemv.cuh); their first two batches (all of
 * them for K = 2048) are loaded before the PDL wait and the RMSNorm prologue, which they overlap. At least 2
 * blocks per SM. */
template <int TT, int SILU>
__global__ void __launch_bounds__(NG_WARPS * 32, 2) ngemv_kernel(const ngemv_args a)
{
    constexpr int R = SILU ? NG_SILU_ROWS : NG_ROWS, S = SILU ? 2 * R : R, U = QA_GV_BATCH / S;
    extern __shared__ __align__(16) unsigned char ng_smem[];
    __shared__ float part[32];
    __nv_bfloat16 *xs = (__nv_bfloat16 *)ng_smem; /* [TT, K] */
    const int K = a.K, K8 = K / 8, first = (blockIdx.x * NG_WARPS + (threadIdx.x >> 5)) * R;
    ngemv_row row[R];
    const uint4 *wr[S];
#pragma unroll
    for (int r = 0; r < R; r++) {
        row[r] = ngemv_find(a, SILU ? 1 : a.n, first + r);
        wr[r] = (const uint4 *)row[r].w;
        if (SILU) { /* the up row of the same output, streamed after the R gate rows */
            const __nv_bfloat16 *up = (const __nv_bfloat16 *)a.seg[1].W + (size_t)row[r].j * K;
            wr[S - R + r] = row[r].w ? (const uint4 *)up : NULL;
        }
    }
    uint4 w[S][U], next[S][U];
    qa_gv_first(w, next, wr, K8); /* weights only before the wait (pdl.cuh) */
    qa_pdl_wait();
    qa_pdl_trigger();
    for (int t = 0; t < TT; t++) /* every thread takes part: no early exit before this */
        qa_rmsnorm_row(xs + t * K, a.x + (size_t)t * K, a.w, K, a.eps, part);
    __syncthreads();
    if (!row[0].w) /* the rows of a warp are consecutive: none left */
        return;
    float acc[S][TT];
    qa_gv_zero(acc);
    qa_gv_stream<TT>(acc, w, next, wr, ngemv_x{xs, K}, K8);
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < R; r++) {
        if (!row[r].w)
            continue;
#pragma unroll
        for (int t = 0; t < TT; t++) {
            float g = qa_warp_sum(acc[r][t]);
            float *o = row[r].y + (size_t)t * row[r].N + row[r].j;
            if (SILU) {
                float u = qa_warp_sum(acc[S - R + r][t]);
                if (lane == 0)
                    *o = g / (1.0f + expf(-g)) * u; /* act.cu silu_mul */
            } else if (lane == 0) {
                *o = a.beta != 0.f ? g + a.beta * *o : g;
            }
        }
    }
}

/* norm_mlp's output j = first + i·stride of the persistent gate/up kernel (gemv.cuh qa_gv_stream_rows): its gate
 * and up rows, silu(g)·u stored as ngemv_kernel<TT, 1> stores it. */
struct silu_rows {
    const __nv_bfloat16 *g, *u;
    float *y;
    int N, K, first, stride;
    __device__ __forceinline__ bool has(int i) const { return first + i * stride < N; }
    __device__ __forceinline__ void rows(int i, const uint4 *(&p)[2]) const
    {
        const int j = first + i * stride;
        p[0] = j < N ? (const uint4 *)(g + (size_t)j * K) : NULL;
        p[1] = j < N ? (const uint4 *)(u + (size_t)j * K) : NULL;
    }
    template <int TT> __device__ __forceinline__ void put(int i, const float (&acc)[2][TT]) const
    {
        const int j = first + i * stride;
#pragma unroll
        for (int t = 0; t < TT; t++) {
            float gs = qa_warp_sum(acc[0][t]), us = qa_warp_sum(acc[1][t]);
            if ((threadIdx.x & 31) == 0)
                y[(size_t)t * N + j] = gs / (1.0f + expf(-gs)) * us; /* act.cu silu_mul */
        }
    }
};

/* QA_CUDA_GEMV_VARIANT 1 to 3 (gemv.cuh): ngemv_kernel<TT, 1> on a grid that stays resident. Each block normalises
 * x once (not once per 8 outputs) and each warp streams the gate and up rows of all its outputs with one
 * pipeline; its first two batches are loaded before the PDL wait and the norm, as in ngemv_kernel. */
template <int TT> __global__ void __launch_bounds__(NG_WARPS * 32, 2) ngemv_silu_rows_kernel(const ngemv_args a)
{
    constexpr int U = QA_GV_BATCH / 2;
    extern __shared__ __align__(16) unsigned char ng_smem[];
    __shared__ float part[32];
    __nv_bfloat16 *xs = (__nv_bfloat16 *)ng_smem; /* [TT, K] */
    const int K = a.K, K8 = K / 8;
    const silu_rows r = {(const __nv_bfloat16 *)a.seg[0].W, (const __nv_bfloat16 *)a.seg[1].W, a.seg[0].y,
                         a.seg[0].N, K, (int)(blockIdx.x * NG_WARPS + (threadIdx.x >> 5)),
                         (int)(gridDim.x * NG_WARPS)};
    int li = 0, lc = 0;
    uint4 w[2][U], next[2][U];
    qa_gv_prime(w, next, r, li, lc, K8);
    for (int t = 0; t < TT; t++) /* every thread takes part: no early exit before this */
        qa_rmsnorm_row(xs + t * K, a.x + (size_t)t * K, a.w, K, a.eps, part);
    __syncthreads();
    qa_gv_stream_rows<TT>(w, next, r, ngemv_x{xs, K}, K8, li, lc);
}

/* The persistent gate/up launch: 2 blocks per SM (variant 1) or 1 (variants 2 and 3, gemv.cuh). */
static cudaError_t ngemv_silu_rows_launch(cudaStream_t s, const ngemv_args &a, int T, unsigned need, size_t smem)
{
    dim3 grid(need), block(NG_WARPS * 32);
    cudaError_t err = qa_gv_persistent_grid(need, qa_gv_per_sm(true), &grid.x);
    if (err != cudaSuccess)
        return err;
    switch (T) {
    case 1: return qa_cu_launch(ngemv_silu_rows_kernel<1>, grid, block, smem, s, a);
    case 2: return qa_cu_launch(ngemv_silu_rows_kernel<2>, grid, block, smem, s, a);
    case 3: return qa_cu_launch(ngemv_silu_rows_kernel<3>, grid, block, smem, s, a);
    default: return qa_cu_launch(ngemv_silu_rows_kernel<4>, grid, block, smem, s, a);
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

template <int SILU> static cudaError_t ngemv_launch(cudaStream_t s, const ngemv_args &a, int T, size_t rows)
{
    size_t smem = (size_t)T * a.K * sizeof(__nv_bfloat16);
    dim3 grid(qa_cuda_blocks(rows, NG_WARPS * (SILU ? NG_SILU_ROWS : NG_ROWS))), block(NG_WARPS * 32);
    if (SILU && qa_cu_gemv_variant() != 0 && rows + 2 * (size_t)grid.x * NG_WARPS <= INT_MAX) /* int row numbers */
        return ngemv_silu_rows_launch(s, a, T, grid.x, smem);
    switch (T) {
    case 1: return qa_cu_launch(ngemv_kernel<1, SILU>, grid, block, smem, s, a);
    case 2: return qa_cu_launch(ngemv_kernel<2, SILU>, grid, block, smem, s, a);
    case 3: return qa_cu_launch(ngemv_kernel<3, SILU>, grid, block, smem, s, a);
    default: return qa_cu_launch(ngemv_kernel<4, SILU>, grid, block, smem, s, a);
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
    QA_CUDA_CHECK(e, silu ? ngemv_launch<1>(s, a, T, rows) : ngemv_launch<0>(s, a, T, rows));
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
