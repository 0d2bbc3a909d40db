/* attention_mma.cu — FlashAttention-2 style fused attention on BF16 tensor cores (PTX mma.sync
 * m16n8k16, FP32 accumulate): the kernel behind qa_cu_attention_tc for Dh 64 and 128.
 *
 * Contract: ops.cuh qa_cu_attention_mma, the same function and numerics as the WMMA kernel of
 * attention_tc.cu (kept behind QA_CUDA_ATTN=wmma): q, k, v rounded to BF16 (FP32 k / v while they are
 * staged), S = q k^T and O = P V accumulate in FP32, the scale is applied to the FP32 scores in base 2
 * (scale * log2 e, exp2, one FFMA), the online softmax runs in FP32, P is rounded to BF16 as the A operand of
 * P V, the row sums use the FP32 p. Masks as attention.cu (qa_attn_key_range: windows of `window`
 * keys, causal with q0), GQA kv head h / (H / Hk).
 * Reference: Dao, "FlashAttention-2" (2023), Algorithm 1, and its sm80 kernel (flash_fwd_kernel.h):
 * S and O never leave registers; the accumulator of S = Q K^T is, element for element, the A operand
 * of P V (see mma_pv). Fragment layouts: mma_ptx.cuh.
 *
 * Layout: one block = 4 warps x MT m-tiles of 16 query rows of one head; a warp owns its 16·MT
 * consecutive rows for the whole key loop (S, O, m, l in its registers). Two tilings (issue 6):
 *   MT = 1, 64-row blocks: Q fragments held in registers. FP32 or BF16 K / V.
 *   MT = 2, 128-row blocks (BF16 K / V only): every K / V fragment read from shared memory feeds two
 *     m-tiles (the 64-row tiling is bound by shared memory: 256 B per m16n8k16; this one 192 B with
 *     its Q re-reads), and every K / V tile fetched from L2 serves twice the rows. Its 128 O
 *     accumulators leave no room for Q in registers: Q stays in shared memory (BF16) and is re-read
 *     per step (as FlashAttention-2 does for head dim 128); the math runs each 64-key tile as two
 *     32-key online-softmax steps (an S of 64 keys, 32 more registers, spills). 241 registers,
 *     104 KB of shared memory: two blocks per SM, as the 64-row tiling.
 * Keys in tiles of MMA_BK = 64, K and V of a tile in shared memory as BF16 rows padded by 8 elements
 * (the 8 row addresses of an ldmatrix then fall in 8 different 16-byte bank groups). BF16 K / V:
 * cp.async straight into a double buffer, tile t + 1 in flight while tile t is computed. FP32 K / V:
 * cp.async into an FP32 staging area while tile t is computed, rounded into the single BF16 buffer at
 * the top of iteration t + 1.
 * Work skipped: tiles that no row of the block sees are never loaded (causal: keys after the block's
 * last query; windows: keys outside the block's windows); a warp skips the math of a step none of
 * its rows sees; the per-element mask runs only on m-tiles whose 16 rows do not all see the step's
 * keys; the O rescale only when a row's max moved (mma_softmax).
 * Grid: x = head (so the H / Hk heads sharing a kv head run side by side and share its tiles in L2),
 * y = query block, last blocks first: under a causal mask they have the most tiles, so the grid's
 * tail is made of short blocks.
 */
#include <math.h>
#include <stdint.h>
#include <type_traits>

#include "attn_out.cuh"
#include "mma_ptx.cuh"
#include "ops.cuh"

#define MMA_WARPS 4                 /* 16 * MT query rows each */
#define MMA_THREADS (MMA_WARPS * 32)
#define MMA_BK 64                   /* keys per tile */
#define MMA_PAD 8                   /* BF16 elements of padding per shared-memory row (16 bytes) */

typedef __nv_bfloat16 bf16;

typedef qa_cu_tc_args mma_args;

/* One K or V tile in shared memory: BF16 [MMA_BK][LDH]. */
template <int DH> struct mma_tile {
    static constexpr int LDH = DH + MMA_PAD;
    static constexpr size_t BYTES = (size_t)MMA_BK * LDH * sizeof(bf16);
    static_assert(BYTES % 16 == 0, "shared-memory parts must stay 16-byte aligned");
};

