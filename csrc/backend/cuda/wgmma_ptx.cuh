/* wgmma_ptx.cuh — the Hopper (sm_90a) PTX of the wgmma attention kernel (attention_wgmma.cu): shared-memory
 * matrix descriptors for 128-byte-swizzled BF16 tiles, the warpgroup MMA m64n128k16 (A from shared memory or
 * from registers, FP32 accumulators) with its fence / commit / wait, and the generic-to-async proxy fence.
 * From PTX ISA "Asynchronous Warpgroup Level Matrix Multiply-Accumulate" (9.7.15): layouts documented here once.
 *
 * 128-byte swizzle, BF16: a swizzle atom is 8 rows of 128 bytes (64 elements), 1024 bytes, 1024-byte aligned; the
 * 16-byte chunk c of row r of an atom is stored at chunk c ^ (r % 8) (the hardware XORs address bits 4-6 with
 * bits 7-9, so atoms must sit on 1024-byte boundaries). A [rows][128] BF16 tile is stored as two column blocks
 * of [rows][64] (block b holds columns 64b .. 64b+63), each rows * 128 bytes: wg_sw128_offset.
 *
 * Accumulator m64nN (FP32), warp w of the warpgroup, g = lane / 4, t = lane % 4: d[4i + 0], d[4i + 1] = row
 * 16w + g, columns 8i + 2t, +1; d[4i + 2], d[4i + 3] = row 16w + g + 8, same columns (the mma.sync m16n8
 * accumulator repeated over N / 8 column blocks). A in registers (k16, BF16): warp w gives rows 16w .. 16w+15 as
 * the mma.sync m16n8k16 A fragment (mma_ptx.cuh): a0 = row g, k 2t, 2t+1; a1 = row g+8; a2 = row g, k 2t+8, +9;
 * a3 = row g+8, k 2t+8, +9.
 */
#ifndef QA_CUDA_WGMMA_PTX_CUH
#define QA_CUDA_WGMMA_PTX_CUH

#include <stdint.h>

/* Byte offset of element (r, c) of a [rows][128] BF16 tile in the layout above. */
__device__ __forceinline__ uint32_t wg_sw128_offset(int rows, int r, int c)
{
    return (uint32_t)((c >> 6) * rows * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4) + (c & 7) * 2);
}

/* Matrix descriptor (PTX 9.7.15.5.1.2.2): bits 0-13 start address >> 4, 16-29 leading-dimension byte offset
 * >> 4, 32-45 stride-dimension byte offset >> 4, 49-51 base offset (0: atoms 1024-byte aligned), 62-63 swizzle
 * mode (1 = 128-byte). For 128-byte swizzle:
 *   K-major (the 16 k of a step inside one 128-byte row): SBO = distance of 8-row groups (1024 bytes here),
 *   LBO unused (1 by convention); the k step kk of a block starts 32 kk bytes further.
 *   MN-major (transposed B: N contiguous): LBO = distance of 64-element N blocks, SBO = distance of 8-row
 *   (k) groups. */
__device__ __forceinline__ uint64_t wg_desc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((smem_addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           (1ull << 62);
}

/* Orders this thread's register writes (accumulators, A fragments) before the next wgmma reads them. */
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* Until at most N committed groups of this warpgroup are pending. */
template <int N> __device__ __forceinline__ void wg_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

/* Pins registers at this point of the program: an empty volatile asm that reads and writes them. The compiler
 * sees a wgmma's accumulators as written when the instruction is issued, not when wg_wait returns, so without
 * a pin after the wait it may move their reads above it; and a pin before a wait keeps values computed ahead
 * of it (to overlap the MMAs in flight) from sinking below it. Volatile asm keeps its order. */
template <int N> __device__ __forceinline__ void wg_pin(float (&x)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(x[i])::"memory");
}

/* Shared memory written through the generic proxy (st.shared, cp.async) made visible to the async proxy that
 * wgmma reads it through; each writing thread, before the barrier that publishes the writes. */
__device__ __forceinline__ void wg_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* The 64 FP32 accumulators of an m64n128 wgmma: operands %0..%63 and their "+f" bindings (both MMAs below). */
#define WG_ACC64_REGS                                                                                           \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                   \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                          \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                          \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define WG_ACC8_OUT(d, i)                                                                                       \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]),   \
        "+f"(d[i + 7])
#define WG_ACC64_OUT(d)                                                                                         \
    WG_ACC8_OUT(d, 0), WG_ACC8_OUT(d, 8), WG_ACC8_OUT(d, 16), WG_ACC8_OUT(d, 24), WG_ACC8_OUT(d, 32),             \
        WG_ACC8_OUT(d, 40), WG_ACC8_OUT(d, 48), WG_ACC8_OUT(d, 56)

/* d (+)= A B, m64n128k16, A and B from shared memory, both K-major; scale_d = 0: d = A B. */
__device__ __forceinline__ void wg_mma_ss(float d[64], uint64_t da, uint64_t db, int scale_d)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                 WG_ACC64_REGS
                 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : WG_ACC64_OUT(d)
                 : "l"(da), "l"(db), "r"(scale_d));
}

/* d += A B, m64n128k16, A from registers (layout above), B from shared memory MN-major (imm-trans-b = 1). */
__device__ __forceinline__ void wg_mma_rs_tb(float d[64], const uint32_t a[4], uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
                 WG_ACC64_REGS
                 ", {%64, %65, %66, %67}, %68, p, 1, "
                 "1, 1;\n}\n"
                 : WG_ACC64_OUT(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

#endif
