/* gemv.cuh — the warp loop of the decode GEMVs (gemv.cu: x read from global memory; norm_gemm.cu: the
 * normalised x in shared memory), with more weight bytes in flight per warp.
 *
 * A decode GEMV is a pass over its BF16 weights; HBM bandwidth is reached only with enough 16-byte loads
 * outstanding per SM (~30 KB on an H200 by Little's law). One warp streams S weight rows side by side: lane l
 * takes the 16-byte chunks c = l, l + 32, ... of each row, QA_GV_BATCH loads (S rows x U chunks) issued
 * together, and the batch after next is issued as soon as one has been multiplied (double buffering: up to
 * 2 x 8 x 16 B per lane in flight). The first two batches are loaded by the kernel before its prologue (the x
 * it multiplies with depends on the previous kernel, the weights do not: pdl.cuh rule 1), so the loads
 * overlap the previous kernel's tail, the PDL wait and the RMSNorm prologue — for K = 2048 all of a warp's
 * weights.
 * Numbers: each lane adds its chunks in increasing order, each chunk as the 8-term sum w0·x0 + ... + w7·x7,
 * then the warp butterfly (qa_warp_sum) — the order of the one-row-per-warp loop this replaces.
 */
#ifndef QA_CUDA_GEMV_CUH
#define QA_CUDA_GEMV_CUH

#include "ops.cuh"
#include "pdl.cuh"

#define QA_GV_BATCH 8 /* 16-byte weight loads per lane per batch: S rows x U chunks */

/* A 16-byte weight load through the read-only path, not kept in L1 (the x rows every warp re-reads stay). */
__device__ __forceinline__ uint4 qa_gv_ld(const uint4 *p)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/* The same load for the batches issued before the PDL wait. ptxas moves griddepcontrol.wait above weak loads (the
 * read-only ones above included: it hoisted the wait to the top of the kernel, the loads after it), but not above
 * a volatile (relaxed, system scope) load, so these are volatile: still 16 bytes each, not kept in L1. */
__device__ __forceinline__ uint4 qa_gv_ld_early(const uint4 *p)
{
    uint4 v;
    asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p)
                 : "memory");
    return v;
}

/* w[s][u] = chunk c0 + 32u + lane of row s (zeros past K8 chunks or for a NULL row: a warp past the last
 * output row, whose sums are never stored). EARLY: loads that must stay before the PDL wait. */
template <bool EARLY = false, int S, int U>
__device__ __forceinline__ void qa_gv_load(uint4 (&w)[S][U], const uint4 *const (&row)[S], int c0, int K8)
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int c = c0 + 32 * u + lane;
#pragma unroll
        for (int s = 0; s < S; s++)
            w[s][u] = row[s] && c < K8 ? (EARLY ? qa_gv_ld_early(row[s] + c) : qa_gv_ld(row[s] + c))
                                       : make_uint4(0u, 0u, 0u, 0u);
    }
}

/* acc[s][t] += chunk c of row s · chunk c of x row t, for the chunks c0 + 32u + lane < K8 of batch w. X::get(t, c,
 * f) gives the 8 values of x row t, chunk c, as the BF16-rounded FP32 the weights multiply. */
template <int TT, int S, int U, typename X>
__device__ __forceinline__ void qa_gv_fma(float (&acc)[S][TT], const uint4 (&w)[S][U], const X &x, int c0, int K8)
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int c = c0 + 32 * u + lane;
        if (c >= K8) /* the chunks grow with u */
            break;
        float xf[TT][8];
#pragma unroll
        for (int t = 0; t < TT; t++)
            x.get(t, c, xf[t]);
#pragma unroll
        for (int s = 0; s < S; s++) {
            float wf[8];
            qa_bf16x8(w[s][u], wf);
#pragma unroll
            for (int t = 0; t < TT; t++)
                acc[s][t] += wf[0] * xf[t][0] + wf[1] * xf[t][1] + wf[2] * xf[t][2] + wf[3] * xf[t][3] +
                             wf[4] * xf[t][4] + wf[5] * xf[t][5] + wf[6] * xf[t][6] + wf[7] * xf[t][7];
        }
    }
}

/* The first two batches of the warp's rows (chunks [0, 32U) and [32U, 64U) of each), issued together: the kernels
 * call this before their PDL wait and prologue, so for K <= 64U·8 every weight byte of the warp is on its way
 * while they wait and normalise. Costs no registers beyond the loop's own two buffers. */
template <int S, int U>
__device__ __forceinline__ void qa_gv_first(uint4 (&w)[S][U], uint4 (&next)[S][U], const uint4 *const (&row)[S], int K8)
{
    qa_gv_load<true>(w, row, 0, K8);
    qa_gv_load<true>(next, row, 32 * U, K8);
}

/* w = next: the batch just used gives way to the one in flight. */
template <int S, int U> __device__ __forceinline__ void qa_gv_shift(uint4 (&w)[S][U], const uint4 (&next)[S][U])
{
#pragma unroll
    for (int s = 0; s < S; s++)
#pragma unroll
        for (int u = 0; u < U; u++)
            w[s][u] = next[s][u];
}

template <int S, int TT> __device__ __forceinline__ void qa_gv_zero(float (&acc)[S][TT])
{
#pragma unroll
    for (int s = 0; s < S; s++)
#pragma unroll
        for (int t = 0; t < TT; t++)
            acc[s][t] = 0.f;
}