/* Shared memory (bytes; every part a multiple of 16 bytes, as cp.async and ldmatrix need):
 *   [K buf 0 | V buf 0 | (BF16 K/V only) K buf 1 | V buf 1]  mma_tile<DH> each
 *   [Q: BF16 [BQ][LDH] | FP32 K/V only: staging K, V FP32 [MMA_BK][DH]]
 * With FP32 K / V, Q and the staging area share bytes: Q is in registers (MT = 1) before the first
 * tile's copy is issued. With MT = 2, Q stays in shared memory for the whole key loop. */
template <int DH, typename KV, int MT> struct mma_smem {
    static constexpr bool F32 = sizeof(KV) == 4;
    static constexpr int BQ = MMA_WARPS * 16 * MT; /* query rows per block */
    static constexpr int LDH = mma_tile<DH>::LDH;
    static constexpr int NBUF = F32 ? 1 : 2;
    static constexpr size_t KV_BYTES = NBUF * 2 * mma_tile<DH>::BYTES;
    static constexpr size_t Q = (size_t)BQ * LDH * sizeof(bf16);
    static constexpr size_t STAGE = F32 ? 2 * (size_t)MMA_BK * DH * sizeof(float) : 0;
    static constexpr size_t bytes = KV_BYTES + (Q > STAGE ? Q : STAGE);
    static_assert(Q % 16 == 0, "shared-memory parts must stay 16-byte aligned");
    static_assert(MT == 1 || MT == 2, "tilings of 64 or 128 query rows");
    static_assert(MT == 1 || !F32, "FP32 K / V staging overwrites Q, which the 128-row tiling rereads");
};

/* ---- staging ----------------------------------------------------------------------------------- */

/* Q rows [i0, i0 + BQ) of head h as BF16 into Qs [BQ][LDH]; rows at or past Tq become zeros.
 * q rows are 16-byte aligned (qa_cu_attention_tc_supported), DH a multiple of 4. */
template <int DH, int BQ> __device__ void mma_stage_q(bf16 *Qs, const mma_args &a, int h, int i0)
{
    constexpr int LDH = DH + MMA_PAD, V4 = DH / 4;
    for (int x = threadIdx.x; x < BQ * V4; x += MMA_THREADS) {
        int r = x / V4, d = (x % V4) * 4, i = i0 + r;
        float4 f = make_float4(0.f, 0.f, 0.f, 0.f);
        if (i < a.Tq)
            f = *(const float4 *)(a.q + (size_t)i * a.ldq + (size_t)h * DH + d);
        uint2 u = make_uint2(pack_bf16(f.x, f.y), pack_bf16(f.z, f.w));
        *(uint2 *)(Qs + r * LDH + d) = u;
    }
}

/* This lane's ldmatrix address for the A operand (Q) of the m-tile whose rows start at Qs row r0, head
 * dims 0..15 (add 16kc for dims 16kc..): ldmatrix.x4 matrices 0 = rows 0-7 / dims 0-7 (a[0]),
 * 1 = rows 8-15 / dims 0-7 (a[1]), 2 = rows 0-7 / dims 8-15 (a[2]), 3 = rows 8-15 / dims 8-15 (a[3]);
 * lane L gives row L % 8 of matrix L / 8. */
template <int DH> __device__ __forceinline__ const bf16 *mma_q_lane(const bf16 *Qs, int r0, int lane)
{
    const int mi = lane >> 3, rr = lane & 7;
    return Qs + (r0 + rr + (mi & 1) * 8) * (DH + MMA_PAD) + (mi >> 1) * 8;
}

/* Where the A operand of m-tile mt, head dims 16kc .. 16kc+15 comes from (get), for the warp's rows
 * starting at Qs row r0 (init, which every lane calls after Qs is complete). MT = 1: registers, loaded
 * once. MT = 2: shared memory, read per use (64 more registers would not fit, see the top). */
