/* attn_out.cuh — where the attention kernels put their output values (backend.h attention out_dtype).
 *
 * Contract: out is the op's [Tq, H·Dh] buffer (row stride ldo elements) of FP32, or of BF16 when the caller
 * (the model, through gemm_in_dtype) wants the o-proj's GEMM operand directly: each value is the FP32 one the
 * kernel computed, rounded to nearest even (__float2bfloat16_rn), the bits gemm.cu's staging
 * (qa_cu_f32_to_bf16_rows) would have made of the FP32 row, so the GEMM after it sees the same operand and
 * one kernel and a pass over the rows go away. Element index i is the same for both dtypes; the flag is
 * uniform over a launch, so the branch costs nothing measurable next to the stores. Shared by every
 * attention kernel (attention.cu, attention_tc.cu, attention_mma.cu, attention_decode.cu and later ones).
 */
#ifndef QA_ATTN_OUT_CUH
#define QA_ATTN_OUT_CUH

#include <cuda_bf16.h>
#include <stddef.h>

/* out[i] = v */
__device__ __forceinline__ void qa_attn_put(void *out, int bf16, size_t i, float v)
{
    if (bf16)
        ((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(v);
    else
        ((float *)out)[i] = v;
}

/* out[i], out[i + 1] = v0, v1 (i even: 8- / 4-byte aligned stores) */
__device__ __forceinline__ void qa_attn_put2(void *out, int bf16, size_t i, float v0, float v1)
{
    if (bf16)
        *(__nv_bfloat162 *)((__nv_bfloat16 *)out + i) = __floats2bfloat162_rn(v0, v1);
    else
        *(float2 *)((float *)out + i) = make_float2(v0, v1);
}

/* out[i .. i + 3] = v (i a multiple of 4: 16- / 8-byte aligned stores) */
__device__ __forceinline__ void qa_attn_put4(void *out, int bf16, size_t i, float4 v)
{
    if (bf16) {
        __nv_bfloat162 *p = (__nv_bfloat162 *)((__nv_bfloat16 *)out + i);
        p[0] = __floats2bfloat162_rn(v.x, v.y);
        p[1] = __floats2bfloat162_rn(v.z, v.w);
    } else {
        *(float4 *)((float *)out + i) = v;
    }
}

#endif