/* acc += the warp's S rows · x over all K8 chunks; w, next hold batches 0 and 1 on entry (qa_gv_first). Batch b + 2
 * is issued as soon as batch b has been used (double buffering). */
template <int TT, int S, int U, typename X>
__device__ __forceinline__ void qa_gv_stream(float (&acc)[S][TT], uint4 (&w)[S][U], uint4 (&next)[S][U],
                                             const uint4 *const (&row)[S], const X &x, int K8)
{
    for (int c0 = 0; c0 < K8; c0 += 32 * U) {
        qa_gv_fma<TT>(acc, w, x, c0, K8);
        qa_gv_shift(w, next);
        qa_gv_load(next, row, c0 + 64 * U, K8); /* all zeros past the end: no loads issued */
    }
}

/* ---- the persistent form (QA_CUDA_GEMV_VARIANT 1 to 3) ---------------------------------------------------------
 * A grid of as many blocks as stay resident; warp g owns the outputs g, g + stride, ... (stride: the warps of the
 * grid, so neighbouring warps still read neighbouring rows) and its double-buffered batches run on across them:
 * batch b + 2 may be the first of the next output. No block launches, prologues or drained pipelines between
 * rows, and no partial last wave. Each row's chunks go through qa_gv_fma in the order of qa_gv_stream, then the
 * same qa_warp_sum: the same bits. R (the warp's list) has has(i): whether output i exists; rows(i, p): its S
 * weight rows (NULLs past the last, loaded as zeros without a load); put(i, acc): the reduction and store. */

/* Loads the batch at (output i, chunk c0) into w and moves (i, c0) to the batch after it. EARLY: before the wait. */
template <bool EARLY = false, int S, int U, typename R>
__device__ __forceinline__ void qa_gv_next(uint4 (&w)[S][U], const R &r, int &i, int &c0, int K8)
{
    const uint4 *p[S];
    r.rows(i, p);
    qa_gv_load<EARLY>(w, p, c0, K8);
    c0 += 32 * U;
    if (c0 >= K8)
        c0 = 0, i++;
}

/* A persistent warp's start: its first two batches (weights only, before the PDL wait: pdl.cuh), then the wait and
 * the trigger; (li, lc) is left at the batch after them. */
template <int S, int U, typename R>
__device__ __forceinline__ void qa_gv_prime(uint4 (&w)[S][U], uint4 (&next)[S][U], const R &r, int &li, int &lc,
                                            int K8)
{
    qa_gv_next<true>(w, r, li, lc, K8);
    qa_gv_next<true>(next, r, li, lc, K8);
    qa_pdl_wait();
    qa_pdl_trigger();
}

/* Every output of the warp's list r: w, next hold its first two batches (qa_gv_next, EARLY, twice) and (li, lc)
 * is the batch after them. */
template <int TT, int S, int U, typename X, typename R>
__device__ __forceinline__ void qa_gv_stream_rows(uint4 (&w)[S][U], uint4 (&next)[S][U], const R &r, const X &x,
                                                  int K8, int li, int lc)
{
    float acc[S][TT];
    qa_gv_zero(acc);
    for (int i = 0, c0 = 0; r.has(i);) {
        qa_gv_fma<TT>(acc, w, x, c0, K8);
        qa_gv_shift(w, next);
        qa_gv_next(next, r, li, lc, K8);
        c0 += 32 * U;
        if (c0 < K8)
            continue;
        r.put(i, acc);
        qa_gv_zero(acc);
        c0 = 0, i++;
    }
}

/* Which decode GEMV loop runs (QA_CUDA_GEMV_VARIANT, read once per process). The variants exist for one A/B
 * measurement on the GPU (tests/test_cuda.py test_decode_step_kernels_timing_gemv_variants); 1 is the default.
 *   0: one output (row group) per warp, a block per 8 warps (the loop above, qa_gv_stream);
 *   1: persistent grids of 2 blocks per SM for the gate/up kernel of norm_mlp and for gemv.cu (o-proj, down,
 *      lm_head): qa_gv_stream_rows;
 *   2: as 1, but the gate/up kernel on 1 block per SM: half the register file stays free, so the down GEMV's
 *      blocks (PDL) become resident while gate/up streams and load 2/3 of the down weights before its wait;
 *   3: as 2, and gemv.cu on 1 block per SM too: every GEMV kernel shares the SMs with its PDL successor, which
 *      loads its first weights meanwhile (fewer bytes in flight per kernel, more overlap between kernels). */
static inline int qa_cu_gemv_variant(void)
{
    static const int v = [] {
        const char *e = getenv("QA_CUDA_GEMV_VARIANT");
        return e && e[0] >= '0' && e[0] <= '3' && !e[1] ? e[0] - '0' : 1;
    }();
    return v;
}

/* Blocks per SM of a persistent grid (variants 1..3 above): norm_mlp's gate/up kernel or a gemv.cu one. */
static inline int qa_gv_per_sm(bool gate_up)
{
    const int v = qa_cu_gemv_variant();
    return v == 3 || (v == 2 && gate_up) ? 1 : 2;
}

/* The blocks of a persistent grid: per_sm on every SM of the current device, at most need (a launch error status
 * otherwise; check it with QA_CUDA_CHECK). */
static inline cudaError_t qa_gv_persistent_grid(unsigned need, int per_sm, unsigned *grid)
{
    int dev = 0, sms = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (err != cudaSuccess)
        return err;
    unsigned all = (unsigned)(sms > 0 ? sms : 1) * (unsigned)per_sm;
    *grid = need < all ? need : all;
    return cudaSuccess;
}

#endif