template <int DH> struct mma_q_regs {
    uint32_t f[DH / 16][4];
    __device__ __forceinline__ void init(const bf16 *Qs, int r0, int lane)
    {
        const bf16 *p = mma_q_lane<DH>(Qs, r0, lane);
#pragma unroll
        for (int kc = 0; kc < DH / 16; kc++)
            ldsm_x4(f[kc], p + kc * 16);
    }
    __device__ __forceinline__ void get(uint32_t a[4], int, int kc) const
    {
#pragma unroll
        for (int i = 0; i < 4; i++)
            a[i] = f[kc][i];
    }
};

template <int DH> struct mma_q_smem {
    const bf16 *p;
    __device__ __forceinline__ void init(const bf16 *Qs, int r0, int lane) { p = mma_q_lane<DH>(Qs, r0, lane); }
    __device__ __forceinline__ void get(uint32_t a[4], int mt, int kc) const
    {
        ldsm_x4(a, p + mt * 16 * (DH + MMA_PAD) + kc * 16);
    }
};

/* Start copying key rows [j0, j0 + MMA_BK) of a BF16 K or V (head column col) into dst [MMA_BK][LDH];
 * rows at or past `valid` are zero-filled (P is 0 there, but 0 * garbage NaN would still poison O).
 * A thread copies the same 16-byte chunk of every RS-th row: its addresses differ by constants, which
 * keeps the copy's registers few (the 128-row tiling has none to spare). */
template <int DH> __device__ __forceinline__ void mma_issue_rows(bf16 *dst, const bf16 *src, int ld, size_t col,
                                                                 int j0, int valid)
{
    constexpr int LDH = DH + MMA_PAD, C = DH / 8, RS = MMA_THREADS / C; /* 16-byte chunks per row; row step */
    static_assert(MMA_THREADS % C == 0 && MMA_BK % RS == 0, "whole rows per pass");
    const int c = threadIdx.x % C, r0 = threadIdx.x / C;
    const bf16 *sp = src + col + c * 8;
    bf16 *dp = dst + r0 * LDH + c * 8;
#pragma unroll
    for (int i = 0; i < MMA_BK / RS; i++) {
        int j = j0 + r0 + i * RS;
        bool ok = j < valid;
        cp_async16(dp + i * RS * LDH, sp + (size_t)(ok ? j : 0) * ld, ok ? 16 : 0);
    }
}

/* The same for FP32 K or V into the FP32 staging area dst [MMA_BK][DH] (rounded later, mma_round_rows). */
template <int DH> __device__ void mma_issue_rows(float *dst, const float *src, int ld, size_t col, int j0, int valid)
{
    constexpr int C = DH / 4;
    for (int x = threadIdx.x; x < MMA_BK * C; x += MMA_THREADS) {
        int r = x / C, c = x % C, j = j0 + r;
        bool ok = j < valid;
        cp_async16(dst + r * DH + c * 4, src + (size_t)(ok ? j : 0) * ld + col + c * 4, ok ? 16 : 0);
    }
}

/* FP32 staging [MMA_BK][DH] -> BF16 tile [MMA_BK][LDH], round to nearest even (as attention_tc.cu). */
template <int DH> __device__ void mma_round_rows(bf16 *dst, const float *src)
{
    constexpr int LDH = DH + MMA_PAD, V4 = DH / 4;
    for (int x = threadIdx.x; x < MMA_BK * V4; x += MMA_THREADS) {
        int r = x / V4, d = (x % V4) * 4;
        float4 f = *(const float4 *)(src + r * DH + d);
        *(uint2 *)(dst + r * LDH + d) = make_uint2(pack_bf16(f.x, f.y), pack_bf16(f.z, f.w));
    }
}

template <int DH> __device__ __forceinline__ bf16 *mma_kbuf(unsigned char *smem, int buf)
{
    return (bf16 *)(smem + (size_t)buf * 2 * mma_tile<DH>::BYTES);
}
template <int DH> __device__ __forceinline__ bf16 *mma_vbuf(unsigned char *smem, int buf)
{
    return (bf16 *)(smem + (size_t)buf * 2 * mma_tile<DH>::BYTES + mma_tile<DH>::BYTES);
}

