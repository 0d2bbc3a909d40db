/* attention_wgmma.cu — causal attention with BF16 K / V and head dim 128 on Hopper's warpgroup MMA (wgmma,
 * sm_90a): the decoder's prefill / align attention (issue 6). Three kernels: attention_wgmma_kernel
 * (QA_CUDA_ATTN=wgmma1), described here; attention_wgmma_ws_kernel (the default on Hopper, also
 * QA_CUDA_ATTN=wgmma; its own comment below): the same per-warpgroup math, the same bits, with a producer
 * warpgroup and the two consumer warpgroups taking turns on the tensor cores; and its variant for short
 * sequences, attention_wgmma_split_kernel (64-row blocks whose key tiles the two consumers split; the default
 * where its own grid fits one wave of the GPU, QA_CUDA_ATTN_SPLIT=0 / 1 never / always, QA_CUDA_ATTN=wgmma
 * never unless QA_CUDA_ATTN_SPLIT=1; comment below).
 *
 * Contract: ops.cuh qa_cu_attention_wgmma, the same function as attention_mma.cu (whose header gives the
 * numerics): q rounded to BF16 when staged, S = q k^T and O = P V accumulate in FP32, the scale is applied to
 * the FP32 scores in base 2 (one FFMA, exp2), online softmax in FP32, P rounded to BF16 as the A operand of
 * P V, row sums from the FP32 p; causal mask with q0 (qa_attn_key_range), GQA kv head h / (H / Hk).
 * Reference: Shah et al., "FlashAttention-3" (2024): S = Q K^T with both operands in shared memory, O += P V
 * with P from registers (the S accumulator's layout is the register A operand's, wgmma_ptx.cuh), the softmax
 * of one warpgroup overlapping the MMAs of the other.
 *
 * Layout: one block = 2 warpgroups x 64 query rows (128 rows) of one head; a warpgroup owns its 64 rows for
 * the whole key loop (S: 64, O: 64, P: 32 registers per thread). Keys in tiles of 128. Q (BF16), two K and
 * three V tile buffers in shared memory, all in the 128-byte-swizzled layout the wgmma descriptors read
 * (wgmma_ptx.cuh); K is the K-major B of S = Q K^T, V the MN-major (transposed) B of P V: the same layout,
 * two descriptors. 32 KB each: 192 KB, one block per SM.
 * Pipeline (FlashAttention-3's intra-warpgroup overlap): iteration t issues S(t) = Q K(t)^T and then
 * O += P(t-1) V(t-1) as one stream of 16 wgmmas, waits for S(t) alone, runs the mask and softmax of S(t), then
 * waits for the P V, rescales O and packs P(t). (ptxas, CUDA 13.0, still schedules the P V's wait before the
 * softmax's first shuffle, so today the softmax overlaps only the other warpgroup's MMAs.)
 * Copies: every thread issues cp.async for tile t + 1 right after the barrier that opens iteration t (K into
 * the buffer K(t - 1) used, V into the one V(t - 2) used: V(t - 1) is still read), so the copy runs under
 * iteration t's math; no producer warp and no mbarrier: one __syncthreads per iteration is the only
 * synchronisation besides each warpgroup's own wgmma waits, so a mistake cannot hang the block. cp.async
 * writes go through the generic proxy and wgmma reads through the async one: each thread fences
 * (fence.proxy.async) after its copies landed, before the barrier.
 * Work skipped: tiles no row of the block sees are never loaded; a warpgroup skips a tile none of its rows
 * sees (wgmma is warpgroup-collective, so that test is per warpgroup); the per-element mask runs only on
 * warps whose 16 rows do not all see the whole tile; the O rescale only when a row's max moved.
 * Grid: x = head (the H / Hk heads sharing a kv head side by side, sharing its tiles in L2), y = query block,
 * last blocks first (the longest under the causal mask).
 */
#include <math.h>
#include <stdint.h>

#include "mma_ptx.cuh"
#include "attn_out.cuh"
#include "ops.cuh"
#include "wgmma_ptx.cuh"

#define WG_DH 128                 /* head dim */
#define WG_GROUPS 2               /* warpgroups per block, 64 query rows each */
#define WG_THREADS (WG_GROUPS * 128)
#define WG_BQ (WG_GROUPS * 64)    /* query rows per block */
#define WG_BK 128                 /* keys per tile */

typedef __nv_bfloat16 bf16;

/* Shared memory (bytes from a 1024-byte aligned base, as the swizzle atoms need): Q [WG_BQ][128], K buffers
 * 0, 1, V buffers 0, 1, 2 [WG_BK][128], BF16 in the layout of wgmma_ptx.cuh. Tile t's K goes to K buffer t % 2,
 * its V to V buffer t % 3: V of tile t - 1 is still read (P V) while tile t + 1 is copied. */
#define WG_Q_BYTES (WG_BQ * WG_DH * 2)
#define WG_TILE_BYTES (WG_BK * WG_DH * 2)
#define WG_K_OFF WG_Q_BYTES
#define WG_V_OFF (WG_Q_BYTES + 2 * WG_TILE_BYTES)
#define WG_SMEM_BYTES (WG_V_OFF + 3 * WG_TILE_BYTES + 1024) /* + the alignment slack */

static_assert(WG_Q_BYTES % 1024 == 0 && WG_TILE_BYTES % 1024 == 0, "swizzle atoms on 1024-byte boundaries");

/* Q rows [i0, i0 + BQ) of head h rounded to BF16 into Qs (rows at or past Tq: zeros), by the WG_THREADS threads
 * of the two warpgroups. One 16-byte chunk (8 elements) per step: two float4 loads (q rows 16-byte aligned,
 * qa_cu_attention_tc_supported). */
