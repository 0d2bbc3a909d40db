/* gemv.cu — y[T, N] = x[T, K] W[N, K]^T + beta y for a few rows T and BF16 weights (ASR decode, heads).
 *
 * Contract: ops.cuh (qa_cu_gemv_bf16). With one to four rows a Linear layer is a pass over its weights:
 * the floor is the bytes of W over HBM bandwidth. cuBLAS's GemmEx picks tile kernels for n = 1 that
 * reached a fifth of that on the H200 (bench/gpu_profile.py: 27.7 us for a 14 MB matrix). Here one
 * warp owns one output column n: its lanes stream W's row with 16-byte loads, eight per lane in flight
 * and the next eight issued before those are used (gemv.cuh), and FMA them against x, which every warp
 * re-reads through L1 (at most 4 x 6144 floats). x is rounded to BF16 first, as gemm.cu stages it for
 * cuBLAS, so the products are the same; accumulation is FP32 (order differs from cuBLAS: last-bit
 * differences only). Launched with PDL (pdl.cuh): a warp's first weight loads overlap the previous kernel.
 * QA_CUDA_GEMV_VARIANT (gemv.cuh) picks this block-per-8-columns kernel (0) or a persistent one (1 to 3; 1 the
 * default): same sums, other warps.
 */
#include <limits.h>

#include "gemv.cuh"

#define WARPS 8