/* Start the copies of key tile [j0, j0 + MMA_BK) of K and V: BF16 into buffer buf, FP32 into staging. */
template <int DH> __device__ void mma_issue_tile(unsigned char *smem, const bf16 *k, const bf16 *v, const mma_args &a,
                                                 size_t col, int j0, int valid, int buf)
{
    mma_issue_rows<DH>(mma_kbuf<DH>(smem, buf), k, a.ldk, col, j0, valid);
    mma_issue_rows<DH>(mma_vbuf<DH>(smem, buf), v, a.ldv, col, j0, valid);
}

template <int DH> __device__ void mma_issue_tile(unsigned char *smem, const float *k, const float *v, const mma_args &a,
                                                 size_t col, int j0, int valid, int buf /* one staging area */)
{
    float *st = (float *)(smem + mma_smem<DH, float, 1>::KV_BYTES);
    mma_issue_rows<DH>(st, k, a.ldk, col, j0, valid);
    mma_issue_rows<DH>(st + MMA_BK * DH, v, a.ldv, col, j0, valid);
}

/* ---- the math of one tile, per warp ------------------------------------------------------------ */

/* S = Q K^T for the warp's MT m-tiles and NK keys (a tile, or half of one) starting at Ks: s[mt][nt] is the m16n8 accumulator of
 * m-tile mt and keys 8nt .. 8nt+7 (so this lane holds rows g, g+8 of the m-tile and keys 8nt + 2t, +1);
 * each K fragment feeds the MT m-tiles.
 * B = K^T is K's rows read as columns: an 8x8 matrix of K (8 keys x 8 dims) loaded without .trans
 * gives lane (key g, dims 2t, 2t+1) = b0 / b1 of the k x n = dims x keys operand. ldmatrix.x4
 * matrices: 0 = keys 0-7 / dims 0-7 (b0 of n-tile 2np), 1 = keys 0-7 / dims 8-15 (its b1),
 * 2 = keys 8-15 / dims 0-7 (b0 of n-tile 2np+1), 3 = keys 8-15 / dims 8-15 (its b1). */
template <int DH, int MT, int NK, typename QF>
__device__ __forceinline__ void mma_scores(float s[MT][NK / 8][4], const QF &q, const bf16 *Ks, int lane)
{
    constexpr int LDH = DH + MMA_PAD;
    const int mi = lane >> 3, rr = lane & 7;
    const bf16 *kp = Ks + (rr + (mi >> 1) * 8) * LDH + (mi & 1) * 8;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt++)
            s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < DH / 16; kc++) {
        uint32_t qa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            q.get(qa[mt], mt, kc);
#pragma unroll
        for (int np = 0; np < NK / 16; np++) {
            uint32_t b[4];
            ldsm_x4(b, kp + np * 16 * LDH + kc * 16);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16(s[mt][2 * np], qa[mt], b[0], b[1]);
                mma_bf16(s[mt][2 * np + 1], qa[mt], b[2], b[3]);
            }
        }
    }
}

/* On a boundary tile: set the scores of keys this lane's rows (g, g+8 of the m-tile at row r0) do not
 * see to -inf; rows past Tq see nothing. Element e of s[nt] is row g + 8 (e / 2), key j0 + 8nt + 2t +
 * e % 2. The rows' key ranges are computed here, on the rare boundary tiles, not held in registers:
 * registers are the 128-row tiling's limit. */
template <int NK>
__device__ __forceinline__ void mma_mask(float s[NK / 8][4], const mma_args &a, int r0, int g, int t, int j0)
{
    /* r0 through an empty asm: the compiler cannot see it is loop-invariant, so it computes the ranges
     * here instead of hoisting them out of the key loop into 8 registers held for the whole loop */
    asm volatile("" : "+r"(r0));
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = r0 + g + 8 * r, lo = 0, hi = 0;
        if (i < a.Tq)
            qa_attn_key_range(a.q0 + i, a.Tk, a.window, a.causal, &lo, &hi);
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                int j = j0 + nt * 8 + 2 * t + c;
                if (j < lo || j >= hi)
                    s[nt][2 * r + c] = -INFINITY;
            }
    }
}

