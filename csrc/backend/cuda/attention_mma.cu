/* attention_mma.cu — FlashAttention-2 style fused attention on BF16 tensor cores (PTX mma.sync
 * m16n8k16, FP32 accumulate): the kernel behind qa_cu_attention_tc for Dh 64 and 128.
 *
 * Contract: ops.cuh qa_cu_attention_mma, the same function and numerics as the WMMA kernel of
 * attention_tc.cu (kept behind QA_CUDA_ATTN=wmma): q, k, v rounded to BF16 (FP32 k / v while they are
 * staged), S = q k^T and O = P V accumulate in FP32, the scale is applied to the FP32 scores in base 2
 * (scale * log2 e, exp2), the online softmax runs in FP32, P is rounded to BF16 as the A operand of
 * P V, the row sums use the FP32 p. Masks as attention.cu (qa_attn_key_range: windows of `window`
 * keys, causal with q0), GQA kv head h / (H / Hk).
 * Reference: Dao, "FlashAttention-2" (2023), Algorithm 1, and its sm80 kernel (flash_fwd_kernel.h):
 * S and O never leave registers; the accumulator of S = Q K^T is, element for element, the A operand
 * of P V (see mma_pv). Fragment layouts: PTX ISA, "Matrix Fragments for mma.m16n8k16".
 *
 * Layout: one block = MMA_WARPS x 16 query rows of one head; a warp owns its 16 rows for the whole
 * key loop (Q fragments, S, O, m, l in its registers). Keys in tiles of MMA_BK = 64, K and V of a tile
 * in shared memory as BF16 rows padded by 8 elements (the 8 row addresses of an ldmatrix then fall in
 * 8 different 16-byte bank groups). BF16 K / V: cp.async straight into a double buffer, tile t + 1 in
 * flight while tile t is computed. FP32 K / V: cp.async into an FP32 staging area while tile t is
 * computed, rounded into the single BF16 buffer at the top of iteration t + 1.
 * Work skipped: tiles that no row of the block sees are never loaded (causal: keys after the block's
 * last query; windows: keys outside the block's windows); a warp skips the math of a tile none of
 * its rows sees; the per-element mask runs only on tiles not fully visible to all 16 rows of a warp.
 */
#include <math.h>
#include <stdint.h>

#include "ops.cuh"

#define MMA_WARPS 4                 /* 16 query rows each */
#define MMA_THREADS (MMA_WARPS * 32)
#define MMA_BQ (MMA_WARPS * 16)     /* query rows per block */
#define MMA_BK 64                   /* keys per tile */
#define MMA_PAD 8                   /* BF16 elements of padding per shared-memory row (16 bytes) */

typedef __nv_bfloat16 bf16;

typedef qa_cu_tc_args mma_args;

/* Shared memory (bytes; every part a multiple of 16 bytes, as cp.async and ldmatrix need):
 *   [K buf 0 | V buf 0 | (BF16 K/V only) K buf 1 | V buf 1]  BF16 [MMA_BK][LDH] each
 *   [Q: BF16 [MMA_BQ][LDH], read once into registers | FP32 K/V only: staging K, V FP32 [MMA_BK][DH]]
 * Q and the staging area share bytes: Q is in registers before the first tile's copy is issued. */
template <int DH, typename KV> struct mma_smem {
    static constexpr bool F32 = sizeof(KV) == 4;
    static constexpr int LDH = DH + MMA_PAD;
    static constexpr size_t TILE = (size_t)MMA_BK * LDH * sizeof(bf16); /* one K or V tile */
    static constexpr int NBUF = F32 ? 1 : 2;
    static constexpr size_t KV_BYTES = NBUF * 2 * TILE;
    static constexpr size_t Q = (size_t)MMA_BQ * LDH * sizeof(bf16);
    static constexpr size_t STAGE = F32 ? 2 * (size_t)MMA_BK * DH * sizeof(float) : 0;
    static constexpr size_t bytes = KV_BYTES + (Q > STAGE ? Q : STAGE);
    static_assert(TILE % 16 == 0 && Q % 16 == 0, "shared-memory parts must stay 16-byte aligned");
};

/* ---- PTX wrappers ------------------------------------------------------------------------------ */

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
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const bf16 *p)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const bf16 *p)
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

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); /* .x (lo) in the low 16 bits */
    return *(uint32_t *)&h;
}

/* ---- staging ----------------------------------------------------------------------------------- */

/* Q rows [i0, i0 + MMA_BQ) of head h as BF16 into Qs [MMA_BQ][LDH]; rows at or past Tq become zeros.
 * q rows are 16-byte aligned (qa_cu_attention_tc_supported), DH a multiple of 4. */
