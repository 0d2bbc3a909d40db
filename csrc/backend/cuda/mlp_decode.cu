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
 *   2. the 48 gate and up rows of its units (3 units per warp, gemv.cuh's persistent loop: the same per-row sums
 *      as ngemv_silu_rows_kernel), h = silu(g)·u rounded to BF16 as the down GEMV rounded it;
 *   3. the 48-byte segments W_down[r, f0 .. f0 + 24) of all D rows (3 lanes per row, 10 rows per warp
 *      instruction), each warp issuing its first down batches before the block's h is complete; the partial
 *      sum of row r over the block's units goes to part[b, r] in the work area (nb·D floats);
 *   4. a grid barrier (all nb blocks are resident: nb <= blocks per SM x SMs, checked at launch), then block b
 *      adds the partials of rows b·RB .. (b + 1)·RB over p = 0 .. nb - 1 in a fixed order onto x (the residual).
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
#define DM_C 3                    /* 16-byte chunks of a W_down row segment */
#define DM_FS (8 * DM_C)          /* intermediate units per block: DM_C per warp, one chunk of h per lane group */
#define DM_G (32 / DM_C)          /* W_down rows per warp instruction (lanes DM_G·DM_C .. 31 idle) */
#define DM_U QA_GV_BATCH          /* W_down loads per lane per batch */
#define DM_DEVICES 64             /* devices with a fused decode MLP (a higher index keeps the old path) */

__device__ unsigned dm_sync[2]; /* per device: arrivals (0 at rest), generation */
static int dm_owned[DM_DEVICES]; /* host: a context of this device has the kernel (and dm_sync) */

typedef struct dm_args {
    float *x;                /* [D] the residual row: read by the norm, += the MLP at the end */
    const float *nw;         /* [D] post-attention norm weight */
    const __nv_bfloat16 *wg, *wu, *wd; /* [F, D], [F, D], [D, F] */
    float *part;             /* [nb, D] partial down sums (work area) */
    unsigned *sync;          /* dm_sync[slot] */
    float eps;
    int D, F;
} dm_args;