/* Online softmax (FlashAttention-2 Algorithm 1, lines 8-10) of this lane's two rows: the 4 lanes of a
 * quad (same g) hold a row's NK keys, so the row max is reduced over lanes xor 1, 2. s holds the
 * unscaled scores; sl2 = scale · log2 e > 0, so max(s) · sl2 is the max of the scaled scores (rounding
 * is monotonic) and p = 2^(s · sl2 - m) is one FFMA and one exp2 (FlashAttention-2's form). m[r] is
 * the running max (base-2 units), l[r] this lane's PARTIAL running sum of p (the quad's partials are
 * added once, in mma_store: the rescale factor is the same for the 4 lanes). O rows are rescaled by
 * 2^(m_old - m_new), skipped when no row of the warp's m-tile changed its max (the factor is exactly 1
 * then; past the first keys a row's max rarely moves, and the rescale is DH/4 multiplies per row).
 * s is replaced by p. A row that has seen no visible key keeps m = -inf; its p are 2^(-inf - 0) = 0
 * instead of the NaN of -inf - (-inf). */
template <int DH, int NK>
__device__ __forceinline__ void mma_softmax(float s[NK / 8][4], float sl2, float m[2], float l[2], float o[DH / 8][4])
{
    float base[2], corr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt++)
            mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float mn = fmaxf(m[r], mx * sl2);
        base[r] = mn == -INFINITY ? 0.f : mn;
        corr[r] = mma_ex2(m[r] - base[r]); /* 0 while m[r] = -inf (O and l are 0 then) */
        m[r] = mn;
        l[r] *= corr[r];
    }
    if (__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f)) {
#pragma unroll
        for (int dt = 0; dt < DH / 8; dt++) {
            o[dt][0] *= corr[0];
            o[dt][1] *= corr[0];
            o[dt][2] *= corr[1];
            o[dt][3] *= corr[1];
        }
    }
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt++) {
            float p0 = mma_ex2(fmaf(s[nt][2 * r], sl2, -base[r])), p1 = mma_ex2(fmaf(s[nt][2 * r + 1], sl2, -base[r]));
            l[r] += p0 + p1;
            s[nt][2 * r] = p0;
            s[nt][2 * r + 1] = p1;
        }
}

/* P as the A operand of P V, rounded to BF16 pairwise right after the softmax (so the FP32 p die
 * before P V, where O's registers are all live). p[kc] covers keys 16kc .. 16kc+15: the S accumulators
 * of n-tiles 2kc (keys +0..7) and 2kc+1 (keys +8..15): a[0] = s[2kc][0..1] (row g, keys 2t, 2t+1),
 * a[1] = s[2kc][2..3] (row g+8), a[2] = s[2kc+1][0..1] (row g, keys 2t+8, +9), a[3] = s[2kc+1][2..3] —
 * exactly the m16n8 accumulator layout, so P never leaves registers. */
template <int NK> __device__ __forceinline__ void mma_pack_p(uint32_t p[NK / 16][4], const float s[NK / 8][4])
{
#pragma unroll
    for (int kc = 0; kc < NK / 16; kc++) {
        p[kc][0] = pack_bf16(s[2 * kc][0], s[2 * kc][1]);
        p[kc][1] = pack_bf16(s[2 * kc][2], s[2 * kc][3]);
        p[kc][2] = pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]);
        p[kc][3] = pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3]);
    }
}

/* O += P V for each m-tile and the NK keys starting at Vs (o[mt], p[mt] from mma_pack_p; every V
 * fragment feeds the MT m-tiles). B = V (k x n = keys x dims) is stored key-major, so its 8x8 matrices
 * are loaded with .trans: lane gets (keys 2t, 2t+1 of dim g). ldmatrix.x4.trans matrices: 0 = keys
 * 0-7 / dims 0-7 (b0 of dim tile 2dp), 1 = keys 8-15 / dims 0-7 (its b1), 2 = keys 0-7 / dims 8-15
 * (b0 of 2dp+1), 3 = keys 8-15 / dims 8-15 (its b1). */
