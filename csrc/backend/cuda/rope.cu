/* rope.cu — the audio encoder's positions (the text model's RoPE is part of qkv_prep, qkv.cu, with
 * ops.cuh's qa_rope_angle).
 *
 * Contract: ops.cuh. add_sinusoid: x[t, :] += [sin(p inv), cos(p inv)], p = t mod period, inv[i] = exp(-inc i),
 * inc = fp32(ln(10000) / (E/2 - 1)) (SinusoidsPositionEmbedding, restarting every 13-token chunk).
 */
#include <math.h>

#include "ops.cuh"

__global__ void add_sinusoid_kernel(float *x, long long T, int E, long long period, float inc)
{
    const int half = E / 2;
    size_t n = (size_t)T * half;
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        long long t = (long long)(k / half);
        int i = (int)(k % half);
        float p = (float)(t % period);
        float ang = p * expf(-inc * (float)i);
        float *row = x + (size_t)t * E;
        row[i] += sinf(ang);
        row[i + half] += cosf(ang);
    }
}

qa_status qa_cu_add_sinusoid(cudaStream_t s, float *x, long long T, int E, long long period, qa_err *e)
{
    if (E % 2 || E / 2 < 2 || period <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "add_sinusoid: width %d must be even and >= 4, period %lld > 0", E,
                       period);
    size_t n = (size_t)(T > 0 ? T : 0) * (E / 2);
    if (!n)
        return QA_OK;
    float inc = (float)(log(10000.0) / (double)(E / 2 - 1));
    add_sinusoid_kernel<<<qa_cuda_grid(n), 256, 0, s>>>(x, T, E, period, inc);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
