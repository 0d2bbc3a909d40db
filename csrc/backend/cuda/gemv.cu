/* gemv.cu — y[T, N] = x[T, K] W[N, K]^T + beta y for a few rows T and BF16 weights (ASR decode, heads).
 *
 * Contract: ops.cuh (qa_cu_gemv_bf16). With one to four rows a Linear layer is a pass over its weights:
 * the floor is the bytes of W over HBM bandwidth. cuBLAS's GemmEx picks tile kernels for n = 1 that
 * reached a fifth of that on the H200 (bench/gpu_profile.py: 27.7 us for a 14 MB matrix). Here one
 * warp owns one output column n: its lanes stream W's row with 16-byte loads (8 BF16 each, a warp
 * reads 512 contiguous bytes) and FMA them against x, which every warp re-reads through L1 (at most
 * 4 x 6144 floats). x is rounded to BF16 first, as gemm.cu stages it for cuBLAS, so the products are
 * the same; accumulation is FP32 (order differs from cuBLAS: last-bit differences only).
 */
#include "ops.cuh"

#define WARPS 8

__device__ __forceinline__ float bf16r(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

template <int TT>
__global__ void __launch_bounds__(WARPS * 32) gemv_bf16_kernel(float *y, int ldy, const float *x, int ldx,
                                                                const __nv_bfloat16 *W, int N, int K, float beta)
{
    const int lane = threadIdx.x & 31, n = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (n >= N)
        return;
    const __nv_bfloat16 *w = W + (size_t)n * K;
    float acc[TT];
#pragma unroll
    for (int t = 0; t < TT; t++)
        acc[t] = 0.f;
    /* vector part: K is a multiple of 8 and rows are 16-byte aligned (checked by the launcher) */
    const int K8 = K / 8;
#pragma unroll 4
    for (int c = lane; c < K8; c += 32) {
        float wf[8];
        qa_bf16x8(__ldg((const uint4 *)w + c), wf);
#pragma unroll
        for (int t = 0; t < TT; t++) {
            const float4 *xv = (const float4 *)(x + (size_t)t * ldx) + 2 * c;
            float4 a = __ldg(xv), b = __ldg(xv + 1);
            acc[t] += wf[0] * bf16r(a.x) + wf[1] * bf16r(a.y) + wf[2] * bf16r(a.z) + wf[3] * bf16r(a.w) +
                      wf[4] * bf16r(b.x) + wf[5] * bf16r(b.y) + wf[6] * bf16r(b.z) + wf[7] * bf16r(b.w);
        }
    }
#pragma unroll
    for (int t = 0; t < TT; t++) {
        float s = qa_warp_sum(acc[t]);
        if (lane == 0) {
            float *o = y + (size_t)t * ldy + n;
            *o = beta != 0.f ? s + beta * *o : s;
        }
    }
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
    dim3 grid(qa_cuda_blocks((size_t)N, WARPS)), block(WARPS * 32);
    const __nv_bfloat16 *w = (const __nv_bfloat16 *)W;
    switch (T) {
    case 1: gemv_bf16_kernel<1><<<grid, block, 0, s>>>(y, ldy, x, ldx, w, N, K, beta); break;
    case 2: gemv_bf16_kernel<2><<<grid, block, 0, s>>>(y, ldy, x, ldx, w, N, K, beta); break;
    case 3: gemv_bf16_kernel<3><<<grid, block, 0, s>>>(y, ldy, x, ldx, w, N, K, beta); break;
    default: gemv_bf16_kernel<4><<<grid, block, 0, s>>>(y, ldy, x, ldx, w, N, K, beta); break;
    }
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
