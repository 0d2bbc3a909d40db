/* qkv.cu — the decoder's q / k / v preparation in one kernel: per-head RMSNorm + RoPE, K / V rows stored.
 *
 * Contract: ops.cuh (qa_cu_qkv_prep), backend.h qkv_prep. Why one kernel: a decode step used to launch
 * q_norm, k_norm, two ropes and two row stores per layer (6 x 28 kernels of a few microseconds each in
 * the 1.7B ASR step); here one launch per layer does all of it, and writes K / V straight into the
 * cache in its dtype (BF16 for a bfloat16 engine).
 * Layout: one warp per (row t, head j) over the H query heads, then the Hk key heads, then the Hk value
 * heads. A q / k warp reads its head once, forms the sum of squares in registers with norm.cu's
 * rmsnorm_row_kernel order (lane l adds elements 4c..4c+3 of chunks c = l, l + 32, ..., then the warp
 * butterfly), keeps x * rsqrt(mean + eps) * w in its shared-memory row, and rotates the pairs (i, i + Dh/2)
 * with qa_rope_angle below and the products of transformers' rotate_half — so the FP32 numbers are those
 * of rmsnorm then rope. A v warp converts and copies. Every warp writes only its own head, after reading all of it, so
 * q is done in place and kdst == k / vdst == v (FP32, position 0 onwards) is safe.
 * The position comes from pos_dev when given, read when the kernel runs (a recorded decode step, like
 * attention_decode.cu's). Launched with PDL (pdl.cuh): it waits for the q / k / v GEMV before reading.
 * Reference: transformers Qwen3Attention (MODEL_FACTS §5): q_norm / k_norm over each head before RoPE;
 * torch's .to(torch.bfloat16) for the BF16 rows (round to nearest even).
 */
#include <math.h>

#include "ops.cuh"
#include "pdl.cuh"

/* RoPE angle of pair i (< Dh/2) at position pos, rounded as transformers' Qwen3RotaryEmbedding does:
 * inv_freq = 1 / theta^(fp32(2i) / Dh) with the power rounded once to fp32 (as the CPU backend), then one
 * fp32 product fp32(pos) * inv_freq (the position_ids matmul); cos / sin of it are the accurate cosf /
 * sinf (angles reach thousands of radians). */
__device__ __forceinline__ float qa_rope_angle(int i, int Dh, float theta, float pos)
{
    float expo = (float)(2 * i) / (float)Dh;
    float inv = 1.0f / (float)pow((double)theta, (double)expo);
    return inv * pos;
}

#define QKV_WARPS 4 /* heads per block */

struct qkv_args {
    float *q;
    void *kdst, *vdst;
    const float *k, *v, *qw, *kw;
    int T, H, Hk, Dh, pos0;
    const int32_t *pos_dev;
    int max_rows;
    float theta, eps;
};

__device__ __forceinline__ void qkv_put(float *p, float x) { *p = x; }
__device__ __forceinline__ void qkv_put(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }

/* RMSNorm of the head src[Dh] times w into row[Dh] (shared, this warp's), as rmsnorm_row_kernel. */
__device__ __forceinline__ void qkv_norm(float *row, const float *src, const float *w, int Dh, float eps, int lane)
{
    float s = 0.f;
    for (int c = lane; c < Dh / 4; c += 32) {
        float x0 = src[4 * c], x1 = src[4 * c + 1], x2 = src[4 * c + 2], x3 = src[4 * c + 3];
        s += x0 * x0 + x1 * x1 + x2 * x2 + x3 * x3;
        row[4 * c] = x0;
        row[4 * c + 1] = x1;
        row[4 * c + 2] = x2;
        row[4 * c + 3] = x3;
    }
    const float r = rsqrtf(qa_warp_sum(s) / Dh + eps);
    for (int c = lane; c < Dh / 4; c += 32) /* the lane's own elements: no sync needed yet */
        for (int u = 0; u < 4; u++)
            row[4 * c + u] = row[4 * c + u] * r * w[4 * c + u];
    __syncwarp(); /* rope reads the other lanes' halves */
}