template <int DH> __device__ void mma_stage_q(bf16 *Qs, const mma_args &a, int h, int i0)
{
    constexpr int LDH = DH + MMA_PAD, V4 = DH / 4;
    for (int x = threadIdx.x; x < MMA_BQ * V4; x += MMA_THREADS) {
        int r = x / V4, d = (x % V4) * 4, i = i0 + r;
        float4 f = make_float4(0.f, 0.f, 0.f, 0.f);
        if (i < a.Tq)
            f = *(const float4 *)(a.q + (size_t)i * a.ldq + (size_t)h * DH + d);
        uint2 u = make_uint2(pack_bf16(f.x, f.y), pack_bf16(f.z, f.w));
        *(uint2 *)(Qs + r * LDH + d) = u;
    }
}

/* This warp's Q fragments: qf[kc] = A operand of rows warp*16 .. +15, head dims 16kc .. 16kc+15.
 * ldmatrix.x4 matrices: 0 = rows 0-7 / dims 0-7 (a[0]), 1 = rows 8-15 / dims 0-7 (a[1]),
 * 2 = rows 0-7 / dims 8-15 (a[2]), 3 = rows 8-15 / dims 8-15 (a[3]); lane L gives row L % 8 of
 * matrix L / 8. */
template <int DH> __device__ __forceinline__ void mma_load_q(uint32_t qf[DH / 16][4], const bf16 *Qs, int warp, int lane)
{
    constexpr int LDH = DH + MMA_PAD;
    const int mi = lane >> 3, rr = lane & 7;
    const bf16 *p = Qs + (warp * 16 + rr + (mi & 1) * 8) * LDH + (mi >> 1) * 8;
#pragma unroll
    for (int kc = 0; kc < DH / 16; kc++)
        ldsm_x4(qf[kc], p + kc * 16);
}

/* Start copying key rows [j0, j0 + MMA_BK) of a BF16 K or V (head column col) into dst [MMA_BK][LDH];
 * rows at or past `valid` are zero-filled (P is 0 there, but 0 * garbage NaN would still poison O). */
template <int DH> __device__ void mma_issue_rows(bf16 *dst, const bf16 *src, int ld, size_t col, int j0, int valid)
{
    constexpr int LDH = DH + MMA_PAD, C = DH / 8; /* 16-byte chunks per row */
    for (int x = threadIdx.x; x < MMA_BK * C; x += MMA_THREADS) {
        int r = x / C, c = x % C, j = j0 + r;
        bool ok = j < valid;
        cp_async16(dst + r * LDH + c * 8, src + (size_t)(ok ? j : 0) * ld + col + c * 8, ok ? 16 : 0);
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

template <int DH, typename KV> __device__ __forceinline__ bf16 *mma_kbuf(unsigned char *smem, int buf)
{
    return (bf16 *)(smem + (size_t)buf * 2 * mma_smem<DH, KV>::TILE);
}
template <int DH, typename KV> __device__ __forceinline__ bf16 *mma_vbuf(unsigned char *smem, int buf)
{
    return (bf16 *)(smem + (size_t)buf * 2 * mma_smem<DH, KV>::TILE + mma_smem<DH, KV>::TILE);
}

/* Start the copies of key tile [j0, j0 + MMA_BK) of K and V: BF16 into buffer buf, FP32 into staging. */
template <int DH> __device__ void mma_issue_tile(unsigned char *smem, const bf16 *k, const bf16 *v, const mma_args &a,
                                                 size_t col, int j0, int valid, int buf)
{
    mma_issue_rows<DH>(mma_kbuf<DH, bf16>(smem, buf), k, a.ldk, col, j0, valid);
    mma_issue_rows<DH>(mma_vbuf<DH, bf16>(smem, buf), v, a.ldv, col, j0, valid);
}

template <int DH> __device__ void mma_issue_tile(unsigned char *smem, const float *k, const float *v, const mma_args &a,
                                                 size_t col, int j0, int valid, int buf /* one staging area */)
{
    float *st = (float *)(smem + mma_smem<DH, float>::KV_BYTES);
    mma_issue_rows<DH>(st, k, a.ldk, col, j0, valid);
    mma_issue_rows<DH>(st + MMA_BK * DH, v, a.ldv, col, j0, valid);
}

/* ---- the math of one tile, per warp ------------------------------------------------------------ */

/* S = Q K^T for the warp's 16 rows and the tile's 64 keys: s[nt] is the m16n8 accumulator of keys
 * 8nt .. 8nt+7 (so this lane holds rows g, g+8 and keys 8nt + 2t, 8nt + 2t + 1).
 * B = K^T is K's rows read as columns: an 8x8 matrix of K (8 keys x 8 dims) loaded without .trans
 * gives lane (key g, dims 2t, 2t+1) = b0 / b1 of the k x n = dims x keys operand. ldmatrix.x4
 * matrices: 0 = keys 0-7 / dims 0-7 (b0 of n-tile 2np), 1 = keys 0-7 / dims 8-15 (its b1),
 * 2 = keys 8-15 / dims 0-7 (b0 of n-tile 2np+1), 3 = keys 8-15 / dims 8-15 (its b1). */
template <int DH>
__device__ __forceinline__ void mma_scores(float s[MMA_BK / 8][4], const uint32_t qf[DH / 16][4], const bf16 *Ks,
                                           int lane)
{
    constexpr int LDH = DH + MMA_PAD;
    const int mi = lane >> 3, rr = lane & 7;
    const bf16 *kp = Ks + (rr + (mi >> 1) * 8) * LDH + (mi & 1) * 8;
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; nt++)
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < DH / 16; kc++) {
#pragma unroll
        for (int np = 0; np < MMA_BK / 16; np++) {
            uint32_t b[4];
            ldsm_x4(b, kp + np * 16 * LDH + kc * 16);
            mma_bf16(s[2 * np], qf[kc], b[0], b[1]);
            mma_bf16(s[2 * np + 1], qf[kc], b[2], b[3]);
        }
    }
}

