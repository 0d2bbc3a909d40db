/* qkv.cu — the decoder's q / k / v preparation in one kernel: per-head RMSNorm + RoPE, K / V rows stored.
 *
 * Contract: ops.cuh (qa_cu_qkv_prep), backend.h qkv_prep. Why one kernel: a decode step used to launch
 * q_norm, k_norm, two ropes and two row stores per layer (6 x 28 kernels of a few microseconds each in
 * the 1.7B ASR step); here one launch per layer does all of it, and writes K / V straight into the
 * cache in its dtype (BF16 for a bfloat16 engine).
 * Layout: blocks of (row t, group of heads) over the H query heads, then the Hk key heads, then the Hk value
 * heads, one warp per head at a time. A q / k warp reads its head once, forms the sum of squares in registers with norm.cu's
 * rmsnorm_row_kernel order (lane l adds elements 4c..4c+3 of chunks c = l, l + 32, ..., then the warp
 * butterfly), keeps x * rsqrt(mean + eps) * w in its shared-memory row, and rotates the pairs (i, i + Dh/2)
 * with qa_cu_rope_inv's frequencies and the products of transformers' rotate_half — so the FP32 numbers are those
 * of rmsnorm then rope. A v warp converts and copies. Every warp writes only its own head, after reading all of it, so
 * qo == q (in place) and kdst == k / vdst == v (FP32, position 0 onwards) are safe. q, k, v are read at their row
 * strides (API 8: the column blocks of the one q/k/v GEMM's output), qo written contiguous.
 * The position comes from pos_dev when given, read when the kernel runs (a recorded decode step, like
 * attention_decode.cu's). Launched with PDL (pdl.cuh): it waits for the q / k / v GEMV before reading.
 * Reference: transformers Qwen3Attention (MODEL_FACTS §5): q_norm / k_norm over each head before RoPE;
 * torch's .to(torch.bfloat16) for the BF16 rows (round to nearest even).
 */
#include <math.h>
#include <string.h>

#include "ops.cuh"
#include "pdl.cuh"

/* RoPE frequencies, rounded as transformers' Qwen3RotaryEmbedding does: inv_freq = 1 / theta^(fp32(2i) / Dh)
 * with the power rounded once to fp32 — the CPU backend's expression (cpu/rope.c), on the host, once per
 * (theta, Dh) of a context: per (row, head) on the device, the double-precision pow dominated the kernel. */
void qa_cu_rope_inv(float *inv, int Dh, float theta)
{
    for (int i = 0; i < Dh / 2; i++) {
        float expo = (float)(2 * i) / (float)Dh;
        inv[i] = 1.0f / (float)pow((double)theta, (double)expo);
    }
}

#define QKV_WARPS_MAX 8

struct qkv_args {
    float *qo;
    const float *q;
    void *kdst, *vdst;
    const float *k, *v, *qw, *kw;
    int ldq, ldkv, T, H, Hk, Dh, pos0;
    const int32_t *pos_dev;
    int max_rows;
    float eps;
    float inv[QA_CU_QKV_MAX_DH / 2]; /* qa_cu_rope_inv, by value in the kernel's parameters */
};

__device__ __forceinline__ void qkv_put(float *p, float x) { *p = x; }
__device__ __forceinline__ void qkv_put(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }

#define QKV_HPW_MAX 4                       /* heads per warp at most (the launch below) */
#define QKV_SLOTS (QA_CU_QKV_MAX_DH / 128)  /* float4 per lane holding a head of Dh <= QA_CU_QKV_MAX_DH */

/* RMSNorm of a head held in the warp's registers (x[s] = elements 4c..4c+3, c = lane + 32 s) times w into
 * row[Dh] (shared, this warp's), in rmsnorm_row_kernel's summation order. */