template <int DH, int MT, int NK>
__device__ __forceinline__ void mma_pv(float o[MT][DH / 8][4], const uint32_t p[MT][NK / 16][4], const bf16 *Vs,
                                       int lane)
{
    constexpr int LDH = DH + MMA_PAD;
    const int mi = lane >> 3, rr = lane & 7;
    const bf16 *vp = Vs + (rr + (mi & 1) * 8) * LDH + (mi >> 1) * 8;
#pragma unroll
    for (int kc = 0; kc < NK / 16; kc++) {
#pragma unroll
        for (int dp = 0; dp < DH / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_trans(b, vp + kc * 16 * LDH + dp * 16);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16(o[mt][2 * dp], p[mt][kc], b[0], b[1]);
                mma_bf16(o[mt][2 * dp + 1], p[mt][kc], b[2], b[3]);
            }
        }
    }
}

/* ---- per-row bookkeeping and the output -------------------------------------------------------- */

/* Key ranges of the rows r0 .. r0 + n - 1 (clamped to Tq): their union (a tile outside it is skipped)
 * and intersection (a tile inside it needs no mask). qa_attn_key_range's lo and hi never decrease with
 * the position, so the union is [lo(first row), hi(last row)) and the intersection [lo(last),
 * hi(first)). No row below Tq: the union is empty. */
struct mma_rows {
    int any_lo, any_hi;   /* keys some row sees */
    int all_lo, all_hi;   /* keys every row sees */
};

__device__ __forceinline__ mma_rows mma_row_ranges(const mma_args &a, int r0, int n)
{
    mma_rows w;
    int first = min(r0, a.Tq - 1), last = min(r0 + n - 1, a.Tq - 1);
    qa_attn_key_range(a.q0 + first, a.Tk, a.window, a.causal, &w.any_lo, &w.all_hi);
    qa_attn_key_range(a.q0 + last, a.Tk, a.window, a.causal, &w.all_lo, &w.any_hi);
    if (r0 >= a.Tq)
        w.any_lo = w.any_hi = 0;
    return w;
}

/* out rows of this lane in the m-tile of rows r0 .. r0+15: O / l with l the sum of the quad's partial sums; a row with no visible key
 * (l = 0) is written as zeros, as attention.cu does. Lane holds cols 8dt + 2t, +1 of rows g, g+8. */
template <int DH>
__device__ __forceinline__ void mma_store(const mma_args &a, const float o[DH / 8][4], const float l[2], int h, int r0,
                                          int g, int t)
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1); /* every lane, before any returns */
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        int i = r0 + g + 8 * r;
        if (i >= a.Tq)
            continue;
        float inv = sum > 0.f ? 1.0f / sum : 0.f;
        const size_t dst = (size_t)i * a.ldo + (size_t)h * DH + 2 * t;
#pragma unroll
        for (int dt = 0; dt < DH / 8; dt++)
            qa_attn_put2(a.out, a.out_bf16, dst + dt * 8, o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
}

/* ---- the kernel -------------------------------------------------------------------------------- */

/* launch_bounds (128, 2): two blocks per SM (the 128-row tiling's 104 KB of shared memory allows two)
 * caps the registers at 255 per thread, which both tilings stay under without spilling. */
