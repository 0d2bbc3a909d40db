/* act.cu — elementwise activations and residual adds: GELU (erf), SiLU(gate)*up, add, bias(+GELU).
 *
 * Contract: ops.cuh. Grid-stride loops over n elements (n may exceed 2^31); silu·mul over [rows, F] with row
 * strides (norm_mlp's g | u rows, API 8), FP32 or (QA_CUDA_GU_BF16) BF16 g | u. In place ok everywhere. gelu_bf16 writes the BF16 rounding of exactly the
 * value gelu writes (the same qa_gelu_erf).
 * References: torch.nn.functional.gelu default (exact, 0.5 x (1 + erf(x / sqrt 2))) for the encoder
 * and projector (MODEL_FACTS §4); Qwen3MLP down(silu(gate(x)) * up(x)) with silu(g) = g / (1 + e^-g).
 */
#include "ops.cuh"

__global__ void gelu_kernel(float *out, const float *x, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = qa_gelu_erf(x[i]);
}

__device__ __forceinline__ void put(float *p, float v) { *p = v; }
__device__ __forceinline__ void put(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* The encoder's fc1 output -> fc2's BF16 operand in one pass (ln_mlp): 16-byte loads, 8-byte stores. */
__global__ void gelu_bf16_4_kernel(__nv_bfloat16 *out, const float4 *x, size_t n4)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        float4 v = x[i];
        qa_store4(out + 4 * i, make_float4(qa_gelu_erf(v.x), qa_gelu_erf(v.y), qa_gelu_erf(v.z), qa_gelu_erf(v.w)));
    }
}

__global__ void gelu_bf16_kernel(__nv_bfloat16 *out, const float *x, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        put(out + i, qa_gelu_erf(x[i]));
}

/* O = __nv_bfloat16: the product rounded as gemm.cu would stage it for the down GEMM (norm_mlp). V = 4: float4 loads
 * (the scalar kernel moved ~1.7 TB/s on the decoder MLP's 512 x 3072 tiles, Nsight Compute, H200). Rows on grid y
 * (a row loop past 65535), the row's F / V vectors on x: no per-element division. */
template <typename O, int V>
__global__ void silu_mul_kernel(O *out, int ldo, const float *g, const float *u, int ld, int rows, int FV)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= FV)
        return;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const size_t i = (size_t)r * ld + (size_t)c * V, o = (size_t)r * ldo + (size_t)c * V;
        if (V == 4) {
            float4 a = *(const float4 *)(g + i), b = *(const float4 *)(u + i);
            qa_store4(out + o, make_float4(qa_silu_mul(a.x, b.x), qa_silu_mul(a.y, b.y), qa_silu_mul(a.z, b.z),
                                           qa_silu_mul(a.w, b.w)));
        } else {
            put(out + o, qa_silu_mul(g[i], u[i]));
        }
    }
}

/* silu·mul of BF16 gate / up (norm_mlp's gate | up GEMM rounded its output, QA_CUDA_GU_BF16), same FP32 formula,
 * BF16 out. V = 8: one 16-byte load of each and one 16-byte store per thread and row; layout as silu_mul_kernel. */
template <int V>
__global__ void silu_mul_bf16in_kernel(__nv_bfloat16 *out, int ldo, const __nv_bfloat16 *g, const __nv_bfloat16 *u,
                                       int ld, int rows, int FV)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= FV)
        return;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const size_t i = (size_t)r * ld + (size_t)c * V, o = (size_t)r * ldo + (size_t)c * V;
        if (V == 8) {
            float a[8], b[8];
            qa_bf16x8(*(const uint4 *)(g + i), a);
            qa_bf16x8(*(const uint4 *)(u + i), b);
            uint4 res;
            __nv_bfloat162 *p = (__nv_bfloat162 *)&res;
#pragma unroll
            for (int j = 0; j < 4; j++)
                p[j] = __floats2bfloat162_rn(qa_silu_mul(a[2 * j], b[2 * j]), qa_silu_mul(a[2 * j + 1], b[2 * j + 1]));
            *(uint4 *)(out + o) = res;
        } else {
            out[o] = __float2bfloat16_rn(qa_silu_mul(__bfloat162float(g[i]), __bfloat162float(u[i])));
        }
    }
}

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

/* x[i] = act(x[i] + bias[(i / inner) % D]): inner = 1 for a row bias [T, D], inner = Ho*Wo for a
 * conv channel bias over [N, D, Ho, Wo]. */
/* I: the index type. 64-bit division costs ~4x a 32-bit one and this kernel divides per element over
 * the conv maps (23M elements per 60 s), so arrays under 2^32 elements use unsigned indices. */