__device__ __forceinline__ float bf16r(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

/* x rows from global memory (every warp of the grid re-reads them: L1 / L2 hits), rounded to BF16. Plain loads,
 * not the read-only path (__ldg): x is written by the kernel before this one, which may still run when this one
 * starts (PDL), so x is not read-only for this kernel's lifetime as ld.global.nc requires. */
struct gemv_x {
    const float *x;
    int ldx;
    __device__ __forceinline__ void get(int t, int c, float f[8]) const
    {
        const float4 *p = (const float4 *)(x + (size_t)t * ldx) + 2 * c;
        float4 a = p[0], b = p[1];
        f[0] = bf16r(a.x), f[1] = bf16r(a.y), f[2] = bf16r(a.z), f[3] = bf16r(a.w);
        f[4] = bf16r(b.x), f[5] = bf16r(b.y), f[6] = bf16r(b.z), f[7] = bf16r(b.w);
    }
};

/* One warp per output column n, QA_GV_BATCH chunks of its weight row per batch (gemv.cuh). Launched with PDL
 * (pdl.cuh): the first two batches of weights are loaded before the wait. At least 2 blocks per SM (<= 128
 * registers). */
template <int TT>
__global__ void __launch_bounds__(WARPS * 32, 2) gemv_bf16_kernel(float *y, int ldy, const float *x, int ldx,
                                                                   const __nv_bfloat16 *W, int N, int K, float beta)
{
    const int lane = threadIdx.x & 31, n = blockIdx.x * WARPS + (threadIdx.x >> 5), K8 = K / 8;
    const uint4 *const row[1] = {n < N ? (const uint4 *)(W + (size_t)n * K) : NULL};
    uint4 w[1][QA_GV_BATCH], next[1][QA_GV_BATCH];
    qa_gv_first(w, next, row, K8);
    qa_pdl_wait();
    qa_pdl_trigger();
    if (n >= N)
        return;
    float acc[1][TT];
    qa_gv_zero(acc);
    qa_gv_stream<TT>(acc, w, next, row, gemv_x{x, ldx}, K8);
#pragma unroll
    for (int t = 0; t < TT; t++) {
        float s = qa_warp_sum(acc[0][t]);
        if (lane == 0) {
            float *o = y + (size_t)t * ldy + n;
            *o = beta != 0.f ? s + beta * *o : s;
        }
    }
}

/* Output n = first + i·stride of the persistent kernel (gemv.cuh qa_gv_stream_rows). */
struct gemv_rows {
    const __nv_bfloat16 *W;
    float *y;
    int ldy, N, K, first, stride;
    float beta;
    __device__ __forceinline__ bool has(int i) const { return first + i * stride < N; }
    __device__ __forceinline__ void rows(int i, const uint4 *(&p)[1]) const
    {
        const int n = first + i * stride;
        p[0] = n < N ? (const uint4 *)(W + (size_t)n * K) : NULL;
    }
    template <int TT> __device__ __forceinline__ void put(int i, const float (&acc)[1][TT]) const
    {
        const int n = first + i * stride;
#pragma unroll
        for (int t = 0; t < TT; t++) {
            float s = qa_warp_sum(acc[0][t]);
            if ((threadIdx.x & 31) == 0) {
                float *o = y + (size_t)t * ldy + n;
                *o = beta != 0.f ? s + beta * *o : s;
            }
        }
    }
};

/* QA_CUDA_GEMV_VARIANT 1 to 3 (gemv.cuh): a grid of 2 (or 1) blocks per SM, each warp streams the columns n = its warp
 * index + k · (the grid's warps) with one pipeline. The numbers of gemv_bf16_kernel. */
template <int TT>
__global__ void __launch_bounds__(WARPS * 32, 2) gemv_bf16_rows_kernel(float *y, int ldy, const float *x, int ldx,
                                                                        const __nv_bfloat16 *W, int N, int K,
                                                                        float beta)
{
    const gemv_rows r = {W, y, ldy, N, K, (int)(blockIdx.x * WARPS + (threadIdx.x >> 5)), (int)(gridDim.x * WARPS),
                         beta};
    const int K8 = K / 8;
    int li = 0, lc = 0;
    uint4 w[1][QA_GV_BATCH], next[1][QA_GV_BATCH];
    qa_gv_prime(w, next, r, li, lc, K8);
    qa_gv_stream_rows<TT>(w, next, r, gemv_x{x, ldx}, K8, li, lc);
}

template <int TT>
static cudaError_t gemv_launch(cudaStream_t s, float *y, int ldy, const float *x, int ldx, const __nv_bfloat16 *W,
                               int N, int K, float beta)
{
    dim3 grid(qa_cuda_blocks((size_t)N, WARPS)), block(WARPS * 32);
    /* the kernel numbers columns with int, up to two batches past the last */
    if (qa_cu_gemv_variant() == 0 || (long long)N + 2LL * grid.x * WARPS > INT_MAX)
        return qa_cu_launch(gemv_bf16_kernel<TT>, grid, block, 0, s, y, ldy, x, ldx, W, N, K, beta);
    cudaError_t err = qa_gv_persistent_grid(grid.x, qa_gv_per_sm(false), &grid.x);
    if (err != cudaSuccess)
        return err;
    return qa_cu_launch(gemv_bf16_rows_kernel<TT>, grid, block, 0, s, y, ldy, x, ldx, W, N, K, beta);
}

int qa_cu_gemv_bf16_fits(const float *x, int ldx, const void *W, int T, int K)
{
    return T >= 1 && T <= QA_CU_GEMV_MAX_ROWS && K % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)W & 15) == 0;
}

qa_status qa_cu_gemv_bf16(cudaStream_t s, float *y, int ldy, const float *x, int ldx, const void *W, int T, int N,
                          int K, float beta, qa_err *e)
{
    if (!qa_cu_gemv_bf16_fits(x, ldx, W, T, K))
        return QA_FAIL(e, QA_ERR_INTERNAL, "gemv: %d rows of K=%d (ldx %d) outside its contract", T, K, ldx);
    if (N <= 0)
        return QA_OK;
    const __nv_bfloat16 *w = (const __nv_bfloat16 *)W;
    cudaError_t err;
    switch (T) {
    case 1: err = gemv_launch<1>(s, y, ldy, x, ldx, w, N, K, beta); break;
    case 2: err = gemv_launch<2>(s, y, ldy, x, ldx, w, N, K, beta); break;
    case 3: err = gemv_launch<3>(s, y, ldy, x, ldx, w, N, K, beta); break;
    default: err = gemv_launch<4>(s, y, ldy, x, ldx, w, N, K, beta); break;
    }
    QA_CUDA_CHECK(e, err);
    return QA_OK;
}
