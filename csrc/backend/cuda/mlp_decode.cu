/* mlp_decode.cu — the decoder's MLP for one row (a decode step) as ONE persistent kernel (issue #6).
 *
 * Contract: cuda_ctx.cuh (qa_cuda_mlp_decode); the numbers of norm_gemm.cu's decode path up to the FP32 order of
 * the down projection's sums. Why: the two-kernel path (ngemv_silu_rows_kernel, then the down GEMV) moved the
 * 75.5 MB of an ASR-1.7B layer at ~2.9 TB/s against the lm_head's 4.2 on the same warp loop: the down GEMV waits
 * for every h and starts with an empty pipeline, and each kernel ends on a tail. Here block b of nb = ⌈F / 24⌉
 * owns the intermediate units f0 = 24b .. f0 + 24 (F % 8 == 0; units past F give h = 0 and load nothing) and
 * streams every weight byte that touches them:
 *   1. its warps' first gate / up batches before the PDL wait, then RMSNorm of x into shared memory (norm.cu's
 *      row code on 256 threads: the bits of the old path);
 *   2. the 48 gate and up rows of its units (3 units per warp, gemv.cuh's chunks and warp sums: the h of
 *      ngemv_silu_rows_kernel to the bit), h = silu(g)·u rounded to BF16 as the down GEMV rounded it;
 *   3. the 48-byte segments W_down[r, f0 .. f0 + 24) of all D rows (3 lanes per row, 10 rows per warp
 *      instruction); the partial sum of row r over the block's units goes to part[b, r] in the work area
 *      (nb·D floats). Steps 2 and 3 are one double-buffered pipeline per warp (dm_warp): the first down
 *      batches are in flight while the last gate / up ones are multiplied;
 *   4. a grid barrier (all nb blocks are resident: nb <= blocks per SM x SMs, qa_cuda_mlp_decode_fits), then
 *      block b adds the partials of rows b·RB .. (b + 1)·RB over p = 0 .. nb - 1 in a fixed order onto x.
 * Every block moves the same bytes (ASR-1.7B: 196 KB of gate / up, 96 KB of down), so they reach the barrier
 * together and the only tail is one L2 round trip. The order of the down sums depends on nb only:
 * the same bits on every run (a float64 test bounds them). The barrier words are a static device variable (zero
 * at module load; no arena bytes): the arrival count is 0 between launches (the last block resets it), the
 * generation word only ever changes. ONE context per device owns them (the first opened, qa_cuda_mlp_decode_
 * open): two such grids on two streams could each hold part of the SMs and spin for blocks that never fit;
 * with one, every other kernel on the device finishes without it. Other contexts of the device, and
 * QA_CUDA_DEC_MLP=old at open, keep the two-kernel path.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_ctx.cuh"
#include "gemv.cuh"

#define DM_WARPS 8                /* 256 threads: norm.cu's row-kernel block for K >= 1024 (the norm's bits) */
/* C: 16-byte chunks of a W_down row segment (template parameter, 3 or 6: QA_CUDA_DEC_MLP=wide); a block owns
 * 8·C intermediate units (C per warp, one chunk of h per lane of a row's group) and a warp instruction reads
 * 32 / C rows of W_down (lanes past (32 / C)·C idle). */
#define DM_FS(C) (8 * (C))
#define DM_G(C) (32 / (C))
#define DM_U QA_GV_BATCH          /* W_down loads per lane per batch */
#define DM_DEVICES 64             /* devices with a fused decode MLP (a higher index keeps the old path) */

__device__ unsigned dm_sync[2]; /* per device: arrivals (0 at rest), generation */
static int dm_owned[DM_DEVICES]; /* host: a context of this device has the kernel (and dm_sync) */

typedef struct dm_args {
    float *x;                /* [D] the residual row: read by the norm, += the MLP at the end */
    const float *nw;         /* [D] post-attention norm weight */
    const __nv_bfloat16 *wg, *wu, *wd; /* [F, D], [F, D], [D, F] */
    float *part;             /* [nb, D] partial down sums (work area) */
    unsigned *sync;          /* dm_sync of the device */
    float eps;
    int D, F;
} dm_args;