__device__ __forceinline__ float dm_bf16r(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

/* The normalised row in shared memory (x of gemv.cuh's warp loop). */
struct dm_x {
    const __nv_bfloat16 *xs;
    __device__ __forceinline__ void get(int, int c, float f[8]) const { qa_bf16x8(((const uint4 *)xs)[c], f); }
};

/* Unit f0 + warp + DM_WARPS·i (i < DM_C) of the warp: its gate and up rows; put stores h as the down GEMV of the
 * old path read it (silu(g)·u in FP32, rounded to BF16). */
struct dm_units {
    const __nv_bfloat16 *g, *u;
    float *hs;
    int K, F, first, local;
    __device__ __forceinline__ bool has(int i) const { return i < DM_C; }
    __device__ __forceinline__ void rows(int i, const uint4 *(&p)[2]) const
    {
        const int j = first + DM_WARPS * i; /* past F (the last block's spare units): h = 0 */
        p[0] = i < DM_C && j < F ? (const uint4 *)(g + (size_t)j * K) : NULL;
        p[1] = i < DM_C && j < F ? (const uint4 *)(u + (size_t)j * K) : NULL;
    }
    template <int TT> __device__ __forceinline__ void put(int i, const float (&acc)[2][TT]) const
    {
        float gs = qa_warp_sum(acc[0][0]), us = qa_warp_sum(acc[1][0]);
        if ((threadIdx.x & 31) == 0)
            hs[local + DM_WARPS * i] = dm_bf16r(gs / (1.0f + expf(-gs)) * us); /* act.cu silu_mul, gemv.cu's x */
    }
};

/* Batch of W_down loads of the warp from iteration j0: iteration j is row (j·DM_WARPS + warp)·DM_G + lane group. */
__device__ __forceinline__ void dm_down_load(uint4 (&w)[DM_U], const uint4 *seg, int F8, int D, int j0, bool on)
{
    const int warp = threadIdx.x >> 5, grp = (threadIdx.x & 31) / DM_C;
#pragma unroll
    for (int u = 0; u < DM_U; u++) {
        const int r = ((j0 + u) * DM_WARPS + warp) * DM_G + grp;
        w[u] = on && r < D ? qa_gv_ld(seg + (size_t)r * F8) : make_uint4(0u, 0u, 0u, 0u);
    }
}

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

__global__ void __launch_bounds__(DM_WARPS * 32, 2) mlp_decode_kernel(const dm_args a)
{
    extern __shared__ __align__(16) unsigned char dm_smem[];
    __shared__ float nrm[32], hs[DM_FS], red[DM_WARPS * 32];
    __nv_bfloat16 *xs = (__nv_bfloat16 *)dm_smem; /* [D] */
    const int D = a.D, F8 = a.F / 8, K8 = D / 8, nb = (int)gridDim.x, b = (int)blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, grp = lane / DM_C, k = lane % DM_C;
    const int f0 = b * DM_FS;
    const dm_units r = {a.wg, a.wu, hs, D, a.F, f0 + warp, warp};
    int li = 0, lc = 0;
    {
        constexpr int U = QA_GV_BATCH / 2;
        uint4 w[2][U], next[2][U];
        qa_gv_prime(w, next, r, li, lc, K8); /* gate / up weights before the wait, then wait and trigger */
        qa_rmsnorm_row(xs, a.x, a.nw, D, a.eps, nrm);
        __syncthreads();
        qa_gv_stream_rows<1>(w, next, r, dm_x{xs}, K8, li, lc);
    }
    /* the down segments of this block's units: chunk k of row r at seg + r·F8 (none past F) */
    const bool on = grp < DM_G, ld = on && f0 + 8 * k < a.F;
    const uint4 *seg = (const uint4 *)(a.wd + f0) + k;
    const int NJ = (D + DM_WARPS * DM_G - 1) / (DM_WARPS * DM_G);
    uint4 w[DM_U], next[DM_U];
    dm_down_load(w, seg, F8, D, 0, ld);
    dm_down_load(next, seg, F8, D, DM_U, ld);
    __syncthreads(); /* every unit's h is in hs */
    float h[8];
#pragma unroll
    for (int e = 0; e < 8; e++)
        h[e] = hs[8 * k + e];
    for (int j0 = 0; j0 < NJ; j0 += DM_U) {
#pragma unroll
        for (int u = 0; u < DM_U; u++) {
            float f[8];
            qa_bf16x8(w[u], f);
            const float d = f[0] * h[0] + f[1] * h[1] + f[2] * h[2] + f[3] * h[3] + f[4] * h[4] + f[5] * h[5] +
                            f[6] * h[6] + f[7] * h[7];
            const float d1 = __shfl_down_sync(0xffffffffu, d, 1), d2 = __shfl_down_sync(0xffffffffu, d, 2);
            const int row = ((j0 + u) * DM_WARPS + warp) * DM_G + grp;
            if (on && k == 0 && row < D)
                a.part[(size_t)b * D + row] = (d + d1) + d2; /* the group's 3 chunks in order */
        }
#pragma unroll
        for (int u = 0; u < DM_U; u++)
            w[u] = next[u];
        dm_down_load(next, seg, F8, D, j0 + 2 * DM_U, ld);
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
    int dev = 0, sms = 0, per = 0;
    unsigned *sync = NULL;
    QA_CUDA_CHECK(e, cudaGetDevice(&dev));
    QA_CUDA_CHECK(e, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    /* registers bound it (2 per SM); the largest shared memory keeps it an upper bound for every D */
    QA_CUDA_CHECK(e, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, mlp_decode_kernel, DM_WARPS * 32,
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
    const size_t nb = ((size_t)F + DM_FS - 1) / DM_FS;
    return nb <= (size_t)c->mlp_resident && (D + nb - 1) / nb <= DM_WARPS * 32 &&
           nb * D * sizeof(float) <= c->work_bytes;
}

qa_status qa_cuda_mlp_decode(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                             const void *Wd, int D, int F, qa_err *e)
{
    const dm_args a = {x, nw, (const __nv_bfloat16 *)Wg, (const __nv_bfloat16 *)Wu, (const __nv_bfloat16 *)Wd,
                       (float *)c->work, c->mlp_sync, eps, D, F};
    QA_CUDA_CHECK(e, qa_cu_launch(mlp_decode_kernel, dim3((F + DM_FS - 1) / DM_FS), dim3(DM_WARPS * 32),
                                  (size_t)D * sizeof(__nv_bfloat16), c->stream, a));
    return QA_OK;
}
