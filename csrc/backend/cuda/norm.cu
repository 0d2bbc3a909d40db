/* norm.cu — LayerNorm (audio encoder) and RMSNorm (text decoder, also per head for q/k norm).
 *
 * Contract: ops.cuh. One block per row for rows of D % 4 == 0 (float4 loads), else one warp per row; the row is read
 * once into registers-by-stride, statistics in fp32 with a two-pass variance (mean first, then sum of squared deviations) like PyTorch's CPU/GPU
 * LayerNorm, so rows with a large mean lose no precision.
 * References: torch.nn.LayerNorm (eps 1e-5 in the encoder, MODEL_FACTS §4.6) and transformers
 * Qwen3RMSNorm: hidden.float() * rsqrt(mean(hidden^2) + eps), then * weight (MODEL_FACTS §5;
 * with fp32 activations the intermediate cast to the input dtype is the identity).
 * RMSNorm also writes BF16 rows: the staged operand of the GEMMs behind it (norm_gemm.cu).
 */
#include "ops.cuh"
#include "pdl.cuh"

#define ROWS_PER_BLOCK 4 /* 4 warps per block, one row each */

template <typename W>
__global__ void layernorm_kernel(float *out, const float *x, const W *w, const W *b, int T, int D, float eps)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.y;
    if (row >= T)
        return;
    const float *xr = x + (size_t)row * D;
    float *yr = out + (size_t)row * D;
    float s = 0.f;
    for (int i = threadIdx.x; i < D; i += 32)
        s += xr[i];
    float mean = qa_warp_sum(s) / D;
    float v = 0.f;
    for (int i = threadIdx.x; i < D; i += 32) {
        float d = xr[i] - mean;
        v += d * d;
    }
    float rstd = rsqrtf(qa_warp_sum(v) / D + eps);
    for (int i = threadIdx.x; i < D; i += 32)
        yr[i] = (xr[i] - mean) * rstd * qa_ld(w, i) + qa_ld(b, i);
}

/* One block per row, float4 loads kept in registers (D <= 4 * LN_VEC * blockDim.x): the warp-per-row kernel
 * above waited on 3 x D/32 dependent loads per lane, ~15 us per call whatever T (Nsight Compute, H200). Same
 * two-pass statistics, summed in another order. */
#define LN_VEC 4
template <typename W, typename O>
__global__ void layernorm_row_kernel(O *out, const float *x, const W *w, const W *b, int D, float eps)
{
    __shared__ float part[32];
    const float4 *xr = (const float4 *)(x + (size_t)blockIdx.x * D);
    O *yr = out + (size_t)blockIdx.x * D;
    const int D4 = D / 4;
    float4 v[LN_VEC];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < LN_VEC; k++) {
        int i = threadIdx.x + k * blockDim.x;
        v[k] = i < D4 ? xr[i] : make_float4(0.f, 0.f, 0.f, 0.f);
        s += (v[k].x + v[k].y) + (v[k].z + v[k].w);
    }
    const float mean = qa_block_sum(s, part) / D;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < LN_VEC; k++)
        if (threadIdx.x + k * blockDim.x < D4) {
            float a = v[k].x - mean, c = v[k].y - mean, d = v[k].z - mean, f = v[k].w - mean;
            q += (a * a + c * c) + (d * d + f * f);
        }
    const float rstd = rsqrtf(qa_block_sum(q, part) / D + eps);
#pragma unroll
    for (int k = 0; k < LN_VEC; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < D4)
            qa_store4(yr + 4 * i, make_float4((v[k].x - mean) * rstd * qa_ld(w, 4 * i) + qa_ld(b, 4 * i),
                                              (v[k].y - mean) * rstd * qa_ld(w, 4 * i + 1) + qa_ld(b, 4 * i + 1),
                                              (v[k].z - mean) * rstd * qa_ld(w, 4 * i + 2) + qa_ld(b, 4 * i + 2),
                                              (v[k].w - mean) * rstd * qa_ld(w, 4 * i + 3) + qa_ld(b, 4 * i + 3)));
    }
}

static int layernorm_row_threads(int D) { return (D / 4 + LN_VEC * 32 - 1) / (LN_VEC * 32) * 32; }

/* Whether the row kernel takes these rows (else the warp kernel, FP32 output only). */
static int layernorm_row_fits(const float *x, const void *out, size_t out_elem, int D)
{
    return D % 4 == 0 && layernorm_row_threads(D) <= 1024 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)out & (4 * out_elem - 1)) == 0;
}

template <typename W>
static void layernorm_launch(cudaStream_t s, float *out, const float *x, const W *w, const W *b, int T, int D,
                             float eps)
{
    if (layernorm_row_fits(x, out, sizeof(float), D)) {
        layernorm_row_kernel<<<T, layernorm_row_threads(D), 0, s>>>(out, x, w, b, D, eps);
        return;
    }
    dim3 block(32, ROWS_PER_BLOCK), grid(qa_cuda_blocks((size_t)T, ROWS_PER_BLOCK));
    layernorm_kernel<<<grid, block, 0, s>>>(out, x, w, b, T, D, eps);
}

