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
 *   staging the same way (from a BF16 gate | up output, QA_CUDA_GU_BF16 unset or 1: the GEMM rounds g and u as
 *   torch's bf16 Linear does, one more rounding than the separate ops). Row blocks when the work area is smaller
 *   than the rows. Weights that lie one after another in memory with outputs side by side in one row (q | k | v,
 *   gate | up: API 8) run as ONE GEMM (qa_cuda_one_gemm; QA_CUDA_FUSED_GEMM=0 at open keeps one per weight): ~3 µs
 *   of launch and tail saved per GEMM.
 * - FP32 weights (dtype="float32"): RMSNorm into an FP32 block of the work area, then gemm.cu's exact
 *   FP32 GEMMs (no TF32), act.cu's silu·mul — the separate ops to the bit with one GEMM per weight (joined
 *   weights: the same FP32 products, summed in the order of the one GEMM's algorithm).
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
                    *o = qa_silu_mul(g, u);
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
                y[(size_t)t * N + j] = qa_silu_mul(gs, us);
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

/* cuda_ctx.cuh: whether the n weights of one call run as ONE GEMM of N = sum N[i] (issue #6: fewer, larger kernels
 * in the prefill): the outputs are the column blocks of one matrix of row stride ldy, each weight starts right after
 * the previous one's elements in device memory and so does each bias (or there are none) — the loader's arena places
 * q/k/v, gate/up and the encoder's q/k/v biases so (weights/names.c order, qa_arena_take), unless alignment padding
 * falls between them, which this sees. */
int qa_cuda_one_gemm(const qa_cuda_ctx *c, float *const y[], int ldy, const void *const W[], qa_dtype wt,
                     const float *const b[], const int N[], int n, int K)
{
    size_t es = wt == QA_BF16 ? sizeof(__nv_bfloat16) : sizeof(float);
    long long sum = N[0];
    if (!c->fused_gemm || n < 2)
        return 0;
    for (int i = 1; i < n; i++) {
        if (y[i] != y[i - 1] + N[i - 1] || (const char *)W[i] != (const char *)W[i - 1] + (size_t)N[i - 1] * K * es)
            return 0;
        if (b && (b[0] ? b[i] != b[i - 1] + N[i - 1] : b[i] != NULL))
            return 0;
        sum += N[i];
    }
    return sum == ldy;
}

/* The fused decode kernel writes row t of a weight at y + t·N: a row stride other than N needs one output row,
 * or the weights joined into one segment of N = ldy. */
static int gemv_rows_ok(int ldy, const int N[], int n, int T, int joined)
{
    if (T == 1 || joined)
        return 1;
    for (int i = 0; i < n; i++)
        if (ldy != N[i])
            return 0;
    return 1;
}

qa_status qa_cuda_norm_gemm(qa_cuda_ctx *c, float *const y[], int ldy, const float *x, const float *nw, float eps,
                            const void *const W[], qa_dtype wt, const int N[], int n, int T, int K, float beta,
                            qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    const int joined = qa_cuda_one_gemm(c, y, ldy, W, wt, NULL, N, n, K);
    int ld[QA_NORM_GEMM_MAX];
    for (int i = 0; i < n; i++)
        ld[i] = ldy ? ldy : N[i];
    if (wt == QA_BF16 && qa_cu_norm_gemv_fits(x, W, n, T, K) && gemv_rows_ok(ld[0], N, n, T, joined)) {
        qa_cu_ngemv_seg seg[QA_NORM_GEMM_MAX];
        for (int i = 0; i < n; i++)
            seg[i] = qa_cu_ngemv_seg{W[i], y[i], N[i]};
        if (joined) /* the same rows, one segment: every output row's sum is the same warp loop */
            seg[0].N = ldy;
        return qa_cu_norm_gemv(c->stream, seg, joined ? 1 : n, 0, x, nw, eps, T, K, beta, e);
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
        for (int i = 0; i < (joined ? 1 : n); i++) {
            float *yr = y[i] + (size_t)t0 * ld[i];
            int Ni = joined ? ldy : N[i];
            if (bf16)
                QA_TRY(qa_cuda_gemm_staged(c, yr, ld[i], (const __nv_bfloat16 *)c->work, W[i], nr, Ni, K, beta, e));
            else
                QA_TRY(qa_cuda_gemm(c, yr, ld[i], (const float *)c->work, K, W[i], QA_F32, nr, Ni, K, beta, e));
        }
    }
    return QA_OK;
}

/* gate | up rows of gu [nr, 2F] = h · [Wg; Wu]^T: one GEMM when the weights are adjacent (qa_cuda_one_gemm), else two
 * writing the row halves. h: the normalised rows in the work area, BF16 (staged) or FP32. gu holds FP32, or with
 * to_bf16 (BF16 weights) BF16 rows of 2F in the front half of the buffer. */
static qa_status gate_up(qa_cuda_ctx *c, float *gu, int to_bf16, const void *h, const void *Wg, const void *Wu,
                         qa_dtype wt, int nr, int D, int F, qa_err *e)
{
    float *const y[2] = {gu, gu + F}; /* the layout qa_cuda_one_gemm checks: the same for BF16 elements */
    const void *const W[2] = {Wg, Wu};
    const int N[2] = {F, F};
    const int joined = qa_cuda_one_gemm(c, y, 2 * F, W, wt, NULL, N, 2, D);
    for (int i = 0; i < (joined ? 1 : 2); i++) {
        int Ni = joined ? 2 * F : F;
        if (to_bf16)
            QA_TRY(qa_cuda_gemm_staged_to_bf16(c, (__nv_bfloat16 *)gu + (size_t)i * F, 2 * F,
                                               (const __nv_bfloat16 *)h, W[i], nr, Ni, D, e));
        else if (wt == QA_BF16)
            QA_TRY(qa_cuda_gemm_staged(c, y[i], 2 * F, (const __nv_bfloat16 *)h, W[i], nr, Ni, D, 0.f, e));
        else
            QA_TRY(qa_cuda_gemm(c, y[i], 2 * F, (const float *)h, D, W[i], QA_F32, nr, Ni, D, 0.f, e));
    }
    return QA_OK;
}

/* BF16 rows beyond the fused kernel: per row block, RMSNorm -> BF16 staging, gate | up GEMM(s), silu·up ->
 * BF16 staging (the normalised rows are consumed by then: stream order), down GEMM onto x. gate | up is BF16
 * (c->gu_bf16, issue #6: half the bytes of the [T, 2F] intermediate written and read; transformers' bf16 Linear
 * rounds it so too) or FP32 (QA_CUDA_GU_BF16=0). */
static qa_status mlp_staged(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                            const void *Wd, float *gu, int T, int D, int F, qa_err *e)
{
    int rows = 0, width = D > F ? D : F;
    QA_TRY(qa_cuda_work_rows(c, (size_t)width * sizeof(__nv_bfloat16), T, "norm_mlp", &rows, e));
    __nv_bfloat16 *stage = (__nv_bfloat16 *)c->work;
    for (int t0 = 0; t0 < T; t0 += rows) {
        int nr = T - t0 < rows ? T - t0 : rows;
        float *xr = x + (size_t)t0 * D;
        QA_TRY(qa_cu_rmsnorm_bf16(c->stream, stage, xr, nw, nr, D, eps, e));
        QA_TRY(gate_up(c, gu, c->gu_bf16, stage, Wg, Wu, QA_BF16, nr, D, F, e));
        if (c->gu_bf16)
            QA_TRY(qa_cu_silu_mul_bf16in(c->stream, stage, F, (const __nv_bfloat16 *)gu,
                                         (const __nv_bfloat16 *)gu + F, 2 * F, nr, F, e));
        else
            QA_TRY(qa_cu_silu_mul_bf16(c->stream, stage, F, gu, gu + F, 2 * F, nr, F, e));
        QA_TRY(qa_cuda_gemm_staged(c, xr, D, stage, Wd, nr, D, F, 1.f, e));
    }
    return QA_OK;
}

/* FP32 weights: the separate ops' exact sequence, RMSNorm rows in the work area; silu·up in place over the gate
 * half, which the down GEMM reads at row stride 2F. */
static qa_status mlp_f32(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                         const void *Wd, float *gu, int T, int D, int F, qa_err *e)
{
    int rows = 0;
    QA_TRY(qa_cuda_work_rows(c, (size_t)D * sizeof(float), T, "norm_mlp", &rows, e));
    float *h = (float *)c->work;
    for (int t0 = 0; t0 < T; t0 += rows) {
        int nr = T - t0 < rows ? T - t0 : rows;
        float *xr = x + (size_t)t0 * D;
        QA_TRY(qa_cu_rmsnorm(c->stream, h, xr, nw, QA_F32, nr, D, eps, e));
        QA_TRY(gate_up(c, gu, 0, h, Wg, Wu, QA_F32, nr, D, F, e));
        QA_TRY(qa_cu_silu_mul(c->stream, gu, 2 * F, gu, gu + F, 2 * F, nr, F, e));
        QA_TRY(qa_cuda_gemm(c, xr, D, gu, 2 * F, Wd, QA_F32, nr, D, F, 1.f, e));
    }
    return QA_OK;
}

qa_status qa_cuda_norm_mlp(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                           const void *Wd, qa_dtype wt, float *gu, int T, int D, int F, qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    if (wt == QA_F32)
        return mlp_f32(c, x, nw, eps, Wg, Wu, Wd, gu, T, D, F, e);
    const void *W[2] = {Wg, Wu};
    if (!qa_cu_norm_gemv_fits(x, W, 2, T, D) || !qa_cu_gemv_bf16_fits(gu, F, Wd, T, F))
        return mlp_staged(c, x, nw, eps, Wg, Wu, Wd, gu, T, D, F, e);
    /* decode rows: the fused gate/up kernel writes silu(g)·u as [T, F] at the start of gu */
    const qa_cu_ngemv_seg seg[2] = {{Wg, gu, F}, {Wu, NULL, F}};
    QA_TRY(qa_cu_norm_gemv(c->stream, seg, 2, 1, x, nw, eps, T, D, 0.f, e));
    return qa_cu_gemv_bf16(c->stream, x, D, gu, F, Wd, T, D, F, 1.f, e); /* x += silu(g)·u · Wd^T */
}
