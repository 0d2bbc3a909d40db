/* conv.cu — the audio tower's 3x3 / stride 2 / pad 1 convolutions as im2col + GEMM, and the
 * flatten that feeds conv_out.
 *
 * Contract: ops.cuh. qa_cu_im2col3s2 writes, per image n, a [Cin*9, Ho*Wo] matrix whose row
 * ci*9 + ky*3 + kx matches the PyTorch weight layout [Cout, Cin, 3, 3] flattened to [Cout, Cin*9], so
 * conv = W[Cout, Cin*9] @ col (one GEMM per image, strided-batched), plus bias, then GELU
 * (MODEL_FACTS §4.2: mel 128 -> 64 -> 32 -> 16, time 100 -> 50 -> 25 -> 13).
 * qa_cu_conv_flatten permutes [N, C, Fq, Tt] to [N, Tt, C*Fq] with feature index c*Fq + f, the
 * order of transformers' `permute(0, 3, 1, 2).view(b, t, c * f)` before conv_out (MODEL_FACTS §4.3).
 */
#include "ops.cuh"

__global__ void im2col3s2_kernel(float *col, const float *x, int N, int Cin, int Hi, int Wi, int Ho, int Wo)
{
    size_t total = (size_t)N * Cin * 9 * Ho * Wo;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        int ox = (int)(idx % Wo);
        int oy = (int)((idx / Wo) % Ho);
        size_t r = idx / ((size_t)Wo * Ho); /* n * Cin*9 + ci*9 + ky*3 + kx */
        int kk = (int)(r % 9);
        int ci = (int)((r / 9) % Cin);
        int n = (int)(r / ((size_t)9 * Cin));
        int iy = oy * 2 - 1 + kk / 3, ix = ox * 2 - 1 + kk % 3;
        float v = 0.f;
        if (iy >= 0 && iy < Hi && ix >= 0 && ix < Wi)
            v = x[(((size_t)n * Cin + ci) * Hi + iy) * Wi + ix];
        col[idx] = v;
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

qa_status qa_cu_im2col3s2(cudaStream_t s, float *col, const float *x, int N, int Cin, int Hi, int Wi, qa_err *e)
{
    int Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1;
    size_t total = (size_t)N * Cin * 9 * Ho * Wo;
    if (!total)
        return QA_OK;
    im2col3s2_kernel<<<qa_cuda_grid(total), 256, 0, s>>>(col, x, N, Cin, Hi, Wi, Ho, Wo);
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