template <int BQ> __device__ __forceinline__ void wg_stage_q(unsigned char *Qs, const qa_cu_tc_args &a, int h, int i0)
{
    for (int x = threadIdx.x; x < BQ * WG_DH / 8; x += WG_THREADS) {
        const int r = x / (WG_DH / 8), c = (x % (WG_DH / 8)) * 8, i = i0 + r;
        float4 f0 = make_float4(0.f, 0.f, 0.f, 0.f), f1 = f0;
        if (i < a.Tq) {
            const float *src = a.q + (size_t)i * a.ldq + (size_t)h * WG_DH + c;
            f0 = *(const float4 *)src;
            f1 = *(const float4 *)(src + 4);
        }
        *(uint4 *)(Qs + wg_sw128_offset(BQ, r, c)) =
            make_uint4(pack_bf16(f0.x, f0.y), pack_bf16(f0.z, f0.w), pack_bf16(f1.x, f1.y), pack_bf16(f1.z, f1.w));
    }
}

/* Start copying key rows [j0, j0 + WG_BK) of K or V (BF16, head columns from col) into dst; rows at or past
 * `valid` are zero-filled (P is 0 there, but 0 * a garbage NaN would still poison O). A warp copies two whole
 * rows (512 contiguous bytes) per step. */
__device__ __forceinline__ void wg_issue_rows(unsigned char *dst, const bf16 *src, int ld, size_t col, int j0,
                                              int valid)
{
    constexpr int C = WG_DH / 8; /* 16-byte chunks per row */
#pragma unroll
    for (int n = 0; n < WG_BK * C / WG_THREADS; n++) {
        const int x = threadIdx.x + n * WG_THREADS, r = x / C, c = (x % C) * 8, j = j0 + r;
        const bool ok = j < valid;
        cp_async16(dst + wg_sw128_offset(WG_BK, r, c), src + (size_t)(ok ? j : 0) * ld + col + c, ok ? 16 : 0);
    }
}

/* A warpgroup thread's output accumulators (its 64 of the 64 x 128 tile) at zero, its two rows' running max at -inf
 * and sums at zero: the FlashAttention recurrence before the first tile. */
__device__ __forceinline__ void wg_acc_init(float o[64], float m[2], float l[2])
{
#pragma unroll
    for (int x = 0; x < 64; x++)
        o[x] = 0.f;
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.f;
}

/* The keys rows [i0, i0 + bq) ∩ [0, Tq) of a block see, [*klo, *khi) (from the first row's lowest to the last
 * row's highest), and the WG_BK-key tiles they take (returned). */
__device__ __forceinline__ int wg_block_keys(const qa_cu_tc_args &a, int i0, int bq, int *klo, int *khi)
{
    int dummy;
    qa_attn_key_range(a.q0 + i0, a.Tk, a.window, a.causal, klo, &dummy);
    qa_attn_key_range(a.q0 + min(i0 + bq, a.Tq) - 1, a.Tk, a.window, a.causal, &dummy, khi);
    return *khi > *klo ? (*khi - *klo + WG_BK - 1) / WG_BK : 0;
}

/* The tiles [0, ng) of the block's ntiles (from key klo) that some row of the warpgroup (rows from gr0) sees — under
 * the causal mask (no window) every row sees from key 0 = klo, so a warpgroup's tiles are a prefix of the block's —
 * and the keys every row of the warp (rows from wr0) sees, [w_lo, w_hi); rows past Tq see nothing (ng 0; the
 * warp's range empty: always mask). */
__device__ __forceinline__ void wg_warp_keys(const qa_cu_tc_args &a, int wr0, int *w_lo, int *w_hi)
{
    int dummy;
    qa_attn_key_range(a.q0 + min(wr0 + 15, a.Tq - 1), a.Tk, a.window, a.causal, w_lo, &dummy);
    qa_attn_key_range(a.q0 + min(wr0, a.Tq - 1), a.Tk, a.window, a.causal, &dummy, w_hi);
    if (wr0 + 15 >= a.Tq)
        *w_lo = *w_hi = 0;
}
__device__ __forceinline__ void wg_row_keys(const qa_cu_tc_args &a, int gr0, int wr0, int klo, int ntiles, int *ng,
                                            int *w_lo, int *w_hi)
{
    int dummy, g_hi;
    qa_attn_key_range(a.q0 + min(gr0 + 63, a.Tq - 1), a.Tk, a.window, a.causal, &dummy, &g_hi);
    if (gr0 >= a.Tq)
        g_hi = 0;
    *ng = g_hi > klo ? min(ntiles, (g_hi - klo + WG_BK - 1) / WG_BK) : 0;
    wg_warp_keys(a, wr0, w_lo, w_hi);
}

/* On a tile this warp's rows do not all fully see: set the scores of keys a row does not see to -inf; rows
 * past Tq see nothing. s[4n + e]: row g + 8 (e / 2), key j0 + 8n + 2t + e % 2 (wgmma_ptx.cuh). */
__device__ __forceinline__ void wg_mask(float s[64], const qa_cu_tc_args &a, int r0, int g, int t, int j0)
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = r0 + g + 8 * r, lo = 0, hi = 0;
        if (i < a.Tq)
            qa_attn_key_range(a.q0 + i, a.Tk, a.window, a.causal, &lo, &hi);
#pragma unroll
        for (int n = 0; n < WG_BK / 8; n++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int j = j0 + 8 * n + 2 * t + c;
                if (j < lo || j >= hi)
                    s[4 * n + 2 * r + c] = -INFINITY;
            }
    }
}

/* Online softmax of this thread's two rows (g, g + 8 of its warp), as attention_mma.cu mma_softmax: the 4
 * threads of a quad hold a row's 128 keys; m in base-2 units, l this thread's partial sum (the quad's are
 * added in wg_store); a row with no visible key yet keeps m = -inf and gets p = 0. s is replaced by p; corr
 * = 2^(m_old - m_new) is O's factor (wg_rescale), applied once the P V still in flight has landed. */
