/* convert.cu — dtype conversions: FP32 activations <-> BF16 GEMM operands, and weight upload
 * (checkpoint dtype -> compute dtype) on the GPU.
 *
 * Contract: ops.cuh. FP32 -> BF16 rounds to nearest even (__float2bfloat16_rn), as torch's
 * .to(torch.bfloat16) does; BF16 -> FP32 and F16 -> FP32 are exact. Weights stream from the mmapped
 * safetensors to the device in their stored dtype (through the pinned staging buffer of the loader)
 * and are converted here, once, into their final place in the arena (DESIGN.md §5).
 */
#include <cuda_fp16.h>

#include "ops.cuh"

template <typename S, typename D> __device__ __forceinline__ D cvt(S x);
template <> __device__ __forceinline__ __nv_bfloat16 cvt(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ float cvt(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> __device__ __forceinline__ float cvt(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt(__half x) { return __float2bfloat16_rn(__half2float(x)); }

template <typename S, typename D> __global__ void convert_kernel(D *out, const S *x, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = cvt<S, D>(x[i]);
}

template <typename S, typename D> static qa_status launch(cudaStream_t s, D *out, const S *x, size_t n, qa_err *e)
{
    if (!n)
        return QA_OK;
    convert_kernel<S, D><<<qa_cuda_grid(n), 256, 0, s>>>(out, x, n);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_f32_to_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, size_t n, qa_err *e)
{
    return launch(s, out, x, n, e);
}

__global__ void f32_to_bf16_rows_kernel(__nv_bfloat16 *out, const float *x, int K, int ldx, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(x[(i / K) * (size_t)ldx + i % K]);
}

qa_status qa_cu_f32_to_bf16_rows(cudaStream_t s, __nv_bfloat16 *out, const float *x, int T, int K, int ldx,
                                 qa_err *e)
{
    if (ldx == K)
        return launch(s, out, x, (size_t)T * K, e);
    size_t n = (size_t)T * K;
    if (!n)
        return QA_OK;
    f32_to_bf16_rows_kernel<<<qa_cuda_grid(n), 256, 0, s>>>(out, x, K, ldx, n);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_bf16_to_f32(cudaStream_t s, float *out, const __nv_bfloat16 *x, size_t n, qa_err *e)
{
    return launch(s, out, x, n, e);
}

qa_status qa_cu_convert(cudaStream_t s, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                        qa_err *e)
{
    if (dt == st) {
        QA_CUDA_CHECK(e, cudaMemcpyAsync(dst, src, n * qa_dtype_size(st), cudaMemcpyDeviceToDevice, s));
        return QA_OK;
    }
    if (dt == QA_F32 && st == QA_BF16)
        return launch(s, (float *)dst, (const __nv_bfloat16 *)src, n, e);
    if (dt == QA_F32 && st == QA_F16)
        return launch(s, (float *)dst, (const __half *)src, n, e);
    if (dt == QA_BF16 && st == QA_F32)
        return launch(s, (__nv_bfloat16 *)dst, (const float *)src, n, e);
    if (dt == QA_BF16 && st == QA_F16)
        return launch(s, (__nv_bfloat16 *)dst, (const __half *)src, n, e);
    return QA_FAIL(e, QA_ERR_INTERNAL, "convert: no conversion from dtype %d to dtype %d", (int)st, (int)dt);
}