__device__ __forceinline__ void store1(float *p, float v) { *p = v; }
__device__ __forceinline__ void store1(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* O: float, or __nv_bfloat16 for a GEMM's staged operand (qa_cu_rmsnorm_bf16). */
template <typename W, typename O>
__global__ void rmsnorm_kernel(O *out, const float *x, const W *w, int R, int D, float eps)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.y;
    if (row >= R)
        return;
    const float *xr = x + (size_t)row * D;
    O *yr = out + (size_t)row * D;
    float s = 0.f;
    for (int i = threadIdx.x; i < D; i += 32)
        s += xr[i] * xr[i];
    float r = rsqrtf(qa_warp_sum(s) / D + eps);
    for (int i = threadIdx.x; i < D; i += 32)
        store1(yr + i, xr[i] * r * qa_ld(w, i));
}

/* One block per row, float4 loads: a decode step's rows (one row of 2048, or 16 heads of 128) left the
 * warp-per-row kernel waiting on 64 dependent loads per lane (~20 us per call on an H200). Launched with PDL
 * (pdl.cuh): the decode step's final norm lets the lm_head GEMV behind it start loading its weights. */
template <typename W, typename O>
__global__ void rmsnorm_row_kernel(O *out, const float *x, const W *w, int D, float eps)
{
    __shared__ float part[32];
    qa_pdl_wait();
    qa_pdl_trigger();
    qa_rmsnorm_row(out + (size_t)blockIdx.x * D, x + (size_t)blockIdx.x * D, w, D, eps, part);
}

template <typename W, typename O>
static cudaError_t rmsnorm_launch(cudaStream_t s, O *out, const float *x, const W *w, int R, int D, float eps)
{
    if (D % 4 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)out & (4 * sizeof(O) - 1)) == 0) {
        int threads = (D / 4 + 31) / 32 * 32;
        return qa_cu_launch(rmsnorm_row_kernel<W, O>, R, threads < 256 ? threads : 256, 0, s, out, x, w, D, eps);
    }
    dim3 block(32, ROWS_PER_BLOCK), grid(qa_cuda_blocks((size_t)R, ROWS_PER_BLOCK));
    rmsnorm_kernel<<<grid, block, 0, s>>>(out, x, w, R, D, eps);
    return cudaGetLastError();
}

qa_status qa_cu_check_wdtype(qa_dtype t, const char *what, qa_err *e)
{
    if (t != QA_BF16 && t != QA_F32)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: weight dtype %d is neither bf16 nor f32 on the CUDA backend",
                       what, (int)t);
    return QA_OK;
}

qa_status qa_cu_layernorm(cudaStream_t s, float *out, const float *x, const void *w, const void *b,
                          qa_dtype wt, int T, int D, float eps, qa_err *e)
{
    QA_TRY(qa_cu_check_wdtype(wt, "layernorm", e));
    if (T <= 0)
        return QA_OK;
    if (wt == QA_BF16)
        layernorm_launch(s, out, x, (const __nv_bfloat16 *)w, (const __nv_bfloat16 *)b, T, D, eps);
    else
        layernorm_launch(s, out, x, (const float *)w, (const float *)b, T, D, eps);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_layernorm_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, const float *w, const float *b,
                               int T, int D, float eps, qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    if (!layernorm_row_fits(x, out, sizeof(__nv_bfloat16), D))
        return QA_FAIL(e, QA_ERR_INTERNAL, "layernorm_bf16: rows of %d (or their alignment) outside the row kernel", D);
    layernorm_row_kernel<<<T, layernorm_row_threads(D), 0, s>>>(out, x, w, b, D, eps);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_rmsnorm(cudaStream_t s, float *out, const float *x, const void *w, qa_dtype wt, int R, int D,
                        float eps, qa_err *e)
{
    QA_TRY(qa_cu_check_wdtype(wt, "rmsnorm", e));
    if (R <= 0)
        return QA_OK;
    if (wt == QA_BF16)
        QA_CUDA_CHECK(e, rmsnorm_launch(s, out, x, (const __nv_bfloat16 *)w, R, D, eps));
    else
        QA_CUDA_CHECK(e, rmsnorm_launch(s, out, x, (const float *)w, R, D, eps));
    return QA_OK;
}

qa_status qa_cu_rmsnorm_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, const float *w, int R, int D,
                             float eps, qa_err *e)
{
    if (R <= 0)
        return QA_OK;
    QA_CUDA_CHECK(e, rmsnorm_launch(s, out, x, w, R, D, eps));
    return QA_OK;
}