/* Scale to base 2, and on a boundary tile (full = false) set keys outside this lane's rows' ranges
 * [lo[0], hi[0]) (row g) and [lo[1], hi[1]) (row g+8) to -inf. Element e of s[nt] is row g + 8 (e / 2),
 * key j0 + 8nt + 2t + e % 2. */
__device__ __forceinline__ void mma_scale_mask(float s[MMA_BK / 8][4], float sl2, bool full, int j0, int t,
                                               const int lo[2], const int hi[2])
{
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int j = j0 + nt * 8 + 2 * t + (e & 1), r = e >> 1;
            bool vis = full || (j >= lo[r] && j < hi[r]);
            s[nt][e] = vis ? s[nt][e] * sl2 : -INFINITY;
        }
}

/* Online softmax (FlashAttention-2 Algorithm 1, lines 8-10) of this lane's two rows: the 4 lanes of a
 * quad (same g) hold a row's 64 keys, so the row max is reduced over lanes xor 1, 2. m[r] is the running
 * max (base-2 units), l[r] this lane's PARTIAL running sum of p (the quad's partials are added once, in
 * mma_store: the rescale factor is the same for the 4 lanes). O rows are rescaled by 2^(m_old - m_new);
 * s is replaced by p = 2^(s - m_new). A row that has seen no visible key keeps m = -inf; its p are
 * 2^(-inf - 0) = 0 instead of the NaN of -inf - (-inf). */
template <int DH>
__device__ __forceinline__ void mma_softmax(float s[MMA_BK / 8][4], float m[2], float l[2], float o[DH / 8][4])
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < MMA_BK / 8; nt++)
            mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float mn = fmaxf(m[r], mx);
        float base = mn == -INFINITY ? 0.f : mn;
        float corr = exp2f(m[r] - base); /* 0 while m[r] = -inf (O and l are 0 then) */
        m[r] = mn;
        l[r] *= corr;
#pragma unroll
        for (int dt = 0; dt < DH / 8; dt++) {
            o[dt][2 * r] *= corr;
            o[dt][2 * r + 1] *= corr;
        }
#pragma unroll
        for (int nt = 0; nt < MMA_BK / 8; nt++) {
            float p0 = exp2f(s[nt][2 * r] - base), p1 = exp2f(s[nt][2 * r + 1] - base);
            l[r] += p0 + p1;
            s[nt][2 * r] = p0;
            s[nt][2 * r + 1] = p1;
        }
    }
}

