/* conv.cu — the audio tower's 3x3 / stride 2 / pad 1 convolutions (a direct kernel for one input
 * channel, im2col + GEMM for the rest), and the flatten that feeds conv_out.
 *
 * Contract: ops.cuh. qa_cu_im2col3s2 writes, per image n, a [Cin*9, Ho*Wo] matrix whose row
 * ci*9 + ky*3 + kx matches the PyTorch weight layout [Cout, Cin, 3, 3] flattened to [Cout, Cin*9], so
 * conv = W[Cout, Cin*9] @ col (one GEMM per image, strided-batched), plus bias, then GELU
 * (MODEL_FACTS §4.2: mel 128 -> 64 -> 32 -> 16, time 100 -> 50 -> 25 -> 13).
 * Deferred activation (backend.h conv2d / chunk_flatten `xb`): the GEMM of conv i writes its raw
 * product, and the gather of conv i+1 (or the flatten after conv3) reads GELU(x + xb[channel]) — one
 * pass over each map less; GELU runs ~2.25 times per element in the im2col, which costs less than the
 * read + write pass it replaces.
 * qa_cu_conv1ch3s2 is conv1 (one input channel: 9 MACs per output, a bandwidth-bound direct kernel; the
 * im2col + GEMM with K = 9 ran a slow non-tensor-core cuBLAS kernel). With BF16 weights it rounds
 * the input to BF16 as the im2col did, so only the FP32 summation order differs from the GEMM.
 * qa_cu_mel_chunks cuts the [M, frames] log-mel into N zero-padded [1, M, L] images (MODEL_FACTS
 * §4.1: the last partial chunk is padded with 0.0 before the convs). qa_cu_conv_flatten permutes
 * [N, C, Fq, Tt] to [N, Tt, C*Fq] with feature index c*Fq + f, the order of transformers'
 * `permute(0, 3, 1, 2).view(b, t, c * f)` before conv_out (MODEL_FACTS §4.3).
 */
#include <string.h>

#include "ops.cuh"

/* The erf GELU in act.cu's gelu_erf expression: the deferred bias + GELU must give the bits that
 * bias_act_kernel gave over the stored map. */
__device__ __forceinline__ float conv_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

/* A map value as the next op reads it: raw, or GELU(x + bias) of its channel when deferred here. */
__device__ __forceinline__ float act_in(float v, const float *xb, float bias) { return xb ? conv_gelu(v + bias) : v; }

#define IM2COL_VEC 8 /* outputs per thread: one 16-byte store of BF16, two of FP32 */

__device__ __forceinline__ unsigned bf16x2(float lo, float hi)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); /* .x (lower address) = lo, each rounded as _rn */
    unsigned u;
    memcpy(&u, &h, sizeof u);
    return u;
}