template <int DH, typename KV, int MT>
__global__ void __launch_bounds__(MMA_THREADS, 2) attention_mma_kernel(mma_args a)
{
    using L = mma_smem<DH, KV, MT>;
    using QF = typename std::conditional<MT == 1, mma_q_regs<DH>, mma_q_smem<DH>>::type;
    /* keys per step of the math: the 128-row tiling's S of 64 keys (64 registers) would not fit beside
     * its O; it runs a 64-key tile as two 32-key online-softmax steps (one load and barrier per 64) */
    constexpr int NK = MT == 1 ? MMA_BK : MMA_BK / 2;
    extern __shared__ __align__(128) unsigned char smem[];
    const KV *k = (const KV *)a.k, *v = (const KV *)a.v;
    const int h = blockIdx.x, kvh = h / (a.H / a.Hk);
    const size_t col = (size_t)kvh * DH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int i0 = (gridDim.y - 1 - blockIdx.y) * L::BQ, wr0 = i0 + warp * 16 * MT;

    /* Q -> shared (BF16); MT = 1: -> this warp's fragments, then the Q bytes may take the first FP32 tile */
    bf16 *Qs = (bf16 *)(smem + L::KV_BYTES);
    mma_stage_q<DH, L::BQ>(Qs, a, h, i0);
    __syncthreads();
    QF q;
    q.init(Qs, warp * 16 * MT, lane);
    __syncthreads();

    /* the keys the block's rows see: [lo(first row), hi(last row)) */
    int klo, khi, dummy;
    qa_attn_key_range(a.q0 + i0, a.Tk, a.window, a.causal, &klo, &dummy);
    qa_attn_key_range(a.q0 + min(i0 + L::BQ, a.Tq) - 1, a.Tk, a.window, a.causal, &dummy, &khi);
    const int ntiles = khi > klo ? (khi - klo + MMA_BK - 1) / MMA_BK : 0;
    const mma_rows wk = mma_row_ranges(a, wr0, 16 * MT); /* the warp's rows: skip a tile none sees */
    int all_lo[MT], all_hi[MT];                          /* each m-tile's rows: no mask inside */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const mma_rows r = mma_row_ranges(a, wr0 + 16 * mt, 16);
        all_lo[mt] = r.all_lo;
        all_hi[mt] = r.all_hi;
    }

    float o[MT][DH / 8][4], m[MT][2], l[MT][2], s[MT][NK / 8][4];
    uint32_t p[MT][NK / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
        for (int dt = 0; dt < DH / 8; dt++)
            o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.f;
    }

    if (ntiles > 0)
        mma_issue_tile<DH>(smem, k, v, a, col, klo, khi, 0);
    cp_async_commit();
    for (int it = 0; it < ntiles; it++) {
        const int j0 = klo + it * MMA_BK, buf = L::F32 ? 0 : it & 1;
        cp_async_wait_all();
        __syncthreads(); /* tile it landed (every thread's copies); tile it-1 is consumed by every warp */
        if constexpr (L::F32) {
            float *st = (float *)(smem + L::KV_BYTES);
            mma_round_rows<DH>(mma_kbuf<DH>(smem, 0), st);
            mma_round_rows<DH>(mma_vbuf<DH>(smem, 0), st + MMA_BK * DH);
            __syncthreads(); /* BF16 tile complete, staging free for tile it+1 */
        }
        if (it + 1 < ntiles) /* BF16: the buffer tile it-1 used, free since the barrier above */
            mma_issue_tile<DH>(smem, k, v, a, col, j0 + MMA_BK, khi, buf ^ 1);
        cp_async_commit();
#pragma unroll 1
        for (int c0 = 0; c0 < MMA_BK; c0 += NK) { /* NK keys at a time */
            const int jc = j0 + c0;
            if (jc >= wk.any_hi || jc + NK <= wk.any_lo) /* warp-uniform: no row sees these keys */
                continue;
            const int off = c0 * mma_tile<DH>::LDH;
            mma_scores<DH, MT, NK>(s, q, mma_kbuf<DH>(smem, buf) + off, lane);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) /* apart from the softmax loop: interleaved, they spill */
                if (jc < all_lo[mt] || jc + NK > all_hi[mt]) /* warp-uniform */
                    mma_mask<NK>(s[mt], a, wr0 + 16 * mt, g, t, jc);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_softmax<DH, NK>(s[mt], a.scale_log2, m[mt], l[mt], o[mt]);
                mma_pack_p<NK>(p[mt], s[mt]);
            }
            mma_pv<DH, MT, NK>(o, p, mma_vbuf<DH>(smem, buf) + off, lane);
        }
    }
    cp_async_wait_all(); /* no copy may still target shared memory when the block exits */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        mma_store<DH>(a, o[mt], l[mt], h, wr0 + 16 * mt, g, t);
}