/* O += P V. The A operand of key chunk kc (keys 16kc .. 16kc+15) is the S accumulators of n-tiles
 * 2kc (keys +0..7) and 2kc+1 (keys +8..15) rounded to BF16 pairwise: a[0] = s[2kc][0..1] (row g, keys
 * 2t, 2t+1), a[1] = s[2kc][2..3] (row g+8), a[2] = s[2kc+1][0..1] (row g, keys 2t+8, +9),
 * a[3] = s[2kc+1][2..3] — exactly the m16n8 accumulator layout, so P never leaves registers.
 * B = V (k x n = keys x dims) is stored key-major, so its 8x8 matrices are loaded with .trans: lane
 * gets (keys 2t, 2t+1 of dim g). ldmatrix.x4.trans matrices: 0 = keys 0-7 / dims 0-7 (b0 of dim
 * tile 2dp), 1 = keys 8-15 / dims 0-7 (its b1), 2 = keys 0-7 / dims 8-15 (b0 of 2dp+1), 3 = keys
 * 8-15 / dims 8-15 (its b1). */
template <int DH>
__device__ __forceinline__ void mma_pv(float o[DH / 8][4], const float s[MMA_BK / 8][4], const bf16 *Vs, int lane)
{
    constexpr int LDH = DH + MMA_PAD;
    const int mi = lane >> 3, rr = lane & 7;
    const bf16 *vp = Vs + (rr + (mi & 1) * 8) * LDH + (mi >> 1) * 8;
#pragma unroll
    for (int kc = 0; kc < MMA_BK / 16; kc++) {
        uint32_t a[4] = {pack_bf16(s[2 * kc][0], s[2 * kc][1]), pack_bf16(s[2 * kc][2], s[2 * kc][3]),
                         pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                         pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
        for (int dp = 0; dp < DH / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_trans(b, vp + kc * 16 * LDH + dp * 16);
            mma_bf16(o[2 * dp], a, b[0], b[1]);
            mma_bf16(o[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

/* ---- per-row bookkeeping and the output -------------------------------------------------------- */

/* Key ranges: this lane's rows (g, g+8) for the mask; the warp's union (skip a tile it cannot see)
 * and intersection (the tile needs no mask). qa_attn_key_range's lo and hi never decrease with the
 * position, so the union is [lo(first row), hi(last row)) and the intersection [lo(last), hi(first)). */
struct mma_rows {
    int lo[2], hi[2];
    int any_lo, any_hi;   /* keys some row of the warp sees */
    int all_lo, all_hi;   /* keys every row of the warp sees */
    bool live;            /* the warp has a row < Tq */
};

__device__ __forceinline__ mma_rows mma_row_ranges(const mma_args &a, int wr0, int g)
{
    mma_rows w;
    for (int r = 0; r < 2; r++) {
        int i = wr0 + g + 8 * r;
        w.lo[r] = w.hi[r] = 0; /* rows past Tq see nothing (and are not stored) */
        if (i < a.Tq)
            qa_attn_key_range(a.q0 + i, a.Tk, a.window, a.causal, &w.lo[r], &w.hi[r]);
    }
    w.live = wr0 < a.Tq;
    int first = min(wr0, a.Tq - 1), last = min(wr0 + 15, a.Tq - 1);
    qa_attn_key_range(a.q0 + first, a.Tk, a.window, a.causal, &w.any_lo, &w.all_hi);
    qa_attn_key_range(a.q0 + last, a.Tk, a.window, a.causal, &w.all_lo, &w.any_hi);
    return w;
}

/* out rows of this lane: O / l with l the sum of the quad's partial sums; a row with no visible key
 * (l = 0) is written as zeros, as attention.cu does. Lane holds cols 8dt + 2t, +1 of rows g, g+8. */
template <int DH>
__device__ __forceinline__ void mma_store(const mma_args &a, const float o[DH / 8][4], const float l[2], int h, int wr0,
                                          int g, int t)
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1); /* every lane, before any returns */
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        int i = wr0 + g + 8 * r;
        if (i >= a.Tq)
            continue;
        float inv = sum > 0.f ? 1.0f / sum : 0.f;
        float *dst = a.out + (size_t)i * a.ldo + (size_t)h * DH + 2 * t;
#pragma unroll
        for (int dt = 0; dt < DH / 8; dt++)
            *(float2 *)(dst + dt * 8) = make_float2(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
}

/* ---- the kernel -------------------------------------------------------------------------------- */

template <int DH, typename KV> __global__ void __launch_bounds__(MMA_THREADS) attention_mma_kernel(mma_args a)
{
    using L = mma_smem<DH, KV>;
    extern __shared__ __align__(128) unsigned char smem[];
    const KV *k = (const KV *)a.k, *v = (const KV *)a.v;
    const int h = blockIdx.y, kvh = h / (a.H / a.Hk);
    const size_t col = (size_t)kvh * DH;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    /* last query blocks first: under a causal mask they have the most tiles, so the grid's tail is short */
    const int i0 = (gridDim.x - 1 - blockIdx.x) * MMA_BQ, wr0 = i0 + warp * 16;

    /* Q -> shared (BF16) -> this warp's fragments; then the Q bytes may take the first FP32 tile */
    bf16 *Qs = (bf16 *)(smem + L::KV_BYTES);
    mma_stage_q<DH>(Qs, a, h, i0);
    __syncthreads();
    uint32_t qf[DH / 16][4];
    mma_load_q<DH>(qf, Qs, warp, lane);
    __syncthreads();

    /* the keys the block's rows see: [lo(first row), hi(last row)) */
    int klo, khi, dummy;
    qa_attn_key_range(a.q0 + i0, a.Tk, a.window, a.causal, &klo, &dummy);
    qa_attn_key_range(a.q0 + min(i0 + MMA_BQ, a.Tq) - 1, a.Tk, a.window, a.causal, &dummy, &khi);
    const int ntiles = khi > klo ? (khi - klo + MMA_BK - 1) / MMA_BK : 0;
    const mma_rows w = mma_row_ranges(a, wr0, g);

    float o[DH / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, s[MMA_BK / 8][4];
#pragma unroll
    for (int dt = 0; dt < DH / 8; dt++)
        o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;

    if (ntiles > 0)
        mma_issue_tile<DH>(smem, k, v, a, col, klo, khi, 0);
    cp_async_commit();
    for (int it = 0; it < ntiles; it++) {
        const int j0 = klo + it * MMA_BK, buf = L::F32 ? 0 : it & 1;
        cp_async_wait_all();
        __syncthreads(); /* tile it landed (every thread's copies); tile it-1 is consumed by every warp */
        if constexpr (L::F32) {
            float *st = (float *)(smem + L::KV_BYTES);
            mma_round_rows<DH>(mma_kbuf<DH, KV>(smem, 0), st);
            mma_round_rows<DH>(mma_vbuf<DH, KV>(smem, 0), st + MMA_BK * DH);
            __syncthreads(); /* BF16 tile complete, staging free for tile it+1 */
        }
        if (it + 1 < ntiles) /* BF16: the buffer tile it-1 used, free since the barrier above */
            mma_issue_tile<DH>(smem, k, v, a, col, j0 + MMA_BK, khi, buf ^ 1);
        cp_async_commit();
        if (!w.live || j0 >= w.any_hi || j0 + MMA_BK <= w.any_lo) /* warp-uniform: no row sees the tile */
            continue;
        const bool full = j0 >= w.all_lo && j0 + MMA_BK <= w.all_hi;
        mma_scores<DH>(s, qf, mma_kbuf<DH, KV>(smem, buf), lane);
        mma_scale_mask(s, a.scale_log2, full, j0, t, w.lo, w.hi);
        mma_softmax<DH>(s, m, l, o);
        mma_pv<DH>(o, s, mma_vbuf<DH, KV>(smem, buf), lane);
    }
    cp_async_wait_all(); /* no copy may still target shared memory when the block exits */
    mma_store<DH>(a, o, l, h, wr0, g, t);
}

/* ---- launch ------------------------------------------------------------------------------------ */

template <int DH, typename KV> static qa_status launch_mma(cudaStream_t s, const mma_args &a, qa_err *e)
{
    const size_t bytes = mma_smem<DH, KV>::bytes;
    int dev = 0, optin = 0;
    QA_CUDA_CHECK(e, cudaGetDevice(&dev));
    QA_CUDA_CHECK(e, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if ((size_t)optin < bytes) /* not a CUDA error: the context stays usable */
        return QA_FAIL(e, QA_ERR_INTERNAL,
                       "attention_mma: needs %zu bytes of shared memory per block, cuda:%d allows %d; set "
                       "QA_CUDA_ATTN=fp32", bytes, dev, optin);
    /* above 48 KB dynamic shared memory needs the opt-in; set per call, so every device gets it */
    QA_CUDA_CHECK(e, cudaFuncSetAttribute(attention_mma_kernel<DH, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)bytes));
    dim3 grid(qa_cuda_blocks((size_t)a.Tq, MMA_BQ), a.H);
    attention_mma_kernel<DH, KV><<<grid, MMA_THREADS, bytes, s>>>(a);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_attention_mma(cudaStream_t s, const qa_cu_tc_args &a, int Dh, int kv_bf16, qa_err *e)
{
    if (Dh == 64)
        return kv_bf16 ? launch_mma<64, bf16>(s, a, e) : launch_mma<64, float>(s, a, e);
    return kv_bf16 ? launch_mma<128, bf16>(s, a, e) : launch_mma<128, float>(s, a, e);
}