__device__ __forceinline__ void store_vec(float *d, const float (&v)[IM2COL_VEC])
{
    reinterpret_cast<float4 *>(d)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4 *>(d)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

__device__ __forceinline__ void store_vec(__nv_bfloat16 *d, const float (&v)[IM2COL_VEC])
{
    *reinterpret_cast<uint4 *>(d) = make_uint4(bf16x2(v[0], v[1]), bf16x2(v[2], v[3]), bf16x2(v[4], v[5]),
                                               bf16x2(v[6], v[7]));
}

__device__ __forceinline__ void store_one(float *d, float v) { *d = v; }
__device__ __forceinline__ void store_one(__nv_bfloat16 *d, float v) { *d = __float2bfloat16_rn(v); }

/* Thread t fills IM2COL_VEC consecutive positions p0.. of im2col row r = t / groups (r = (n*Cin + ci)*9
 * + ky*3 + kx): coalesced 16-byte stores when a row is a whole number of vectors (vec), the strided
 * reads hit L1. Index math in 32 bits (the launcher checks the sizes). The first version ran a block
 * per row with one 2-byte store per thread: 4.8 ms of a 300 s align on an H200 (Nsight Compute). */
template <typename O>
__global__ void im2col3s2_kernel(O *col, const float *x, const float *xb, int Cin, int Hi, int Wi, int Ho, int Wo,
                                 unsigned groups, unsigned total, int vec)
{
    const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total)
        return;
    const unsigned r = t / groups, plane = r / 9u; /* plane = n * Cin + ci */
    const int kk = (int)(r - plane * 9u), ky = kk / 3 - 1, kx = kk % 3 - 1, P = Ho * Wo;
    const int p0 = (int)(t - r * groups) * IM2COL_VEC;
    const float *xp = x + (size_t)plane * Hi * Wi;
    const float bias = xb ? xb[plane % (unsigned)Cin] : 0.f;
    int oy = p0 / Wo, ox = p0 - oy * Wo;
    float v[IM2COL_VEC];
#pragma unroll
    for (int i = 0; i < IM2COL_VEC; i++) {
        const int iy = 2 * oy + ky, ix = 2 * ox + kx;
        /* zero padding of the activated map: outside the image the input is 0, not GELU(bias) */
        v[i] = (p0 + i < P && iy >= 0 && iy < Hi && ix >= 0 && ix < Wi) ? act_in(__ldg(xp + iy * Wi + ix), xb, bias)
                                                                       : 0.f;
        if (++ox == Wo) {
            ox = 0;
            oy++;
        }
    }
    O *out = col + (size_t)r * P + p0;
    if (vec) {
        store_vec(out, v);
        return;
    }
#pragma unroll
    for (int i = 0; i < IM2COL_VEC; i++)
        if (p0 + i < P)
            store_one(out + i, v[i]);
}

#define CONV1_CO 8 /* output channels per thread of the one-channel conv: its 9 inputs are read once */

__device__ __forceinline__ float weight_f32(const float *w, int i) { return __ldg(w + i); }
__device__ __forceinline__ float weight_f32(const __nv_bfloat16 *w, int i) { return __bfloat162float(w[i]); }

__device__ __forceinline__ float input_as(const float *, float v) { return v; }
__device__ __forceinline__ float input_as(const __nv_bfloat16 *, float v)
{
    return __bfloat162float(__float2bfloat16_rn(v)); /* the BF16 im2col operand of the GEMM it replaces */
}

/* y[n, co, oy, ox] = act(b[co] + Σ_k w[co, k] x[n, 0, 2oy+ky-1, 2ox+kx-1]), k = ky*3 + kx, zero padding.
 * Grid: x = output positions (coalesced stores per channel), y = groups of CONV1_CO channels, z = n. */