__device__ __forceinline__ void qkv_norm(float *row, const float4 (&x)[QKV_SLOTS], const float *w, int Dh, float eps,
                                         int lane)
{
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < QKV_SLOTS; k++) {
        const int c = lane + 32 * k;
        if (c < Dh / 4) {
            s += x[k].x * x[k].x + x[k].y * x[k].y + x[k].z * x[k].z + x[k].w * x[k].w;
            ((float4 *)row)[c] = x[k];
        }
    }
    const float r = rsqrtf(qa_warp_sum(s) / Dh + eps);
#pragma unroll
    for (int k = 0; k < QKV_SLOTS; k++) { /* the lane's own elements: no sync needed yet */
        const int c = lane + 32 * k;
        if (c < Dh / 4)
            for (int u = 0; u < 4; u++)
                row[4 * c + u] = row[4 * c + u] * r * w[4 * c + u];
    }
    __syncwarp(); /* rope reads the other lanes' halves */
}

/* Rotate row[Dh] by the row's angles (cs / sn, shared) into dst[Dh] (NeoX split-half, transformers'
 * rotate_half products). */
template <typename D>
__device__ __forceinline__ void qkv_rope(D *dst, const float *row, const float *cs, const float *sn, int Dh, int lane)
{
    const int half = Dh / 2;
    for (int i = lane; i < half; i += 32) {
        float a = row[i], b = row[i + half];
        qkv_put(dst + i, a * cs[i] - b * sn[i]);
        qkv_put(dst + i + half, b * cs[i] + a * sn[i]);
    }
}

/* Head j of row t as an FP32 source: a q head, then the k heads, then the v heads (NULL past j1). */
__device__ __forceinline__ const float *qkv_src(const qkv_args &a, int t, int j, int j1)
{
    if (j >= j1)
        return NULL;
    if (j < a.H) /* int offsets: T * ldq and T * ldkv fit an int (backend.cu checks) */
        return a.q + (t * a.ldq + j * a.Dh);
    if (j < a.H + a.Hk)
        return a.k + (t * a.ldkv + (j - a.H) * a.Dh);
    return a.v + (t * a.ldkv + (j - a.H - a.Hk) * a.Dh);
}

/* Block (t, y): row t's heads [y·hpb, (y+1)·hpb) of the H query, then Hk key, then Hk value heads; warp w
 * takes heads w, w + nw, ... . A warp loads all of its heads first, so their loads are in flight together
 * and behind the row's cos / sin, which the block computes once into shared memory (per (row, head) they
 * cost a double-precision pow and a sincos per pair: 181 us at T = 7500, Nsight Compute, H200, for ~50 us
 * of memory traffic; then one head at a time per warp left it latency-bound). */