__device__ __forceinline__ void wg_softmax(float s[64], float sl2, float m[2], float l[2], float corr[2])
{
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < WG_BK / 8; n++)
            mx = fmaxf(mx, fmaxf(s[4 * n + 2 * r], s[4 * n + 2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m[r], mx * sl2);
        base[r] = mn == -INFINITY ? 0.f : mn;
        corr[r] = mma_ex2(m[r] - base[r]); /* 0 while m[r] = -inf (O and l are 0 then) */
        m[r] = mn;
        l[r] *= corr[r];
    }
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int n = 0; n < WG_BK / 8; n++) {
            const float p0 = mma_ex2(fmaf(s[4 * n + 2 * r], sl2, -base[r]));
            const float p1 = mma_ex2(fmaf(s[4 * n + 2 * r + 1], sl2, -base[r]));
            l[r] += p0 + p1;
            s[4 * n + 2 * r] = p0;
            s[4 * n + 2 * r + 1] = p1;
        }
}

/* O rows *= corr, skipped when no row of the warp moved its max (the factor is exactly 1 then). */
__device__ __forceinline__ void wg_rescale(float o[64], const float corr[2])
{
    if (__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f)) {
#pragma unroll
        for (int n = 0; n < WG_DH / 8; n++) {
            o[4 * n] *= corr[0];
            o[4 * n + 1] *= corr[0];
            o[4 * n + 2] *= corr[1];
            o[4 * n + 3] *= corr[1];
        }
    }
}

/* P (FP32 in s) as the A operand of step kc (keys 16kc ..): n-blocks 2kc, 2kc + 1, rounded to BF16. */
__device__ __forceinline__ void wg_pack_p(uint32_t p[WG_BK / 16][4], const float s[64])
{
#pragma unroll
    for (int kc = 0; kc < WG_BK / 16; kc++) {
        p[kc][0] = pack_bf16(s[8 * kc], s[8 * kc + 1]);
        p[kc][1] = pack_bf16(s[8 * kc + 2], s[8 * kc + 3]);
        p[kc][2] = pack_bf16(s[8 * kc + 4], s[8 * kc + 5]);
        p[kc][3] = pack_bf16(s[8 * kc + 6], s[8 * kc + 7]);
    }
}

/* out rows of this thread (g, g + 8 of the warp's 16 rows from r0): O / l with l the quad's sum; a row with no
 * visible key (l = 0) is written as zeros, as attention.cu does. o[4n + e]: row g + 8 (e / 2), column 8n + 2t
 * + e % 2. */
__device__ __forceinline__ void wg_store(const qa_cu_tc_args &a, const float o[64], const float l[2], int h, int r0,
                                         int g, int t)
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1); /* every lane, before any skips its row */
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int i = r0 + g + 8 * r;
        if (i >= a.Tq)
            continue;
        const float inv = sum > 0.f ? 1.0f / sum : 0.f;
        const size_t at = (size_t)i * a.ldo + (size_t)h * WG_DH + 2 * t;
#pragma unroll
        for (int n = 0; n < WG_DH / 8; n++)
            qa_attn_put2(a.out, a.out_bf16, at + 8 * n, o[4 * n + 2 * r] * inv, o[4 * n + 2 * r + 1] * inv);
    }
}

/* Issue (and commit as one group) S = Q K^T for this warpgroup's 64 rows and a 128-key tile: 8 steps of 16
 * head dims; step kk in column block kk / 4 of Q (BQ rows) and K, 32 (kk % 4) bytes into their rows. q_addr:
 * this warpgroup's first Q row; k_addr: the K buffer (shared-window addresses). */
template <int BQ> __device__ __forceinline__ void wg_qk(float s[64], uint32_t q_addr, uint32_t k_addr)
{
#pragma unroll
    for (int kk = 0; kk < WG_DH / 16; kk++) {
        const uint32_t in_row = (kk & 3) * 32;
        wg_mma_ss(s, wg_desc(q_addr + (kk >> 2) * (BQ * 128) + in_row, 16, 1024),
                  wg_desc(k_addr + (kk >> 2) * (WG_BK * 128) + in_row, 16, 1024), kk > 0);
    }
    wg_commit();
}

/* Issue (one group) O += P V: 8 steps of 16 keys (V rows 16kc .., 2048 bytes each); V is the MN-major B,
 * LBO = the distance of its two 64-dim column blocks. */
__device__ __forceinline__ void wg_pv(float o[64], const uint32_t p[WG_BK / 16][4], uint32_t v_addr)
{
#pragma unroll
    for (int kc = 0; kc < WG_BK / 16; kc++)
        wg_mma_rs_tb(o, p[kc], wg_desc(v_addr + kc * 16 * 128, WG_BK * 128, 1024));
    wg_commit();
}

/* The scores of tile j0 to FP32 p: the mask where this warp's rows do not all see the whole tile (keys
 * [w_lo, w_hi) are seen by every row), then the online softmax. */
__device__ __forceinline__ void wg_scores_to_p(float s[64], const qa_cu_tc_args &a, float m[2], float l[2],
                                               float corr[2], int wr0, int w_lo, int w_hi, int g, int t, int j0)
{
    if (j0 < w_lo || j0 + WG_BK > w_hi) /* warp-uniform */
        wg_mask(s, a, wr0, g, t, j0);
    wg_softmax(s, a.scale_log2, m, l, corr);
}

/* launch_bounds (256, 1): one block per SM (192 KB of shared memory), up to 255 registers per thread for
 * S, O and P (160) and the addressing. */
