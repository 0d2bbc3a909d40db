/* conv.cu — the audio tower's 3x3 / stride 2 / pad 1 convolutions as im2col + GEMM, and the
 * flatten that feeds conv_out.
 *
 * Contract: ops.cuh. qa_cu_im2col3s2 writes, per image n, a [Cin*9, Ho*Wo] matrix whose row
 * ci*9 + ky*3 + kx matches the PyTorch weight layout [Cout, Cin, 3, 3] flattened to [Cout, Cin*9], so
 * conv = W[Cout, Cin*9] @ col (one GEMM per image, strided-batched), plus bias, then GELU
 * (MODEL_FACTS §4.2: mel 128 -> 64 -> 32 -> 16, time 100 -> 50 -> 25 -> 13).
 * qa_cu_mel_chunks cuts the [M, frames] log-mel into N zero-padded [1, M, L] images (MODEL_FACTS
 * §4.1: the last partial chunk is padded with 0.0 before the convs). qa_cu_conv_flatten permutes [N, C, Fq, Tt] to [N, Tt, C*Fq] with feature index c*Fq + f, the
 * order of transformers' `permute(0, 3, 1, 2).view(b, t, c * f)` before conv_out (MODEL_FACTS §4.3).
 */
#include "ops.cuh"

template <typename O> __device__ __forceinline__ O from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

/* One block per im2col row r = (n, ci, ky, kx): its threads walk the Ho*Wo output positions. The index
 * arithmetic is per row and in 32 bits; the first version decoded every element with six 64-bit
 * divisions, which made the conv stack a quarter of a 60 s align on an H200 (bench/gpu_profile.py). */
template <typename O>
__global__ void im2col3s2_kernel(O *col, const float *x, int Cin, int Hi, int Wi, int Ho, int Wo)
{
    const unsigned r = blockIdx.x; /* n * Cin*9 + ci*9 + ky*3 + kx */
    const int kk = (int)(r % 9u), plane = (int)(r / 9u), ky = kk / 3 - 1, kx = kk % 3 - 1, P = Ho * Wo;
    const float *xp = x + (size_t)plane * Hi * Wi; /* plane = n * Cin + ci */
    O *out = col + (size_t)r * P;
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        int oy = p / Wo, ox = p - oy * Wo, iy = 2 * oy + ky, ix = 2 * ox + kx;
        float v = (iy >= 0 && iy < Hi && ix >= 0 && ix < Wi) ? xp[iy * Wi + ix] : 0.f;
        out[p] = from_f32<O>(v);
    }
}

__global__ void mel_chunks_kernel(float *y, const float *feat, int M, long long ld, long long frame0,
                                  long long valid, int N, int L)
{
    size_t total = (size_t)N * M * L;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        int t = (int)(idx % L);
        int m = (int)((idx / L) % M);
        int n = (int)(idx / ((size_t)L * M));
        long long f = frame0 + (long long)n * L + t;
        y[idx] = f < valid ? feat[(size_t)m * ld + f] : 0.0f;
    }
}

__global__ void conv_flatten_kernel(float *out, const float *x, int N, int C, int Fq, int Tt)
{
    size_t total = (size_t)N * C * Fq * Tt;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        /* idx walks the output [n][t][c*Fq + f] so writes are coalesced */
        int f = (int)(idx % Fq);
        int c = (int)((idx / Fq) % C);
        int t = (int)((idx / ((size_t)Fq * C)) % Tt);
        int n = (int)(idx / ((size_t)Fq * C * Tt));
        out[idx] = x[(((size_t)n * C + c) * Fq + f) * Tt + t];
    }
}

qa_status qa_cu_im2col3s2(cudaStream_t s, void *col, int bf16, const float *x, int N, int Cin, int Hi, int Wi,
                          qa_err *e)
{
    int Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1;
    size_t total = (size_t)N * Cin * 9 * Ho * Wo;
    if (!total)
        return QA_OK;
    size_t rows = (size_t)N * Cin * 9;
    if (rows > 0x7fffffffu || (size_t)Hi * Wi > 0x7fffffffu)
        return QA_FAIL(e, QA_ERR_INTERNAL, "im2col: %zu rows of a %d x %d plane exceed the grid", rows, Hi, Wi);
    int threads = Ho * Wo < 256 ? (Ho * Wo + 31) / 32 * 32 : 256;
    if (bf16)
        im2col3s2_kernel<<<(unsigned)rows, threads, 0, s>>>((__nv_bfloat16 *)col, x, Cin, Hi, Wi, Ho, Wo);
    else
        im2col3s2_kernel<<<(unsigned)rows, threads, 0, s>>>((float *)col, x, Cin, Hi, Wi, Ho, Wo);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_mel_chunks(cudaStream_t s, float *y, const float *feat, int M, long long ld, long long frame0,
                           long long valid, int N, int L, qa_err *e)
{
    size_t total = (size_t)N * M * L;
    if (!total)
        return QA_OK;
    mel_chunks_kernel<<<qa_cuda_grid(total), 256, 0, s>>>(y, feat, M, ld, frame0, valid, N, L);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_conv_flatten(cudaStream_t s, float *out, const float *x, int N, int C, int Fq, int Tt, qa_err *e)
{
    size_t total = (size_t)N * C * Fq * Tt;
    if (!total)
        return QA_OK;
    conv_flatten_kernel<<<qa_cuda_grid(total), 256, 0, s>>>(out, x, N, C, Fq, Tt);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