template <typename KV> __global__ void __launch_bounds__(QKV_WARPS_MAX * 32) qkv_prep_kernel(qkv_args a)
{
    __shared__ __align__(16) float rows[QKV_WARPS_MAX][QA_CU_QKV_MAX_DH];
    __shared__ float cs[QA_CU_QKV_MAX_DH / 2], sn[QA_CU_QKV_MAX_DH / 2];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const int NH = a.H + 2 * a.Hk, Dh = a.Dh, KD = a.Hk * Dh, t = blockIdx.x;
    const int hpb = (NH + gridDim.y - 1) / gridDim.y, j0 = blockIdx.y * hpb + warp, j1 = min(NH, j0 - warp + hpb);
    qa_pdl_wait(); /* launched with PDL (pdl.cuh): everything below reads the previous kernels' outputs */
    qa_pdl_trigger();
    float4 x[QKV_HPW_MAX][QKV_SLOTS];
#pragma unroll
    for (int h = 0; h < QKV_HPW_MAX; h++) {
        const float *src = qkv_src(a, t, j0 + h * nw, j1);
#pragma unroll
        for (int k = 0; k < QKV_SLOTS; k++) {
            const int c = lane + 32 * k;
            x[h][k] = src && c < Dh / 4 ? ((const float4 *)src)[c] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
    }
    const int p = (a.pos_dev ? *a.pos_dev : a.pos0) + t;
    for (int i = threadIdx.x; i < Dh / 2; i += blockDim.x) {
        /* one fp32 product fp32(p) * inv_freq (the position_ids matmul); accurate cosf / sinf: angles reach
         * thousands of radians */
        float ang = a.inv[i] * (float)p;
        cs[i] = cosf(ang);
        sn[i] = sinf(ang);
    }
    __syncthreads(); /* the only block-wide sync: warps may leave alone below */
    const bool stored = p >= 0 && p < a.max_rows; /* past the cache: an engine bug upstream, never write */
#pragma unroll
    for (int h = 0; h < QKV_HPW_MAX; h++) {
        const int j = j0 + h * nw;
        if (j >= j1)
            return;
        if (j < a.H) {
            qkv_norm(rows[warp], x[h], a.qw, Dh, a.eps, lane);
            qkv_rope(a.qo + ((size_t)t * a.H + j) * Dh, rows[warp], cs, sn, Dh, lane);
        } else if (!stored) {
            return;
        } else if (j < a.H + a.Hk) {
            qkv_norm(rows[warp], x[h], a.kw, Dh, a.eps, lane);
            qkv_rope((KV *)a.kdst + (size_t)p * KD + (j - a.H) * Dh, rows[warp], cs, sn, Dh, lane);
        } else {
            KV *dst = (KV *)a.vdst + (size_t)p * KD + (j - a.H - a.Hk) * Dh;
#pragma unroll
            for (int k = 0; k < QKV_SLOTS; k++) {
                const int c = lane + 32 * k;
                if (c < Dh / 4) {
                    qkv_put(dst + 4 * c, x[h][k].x);
                    qkv_put(dst + 4 * c + 1, x[h][k].y);
                    qkv_put(dst + 4 * c + 2, x[h][k].z);
                    qkv_put(dst + 4 * c + 3, x[h][k].w);
                }
            }
        }
        __syncwarp(); /* rows[warp] is reused by this warp's next head */
    }
}

qa_status qa_cu_qkv_prep(cudaStream_t s, float *qo, const float *q, int ldq, void *kdst, void *vdst, int kv_bf16,
                         const float *k, const float *v, int ldkv, const float *qw, const float *kw, int T, int H, int Hk,
                         int Dh, int pos0, const int32_t *pos_dev, int max_rows, const float *inv, float eps, qa_err *e)
{
    if (Dh <= 0 || Dh % 4 != 0 || Dh > QA_CU_QKV_MAX_DH)
        return QA_FAIL(e, QA_ERR_INTERNAL, "qkv_prep: head dim %d must be a multiple of 4 and <= %d", Dh,
                       QA_CU_QKV_MAX_DH);
    if (T <= 0)
        return QA_OK;
    qkv_args a = {qo, q, kdst, vdst, k, v, qw, kw, ldq, ldkv, T, H, Hk, Dh, pos0, pos_dev, max_rows, eps, {0}};
    memcpy(a.inv, inv, (size_t)(Dh / 2) * sizeof(float));
    /* a few rows (decode): the heads spread over blocks of 4 warps, one head each; many rows: one block of 8
     * warps per row, so the row's angles are computed once */
    const int NH = H + 2 * Hk, warps = T < 16 ? 4 : QKV_WARPS_MAX, hpw = T < 16 ? 1 : QKV_HPW_MAX;
    dim3 grid((unsigned)T, (unsigned)((NH + warps * hpw - 1) / (warps * hpw)));
    if (grid.y > 65535u)
        return QA_FAIL(e, QA_ERR_INTERNAL, "qkv_prep: %d heads per row exceed the grid", NH);
    QA_CUDA_CHECK(e, kv_bf16 ? qa_cu_launch(qkv_prep_kernel<__nv_bfloat16>, grid, warps * 32, 0, s, a)
                             : qa_cu_launch(qkv_prep_kernel<float>, grid, warps * 32, 0, s, a));
    return QA_OK;
}