__device__ __forceinline__ float dm_bf16r(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

/* The normalised row in shared memory (x of gemv.cuh's warp loop). */
struct dm_x {
    const __nv_bfloat16 *xs;
    __device__ __forceinline__ void get(int, int c, float f[8]) const { qa_bf16x8(((const uint4 *)xs)[c], f); }
};

/* The warp's batches, one pipeline (gemv.cuh's double buffering) over both phases: batch b < NA is chunk batch
 * b % BPU of unit f0 + warp + DM_WARPS·(b / BPU) (its gate row w[0], its up row w[1], gemv.cuh's chunks); batch
 * NA + q holds the W_down loads of the warp's iterations 8q .. 8q + 7 (w[s][u]: iteration 8q + 4s + u, row
 * (iteration·DM_WARPS + warp)·DM_G(C) + lane group, chunk k of the block's segment). So the first down batches
 * are in flight while the last gate / up ones are multiplied: no drained pipeline between the phases. */
template <int C> struct dm_warp {
    const __nv_bfloat16 *g, *u; /* gate, up [F, K] */
    const uint4 *seg;           /* W_down row 0, chunk k of the block's segment */
    int K, K8, F, F8, D, first, BPU, NA, NB;
    bool ld;                    /* the lane loads W_down (its group exists, its chunk lies before F) */

    template <bool EARLY = false> __device__ __forceinline__ void load(uint4 (&w)[2][DM_U / 2], int b) const
    {
        if (b < NA) {
            const int j = first + DM_WARPS * (b / BPU); /* past F (the last block's spare units): zeros, h = 0 */
            const uint4 *const p[2] = {j < F ? (const uint4 *)(g + (size_t)j * K) : NULL,
                                       j < F ? (const uint4 *)(u + (size_t)j * K) : NULL};
            qa_gv_load<EARLY>(w, p, (b % BPU) * 32 * (DM_U / 2), K8);
            return;
        }
        const int warp = threadIdx.x >> 5, grp = (threadIdx.x & 31) / C;
#pragma unroll
        for (int s = 0; s < 2; s++)
#pragma unroll
            for (int v = 0; v < DM_U / 2; v++) {
                const int row = ((8 * (b - NA) + (DM_U / 2) * s + v) * DM_WARPS + warp) * DM_G(C) + grp;
                w[s][v] = ld && b < NA + NB && row < D ? qa_gv_ld(seg + (size_t)row * F8)
                                                       : make_uint4(0u, 0u, 0u, 0u);
            }
    }
};

/* Acquire load of a barrier word (it orders the loads after it). */
__device__ __forceinline__ unsigned dm_ld_acquire(const unsigned *p)
{
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* All nb blocks of the grid have passed this point (their earlier writes visible to every block after it). */
__device__ __forceinline__ void dm_grid_barrier(unsigned *sync, unsigned nb)
{
    __threadfence(); /* each thread's partial sums before the block's arrival */
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned gen = dm_ld_acquire(sync + 1); /* cannot move: only the last arrival (us included) bumps it */
        if (atomicAdd(sync, 1u) == nb - 1) {
            atomicExch(sync, 0u); /* at rest for the next launch */
            __threadfence();
            atomicAdd(sync + 1, 1u);
        } else {
            while (dm_ld_acquire(sync + 1) == gen)
                __nanosleep(32);
        }
        __threadfence();
    }
    __syncthreads();
}

template <int C> __global__ void __launch_bounds__(DM_WARPS * 32, 2) mlp_decode_kernel(const dm_args a)
{
    extern __shared__ __align__(16) unsigned char dm_smem[];
    __shared__ float nrm[32], hs[DM_FS(C)], red[DM_WARPS * 32];
    __nv_bfloat16 *xs = (__nv_bfloat16 *)dm_smem; /* [D] */
    const int D = a.D, F8 = a.F / 8, K8 = D / 8, nb = (int)gridDim.x, b = (int)blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, grp = lane / C, k = lane % C;
    const int f0 = b * DM_FS(C);
    constexpr int U = DM_U / 2;
    const int BPU = (K8 + 32 * U - 1) / (32 * U), NA = C * BPU;
    const int NJ = (D + DM_WARPS * DM_G(C) - 1) / (DM_WARPS * DM_G(C));
    const dm_warp<C> ws = {a.wg, a.wu, (const uint4 *)(a.wd + f0) + k, D, K8, a.F, F8, D, f0 + warp, BPU, NA,
                        (NJ + DM_U - 1) / DM_U, grp < DM_G(C) && f0 + 8 * k < a.F};
    uint4 w[2][U], next[2][U];
    ws.template load<true>(w, 0); /* gate / up weights only before the wait (pdl.cuh) */
    ws.template load<true>(next, 1);
    qa_pdl_wait();
    qa_pdl_trigger();
    qa_rmsnorm_row(xs, a.x, a.nw, D, a.eps, nrm);
    __syncthreads();
    float acc[2][1] = {{0.f}, {0.f}}, h[8];
    for (int bi = 0; bi < NA + ws.NB; bi++) {
        if (bi < NA) { /* gemv.cuh's chunks and warp sums: ngemv_silu_rows_kernel's h to the bit */
            qa_gv_fma<1>(acc, w, dm_x{xs}, (bi % BPU) * 32 * U, K8);
            if (bi % BPU == BPU - 1) {
                const float gs = qa_warp_sum(acc[0][0]), us = qa_warp_sum(acc[1][0]);
                if (lane == 0) /* act.cu silu_mul, rounded to BF16 as gemv.cu rounds the down GEMV's x */
                    hs[warp + DM_WARPS * (bi / BPU)] = dm_bf16r(gs / (1.0f + expf(-gs)) * us);
                acc[0][0] = acc[1][0] = 0.f;
            }
        } else {
            if (bi == NA) { /* the block's h complete (every warp counts the same batches) */
                __syncthreads();
#pragma unroll
                for (int e = 0; e < 8; e++)
                    h[e] = hs[8 * k + e];
            }
#pragma unroll
            for (int s2 = 0; s2 < 2; s2++)
#pragma unroll
                for (int v = 0; v < U; v++) {
                    float f[8];
                    qa_bf16x8(w[s2][v], f);
                    const float d = f[0] * h[0] + f[1] * h[1] + f[2] * h[2] + f[3] * h[3] + f[4] * h[4] +
                                    f[5] * h[5] + f[6] * h[6] + f[7] * h[7];
                    float sum = d; /* the group's C chunks in order */
#pragma unroll
                    for (int i = 1; i < C; i++)
                        sum += __shfl_down_sync(0xffffffffu, d, i);
                    const int row = ((8 * (bi - NA) + U * s2 + v) * DM_WARPS + warp) * DM_G(C) + grp;
                    if (grp < DM_G(C) && k == 0 && row < D)
                        a.part[(size_t)b * D + row] = sum;
                }
        }
        qa_gv_shift(w, next);
        ws.load(next, bi + 2);
    }
    dm_grid_barrier(a.sync, (unsigned)nb);
    /* rows r0 .. r0 + RB of x: thread (pg, ro) sums p = pg, pg + PG, ... in order, then ro's PG sums in order */
    const int RB = (D + nb - 1) / nb, PG = DM_WARPS * 32 / RB, r0 = b * RB, t = threadIdx.x;
    const int ro = t % RB, pg = t / RB, row = r0 + ro;
    if (pg < PG) {
        float s = 0.f;
        if (row < D) {
#pragma unroll 8
            for (int p = pg; p < nb; p += PG)
                s += __ldcg(a.part + (size_t)p * D + row); /* L2: other blocks wrote it during this kernel */
        }
        red[pg * RB + ro] = s;
    }
    __syncthreads();
    if (t < RB && r0 + t < D) {
        float s = 0.f;
        for (int i = 0; i < PG; i++)
            s += red[i * RB + t];
        a.x[r0 + t] = s + a.x[r0 + t]; /* gemv.cu's y = s + beta·y, beta 1 */
    }
}

#define DM_MAX_SMEM (48 << 10) /* the normalised row without an opt-in: D <= 24576 */

qa_status qa_cuda_mlp_decode_open(qa_cuda_ctx *c, qa_err *e)
{
    c->mlp_sync = NULL;
    const char *v = getenv("QA_CUDA_DEC_MLP");
    if (v && strcmp(v, "old") == 0)
        return QA_OK;
    /* "wide": 96-byte W_down segments (sector-aligned, 128 blocks for F = 6144) against 48-byte ones (256) */
    c->mlp_c = v && strcmp(v, "wide") == 0 ? 6 : 3;
    int dev = 0, sms = 0, per = 0;
    unsigned *sync = NULL;
    QA_CUDA_CHECK(e, cudaGetDevice(&dev));
    QA_CUDA_CHECK(e, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    /* registers bound it (2 per SM); the largest shared memory keeps it an upper bound for every D */
    QA_CUDA_CHECK(e, cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                         &per, c->mlp_c == 6 ? mlp_decode_kernel<6> : mlp_decode_kernel<3>, DM_WARPS * 32,
                         DM_MAX_SMEM));
    QA_CUDA_CHECK(e, cudaGetSymbolAddress((void **)&sync, dm_sync));
    if (dev == c->device && dev >= 0 && dev < DM_DEVICES && __sync_bool_compare_and_swap(&dm_owned[dev], 0, 1)) {
        c->mlp_sync = sync;
        c->mlp_resident = sms > 0 && per > 0 ? sms * per : 0;
    }
    return QA_OK;
}

void qa_cuda_mlp_decode_close(qa_cuda_ctx *c)
{
    /* a broken context may have left a launch between arrivals: the words are not handed out again */
    if (c->mlp_sync && !c->broken)
        __sync_lock_release(&dm_owned[c->device]);
    c->mlp_sync = NULL;
}

int qa_cuda_mlp_decode_fits(const qa_cuda_ctx *c, const float *x, const void *Wg, const void *Wu, const void *Wd,
                            int D, int F)
{
    if (!c->mlp_sync || D <= 0 || F <= 0 || D % 8 != 0 || F % 8 != 0 ||
        (size_t)D * sizeof(__nv_bfloat16) > DM_MAX_SMEM ||
        (((uintptr_t)x | (uintptr_t)Wg | (uintptr_t)Wu | (uintptr_t)Wd | (uintptr_t)c->work) & 15) != 0)
        return 0;
    const size_t nb = ((size_t)F + DM_FS(c->mlp_c) - 1) / DM_FS(c->mlp_c);
    return nb <= (size_t)c->mlp_resident && (D + nb - 1) / nb <= DM_WARPS * 32 &&
           nb * D * sizeof(float) <= c->work_bytes;
}

qa_status qa_cuda_mlp_decode(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                             const void *Wd, int D, int F, qa_err *e)
{
    const dm_args a = {x, nw, (const __nv_bfloat16 *)Wg, (const __nv_bfloat16 *)Wu, (const __nv_bfloat16 *)Wd,
                       (float *)c->work, c->mlp_sync, eps, D, F};
    const dim3 grid((F + DM_FS(c->mlp_c) - 1) / DM_FS(c->mlp_c)), block(DM_WARPS * 32);
    const size_t smem = (size_t)D * sizeof(__nv_bfloat16);
    QA_CUDA_CHECK(e, c->mlp_c == 6 ? qa_cu_launch(mlp_decode_kernel<6>, grid, block, smem, c->stream, a)
                                   : qa_cu_launch(mlp_decode_kernel<3>, grid, block, smem, c->stream, a));
    return QA_OK;
}