template <typename I>
__global__ void bias_act_kernel(float *x, const float *bias, I n, unsigned D, I inner, int gelu)
{
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        float v = x[i] + (bias ? bias[(unsigned)((i / inner) % D)] : 0.0f);
        x[i] = gelu ? qa_gelu_erf(v) : v;
    }
}

qa_status qa_cu_gelu(cudaStream_t s, float *out, const float *x, size_t n, qa_err *e)
{
    if (!n)
        return QA_OK;
    gelu_kernel<<<qa_cuda_grid(n), 256, 0, s>>>(out, x, n);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_gelu_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, size_t n, qa_err *e)
{
    if (!n)
        return QA_OK;
    if (n % 4 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)out & 7) == 0)
        gelu_bf16_4_kernel<<<qa_cuda_grid(n / 4), 256, 0, s>>>(out, (const float4 *)x, n / 4);
    else
        gelu_bf16_kernel<<<qa_cuda_grid(n), 256, 0, s>>>(out, x, n);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

template <typename O>
static qa_status silu_mul(cudaStream_t s, O *out, int ldo, const float *gate, const float *up, int ld, int rows, int F,
                          qa_err *e)
{
    if (rows <= 0 || F <= 0)
        return QA_OK;
    const int vec = F % 4 == 0 && ld % 4 == 0 && ldo % 4 == 0 && (((uintptr_t)gate | (uintptr_t)up) & 15) == 0 &&
                    ((uintptr_t)out & (4 * sizeof(O) - 1)) == 0;
    const int FV = vec ? F / 4 : F;
    dim3 grid((unsigned)((FV + 255) / 256), (unsigned)(rows < 65535 ? rows : 65535));
    if (vec)
        silu_mul_kernel<O, 4><<<grid, 256, 0, s>>>(out, ldo, gate, up, ld, rows, FV);
    else
        silu_mul_kernel<O, 1><<<grid, 256, 0, s>>>(out, ldo, gate, up, ld, rows, FV);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_silu_mul(cudaStream_t s, float *out, int ldo, const float *gate, const float *up, int ld, int rows,
                         int F, qa_err *e)
{
    return silu_mul(s, out, ldo, gate, up, ld, rows, F, e);
}

qa_status qa_cu_silu_mul_bf16(cudaStream_t s, __nv_bfloat16 *out, int ldo, const float *gate, const float *up, int ld,
                              int rows, int F, qa_err *e)
{
    return silu_mul(s, out, ldo, gate, up, ld, rows, F, e);
}

/* 128 threads: F / 8 = 384 (aligner) and 768 (ASR-1.7B) vectors per row fill whole blocks. */
qa_status qa_cu_silu_mul_bf16in(cudaStream_t s, __nv_bfloat16 *out, int ldo, const __nv_bfloat16 *gate,
                                const __nv_bfloat16 *up, int ld, int rows, int F, qa_err *e)
{
    if (rows <= 0 || F <= 0)
        return QA_OK;
    const int vec = F % 8 == 0 && ld % 8 == 0 && ldo % 8 == 0 &&
                    (((uintptr_t)gate | (uintptr_t)up | (uintptr_t)out) & 15) == 0;
    const int FV = vec ? F / 8 : F;
    dim3 grid((unsigned)((FV + 127) / 128), (unsigned)(rows < 65535 ? rows : 65535));
    if (vec)
        silu_mul_bf16in_kernel<8><<<grid, 128, 0, s>>>(out, ldo, gate, up, ld, rows, FV);
    else
        silu_mul_bf16in_kernel<1><<<grid, 128, 0, s>>>(out, ldo, gate, up, ld, rows, FV);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_add(cudaStream_t s, float *out, const float *a, const float *b, size_t n, qa_err *e)
{
    if (!n)
        return QA_OK;
    add_kernel<<<qa_cuda_grid(n), 256, 0, s>>>(out, a, b, n);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_bias_act(cudaStream_t s, float *x, const float *bias, size_t n, int D, size_t inner, int gelu,
                         qa_err *e)
{
    if (!n || (!bias && !gelu))
        return QA_OK;
    inner = inner ? inner : 1;
    if (n <= 0xffffffffu - (size_t)qa_cuda_grid(n) * 256) /* i + stride never wraps */
        bias_act_kernel<unsigned><<<qa_cuda_grid(n), 256, 0, s>>>(x, bias, (unsigned)n, (unsigned)D, (unsigned)inner,
                                                                  gelu);
    else
        bias_act_kernel<size_t><<<qa_cuda_grid(n), 256, 0, s>>>(x, bias, n, (unsigned)D, inner, gelu);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
