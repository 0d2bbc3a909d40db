/* head_prep.cuh — the decoder's per-head q / k preparation math: RMSNorm over one head, then RoPE.
 *
 * One definition for the two kernels that prepare heads (qkv.cu's qkv_prep and attention_decode.cu's fused
 * decode step), so both make the same bits of every q, K and V value. Every float operation is written with
 * its rounding intrinsic (__fmul_rn, __fmaf_rn, ...): ptxas never contracts those, so the products and sums
 * cannot be fused differently in the two kernels. The chosen contractions are the ones ptxas made of
 * qkv.cu's plain expressions before this header (its SASS is unchanged): the sum of squares of 4 elements as
 * fma(w, w, fma(z, z, fma(x, x, y * y))), the rotation as fma(a, c, -(b * s)) and fma(a, s, b * c).
 * Reference: transformers Qwen3RMSNorm (x * rsqrt(mean(x^2) + eps) * w) and rotate_half RoPE (MODEL_FACTS §5);
 * the row layout and summation order are norm.cu's rmsnorm_row_kernel's (qkv.cu says why).
 */
#ifndef QA_HEAD_PREP_CUH
#define QA_HEAD_PREP_CUH

#include <cuda_bf16.h>

#include "ops.cuh"

/* *p = x in the K / V cache's element type (BF16: round to nearest even, torch's .to(torch.bfloat16)). */
__device__ __forceinline__ void qa_kv_put(float *p, float x) { *p = x; }
__device__ __forceinline__ void qa_kv_put(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }

/* cos / sin of RoPE pair i at position p: one FP32 product fp32(p) * inv_freq (the position_ids matmul),
 * accurate cosf / sinf (angles reach thousands of radians). */
__device__ __forceinline__ void qa_rope_angle(float inv, int p, float *c, float *s)
{
    const float ang = __fmul_rn(inv, (float)p);
    *c = cosf(ang);
    *s = sinf(ang);
}

/* RMSNorm of a head held in the warp's registers (x[k] = elements 4c..4c+3, c = lane + 32 k; lanes with
 * c >= Dh / 4 hold nothing) times w into row[Dh] (shared, 16-byte aligned, this warp's). */
template <int S>
__device__ __forceinline__ void qa_head_norm(float *row, const float4 (&x)[S], const float *w, int Dh, float eps,
                                             int lane)
{
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < S; k++) {
        const int c = lane + 32 * k;
        if (c < Dh / 4) {
            const float4 v = x[k];
            s = __fadd_rn(s, __fmaf_rn(v.w, v.w, __fmaf_rn(v.z, v.z, __fmaf_rn(v.x, v.x, __fmul_rn(v.y, v.y)))));
            ((float4 *)row)[c] = v;
        }
    }
    const float r = rsqrtf(__fadd_rn(__fdiv_rn(qa_warp_sum(s), (float)Dh), eps));
#pragma unroll
    for (int k = 0; k < S; k++) { /* the lane's own elements: no sync needed yet */
        const int c = lane + 32 * k;
        if (c < Dh / 4)
            for (int u = 0; u < 4; u++)
                row[4 * c + u] = __fmul_rn(__fmul_rn(row[4 * c + u], r), w[4 * c + u]);
    }
    __syncwarp(); /* the rotation reads the other lanes' halves */
}

/* Rotate row[Dh] by the position's angles (cs / sn [Dh / 2]) into dst[Dh] (NeoX split-half, transformers'
 * rotate_half products). Lane-owned pairs (i, i + Dh/2): dst may be row (in place). */
template <typename D>
__device__ __forceinline__ void qa_head_rope(D *dst, const float *row, const float *cs, const float *sn, int Dh,
                                             int lane)
{
    const int half = Dh / 2;
    for (int i = lane; i < half; i += 32) {
        const float a = row[i], b = row[i + half];
        qa_kv_put(dst + i, __fmaf_rn(a, cs[i], -__fmul_rn(b, sn[i])));
        qa_kv_put(dst + i + half, __fmaf_rn(a, sn[i], __fmul_rn(b, cs[i])));
    }
}

#endif