/* Rotate row[Dh] by the angles of position pos into dst[Dh] (NeoX split-half, rope.cu's products). */
template <typename D>
__device__ __forceinline__ void qkv_rope(D *dst, const float *row, int Dh, float theta, float pos, int lane)
{
    const int half = Dh / 2;
    for (int i = lane; i < half; i += 32) {
        float ang = qa_rope_angle(i, Dh, theta, pos), cs = cosf(ang), sn = sinf(ang);
        float a = row[i], b = row[i + half];
        qkv_put(dst + i, a * cs - b * sn);
        qkv_put(dst + i + half, b * cs + a * sn);
    }
}

template <typename KV> __global__ void __launch_bounds__(QKV_WARPS * 32) qkv_prep_kernel(qkv_args a)
{
    __shared__ float rows[QKV_WARPS][QA_CU_QKV_MAX_DH];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, NH = a.H + 2 * a.Hk, Dh = a.Dh, KD = a.Hk * Dh;
    const int item = blockIdx.x * QKV_WARPS + warp;
    qa_pdl_wait(); /* launched with PDL (pdl.cuh): everything below reads the previous kernels' outputs */
    qa_pdl_trigger();
    if (item >= a.T * NH)
        return; /* no block-wide sync below: a warp may leave alone */
    const int t = item / NH, j = item % NH;
    const int p = (a.pos_dev ? *a.pos_dev : a.pos0) + t;
    const bool stored = p >= 0 && p < a.max_rows; /* past the cache: an engine bug upstream, never write */
    if (j < a.H) {
        float *qh = a.q + (t * a.H + j) * Dh;
        qkv_norm(rows[warp], qh, a.qw, Dh, a.eps, lane);
        qkv_rope(qh, rows[warp], Dh, a.theta, (float)p, lane);
    } else if (j < a.H + a.Hk) {
        const int g = j - a.H;
        if (!stored)
            return;
        qkv_norm(rows[warp], a.k + t * KD + g * Dh, a.kw, Dh, a.eps, lane);
        qkv_rope((KV *)a.kdst + p * KD + g * Dh, rows[warp], Dh, a.theta, (float)p, lane);
    } else {
        const int g = j - a.H - a.Hk;
        if (!stored)
            return;
        const float *src = a.v + t * KD + g * Dh;
        KV *dst = (KV *)a.vdst + p * KD + g * Dh;
        for (int i = lane; i < Dh; i += 32)
            qkv_put(dst + i, src[i]);
    }
}

qa_status qa_cu_qkv_prep(cudaStream_t s, float *q, void *kdst, void *vdst, int kv_bf16, const float *k, const float *v,
                         const float *qw, const float *kw, int T, int H, int Hk, int Dh, int pos0, const int32_t *pos_dev,
                         int max_rows, float theta, float eps, qa_err *e)
{
    if (Dh <= 0 || Dh % 4 != 0 || Dh > QA_CU_QKV_MAX_DH)
        return QA_FAIL(e, QA_ERR_INTERNAL, "qkv_prep: head dim %d must be a multiple of 4 and <= %d", Dh,
                       QA_CU_QKV_MAX_DH);
    if (T <= 0)
        return QA_OK;
    qkv_args a = {q, kdst, vdst, k, v, qw, kw, T, H, Hk, Dh, pos0, pos_dev, max_rows, theta, eps};
    unsigned blocks = (unsigned)qa_cuda_blocks((size_t)T * (size_t)(H + 2 * Hk), QKV_WARPS);
    QA_CUDA_CHECK(e, kv_bf16 ? qa_cu_launch(qkv_prep_kernel<__nv_bfloat16>, blocks, QKV_WARPS * 32, 0, s, a)
                             : qa_cu_launch(qkv_prep_kernel<float>, blocks, QKV_WARPS * 32, 0, s, a));
    return QA_OK;
}
