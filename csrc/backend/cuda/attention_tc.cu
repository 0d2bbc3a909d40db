/* attention_tc.cu — fused attention on BF16 tensor cores for dtype="bfloat16": the entry
 * qa_cu_attention_tc, which runs attention_mma.cu's FlashAttention-2 kernel (mma.sync, S and O in
 * registers; QA_CUDA_ATTN=mma64 / mma128 force its tiling), or with QA_CUDA_ATTN=wmma this file's
 * first kernel (WMMA 16x16x16, FP32 accumulate), kept as a second implementation of the same contract
 * to compare against on the GPU. qa_cu_attention_tc_setup prepares all of them when a context opens.
 *
 * Contract: ops.cuh (qa_cu_attention_tc), the same function as attention.cu's qa_cu_attention with q,
 * k, v rounded to BF16 when they are staged in shared memory (what a BF16 engine feeds its SDPA
 * kernel: transformers' bf16 q/k/v), scores, softmax and the output accumulation in FP32, the scale
 * applied to the FP32 scores (as FlashAttention / SDPA do). Never stores the T x T scores.
 * Layout: one block = 64 query rows of one head, 4 warps of 16 rows each; keys in tiles of 64 (K, V
 * rounded to BF16 in shared memory, shared by the 4 warps). Per tile a warp computes S = Q K^T
 * (16 x 64, WMMA into shared memory), then two lanes per row run the online-softmax recurrence of
 * FlashAttention (m' = max(m, max s), l = l e^(m-m') + sum p, O = O e^(m-m') + P V) in FP32, P
 * goes back to shared memory as BF16 and O += P V runs on WMMA with O kept in shared memory (the
 * accumulator fragment's element layout is opaque, so the per-row rescale happens there).
 * Masks as attention.cu (MODEL_FACTS §4.6, §5): windows of `window` positions, causal with q0, GQA.
 * K / V may be FP32 activations or a BF16 KV cache (template parameter).
 */
#include <math.h>
#include <mma.h>

#include "attn_out.cuh"
#include "ops.cuh"

using namespace nvcuda;

#define TC_BQ 64   /* query rows per block */
#define TC_BK 64   /* keys per tile */
#define TC_WARPS 4 /* 16 query rows each */
#define TC_PAD 8   /* BF16 row padding: keeps WMMA pointers 32-byte aligned, spreads banks */
#define TC_FPAD 4  /* FP32 row padding */

typedef qa_cu_tc_args tc_args;

/* Visible keys [lo, hi) of the query at absolute position p. */
template <typename A> __device__ __forceinline__ void tc_key_range(const A &a, int p, int *lo, int *hi)
{
    qa_attn_key_range(p, a.Tk, a.window, a.causal, lo, hi);
}

/* Shared-memory layout (bytes), every part a multiple of 32 bytes. */
template <int DH> struct tc_smem {
    static constexpr int LDH = DH + TC_PAD;        /* Q, K, V rows (bf16) */
    static constexpr int LDS = TC_BK + TC_FPAD;    /* S rows (fp32) */
    static constexpr int LDP = TC_BK + TC_PAD;     /* P rows (bf16) */
    static constexpr int LDO = DH + TC_FPAD;       /* O rows (fp32) */
    static constexpr size_t Q = (size_t)TC_BQ * LDH * 2;
    static constexpr size_t KV = (size_t)TC_BK * LDH * 2;
    static constexpr size_t S = (size_t)TC_BQ * LDS * 4;
    static constexpr size_t P = (size_t)TC_BQ * LDP * 2;
    static constexpr size_t O = (size_t)TC_BQ * LDO * 4;
    static constexpr size_t bytes = Q + 2 * KV + S + P + O;
};

/* 4 consecutive elements of row r (columns d..d+3) of an FP32 or BF16 matrix as floats. */
__device__ __forceinline__ float4 tc_ld4(const float *p, size_t off) { return *(const float4 *)(p + off); }
__device__ __forceinline__ float4 tc_ld4(const __nv_bfloat16 *p, size_t off)
{
    uint2 u = *(const uint2 *)(p + off);
    __nv_bfloat162 a = *(__nv_bfloat162 *)&u.x, b = *(__nv_bfloat162 *)&u.y;
    float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);
    return make_float4(fa.x, fa.y, fb.x, fb.y);
}