__global__ void __launch_bounds__(WG_THREADS, 1) attention_wgmma_kernel(qa_cu_tc_args a)
{
    extern __shared__ unsigned char smem_raw[];
    /* the swizzle atoms need 1024-byte alignment in the shared window; the dynamic base only guarantees 16 */
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    unsigned char *smem = smem_raw + (((raw + 1023u) & ~1023u) - raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    unsigned char *Qs = smem;
    const bf16 *k = (const bf16 *)a.k, *v = (const bf16 *)a.v;
    const int h = blockIdx.x, kvh = h / (a.H / a.Hk);
    const size_t col = (size_t)kvh * WG_DH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int wg = warp >> 2;
    const int i0 = (gridDim.y - 1 - blockIdx.y) * WG_BQ;
    const int gr0 = i0 + wg * 64, wr0 = i0 + warp * 16; /* first rows of the warpgroup, of the warp */

    wg_stage_q<WG_BQ>(Qs, a, h, i0);

    /* the keys the block's rows see; those of the warpgroup's and the warp's */
    int klo, khi;
    const int ntiles = wg_block_keys(a, i0, WG_BQ, &klo, &khi);
    int ng, w_lo, w_hi;
    wg_row_keys(a, gr0, wr0, klo, ntiles, &ng, &w_lo, &w_hi);

    float o[64], m[2], l[2];
    wg_acc_init(o, m, l);

    const uint32_t q_addr = sbase + wg * 64 * 128; /* A of S = Q K^T: this warpgroup's 64 rows */
    uint32_t p[WG_BK / 16][4];
    if (ntiles > 0) {
        wg_issue_rows(smem + WG_K_OFF, k, a.ldk, col, klo, khi);
        wg_issue_rows(smem + WG_V_OFF, v, a.ldv, col, klo, khi);
    }
    cp_async_commit();
    /* Iteration it: S(it) = Q K(it)^T is issued, then O += P(it - 1) V(it - 1) with the P of the iteration
     * before; the softmax of S(it) runs while that P V is on the tensor cores (FlashAttention-3's
     * intra-warpgroup overlap); O is rescaled once the P V landed, then P(it) packed. One iteration more than
     * tiles: the last P V. */
    for (int it = 0; it <= ntiles; it++) {
        const int j0 = klo + it * WG_BK;
        cp_async_wait_all();
        wg_fence_proxy_async(); /* this thread's copies (and Q stores) visible to wgmma ... */
        __syncthreads();        /* ... every thread's; K(it - 1), V(it - 2) consumed by both warpgroups */
        if (it + 1 < ntiles) {
            wg_issue_rows(smem + WG_K_OFF + ((it + 1) & 1) * WG_TILE_BYTES, k, a.ldk, col, j0 + WG_BK, khi);
            wg_issue_rows(smem + WG_V_OFF + ((it + 1) % 3) * WG_TILE_BYTES, v, a.ldv, col, j0 + WG_BK, khi);
        }
        cp_async_commit();
        /* three straight paths (warpgroup-uniform), each waiting for the MMAs it issued: ptxas keeps the wgmma
         * pipeline only where no wgmma is in flight across a branch (else it serializes them, C7520) */
        const uint32_t k_addr = sbase + WG_K_OFF + (it & 1) * WG_TILE_BYTES;
        const uint32_t v_addr = sbase + WG_V_OFF + ((it + 2) % 3) * WG_TILE_BYTES; /* V(it - 1) */
        if (it >= 1 && it < ng) { /* S(it) and P(it - 1) V(it - 1) */
            float s[64], corr[2];
            wg_fence(); /* O rescaled and P packed by the previous iteration */
            wg_qk<WG_BQ>(s, q_addr, k_addr);
            wg_pv(o, p, v_addr);
            wg_wait<1>(); /* S(it) landed; the P V may still run: O and p untouched until wait<0> */
            wg_pin(s);
            wg_scores_to_p(s, a, m, l, corr, wr0, w_lo, w_hi, g, t, j0);
            wg_pin(s); /* the exp2s under the P V, not after it */
            wg_wait<0>();
            wg_pin(o);
            wg_rescale(o, corr);
            wg_pack_p(p, s);
        } else if (it < ng) { /* it = 0: S(0) alone */
            float s[64], corr[2];
            wg_fence();
            wg_qk<WG_BQ>(s, q_addr, k_addr);
            wg_wait<0>();
            wg_pin(s);
            wg_scores_to_p(s, a, m, l, corr, wr0, w_lo, w_hi, g, t, j0);
            wg_pack_p(p, s); /* O is still 0: no rescale */
        } else if (it >= 1 && it == ng) { /* the last P V */
            wg_fence();
            wg_pv(o, p, v_addr);
            wg_wait<0>();
            wg_pin(o);
        }
    }
    cp_async_wait_all(); /* no copy may still target shared memory when the block exits */
    wg_store(a, o, l, h, wr0, g, t);
}

/* ---- the warp-specialized ping-pong schedule (QA_CUDA_ATTN=wgmma) -------------------------------- */

/* The kernel above keeps both warpgroups in step: its one __syncthreads per iteration (the cp.async copies of
 * every thread) lines them up, so the tensor cores wait while both run their softmax. This one decouples
 * them, as FlashAttention-3 does: a third, producer warpgroup copies the K / V tiles (cp.async, every
 * producer thread's copies signalling an mbarrier "full" of the buffer when they land) and the two consumer
 * warpgroups free a buffer through an mbarrier "empty" once their wgmmas read it (K after S, V after P V);
 * the consumers take turns issuing their MMAs (named barriers 1, 2: warpgroup w waits on 1 + w before it
 * issues and signals the other's after), so one warpgroup's softmax runs under the other's MMAs. setmaxnreg
 * moves registers from the producer (24) to the consumers (240). Three K and three V buffers (224 KB): the
 * producer runs up to two tiles ahead. The per-warpgroup math (paths, mask, softmax, numerics) is the
 * kernel above's. */
#define WS_THREADS (WG_THREADS + 128) /* + the producer warpgroup */
#define WS_STAGES 3
#define WS_K_OFF WG_Q_BYTES
#define WS_V_OFF (WG_Q_BYTES + WS_STAGES * WG_TILE_BYTES)
#define WS_BAR_OFF (WS_V_OFF + WS_STAGES * WG_TILE_BYTES) /* full K, full V, empty K, empty V: 8 bytes each */
#define WS_SMEM_BYTES (WS_BAR_OFF + 4 * WS_STAGES * 8 + 1024)

__device__ __forceinline__ void ws_bar_init(uint32_t bar, uint32_t count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void ws_bar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* Arrives on bar once every cp.async this thread issued so far has landed (the count excludes it: .noinc). */
__device__ __forceinline__ void ws_bar_arrive_cp_async(uint32_t bar)
{
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
/* Until the phase of bar with this parity (0 for its first completion, then 1, 0, ...) has completed. */
__device__ __forceinline__ void ws_bar_wait(uint32_t bar, uint32_t parity)
{
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}
/* Named barriers of the two consumer warpgroups (256 threads): sync waits, arrive only signals. */
__device__ __forceinline__ void ws_named_sync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void ws_named_arrive(int id) { asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory"); }


/* One consumer turn of the warp-specialised kernels on tile j0 (K at k_addr): S = Q K^T issued, with PV also the
 * P V of the previous tile (V at v_addr), then the other consumer's turn signalled; the K freed once S is in
 * registers, the softmax of S, the V freed once P V is done and O rescaled; P packed for the next turn. */
template <int BQ, bool PV>
__device__ __forceinline__ void ws_consume(float (&o)[64], uint32_t (&p)[WG_BK / 16][4], float (&m)[2], float (&l)[2],
                                           const qa_cu_tc_args &a, uint32_t q_addr, uint32_t k_addr, uint32_t v_addr,
                                           uint32_t empty_k, uint32_t empty_v, int other_bar, int wr0, int w_lo,
                                           int w_hi, int g, int t, int j0)
{
    float s[64], corr[2];
    wg_fence();
    wg_qk<BQ>(s, q_addr, k_addr);
    if (PV)
        wg_pv(o, p, v_addr);
    ws_named_arrive(other_bar);
    wg_wait<PV ? 1 : 0>();
    ws_bar_arrive(empty_k);
    wg_pin(s);
    wg_scores_to_p(s, a, m, l, corr, wr0, w_lo, w_hi, g, t, j0);
    if (PV) {
        wg_pin(s);
        wg_wait<0>();
        ws_bar_arrive(empty_v);
        wg_pin(o);
        wg_rescale(o, corr);
    }
    wg_pack_p(p, s);
}
/* The producer's copy of key rows [j0, j0 + WG_BK) of K or V into dst, as wg_issue_rows but by NT (128 or 64)
 * threads: thread x copies 16-byte chunk x % 16 of rows x / 16 + (NT / 16) n; with 128 threads the rows are 8
 * apart, so the swizzled column (row % 8) is fixed: one offset d0 and a stride. */
template <int NT>
__device__ __forceinline__ void ws_issue_rows(unsigned char *dst, const bf16 *src, int ld, size_t col, int j0,
                                              int valid, int x)
{
    const int r0 = x >> 4, c = (x & 15) * 8;
    const uint32_t d0 = wg_sw128_offset(WG_BK, r0, c);
#pragma unroll 1 /* the producer has 24 registers */
    for (int n = 0; n < WG_BK * 16 / NT; n++) {
        const int r = r0 + (NT / 16) * n, j = j0 + r;
        const bool ok = j < valid;
        const uint32_t d = NT == 128 ? d0 + n * 8 * 128 : wg_sw128_offset(WG_BK, r, c);
        cp_async16(dst + d, src + (size_t)(ok ? j : 0) * ld + col + c, ok ? 16 : 0);
    }
}

__global__ void __launch_bounds__(WS_THREADS, 1) attention_wgmma_ws_kernel(qa_cu_tc_args a)
{
    extern __shared__ unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    unsigned char *smem = smem_raw + (((raw + 1023u) & ~1023u) - raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    const uint32_t full_k = sbase + WS_BAR_OFF, full_v = full_k + 8 * WS_STAGES, empty_k = full_v + 8 * WS_STAGES,
                   empty_v = empty_k + 8 * WS_STAGES;
    const bf16 *k = (const bf16 *)a.k, *v = (const bf16 *)a.v;
    const int h = blockIdx.x, kvh = h / (a.H / a.Hk);
    const size_t col = (size_t)kvh * WG_DH;
    const int wg = threadIdx.x >> 7;
    const int i0 = (gridDim.y - 1 - blockIdx.y) * WG_BQ;

    int klo, khi;
    const int ntiles = wg_block_keys(a, i0, WG_BQ, &klo, &khi);

    if (threadIdx.x == 0) {
        for (int b = 0; b < WS_STAGES; b++) {
            ws_bar_init(full_k + 8 * b, 128);
            ws_bar_init(full_v + 8 * b, 128);
            ws_bar_init(empty_k + 8 * b, WG_THREADS);
            ws_bar_init(empty_v + 8 * b, WG_THREADS);
        }
    }
    if (wg < WG_GROUPS) {
        wg_stage_q<WG_BQ>(smem, a, h, i0);
        wg_fence_proxy_async(); /* the Q stores visible to wgmma after the barrier */
    }
    __syncthreads(); /* Q staged, barriers initialized */

    if (wg == WG_GROUPS) { /* the producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        const int x = threadIdx.x - WG_THREADS;
        for (int u = 0; u < ntiles; u++) {
            const int b = u % WS_STAGES;
            const uint32_t parity = ((u / WS_STAGES) + 1) & 1; /* tile u - 3 freed */
            const int j0 = klo + u * WG_BK;
            if (u >= WS_STAGES)
                ws_bar_wait(empty_k + 8 * b, parity);
            ws_issue_rows<128>(smem + WS_K_OFF + b * WG_TILE_BYTES, k, a.ldk, col, j0, khi, x);
            ws_bar_arrive_cp_async(full_k + 8 * b);
            if (u >= WS_STAGES)
                ws_bar_wait(empty_v + 8 * b, parity);
            ws_issue_rows<128>(smem + WS_V_OFF + b * WG_TILE_BYTES, v, a.ldv, col, j0, khi, x);
            ws_bar_arrive_cp_async(full_v + 8 * b);
        }
        cp_async_wait_all(); /* no copy may still target shared memory when the block exits */
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int gr0 = i0 + wg * 64, wr0 = i0 + warp * 16;
    int ng, w_lo, w_hi;
    wg_row_keys(a, gr0, wr0, klo, ntiles, &ng, &w_lo, &w_hi);

    float o[64], m[2], l[2];
    wg_acc_init(o, m, l);
    const uint32_t q_addr = sbase + wg * 64 * 128;
    const int my_bar = 1 + wg, other_bar = 2 - wg;
    uint32_t p[WG_BK / 16][4];
    if (wg == 1)
        ws_named_arrive(1); /* warpgroup 0 issues first */
    /* Both warpgroups run every iteration (the named barriers pair their turns one to one, and every
     * consumer thread frees every tile once: K(it) at iteration it, V(it - 1) at it), computing on the
     * tiles their rows see: the paths of attention_wgmma_kernel. */
    for (int it = 0; it <= ntiles; it++) {
        const int j0 = klo + it * WG_BK, b = it % WS_STAGES, bp = (it + WS_STAGES - 1) % WS_STAGES;
        const uint32_t k_addr = sbase + WS_K_OFF + b * WG_TILE_BYTES, v_addr = sbase + WS_V_OFF + bp * WG_TILE_BYTES;
        if (it < ng)
            ws_bar_wait(full_k + 8 * b, (it / WS_STAGES) & 1);
        if (it >= 1 && it <= ng)
            ws_bar_wait(full_v + 8 * bp, ((it - 1) / WS_STAGES) & 1);
        wg_fence_proxy_async(); /* the producer's cp.async writes (generic proxy) before this wgmma's reads */
        ws_named_sync(my_bar);
        if (it >= 1 && it < ng) {
            ws_consume<WG_BQ, true>(o, p, m, l, a, q_addr, k_addr, v_addr, empty_k + 8 * b, empty_v + 8 * bp,
                                    other_bar, wr0, w_lo, w_hi, g, t, j0);
        } else if (it < ng) { /* it = 0 */
            ws_consume<WG_BQ, false>(o, p, m, l, a, q_addr, k_addr, v_addr, empty_k + 8 * b, empty_v + 8 * bp,
                                     other_bar, wr0, w_lo, w_hi, g, t, j0);
        } else if (it >= 1 && it == ng) { /* the last P V; tile it (if any) is not this warpgroup's */
            wg_fence();
            wg_pv(o, p, v_addr);
            ws_named_arrive(other_bar);
            wg_wait<0>();
            ws_bar_arrive(empty_v + 8 * bp);
            wg_pin(o);
            if (it < ntiles)
                ws_bar_arrive(empty_k + 8 * b);
        } else { /* past this warpgroup's tiles (or it has none): only the turn and the frees */
            ws_named_arrive(other_bar);
            if (it < ntiles)
                ws_bar_arrive(empty_k + 8 * b);
            if (it >= 1)
                ws_bar_arrive(empty_v + 8 * bp);
        }
    }
    if (wg == 0)
        ws_named_sync(1); /* warpgroup 1's last signal: no barrier left half-arrived */
    wg_store(a, o, l, h, wr0, g, t);
}

/* ---- short sequences: 64-row blocks whose key tiles the two consumers split (QA_CUDA_ATTN_SPLIT) ----------- */

/* The kernel above runs heads x ceil(Tq / 128) blocks of one per SM: a short request leaves the GPU mostly idle
 * (T = 247, 16 heads: 32 blocks on 132 SMs; T = 1300: 176 blocks, 1.33 waves) while each block walks its key
 * tiles one after another. This one halves the block to the 64 query rows of one warpgroup and gives the
 * block's key tiles to the two consumer warpgroups in turn (consumer c the tiles u = 2j + c of the block's
 * ntiles): twice the blocks, each with half the serial key loop. Each consumer keeps its own running max, sum
 * and O over its tiles, with the per-warpgroup math of the kernels above (mask, softmax, numerics, the
 * ping-pong turns of the one above); at the end consumer 1 hands its m, l, O to consumer 0 through shared
 * memory and consumer 0 merges them with FlashAttention's rescale (m = max(m0, m1), O = O0 2^(m0 - m) + O1
 * 2^(m1 - m), l alike) and stores the rows. The sums run in another order than the 128-row kernels', so the
 * bits differ; the error is of the same kind and size (P rounded to BF16 against each consumer's max).
 * Synchronisation, kept as the kernel above's (each barrier's phases consumed in order by one waiter):
 * producer warps 0-1 copy consumer 0's tiles and warps 2-3 consumer 1's, each half into its consumer's own
 * buffers (one K, two V: a consumer frees K(j) as soon as S(j) landed, while V(j - 1) is still read by the P V
 * that runs under S(j + 1)'s softmax), so every full / empty mbarrier has one producer half (64 arrivals, cp.async
 * .noinc) and one consumer warpgroup (128 arrivals) and the two pipelines never wait on each other's buffers.
 * Named barriers: 1, 2 the turns (both consumers run the same rounds, ceil(ntiles / 2) + 1), 3 Q staged, 4 the
 * hand-over. Q (16 KB) is staged by the consumers while the producer's first copies fly. Shared memory: Q,
 * then per consumer K, V0, V1 (96 KB), the barriers: 209 KB, one block per SM. */
#define SP_BQ 64  /* query rows per block: one warpgroup's */
#define SP_KST 1  /* K buffers per consumer */
#define SP_VST 2  /* V buffers per consumer */
#define SP_Q_BYTES (SP_BQ * WG_DH * 2)
#define SP_PART_BYTES ((SP_KST + SP_VST) * WG_TILE_BYTES) /* one consumer's buffers */
#define SP_BARS (2 * (SP_KST + SP_VST))                    /* one consumer's: full K, full V, empty K, empty V */
#define SP_BAR_OFF (SP_Q_BYTES + WG_GROUPS * SP_PART_BYTES)
#define SP_SMEM_BYTES (SP_BAR_OFF + WG_GROUPS * SP_BARS * 8 + 1024)
#define SP_HAND 68 /* floats a consumer thread hands over: o[64], m[2], l[2] */

static_assert(SP_Q_BYTES % 1024 == 0, "swizzle atoms on 1024-byte boundaries");
static_assert(SP_HAND * 128 * 4 <= SP_PART_BYTES, "the hand-over fits consumer 1's buffers");

__global__ void __launch_bounds__(WS_THREADS, 1) attention_wgmma_split_kernel(qa_cu_tc_args a)
{
    extern __shared__ unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    unsigned char *smem = smem_raw + (((raw + 1023u) & ~1023u) - raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    const bf16 *k = (const bf16 *)a.k, *v = (const bf16 *)a.v;
    const int h = blockIdx.x, kvh = h / (a.H / a.Hk);
    const size_t col = (size_t)kvh * WG_DH;
    const int wg = threadIdx.x >> 7;
    const int i0 = (gridDim.y - 1 - blockIdx.y) * SP_BQ;

    int klo, khi;
    const int ntiles = wg_block_keys(a, i0, SP_BQ, &klo, &khi);

    /* consumer c's barriers from bars(c): full K [SP_KST], full V [SP_VST], empty K, empty V */
    const uint32_t bar0 = sbase + SP_BAR_OFF;
    if (threadIdx.x == 0)
        for (int b = 0; b < WG_GROUPS * SP_BARS; b++)
            ws_bar_init(bar0 + 8 * b, b % SP_BARS < SP_KST + SP_VST ? 64 : 128);
    __syncthreads(); /* barriers initialized */

    if (wg == WG_GROUPS) { /* the producer: half c (64 threads) copies consumer c's tiles */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        const int x = (threadIdx.x - WG_THREADS) & 63, c = (threadIdx.x - WG_THREADS) >> 6;
        const uint32_t bars = bar0 + 8 * SP_BARS * c;
        unsigned char *kbuf = smem + SP_Q_BYTES + c * SP_PART_BYTES, *vbuf = kbuf + SP_KST * WG_TILE_BYTES;
        for (int j = 0, j0 = klo + c * WG_BK; j0 < khi; j++, j0 += 2 * WG_BK) { /* its tiles 2j + c < ntiles */
            const int bk = j % SP_KST, bv = j % SP_VST;
            if (j >= SP_KST) /* K(j - SP_KST) freed */
                ws_bar_wait(bars + 8 * (SP_KST + SP_VST + bk), ((j / SP_KST) + 1) & 1);
            ws_issue_rows<64>(kbuf + bk * WG_TILE_BYTES, k, a.ldk, col, j0, khi, x);
            ws_bar_arrive_cp_async(bars + 8 * bk);
            if (j >= SP_VST)
                ws_bar_wait(bars + 8 * (2 * SP_KST + SP_VST + bv), ((j / SP_VST) + 1) & 1);
            ws_issue_rows<64>(vbuf + bv * WG_TILE_BYTES, v, a.ldv, col, j0, khi, x);
            ws_bar_arrive_cp_async(bars + 8 * (SP_KST + bv));
        }
        cp_async_wait_all(); /* no copy may still target shared memory when the block exits */
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    wg_stage_q<SP_BQ>(smem, a, h, i0);
    wg_fence_proxy_async(); /* the Q stores visible to wgmma after the barrier */
    ws_named_sync(3);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int wr0 = i0 + 16 * (warp & 3); /* both consumers hold the block's 64 rows */
    int w_lo, w_hi;
    wg_warp_keys(a, wr0, &w_lo, &w_hi);
    /* this consumer's tiles (consumer 0 has the extra one when ntiles is odd) and the rounds both run */
    const int mine = (ntiles + 1 - wg) / 2, rounds = (ntiles + 1) / 2;
    const uint32_t bars = bar0 + 8 * SP_BARS * wg;
    const uint32_t kbuf = sbase + SP_Q_BYTES + wg * SP_PART_BYTES, vbuf = kbuf + SP_KST * WG_TILE_BYTES;

    float o[64], m[2], l[2];
    wg_acc_init(o, m, l);
    const int my_bar = 1 + wg, other_bar = 2 - wg;
    uint32_t p[WG_BK / 16][4];
    if (wg == 1)
        ws_named_arrive(1); /* consumer 0 issues first */
    /* Round it: S of this consumer's tile it (global tile 2 it + wg) and the P V of its tile it - 1, the paths
     * of attention_wgmma_ws_kernel; every tile's K freed at round it, its V at it + 1. */
    for (int it = 0; it <= rounds; it++) {
        const int j0 = klo + (2 * it + wg) * WG_BK, bk = it % SP_KST, bv = (it + SP_VST - 1) % SP_VST;
        const uint32_t k_addr = kbuf + bk * WG_TILE_BYTES, v_addr = vbuf + bv * WG_TILE_BYTES;
        const uint32_t empty_k = bars + 8 * (SP_KST + SP_VST + bk), empty_v = bars + 8 * (2 * SP_KST + SP_VST + bv);
        if (it < mine)
            ws_bar_wait(bars + 8 * bk, (it / SP_KST) & 1);
        if (it >= 1 && it <= mine)
            ws_bar_wait(bars + 8 * (SP_KST + bv), ((it - 1) / SP_VST) & 1);
        wg_fence_proxy_async(); /* the producer's cp.async writes (generic proxy) before this wgmma's reads */
        ws_named_sync(my_bar);
        if (it >= 1 && it < mine) {
            ws_consume<SP_BQ, true>(o, p, m, l, a, sbase, k_addr, v_addr, empty_k, empty_v, other_bar, wr0, w_lo,
                                    w_hi, g, t, j0);
        } else if (it < mine) { /* it = 0 */
            ws_consume<SP_BQ, false>(o, p, m, l, a, sbase, k_addr, v_addr, empty_k, empty_v, other_bar, wr0, w_lo,
                                     w_hi, g, t, j0);
        } else if (it >= 1 && it == mine) { /* the last P V */
            wg_fence();
            wg_pv(o, p, v_addr);
            ws_named_arrive(other_bar);
            wg_wait<0>();
            ws_bar_arrive(empty_v);
            wg_pin(o);
        } else { /* past this consumer's tiles: only the turn */
            ws_named_arrive(other_bar);
        }
    }
    if (wg == 0)
        ws_named_sync(1); /* consumer 1's last signal: no barrier left half-arrived */
    if (ntiles > 1) { /* consumer 1 had tiles: its state into consumer 0's */
        /* consumer 1's own buffers: its copies all landed and its wgmmas all finished; thread x's float n at
         * [n][x], so the 128 threads of a step touch consecutive words */
        float *hand = (float *)(smem + SP_Q_BYTES + SP_PART_BYTES) + (threadIdx.x & 127);
        if (wg == 1) {
#pragma unroll
            for (int x = 0; x < 64; x++)
                hand[128 * x] = o[x];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                hand[128 * (64 + r)] = m[r];
                hand[128 * (66 + r)] = l[r];
            }
            ws_named_arrive(4);
            return;
        }
        ws_named_sync(4);
        float f0[2], f1[2];
#pragma unroll
        for (int r = 0; r < 2; r++) { /* m quad-uniform, so the threads' partial l scale as the row's */
            const float m1 = hand[128 * (64 + r)], mn = fmaxf(m[r], m1);
            const float base = mn == -INFINITY ? 0.f : mn; /* a row no key reached: O and l stay 0 */
            f0[r] = mma_ex2(m[r] - base);
            f1[r] = mma_ex2(m1 - base);
            l[r] = l[r] * f0[r] + hand[128 * (66 + r)] * f1[r];
        }
#pragma unroll
        for (int x = 0; x < 64; x++)
            o[x] = o[x] * f0[(x >> 1) & 1] + hand[128 * x] * f1[(x >> 1) & 1];
    } else if (wg == 1) {
        return; /* no tile: O = 0, m = -inf */
    }
    wg_store(a, o, l, h, wr0, g, t);
}

/* ---- launch ------------------------------------------------------------------------------------ */

/* Hopper only (the sm_90a code of this file loads nowhere else), and the shared memory they need. Once per
 * context (qa_cu_attention_tc_setup), not per launch; sets d->wgmma (1: attention_wgmma_kernel, 2:
 * attention_wgmma_ws_kernel and attention_wgmma_split_kernel, which needs less shared memory). */
qa_status qa_cu_attention_wgmma_setup(qa_cu_tc_dev *d, qa_err *e)
{
    int dev = 0, major = 0, minor = 0;
    d->wgmma = 0;
    QA_CUDA_CHECK(e, cudaGetDevice(&dev));
    QA_CUDA_CHECK(e, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    QA_CUDA_CHECK(e, cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    if (major != 9 || minor != 0 || d->smem_optin < WG_SMEM_BYTES)
        return QA_OK;
    QA_CUDA_CHECK(e, cudaFuncSetAttribute(attention_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          WG_SMEM_BYTES));
    static_assert(SP_SMEM_BYTES <= WS_SMEM_BYTES, "the split kernel runs wherever the warp-specialized one does");
    if (d->smem_optin >= WS_SMEM_BYTES) {
        QA_CUDA_CHECK(e, cudaFuncSetAttribute(attention_wgmma_ws_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              WS_SMEM_BYTES));
        QA_CUDA_CHECK(e, cudaFuncSetAttribute(attention_wgmma_split_kernel,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, SP_SMEM_BYTES));
    }
    /* the warp-specialized kernel unless the first one is asked for: the same bits at every shape tested, and
     * faster (H200, T = 7500 causal: 586 against 614 us; bench/RESULTS.md, 2026-11-27 call 3) */
    d->wgmma = d->smem_optin >= WS_SMEM_BYTES && d->kernel != QA_CU_TC_WGMMA1 ? 2 : 1;
    return QA_OK;
}

/* Whether a call takes the split kernel: asked for (QA_CUDA_ATTN_SPLIT=1), or by default (no QA_CUDA_ATTN
 * kernel named: QA_CUDA_ATTN=wgmma keeps the warp-specialized kernel alone) where its grid of 64-row blocks fits
 * one wave: there twice the blocks with half the key loop each finish sooner than the 128-row blocks' fewer,
 * longer ones (H200, 16 heads: T = 214 / 247 10.3 / 10.9 -> 8.7 us). Past one wave the 128-row kernel wins, as it
 * reads each K / V tile once for twice the rows and overlaps its consumers' softmax with the other's MMAs: T = 780
 * 22.2 vs 24.2 us, 1277 33.3 vs 45.8, 2000 56.7 vs 94.7 (tests/test_cuda_attn_split.py). */
static int use_split(const qa_cu_tc_args &a, const qa_cu_tc_dev *d)
{
    if (d->wgmma != 2 || qa_cuda_blocks((size_t)a.Tq, SP_BQ) > 65535)
        return 0;
    if (d->split >= 0)
        return d->split;
    return d->kernel == QA_CU_TC_AUTO && (size_t)a.H * qa_cuda_blocks((size_t)a.Tq, SP_BQ) <= (size_t)d->sms;
}

int qa_cu_attention_wgmma_fits(const qa_cu_tc_args &a, int Dh, int kv_bf16, const qa_cu_tc_dev *d)
{
    return d->wgmma && Dh == WG_DH && kv_bf16 && a.causal && a.window == 0 &&
           qa_cuda_blocks((size_t)a.Tq, WG_BQ) <= 65535;
}

qa_status qa_cu_attention_wgmma(cudaStream_t s, const qa_cu_tc_args &a, const qa_cu_tc_dev *d, qa_err *e)
{
    dim3 grid(a.H, qa_cuda_blocks((size_t)a.Tq, WG_BQ));
    if (use_split(a, d))
        attention_wgmma_split_kernel<<<dim3(a.H, qa_cuda_blocks((size_t)a.Tq, SP_BQ)), WS_THREADS, SP_SMEM_BYTES,
                                       s>>>(a);
    else if (d->wgmma == 2)
        attention_wgmma_ws_kernel<<<grid, WS_THREADS, WS_SMEM_BYTES, s>>>(a);
    else
        attention_wgmma_kernel<<<grid, WG_THREADS, WG_SMEM_BYTES, s>>>(a);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
