/* attention_enc.cu — the audio encoder's windowed attention on BF16 tensor cores (mma.sync m16n8k16).
 *
 * Contract: ops.cuh qa_cu_attention_enc. The encoder's calls (MODEL_FACTS §4.6): bidirectional inside
 * consecutive windows of `window` tokens (104 for every released model; the last window shorter),
 * nothing across, head dim 64, q / k / v FP32 column blocks of the joined q/k/v GEMM output (row
 * strides ldq, ldkv). Numerics as attention_mma.cu (the kernel these calls took before): q, k, v rounded
 * to BF16 (nearest even), S = q kᵀ accumulated in FP32, the scale applied to the FP32 scores in base 2,
 * softmax in FP32, P rounded to BF16 for P V, the row sums from the FP32 p. One difference: a window has
 * at most 112 keys, so a warp holds a whole row of scores and the softmax is exact (one max, one exp, one
 * sum) instead of FlashAttention's running rescale over 64-key tiles; P is rounded against the row's
 * final max.
 * Why its own kernel (issue #6): attention_mma.cu's 64-row blocks straddle the 104-row windows, so a
 * block walks up to three 64-key tiles of FP32 K / V, each a copy, a barrier, a rounding pass and a
 * second barrier in series; at 130-780 tokens a call is that latency chain (12-16 µs). Here one block
 * is one (window, head): it loads the window's K and V once (FP32 -> BF16 into shared memory) and
 * each warp its 16 query rows straight into A fragments, then one barrier and the math in registers.
 * Layout: 7 warps x 16 rows = 112 rows (window <= QA_CU_ENC_MAX_WINDOW); K, V of the window as BF16
 * [112][72] in shared memory (rows padded by 8 elements: the 8 row addresses of an ldmatrix fall in 8
 * different 16-byte bank groups), rows past the window's end zero (P is 0 there, and 0 * NaN garbage
 * would poison O). Fragment layouts: mma_ptx.cuh. Grid: x = head, y = window.
 */
#include <math.h>
#include <stdint.h>

#include "attn_out.cuh"
#include "mma_ptx.cuh"
#include "ops.cuh"
#include "pdl.cuh"

#define ENC_DH 64
#define ENC_ROWS QA_CU_ENC_MAX_WINDOW /* rows (and keys) a block holds */
#define ENC_WARPS (ENC_ROWS / 16)     /* one m-tile of 16 query rows each */
#define ENC_THREADS (ENC_WARPS * 32)
#define ENC_LDH (ENC_DH + 8) /* BF16 elements per shared-memory row */
#define ENC_NT (ENC_ROWS / 8) /* n-tiles of 8 keys in S */
#define ENC_KC (ENC_ROWS / 16) /* k-steps of 16 keys in P V */

static_assert(ENC_ROWS % 16 == 0, "whole m-tiles");

typedef __nv_bfloat16 bf16;

struct enc_args {
    void *out; /* FP32, or BF16 when out_bf16 (attn_out.cuh) */
    const float *q, *k, *v;
    int ldo, ldq, ldkv, T, window;
    float scale_log2; /* scale · log2 e: softmax in base 2 */
    int out_bf16;
};

/* This warp's A fragments of Q (mma_ptx.cuh: a[0] row g cols 2t, 2t+1; a[1] row g+8; a[2], a[3] the same
 * rows, cols + 8) for head dims 16kc .. 16kc+15, read from global memory as FP32 pairs and rounded; rows
 * at or past n (the window's length) are zeros. Each quad reads 32 contiguous bytes of a row: whole sectors. */
__device__ __forceinline__ void enc_load_q(uint32_t qa[ENC_DH / 16][4], const float *q, int ldq, int n, int r0,
                                           int g, int t)
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = r0 + g + 8 * r;
        const float *p = q + (size_t)row * ldq + 2 * t;
#pragma unroll
        for (int kc = 0; kc < ENC_DH / 16; kc++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                float2 f = row < n ? *(const float2 *)(p + 16 * kc + 8 * c) : make_float2(0.f, 0.f);
                qa[kc][r + 2 * c] = pack_bf16(f.x, f.y);
            }
    }
}

/* K and V rows [0, ENC_ROWS) of the window (the first n real, the rest zeros) as BF16 into Ks, Vs
 * [ENC_ROWS][ENC_LDH]. All 2 x PER loads of a thread are issued before any store, so the whole window
 * is in flight at once (one memory latency, not PER). */