template <typename W>
__global__ void conv1ch3s2_kernel(float *y, const float *x, const W *w, const float *b, int Cout, int Hi, int Wi,
                                  int Ho, int Wo, int gelu)
{
    const int p = blockIdx.x * blockDim.x + threadIdx.x, P = Ho * Wo, n = blockIdx.z;
    if (p >= P)
        return;
    const int oy = p / Wo, ox = p - oy * Wo;
    const float *xn = x + (size_t)n * Hi * Wi;
    float in[9];
#pragma unroll
    for (int k = 0; k < 9; k++) {
        const int iy = 2 * oy + k / 3 - 1, ix = 2 * ox + k % 3 - 1;
        in[k] = iy >= 0 && iy < Hi && ix >= 0 && ix < Wi ? input_as(w, __ldg(xn + iy * Wi + ix)) : 0.f;
    }
    const int co0 = blockIdx.y * CONV1_CO;
#pragma unroll
    for (int j = 0; j < CONV1_CO; j++) {
        const int co = co0 + j;
        if (co >= Cout)
            break;
        float acc = 0.f;
#pragma unroll
        for (int k = 0; k < 9; k++)
            acc = fmaf(weight_f32(w, co * 9 + k), in[k], acc);
        const float v = acc + (b ? __ldg(b + co) : 0.f);
        y[((size_t)n * Cout + co) * P + p] = gelu ? conv_gelu(v) : v;
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

__global__ void conv_flatten_kernel(float *out, const float *x, const float *xb, int N, int C, int Fq, int Tt)
{
    size_t total = (size_t)N * C * Fq * Tt;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        /* idx walks the output [n][t][c*Fq + f] so writes are coalesced */
        int f = (int)(idx % Fq);
        int c = (int)((idx / Fq) % C);
        int t = (int)((idx / ((size_t)Fq * C)) % Tt);
        int n = (int)(idx / ((size_t)Fq * C * Tt));
        out[idx] = act_in(x[(((size_t)n * C + c) * Fq + f) * Tt + t], xb, xb ? xb[c] : 0.f);
    }
}

qa_status qa_cu_im2col3s2(cudaStream_t s, void *col, int bf16, const float *x, const float *xb, int N, int Cin,
                          int Hi, int Wi, qa_err *e)
{
    int Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1, P = Ho * Wo;
    size_t rows = (size_t)N * Cin * 9, groups = ((size_t)P + IM2COL_VEC - 1) / IM2COL_VEC, total = rows * groups;
    if (!total)
        return QA_OK;
    if (total > 0xffffffffu - 255 || (size_t)Hi * Wi > 0x7fffffffu)
        return QA_FAIL(e, QA_ERR_INTERNAL, "im2col: %zu rows of %zu vectors of a %d x %d plane exceed 32-bit indices",
                       rows, groups, Hi, Wi);
    /* whole vectors per row keep every 16-byte store aligned (col is 256-aligned scratch) */
    int vec = P % IM2COL_VEC == 0 && ((uintptr_t)col & 15) == 0;
    unsigned blocks = (unsigned)((total + 255) / 256);
    if (bf16)
        im2col3s2_kernel<<<blocks, 256, 0, s>>>((__nv_bfloat16 *)col, x, xb, Cin, Hi, Wi, Ho, Wo, (unsigned)groups,
                                                (unsigned)total, vec);
    else
        im2col3s2_kernel<<<blocks, 256, 0, s>>>((float *)col, x, xb, Cin, Hi, Wi, Ho, Wo, (unsigned)groups,
                                                (unsigned)total, vec);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_conv1ch3s2(cudaStream_t s, float *y, const float *x, const void *w, int bf16, const float *b, int N,
                           int Hi, int Wi, int Cout, int gelu, qa_err *e)
{
    int Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1, P = Ho * Wo;
    if (!N || !Cout || !P)
        return QA_OK;
    if (N > 65535 || (Cout + CONV1_CO - 1) / CONV1_CO > 65535 || (size_t)Hi * Wi > 0x7fffffffu)
        return QA_FAIL(e, QA_ERR_INTERNAL, "conv1ch: %d images of %d channels (%d x %d) exceed the grid", N, Cout, Hi,
                       Wi);
    dim3 grid((unsigned)((P + 127) / 128), (unsigned)((Cout + CONV1_CO - 1) / CONV1_CO), (unsigned)N);
    if (bf16)
        conv1ch3s2_kernel<<<grid, 128, 0, s>>>(y, x, (const __nv_bfloat16 *)w, b, Cout, Hi, Wi, Ho, Wo, gelu);
    else
        conv1ch3s2_kernel<<<grid, 128, 0, s>>>(y, x, (const float *)w, b, Cout, Hi, Wi, Ho, Wo, gelu);
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

qa_status qa_cu_conv_flatten(cudaStream_t s, float *out, const float *x, const float *xb, int N, int C, int Fq,
                             int Tt, qa_err *e)
{
    size_t total = (size_t)N * C * Fq * Tt;
    if (!total)
        return QA_OK;
    conv_flatten_kernel<<<qa_cuda_grid(total), 256, 0, s>>>(out, x, xb, N, C, Fq, Tt);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