/* ---- launch ------------------------------------------------------------------------------------ */

template <int DH, typename KV, int MT> static size_t mma_bytes() { return mma_smem<DH, KV, MT>::bytes; }

/* The kernel's dynamic shared memory above the 48 KB default, when the device's opt-in allows it (else
 * launch_mma refuses it). Once per context (qa_cu_attention_mma_setup), not per launch. */
template <int DH, typename KV, int MT> static qa_status raise_smem(int optin, qa_err *e)
{
    const size_t bytes = mma_bytes<DH, KV, MT>();
    if ((size_t)optin >= bytes)
        QA_CUDA_CHECK(e, cudaFuncSetAttribute(attention_mma_kernel<DH, KV, MT>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return QA_OK;
}

qa_status qa_cu_attention_mma_setup(int optin, qa_err *e)
{
    QA_TRY((raise_smem<64, float, 1>(optin, e)));
    QA_TRY((raise_smem<64, bf16, 1>(optin, e)));
    QA_TRY((raise_smem<128, float, 1>(optin, e)));
    QA_TRY((raise_smem<128, bf16, 1>(optin, e)));
    QA_TRY((raise_smem<64, bf16, 2>(optin, e)));
    return raise_smem<128, bf16, 2>(optin, e);
}

template <int DH, typename KV, int MT> static qa_status launch_mma(cudaStream_t s, const mma_args &a, int optin, qa_err *e)
{
    using L = mma_smem<DH, KV, MT>;
    if ((size_t)optin < L::bytes) /* not a CUDA error: the context stays usable */
        return QA_FAIL(e, QA_ERR_INTERNAL,
                       "attention_mma: needs %zu bytes of shared memory per block, the device allows %d; set "
                       "QA_CUDA_ATTN=fp32", L::bytes, optin);
    const unsigned blocks = qa_cuda_blocks((size_t)a.Tq, L::BQ);
    if (blocks > 65535)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_mma: %d query rows need %u blocks of %d, over the grid's "
                       "y limit of 65535", a.Tq, blocks, L::BQ);
    dim3 grid(a.H, blocks);
    attention_mma_kernel<DH, KV, MT><<<grid, MMA_THREADS, L::bytes, s>>>(a);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

/* 128-row blocks (MT = 2) for BF16 K / V when they fit the device's shared memory and, by default, when
 * there are enough of them to give every SM its two resident blocks once: with fewer (short prompts),
 * 64-row blocks spread the work over more SMs. QA_CUDA_ATTN=mma64 / mma128 force one tiling. */
static int mma_wide(const mma_args &a, int Dh, const qa_cu_tc_dev *d)
{
    size_t bytes = Dh == 64 ? mma_bytes<64, bf16, 2>() : mma_bytes<128, bf16, 2>();
    if ((size_t)d->smem_optin < bytes || d->kernel == QA_CU_TC_MMA64)
        return 0;
    if (d->kernel == QA_CU_TC_MMA128)
        return 1;
    return (long long)qa_cuda_blocks((size_t)a.Tq, 128) * a.H >= 2LL * d->sms;
}

qa_status qa_cu_attention_mma(cudaStream_t s, const qa_cu_tc_args &a, int Dh, int kv_bf16, const qa_cu_tc_dev *d,
                              qa_err *e)
{
    const int optin = d->smem_optin;
    if (!kv_bf16)
        return Dh == 64 ? launch_mma<64, float, 1>(s, a, optin, e) : launch_mma<128, float, 1>(s, a, optin, e);
    if (mma_wide(a, Dh, d))
        return Dh == 64 ? launch_mma<64, bf16, 2>(s, a, optin, e) : launch_mma<128, bf16, 2>(s, a, optin, e);
    return Dh == 64 ? launch_mma<64, bf16, 1>(s, a, optin, e) : launch_mma<128, bf16, 1>(s, a, optin, e);
}