__device__ __forceinline__ void enc_stage_kv(bf16 *Ks, bf16 *Vs, const float *k, const float *v, int ld, int n)
{
    constexpr int V4 = ENC_DH / 4, PER = ENC_ROWS * V4 / ENC_THREADS; /* float4 per thread and matrix */
    static_assert(ENC_ROWS * V4 % ENC_THREADS == 0, "whole passes");
    float4 kf[PER], vf[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
        const int x = threadIdx.x + i * ENC_THREADS, r = x / V4, d = (x % V4) * 4;
        const size_t off = (size_t)r * ld + d;
        kf[i] = r < n ? *(const float4 *)(k + off) : make_float4(0.f, 0.f, 0.f, 0.f);
        vf[i] = r < n ? *(const float4 *)(v + off) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
        const int x = threadIdx.x + i * ENC_THREADS, r = x / V4, d = (x % V4) * 4;
        *(uint2 *)(Ks + r * ENC_LDH + d) = make_uint2(pack_bf16(kf[i].x, kf[i].y), pack_bf16(kf[i].z, kf[i].w));
        *(uint2 *)(Vs + r * ENC_LDH + d) = make_uint2(pack_bf16(vf[i].x, vf[i].y), pack_bf16(vf[i].z, vf[i].w));
    }
}

/* S = Q Kᵀ over the window's keys: s[nt] is the m16n8 accumulator of keys 8nt .. 8nt+7 (this lane: rows
 * g, g+8, keys 8nt + 2t, +1). K rows read as the columns of B without .trans (attention_mma.cu
 * mma_scores): ldmatrix.x4 matrices 0 / 1 = keys 0-7, dims 0-7 / 8-15 (b0, b1 of n-tile 2np), 2 / 3 =
 * keys 8-15 (n-tile 2np+1). 16-key groups wholly past n are skipped (warp-uniform): they stay 0 and
 * are masked. */
__device__ __forceinline__ void enc_scores(float s[ENC_NT][4], const uint32_t qa[ENC_DH / 16][4], const bf16 *Ks,
                                           int n, int lane)
{
    const int mi = lane >> 3, rr = lane & 7;
    const bf16 *kp = Ks + (rr + (mi >> 1) * 8) * ENC_LDH + (mi & 1) * 8;
#pragma unroll
    for (int nt = 0; nt < ENC_NT; nt++)
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int np = 0; np < ENC_KC; np++) {
        if (16 * np >= n)
            break;
#pragma unroll
        for (int kc = 0; kc < ENC_DH / 16; kc++) {
            uint32_t b[4];
            ldsm_x4(b, kp + np * 16 * ENC_LDH + kc * 16);
            mma_bf16(s[2 * np], qa[kc], b[0], b[1]);
            mma_bf16(s[2 * np + 1], qa[kc], b[2], b[3]);
        }
    }
}

/* Softmax of this lane's two rows over keys [0, n) (keys past n: -inf), in place: s becomes p =
 * 2^(s · sl2 - max · sl2), FP32; l[r] this lane's partial row sum (the quad's four are added in
 * enc_store). The 4 lanes of a quad hold a row, so the max is reduced over lanes xor 1, 2. Key 0 is
 * always visible, so every max is finite and the max's p is ~1. sl2 > 0: max(s) · sl2 is the max of the
 * scaled scores. */
__device__ __forceinline__ void enc_softmax(float s[ENC_NT][4], float l[2], float sl2, int n, int t)
{
#pragma unroll
    for (int nt = 0; nt < ENC_NT; nt++)
#pragma unroll
        for (int c = 0; c < 2; c++)
            if (8 * nt + 2 * t + c >= n)
                s[nt][c] = s[nt][2 + c] = -INFINITY;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < ENC_NT; nt++)
            mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float base = mx * sl2;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < ENC_NT; nt++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                float p = mma_ex2(fmaf(s[nt][2 * r + c], sl2, -base));
                sum += p;
                s[nt][2 * r + c] = p;
            }
        l[r] = sum;
    }
}

/* O = P V: P's A fragments are the S accumulators of n-tiles 2kc, 2kc+1 rounded pairwise to BF16
 * (attention_mma.cu mma_pack_p: the accumulator layout is the A layout). V (keys x dims, stored key-major)
 * through ldmatrix.x4.trans: matrices 0 / 1 = keys 0-7 / 8-15 of dims 0-7 (b0, b1 of dim tile 2dp),
 * 2 / 3 = the same of dims 8-15 (dim tile 2dp+1). */
__device__ __forceinline__ void enc_pv(float o[ENC_DH / 8][4], const float s[ENC_NT][4], const bf16 *Vs, int n,
                                       int lane)
{
    const int mi = lane >> 3, rr = lane & 7;
    const bf16 *vp = Vs + (rr + (mi & 1) * 8) * ENC_LDH + (mi >> 1) * 8;
#pragma unroll
    for (int dt = 0; dt < ENC_DH / 8; dt++)
        o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < ENC_KC; kc++) {
        if (16 * kc >= n)
            break;
        const uint32_t pa[4] = {pack_bf16(s[2 * kc][0], s[2 * kc][1]), pack_bf16(s[2 * kc][2], s[2 * kc][3]),
                                pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                                pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
        for (int dp = 0; dp < ENC_DH / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_trans(b, vp + kc * 16 * ENC_LDH + dp * 16);
            mma_bf16(o[2 * dp], pa, b[0], b[1]);
            mma_bf16(o[2 * dp + 1], pa, b[2], b[3]);
        }
    }
}

