/* rope.cu — positions: rotary embedding (NeoX split-half) and the encoder's sinusoids.
 *
 * Contract: ops.cuh. rope: in place on x [T, H*Dh]; token t at position pos0 + t; for i < Dh/2,
 * a = x[i], b = x[i + Dh/2] -> a cos - b sin, b cos + a sin (rotate_half = cat(-x2, x1)).
 * Reference: transformers Qwen3RotaryEmbedding / apply_rotary_pos_emb (MODEL_FACTS §5); the angles are
 * ops.cuh's qa_rope_angle (the rounding of the reference), cos/sin in fp32 with the accurate cosf/sinf
 * (angles reach thousands of radians; the fast intrinsics lose digits there). The decoder's fused
 * qkv_prep (qkv.cu) rotates with the same angle and the same products.
 * One block per token: the Dh/2 cos/sin values are computed once into shared memory, then applied to
 * all H heads.
 * add_sinusoid: x[t, :] += [sin(p inv), cos(p inv)], p = t mod period, inv[i] = exp(-inc i),
 * inc = fp32(ln(10000) / (E/2 - 1)) (SinusoidsPositionEmbedding, restarting every 13-token chunk).
 */
#include <math.h>

#include "ops.cuh"

#define MAX_HALF 512

__global__ void rope_kernel(float *x, int H, int Dh, long long pos0, float theta)
{
    __shared__ float cs[MAX_HALF], sn[MAX_HALF];
    const int half = Dh / 2, t = blockIdx.x;
    const float pos = (float)(pos0 + t);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float ang = qa_rope_angle(i, Dh, theta, pos);
        cs[i] = cosf(ang);
        sn[i] = sinf(ang);
    }
    __syncthreads();
    float *row = x + (size_t)t * H * Dh;
    for (int j = threadIdx.x; j < H * half; j += blockDim.x) {
        int h = j / half, i = j % half;
        float *p = row + (size_t)h * Dh;
        float a = p[i], b = p[i + half];
        p[i] = a * cs[i] - b * sn[i];
        p[i + half] = b * cs[i] + a * sn[i];
    }
}

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

qa_status qa_cu_rope(cudaStream_t s, float *x, long long T, int H, int Dh, long long pos0, float theta, qa_err *e)
{
    if (Dh % 2 != 0 || Dh / 2 > MAX_HALF)
        return QA_FAIL(e, QA_ERR_INTERNAL, "rope: head dim %d must be even and <= %d", Dh, 2 * MAX_HALF);
    if (T <= 0)
        return QA_OK;
    if (T > 0x7fffffffLL)
        return QA_FAIL(e, QA_ERR_INTERNAL, "rope: %lld rows exceed the grid limit", T);
    rope_kernel<<<(unsigned)T, 256, 0, s>>>(x, H, Dh, pos0, theta);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
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
