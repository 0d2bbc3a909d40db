/* mma_ptx.cuh — the PTX instructions of the mma.sync attention kernel (attention_mma.cu): the BF16
 * m16n8k16 MMA with FP32 accumulators, ldmatrix (plain and transposed), cp.async with its commit /
 * wait, exp2, and the FP32 pair -> BF16x2 rounding. Thin wrappers; their fragment layouts are documented
 * here once, from PTX ISA "Warp-level matrix fragments for mma.m16n8k16" and "ldmatrix".
 */
#ifndef QA_CUDA_MMA_PTX_CUH
#define QA_CUDA_MMA_PTX_CUH

#include <cuda_bf16.h>
#include <stdint.h>

/* D += A B for one m16n8k16 BF16 MMA with FP32 accumulators. g = lane / 4, t = lane % 4:
 *   A 16x16, row major, 4 x b32 of two BF16 (lower column in the low half):
 *     a[0] = row g, cols 2t, 2t+1   a[1] = row g+8, cols 2t, 2t+1
 *     a[2] = row g, cols 2t+8, +9   a[3] = row g+8, cols 2t+8, +9
 *   B 16x8 (k x n), "col": each b32 holds two consecutive k of one column n = g:
 *     b0 = k 2t, 2t+1               b1 = k 2t+8, 2t+9
 *   C / D 16x8 FP32: d[0], d[1] = row g, cols 2t, 2t+1; d[2], d[3] = row g+8, cols 2t, 2t+1.
 * Not volatile: a pure function of its registers, the compiler may schedule it freely. */
__device__ __forceinline__ void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8x8 BF16 matrices from shared memory: lanes 8i .. 8i+7 give the addresses of the 8 rows (16
 * contiguous bytes each) of matrix i; r[i] receives matrix i's (row g, cols 2t, 2t+1), or with .trans
 * the same of the transposed matrix, i.e. (rows 2t, 2t+1 of column g). Volatile: it reads shared
 * memory that the block rewrites between tiles, so it must not be merged or hoisted across barriers. */
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const __nv_bfloat16 *p)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const __nv_bfloat16 *p)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* 16 bytes global -> shared without passing through registers; src_bytes = 0 writes 16 zero bytes and
 * reads nothing (src must still be a valid address: callers pass row 0). Both 16-byte aligned. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes)
{
    uint32_t s = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(src_bytes) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* This thread's copies have landed (other threads' copies: the __syncthreads after it). */
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

/* 2^x (ex2.approx.ftz: relative error ~2^-22; results below 2^-126 flush to 0, -inf gives 0): the
 * core of exp2f without its fix-up for subnormal results, which a softmax weight that small never needs. */
__device__ __forceinline__ float mma_ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); /* .x (lo) in the low 16 bits */
    return *(uint32_t *)&h;
}

#endif
