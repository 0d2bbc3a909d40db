/* convert.cu — dtype conversions: FP32 activations <-> BF16 GEMM operands, and weight upload
 * (checkpoint dtype -> compute dtype) on the GPU.
 *
 * Contract: ops.cuh. FP32 -> BF16 rounds to nearest even (__float2bfloat16_rn), as torch's
 * .to(torch.bfloat16) does; BF16 -> FP32 and F16 -> FP32 are exact. Weights stream from the mmapped
 * safetensors to the device in their stored dtype (through the pinned staging buffers, device.cu
 * qa_cuda_upload_convert, into a chunk of the idle workspace) and are converted here, once, into their
 * final place in the arena (DESIGN.md §5), bit-equal to the host conversion of weights/convert.c.
 */
#include "ops.cuh"

template <typename S, typename D> __device__ __forceinline__ D cvt(S x);
template <> __device__ __forceinline__ __nv_bfloat16 cvt(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ float cvt(__nv_bfloat16 x) { return __bfloat162float(x); }

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

/* FP32 -> BF16 four at a time (16-byte loads, 8-byte stores): the GEMMs' staging pass, bandwidth-bound. */
__global__ void f32_to_bf16_4_kernel(__nv_bfloat16 *out, const float4 *x, size_t n4)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x)
        qa_store4(out + 4 * i, x[i]);
}

qa_status qa_cu_f32_to_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, size_t n, qa_err *e)
{
    if (n % 4 != 0 || ((uintptr_t)x & 15) != 0 || ((uintptr_t)out & 7) != 0)
        return launch(s, out, x, n, e);
    if (!n)
        return QA_OK;
    f32_to_bf16_4_kernel<<<qa_cuda_grid(n / 4), 256, 0, s>>>(out, (const float4 *)x, n / 4);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
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
        return qa_cu_f32_to_bf16(s, out, x, (size_t)T * K, e);
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

/* ---- weight upload: bit-equal to weights/convert.c -----------------------------------------------
 * The load path compares the GPU result with the host conversion bit for bit (tests/test_cuda.py), so
 * these are integer transcriptions of convert.c rather than the CUDA intrinsics: __float2bfloat16_rn
 * and cvt.f32.f16 return the canonical NaN (0x7FFF), convert.c (like torch) keeps sign and payload and
 * sets the quiet bit. Everything else (RNE, overflow to inf, subnormals) agrees anyway. */

__device__ __forceinline__ uint16_t w_bf16_of_f32(uint32_t u) /* convert.c qa_f32_to_bf16 */
{
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__device__ __forceinline__ uint32_t w_f32_of_f16(uint16_t h) /* convert.c qa_f16_to_f32 */
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0x1F)
        return sign | 0x7F800000u | (man << 13);
    if (exp == 0) { /* subnormal: man * 2^-24, exact in float32 */
        float v = (float)man * 5.9604644775390625e-08f;
        return __float_as_uint(sign ? -v : v);
    }
    return sign | ((exp + 112u) << 23) | (man << 13);
}

/* One source element as float32 bits; st: 0 = F32, 1 = BF16, 2 = F16 (qa_dtype values). */
template <int ST> __device__ __forceinline__ uint32_t w_load(const void *src, size_t i);
template <> __device__ __forceinline__ uint32_t w_load<QA_F32>(const void *src, size_t i)
{
    return ((const uint32_t *)src)[i];
}
template <> __device__ __forceinline__ uint32_t w_load<QA_BF16>(const void *src, size_t i)
{
    return (uint32_t)((const uint16_t *)src)[i] << 16;
}
template <> __device__ __forceinline__ uint32_t w_load<QA_F16>(const void *src, size_t i)
{
    return w_f32_of_f16(((const uint16_t *)src)[i]);
}

template <int ST> __global__ void weights_to_bf16_kernel(uint16_t *out, const void *src, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = w_bf16_of_f32(w_load<ST>(src, i));
}

template <int ST> __global__ void weights_to_f32_kernel(uint32_t *out, const void *src, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = w_load<ST>(src, i);
}

template <int ST> static qa_status launch_weights(cudaStream_t s, void *dst, qa_dtype dt, const void *src, size_t n,
                                                 qa_err *e)
{
    if (dt == QA_BF16)
        weights_to_bf16_kernel<ST><<<qa_cuda_grid(n), 256, 0, s>>>((uint16_t *)dst, src, n);
    else
        weights_to_f32_kernel<ST><<<qa_cuda_grid(n), 256, 0, s>>>((uint32_t *)dst, src, n);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_convert(cudaStream_t s, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                        qa_err *e)
{
    if (dt != QA_BF16 && dt != QA_F32)
        return QA_FAIL(e, QA_ERR_INTERNAL, "convert: no conversion to dtype %d (compute dtypes are F32, BF16)",
                       (int)dt);
    if (!n)
        return QA_OK;
    if (dt == st) {
        QA_CUDA_CHECK(e, cudaMemcpyAsync(dst, src, n * qa_dtype_size(st), cudaMemcpyDeviceToDevice, s));
        return QA_OK;
    }
    if (st == QA_F32)
        return launch_weights<QA_F32>(s, dst, dt, src, n, e);
    if (st == QA_BF16)
        return launch_weights<QA_BF16>(s, dst, dt, src, n, e);
    if (st == QA_F16)
        return launch_weights<QA_F16>(s, dst, dt, src, n, e);
    return QA_FAIL(e, QA_ERR_INTERNAL, "convert: no conversion from dtype %d to dtype %d", (int)st, (int)dt);
}