/* out rows g, g+8 of the warp's m-tile (window rows r0 + g + 8r < n, window start w0): O / (sum of the
 * quad's partial sums). Lane holds cols 8dt + 2t, +1. */
__device__ __forceinline__ void enc_store(const enc_args &a, const float o[ENC_DH / 8][4], const float l[2], int h,
                                          int w0, int r0, int n, int g, int t)
{
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1); /* every lane, before any skips */
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int row = r0 + g + 8 * r;
        if (row >= n)
            continue;
        const float inv = 1.0f / sum;
        const size_t dst = (size_t)(w0 + row) * a.ldo + (size_t)h * ENC_DH + 2 * t;
#pragma unroll
        for (int dt = 0; dt < ENC_DH / 8; dt++)
            qa_attn_put2(a.out, a.out_bf16, dst + dt * 8, o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
    }
}

/* launch_bounds (224, 2): two blocks per SM, 128 registers without spills (S 56, Q 16, O 32 and the staging
 * loads in flight; three blocks would cap them at 96, which spills). The calls of up to 60 s (8 windows x 16
 * heads) fit in one wave either way; 300 s (38 x 16) takes about 2.3 waves of 132 SMs. */
__global__ void __launch_bounds__(ENC_THREADS, 2) attention_enc_kernel(enc_args a)
{
    __shared__ __align__(16) bf16 Ks[ENC_ROWS * ENC_LDH];
    __shared__ __align__(16) bf16 Vs[ENC_ROWS * ENC_LDH];
    const int h = blockIdx.x, w0 = blockIdx.y * a.window, n = min(a.window, a.T - w0);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3, r0 = warp * 16;
    const size_t col = (size_t)h * ENC_DH;

    qa_pdl_wait(); /* q / k / v are the previous GEMM's output */
    qa_pdl_trigger();
    uint32_t qa[ENC_DH / 16][4];
    enc_load_q(qa, a.q + (size_t)w0 * a.ldq + col, a.ldq, n, r0, g, t);
    enc_stage_kv(Ks, Vs, a.k + (size_t)w0 * a.ldkv + col, a.v + (size_t)w0 * a.ldkv + col, a.ldkv, n);
    __syncthreads();
    if (r0 >= n) /* warp-uniform: no row of this warp in the window (its short last one) */
        return;
    float s[ENC_NT][4], o[ENC_DH / 8][4], l[2];
    enc_scores(s, qa, Ks, n, lane);
    enc_softmax(s, l, a.scale_log2, n, t);
    enc_pv(o, s, Vs, n, lane);
    enc_store(a, o, l, h, w0, r0, n, g, t);
}

int qa_cu_attention_enc_fits(int Dh, int H, int Hk, int kv_bf16, int causal, int q0, int Tq, int Tk, int window,
                             const float *q, int ldq, const void *k, const void *v, int ldkv, const void *out, int ldo)
{
    const int w = window > 0 ? window : Tk; /* no window: one window of the whole (short) clip */
    return Dh == ENC_DH && H == Hk && !kv_bf16 && !causal && q0 == 0 && Tq == Tk && Tq > 0 && w <= ENC_ROWS &&
           qa_cu_attention_tc_supported(Dh, q, ldq, k, ldkv, v, ldkv, ldo, out, kv_bf16);
}

qa_status qa_cu_attention_enc(cudaStream_t s, void *out, int out_bf16, int ldo, const float *q, int ldq,
                              const float *k, const float *v, int ldkv, int T, int H, int window, float scale,
                              qa_err *e)
{
    const int w = window > 0 ? window : T;
    if (w > ENC_ROWS || H > 65535)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_enc: window %d (at most %d) or %d heads (grid x at most "
                       "65535) not supported", w, ENC_ROWS, H);
    const unsigned windows = qa_cuda_blocks((size_t)T, (unsigned)w);
    if (windows > 65535)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_enc: %d rows make %u windows of %d, over the grid's y limit "
                       "of 65535", T, windows, w);
    enc_args a = {out, q, k, v, ldo, ldq, ldkv, T, w, scale * 1.4426950408889634f, out_bf16};
    QA_CUDA_CHECK(e, qa_cu_launch(attention_enc_kernel, dim3(H, windows), dim3(ENC_THREADS), 0, s, a));
    return QA_OK;
}