__device__ __forceinline__ void tc_st4(__nv_bfloat16 *dst, float4 f)
{
    __nv_bfloat162 a = __floats2bfloat162_rn(f.x, f.y), b = __floats2bfloat162_rn(f.z, f.w);
    uint2 u;
    u.x = *(unsigned *)&a;
    u.y = *(unsigned *)&b;
    *(uint2 *)dst = u;
}

/* rows [r0, r0 + R) of src (row stride ld, head column offset col) into dst [R][LDH] as BF16; rows at or
 * past `valid` become zeros (masked keys must not carry NaN garbage into P V). */
template <int DH, int R, typename T>
__device__ __forceinline__ void tc_stage(__nv_bfloat16 *dst, const T *src, int ld, size_t col, int r0, int valid)
{
    constexpr int LDH = DH + TC_PAD, V4 = DH / 4;
    for (int x = threadIdx.x; x < R * V4; x += TC_WARPS * 32) {
        int r = x / V4, d = (x % V4) * 4, j = r0 + r;
        float4 f = j < valid ? tc_ld4(src, (size_t)j * ld + col + d) : make_float4(0.f, 0.f, 0.f, 0.f);
        tc_st4(dst + r * LDH + d, f);
    }
}

template <int DH, typename KV> __global__ void __launch_bounds__(TC_WARPS * 32) attention_tc_kernel(tc_args a)
{
    using L = tc_smem<DH>;
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smem;
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)(smem + L::Q);
    __nv_bfloat16 *Vs = (__nv_bfloat16 *)(smem + L::Q + L::KV);
    float *Ss = (float *)(smem + L::Q + 2 * L::KV);
    __nv_bfloat16 *Ps = (__nv_bfloat16 *)(smem + L::Q + 2 * L::KV + L::S);
    float *Os = (float *)(smem + L::Q + 2 * L::KV + L::S + L::P);
    const KV *k = (const KV *)a.k, *v = (const KV *)a.v;

    const int h = blockIdx.y, kvh = h / (a.H / a.Hk);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int i0 = blockIdx.x * TC_BQ;
    const int wr0 = warp * 16;               /* this warp's first row in the block */
    const int row = lane >> 1, half = lane & 1; /* softmax: two lanes per row, 32 columns each */

    tc_stage<DH, TC_BQ>(Qs, a.q, a.ldq, (size_t)h * DH, i0, a.Tq);
    float *Ow = Os + wr0 * L::LDO;
    for (int x = lane; x < 16 * DH; x += 32)
        Ow[(x / DH) * L::LDO + x % DH] = 0.f;

    int last = min(i0 + TC_BQ, a.Tq) - 1, klo, khi, dummy;
    tc_key_range(a, a.q0 + i0, &klo, &dummy);
    tc_key_range(a, a.q0 + last, &dummy, &khi);
    /* this lane's row, and the keys the warp's 16 rows can see (both ends monotone in the row) */
    int qi = i0 + wr0 + row, qlo = 0, qhi = 0, wlo, whi;
    if (qi < a.Tq)
        tc_key_range(a, a.q0 + qi, &qlo, &qhi);
    tc_key_range(a, a.q0 + min(i0 + wr0, a.Tq - 1), &wlo, &dummy);
    tc_key_range(a, a.q0 + min(i0 + wr0 + 15, a.Tq - 1), &dummy, &whi);
    const bool warp_live = i0 + wr0 < a.Tq;
    float m = -INFINITY, l = 0.f;

    __syncthreads(); /* Qs staged */
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> qf[DH / 16];
#pragma unroll
    for (int kk = 0; kk < DH / 16; kk++)
        wmma::load_matrix_sync(qf[kk], Qs + wr0 * L::LDH + kk * 16, L::LDH);

    float *Sw = Ss + wr0 * L::LDS;
    __nv_bfloat16 *Pw = Ps + wr0 * L::LDP;
    for (int j0 = klo; j0 < khi; j0 += TC_BK) {
        __syncthreads(); /* the previous tile is consumed by every warp */
        tc_stage<DH, TC_BK>(Ks, k, a.ldk, (size_t)kvh * DH, j0, khi);
        tc_stage<DH, TC_BK>(Vs, v, a.ldv, (size_t)kvh * DH, j0, khi);
        __syncthreads();
        if (!warp_live || j0 >= whi || j0 + TC_BK <= wlo) /* warp-uniform: no row of the warp sees the tile */
            continue;
        /* S = Q K^T (16 x 64) */
#pragma unroll
        for (int n = 0; n < TC_BK / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
            wmma::fill_fragment(sf, 0.f);
#pragma unroll
            for (int kk = 0; kk < DH / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, Ks + n * 16 * L::LDH + kk * 16, L::LDH);
                wmma::mma_sync(sf, qf[kk], kf, sf);
            }
            wmma::store_matrix_sync(Sw + n * 16, sf, L::LDS, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax over this lane's 32 columns of its row, partner lane has the other 32 */
        const float *srow = Sw + row * L::LDS + half * 32;
        int jb = j0 + half * 32;
        float tmax = -INFINITY;
#pragma unroll 8
        for (int t = 0; t < 32; t++)
            if (jb + t >= qlo && jb + t < qhi)
                tmax = fmaxf(tmax, srow[t] * a.scale_log2);
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        float mn = fmaxf(m, tmax), corr = 1.f, psum = 0.f;
        __nv_bfloat16 *prow = Pw + row * L::LDP + half * 32;
        if (mn == -INFINITY) { /* nothing visible yet for this row */
#pragma unroll 8
            for (int t = 0; t < 32; t++)
                prow[t] = __float2bfloat16(0.f);
        } else {
            corr = exp2f(m - mn);
#pragma unroll 8
            for (int t = 0; t < 32; t++) {
                bool vis = jb + t >= qlo && jb + t < qhi;
                float p = vis ? exp2f(srow[t] * a.scale_log2 - mn) : 0.f;
                psum += p;
                prow[t] = __float2bfloat16(p);
            }
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        l = l * corr + psum;
        m = mn;
        float *orow = Ow + row * L::LDO + half * (DH / 2);
        if (corr != 1.f)
#pragma unroll 8
            for (int d = 0; d < DH / 2; d++)
                orow[d] *= corr;
        __syncwarp();
        /* O += P V (16 x DH) */
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pf[TC_BK / 16];
#pragma unroll
        for (int kk = 0; kk < TC_BK / 16; kk++)
            wmma::load_matrix_sync(pf[kk], Pw + kk * 16, L::LDP);
#pragma unroll
        for (int n = 0; n < DH / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> of;
            wmma::load_matrix_sync(of, Ow + n * 16, L::LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < TC_BK / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vf;
                wmma::load_matrix_sync(vf, Vs + kk * 16 * L::LDH + n * 16, L::LDH);
                wmma::mma_sync(of, pf[kk], vf, of);
            }
            wmma::store_matrix_sync(Ow + n * 16, of, L::LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncwarp();
    if (qi >= a.Tq)
        return;
    float inv = l > 0.f ? 1.0f / l : 0.f;
    const float *orow = Ow + row * L::LDO + half * (DH / 2);
    const size_t dst = (size_t)qi * a.ldo + (size_t)h * DH + half * (DH / 2);
    for (int d = 0; d < DH / 2; d += 4)
        qa_attn_put4(a.out, a.out_bf16, dst + d,
                     make_float4(orow[d] * inv, orow[d + 1] * inv, orow[d + 2] * inv, orow[d + 3] * inv));
}

/* > 48 KB of dynamic shared memory needs the opt-in: raised once per context (qa_cu_attention_tc_setup)
 * for the kernels the device can hold; launch_tc refuses the others. */
template <int DH, typename KV> static qa_status raise_tc_smem(int optin, qa_err *e)
{
    if ((size_t)optin >= tc_smem<DH>::bytes)
        QA_CUDA_CHECK(e, cudaFuncSetAttribute(attention_tc_kernel<DH, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              (int)tc_smem<DH>::bytes));
    return QA_OK;
}

qa_status qa_cu_attention_tc_setup(qa_cu_tc_dev *d, int kernel, int split, qa_err *e)
{
    int dev = 0;
    d->kernel = kernel;
    d->split = split;
    d->wgmma = 0;
    QA_CUDA_CHECK(e, cudaGetDevice(&dev));
    QA_CUDA_CHECK(e, cudaDeviceGetAttribute(&d->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    QA_CUDA_CHECK(e, cudaDeviceGetAttribute(&d->sms, cudaDevAttrMultiProcessorCount, dev));
    if (kernel == QA_CU_TC_WMMA) { /* otherwise never launched: setting an attribute loads the kernel */
        QA_TRY((raise_tc_smem<64, float>(d->smem_optin, e)));
        QA_TRY((raise_tc_smem<64, __nv_bfloat16>(d->smem_optin, e)));
        QA_TRY((raise_tc_smem<128, float>(d->smem_optin, e)));
        QA_TRY((raise_tc_smem<128, __nv_bfloat16>(d->smem_optin, e)));
    }
    if (kernel == QA_CU_TC_AUTO || kernel == QA_CU_TC_WGMMA || kernel == QA_CU_TC_WGMMA1)
        QA_TRY(qa_cu_attention_wgmma_setup(d, e));
    return qa_cu_attention_mma_setup(d->smem_optin, e);
}

template <int DH, typename KV> static qa_status launch_tc(cudaStream_t s, const tc_args &a, int optin, qa_err *e)
{
    if ((size_t)optin < tc_smem<DH>::bytes) /* not a CUDA error: the context stays usable */
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_tc: needs %zu bytes of shared memory per block, the device "
                       "allows %d; set QA_CUDA_ATTN=fp32", tc_smem<DH>::bytes, optin);
    dim3 grid(qa_cuda_blocks((size_t)a.Tq, TC_BQ), a.H);
    attention_tc_kernel<DH, KV><<<grid, TC_WARPS * 32, tc_smem<DH>::bytes, s>>>(a);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

int qa_cu_attention_tc_supported(int Dh, const float *q, int ldq, const void *k, int ldk, const void *v, int ldv,
                                 int out_ld, const void *out, int kv_bf16)
{
    if (Dh != 64 && Dh != 128)
        return 0;
    /* 16-byte vector loads of q / out (fp32); k / v rows copied in 16-byte cp.async chunks (attention_mma.cu:
     * 4 FP32 or 8 BF16 elements), so their rows start on 16 bytes too */
    int kq = kv_bf16 ? 8 : 4;
    return aligned16(q) && aligned16(out) && aligned16(k) && aligned16(v) && ldq % 4 == 0 && out_ld % 4 == 0 &&
           ldk % kq == 0 && ldv % kq == 0;
}

/* The first (WMMA) kernel on arguments qa_cu_attention_tc has checked. */
static qa_status attention_wmma(cudaStream_t s, const tc_args &a, int Dh, int kv_bf16, int optin, qa_err *e)
{
    if (Dh == 64)
        return kv_bf16 ? launch_tc<64, __nv_bfloat16>(s, a, optin, e) : launch_tc<64, float>(s, a, optin, e);
    return kv_bf16 ? launch_tc<128, __nv_bfloat16>(s, a, optin, e) : launch_tc<128, float>(s, a, optin, e);
}

qa_status qa_cu_attention_tc(cudaStream_t s, void *out, int out_bf16, int ldo, const float *q, int ldq,
                             const void *k, int ldk, const void *v, int ldv, int kv_bf16, int Tq, int Tk, int H,
                             int Hk, int Dh, int q0, int causal, int window, float scale, const qa_cu_tc_dev *d,
                             qa_err *e)
{
    QA_TRY(qa_cu_attention_heads_ok("attention_tc", H, Hk, e));
    if (Tq <= 0)
        return QA_OK;
    if (!qa_cu_attention_tc_supported(Dh, q, ldq, k, ldk, v, ldv, ldo, out, kv_bf16))
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_tc: head dim %d or operand alignment not supported", Dh);
    qa_cu_tc_args a = {out, q, k, v, ldo, ldq, ldk, ldv, Tq, Tk, H, Hk, q0, causal, window,
                       scale * 1.4426950408889634f, out_bf16};
    if (d->kernel == QA_CU_TC_WMMA)
        return attention_wmma(s, a, Dh, kv_bf16, d->smem_optin, e);
    if (qa_cu_attention_wgmma_fits(a, Dh, kv_bf16, d))
        return qa_cu_attention_wgmma(s, a, d, e);
    return qa_cu_attention_mma(s, a, Dh, kv_bf16, d, e);
}
