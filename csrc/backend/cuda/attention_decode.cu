/* attention_decode.cu — attention of ONE query row over a KV cache, split over the keys (flash-decoding).
 *
 * Contract: ops.cuh (qa_cu_attention_decode). Why: the general kernel (attention.cu) gives a decode
 * step 16 blocks x 1 busy warp, each walking the whole cache serially; here the n visible keys are cut
 * into at most QA_CU_DEC_SPLITS slices of at least DEC_MIN_KEYS keys (dec_slices), and block
 * (slice s, kv head) folds its slice for all G = H / Hk query heads of that kv head (GQA: each K / V
 * row is read once for the group). Inside a block 4 warps take DEC_KB keys at a time (their loads in
 * flight together); per key a warp forms the G dot products (lane d holds columns d, d+32, ...) and
 * folds them into a running (max m, sum l, acc) — the FlashAttention recurrence, FP32 throughout.
 * The block merges its warps and writes (m, l, acc[Dh]) per query head into the partials (scratch);
 * the ns partials of each head are then merged: M = max m_s, out = sum acc_s e^(m_s-M) / sum l_s e^(m_s-M).
 * By default the last slice block of a kv head to finish merges its G heads (an arrival counter per kv head,
 * cuda_scratch.h, reset to 0 by that block): a kernel boundary fewer per layer (~1.5-2 us of ramp, tail and
 * PDL wait, issue #6). QA_CUDA_DEC_MERGE=two (or more kv heads than counters) launches the second kernel
 * instead, one block per query head; both run dec_merge_weights / dec_merge_cols, so the bits are the same.
 * The slicing depends on n only, so the host-position call (decode loop PLAIN)
 * and the device-position call (STEPS / GRAPH: n = pos[0] + 1 read by the kernel, the grid sized for
 * QA_CU_DEC_SPLITS slices, blocks past ns exit at once) add the same numbers in the same order.
 * Causal decode only: the query sits at position n - 1 and sees keys 0 .. n-1 (MODEL_FACTS §5).
 * The kernels are launched with PDL (pdl.cuh) and wait before reading anything.
 * K / V: FP32 or a BF16 KV cache (template parameter KV: half the bytes a step reads, the math stays
 * FP32 since BF16 -> FP32 is exact).
 */
#include <math.h>

#include "attn_out.cuh"
#include "ops.cuh"
#include "pdl.cuh"

#define DEC_WARPS 4
#define DEC_KB 4        /* keys per warp per round */
#define DEC_MIN_KEYS 32 /* fewest keys per slice before another slice is added */

struct dec_args {
    void *out;         /* [H * Dh], FP32 or BF16 (out_bf16, attn_out.cuh) */
    const float *q;    /* [H * Dh] */
    const void *k, *v; /* KV elements (FP32 or BF16) */
    float *part;       /* [H][QA_CU_DEC_SPLITS][Dh + 2] */
    unsigned *cnt;     /* [Hk] arrival counters, zero between kernels (one-kernel merge), or NULL */
    int ldk, ldv, H, Hk;
    int n_host;        /* visible keys when pos_dev is NULL */
    const int32_t *pos_dev;
    int max_kv;        /* rows of the cache: n never exceeds it */
    float scale;
    int out_bf16;
};

/* Visible keys of the query (its position + 1), read when the kernel runs. */
__device__ __forceinline__ int dec_keys(const dec_args &a)
{
    int n = a.pos_dev ? *a.pos_dev + 1 : a.n_host;
    return max(1, min(n, a.max_kv));
}

/* Slices of n keys: *chunk keys each (the last one shorter), none empty. A function of n only. */
__device__ __forceinline__ void dec_slices(int n, int *ns, int *chunk)
{
    int want = min(QA_CU_DEC_SPLITS, (n + DEC_MIN_KEYS - 1) / DEC_MIN_KEYS);
    *chunk = (n + want - 1) / want;
    *ns = (n + *chunk - 1) / *chunk; /* <= want; fewer when rounding the chunk up leaves the last empty */
}

/* Fold keys [jb, jb + DEC_KB) ∩ [.., j1) into the warp's running state of G query heads. */
template <int DH, int G, typename KV>
__device__ __forceinline__ void fold_keys(const dec_args &a, int kvh, int jb, int j1, int lane,
                                          const float (&qr)[G][(DH + 31) / 32], float (&m)[G], float (&l)[G],
                                          float (&acc)[G][(DH + 31) / 32])
{
    constexpr int C = (DH + 31) / 32;
    const KV *K = (const KV *)a.k, *V = (const KV *)a.v;
    float kr[DEC_KB][C], vr[DEC_KB][C];
#pragma unroll
    for (int u = 0; u < DEC_KB; u++)
#pragma unroll
        for (int c = 0; c < C; c++) {
            int j = jb + u, d = lane + 32 * c;
            bool ok = j < j1 && (DH % 32 == 0 || d < DH);
            kr[u][c] = ok ? qa_ld(K, (size_t)j * a.ldk + (size_t)kvh * DH + d) : 0.f;
            vr[u][c] = ok ? qa_ld(V, (size_t)j * a.ldv + (size_t)kvh * DH + d) : 0.f;
        }
#pragma unroll
    for (int g = 0; g < G; g++) {
        float sc[DEC_KB], mx = -INFINITY;
#pragma unroll
        for (int u = 0; u < DEC_KB; u++) {
            float p = 0.f;
#pragma unroll
            for (int c = 0; c < C; c++)
                p += qr[g][c] * kr[u][c];
            p = qa_warp_sum(p);
            sc[u] = jb + u < j1 ? p : -INFINITY;
            mx = fmaxf(mx, sc[u]);
        }
        float mn = fmaxf(m[g], mx); /* finite: key jb < j1 is visible */
        float corr = expf(m[g] - mn), ps = 0.f, p[DEC_KB];
#pragma unroll
        for (int u = 0; u < DEC_KB; u++) {
            p[u] = expf(sc[u] - mn);
            ps += p[u];
        }
        l[g] = l[g] * corr + ps;
        m[g] = mn;
#pragma unroll
        for (int c = 0; c < C; c++) {
            float s = acc[g][c] * corr;
#pragma unroll
            for (int u = 0; u < DEC_KB; u++)
                s += p[u] * vr[u][c];
            acc[g][c] = s;
        }
    }
}

/* Warp-wide (one warp, all lanes) for the ns partials pp [ns][DH + 2] of one query head: sf[s] = e^(m_s - M),
 * sl[s] = l_s, M = max_s m_s. Two slices per lane, read at once. */
__device__ __forceinline__ void dec_merge_weights(const float *pp, int ns, int dh2, int lane, float *sf, float *sl)
{
    static_assert(QA_CU_DEC_SPLITS <= 64, "one warp holds two slices per lane");
    float m[2], l[2], M = -INFINITY;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int sl_i = lane + 32 * i;
        m[i] = sl_i < ns ? __ldcg(pp + (size_t)sl_i * dh2) : -INFINITY; /* L2: written by other blocks */
        l[i] = sl_i < ns ? __ldcg(pp + (size_t)sl_i * dh2 + 1) : 0.f;
        M = fmaxf(M, m[i]);
    }
    for (int o = 16; o > 0; o >>= 1)
        M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
#pragma unroll
    for (int i = 0; i < 2; i++)
        if (lane + 32 * i < ns) {
            sf[lane + 32 * i] = expf(m[i] - M);
            sl[lane + 32 * i] = l[i];
        }
}

/* out[x] = sum_s acc_s[d_x] f_s / sum_s l_s f_s for X columns (column d[x] of head pp[x], weights sf[x] / sl[x] of
 * dec_merge_weights), in slice order with 8 slices x X columns of loads in flight (one L2 round trip per 8
 * slices). Every column's sums are the same sequence of operations whatever X, so the same bits. */
template <int X>
__device__ __forceinline__ void dec_merge_cols(const float *const (&pp)[X], const int (&d)[X],
                                               const float *const (&sf)[X], const float *const (&sl)[X], int ns,
                                               int dh2, float (&out)[X])
{
    float L[X], A[X];
#pragma unroll
    for (int x = 0; x < X; x++)
        L[x] = A[x] = 0.f;
    int s = 0;
    for (; s + 8 <= ns; s += 8) {
        float v[X][8];
#pragma unroll
        for (int x = 0; x < X; x++)
#pragma unroll
            for (int u = 0; u < 8; u++) /* issued together */
                v[x][u] = __ldcg(pp[x] + (size_t)(s + u) * dh2 + 2 + d[x]);
#pragma unroll
        for (int x = 0; x < X; x++)
#pragma unroll
            for (int u = 0; u < 8; u++) {
                L[x] += sl[x][s + u] * sf[x][s + u];
                A[x] += v[x][u] * sf[x][s + u];
            }
    }
    for (; s < ns; s++)
#pragma unroll
        for (int x = 0; x < X; x++) {
            L[x] += sl[x][s] * sf[x][s];
            A[x] += __ldcg(pp[x] + (size_t)s * dh2 + 2 + d[x]) * sf[x][s];
        }
#pragma unroll
    for (int x = 0; x < X; x++)
        out[x] = A[x] / L[x];
}

/* The last slice block of kv head kvh merges the ns partials of its G query heads (the other blocks' partials
 * are in L2: each made its writes visible before counting itself). Warp w takes the weights of heads w, w + 4,
 * ...; then thread t the columns t, t + 128, ... of the G x DH outputs. */
template <int DH, int G> __device__ void dec_merge_block(const dec_args &a, int kvh, int ns)
{
    constexpr int T = DEC_WARPS * 32, X = G * DH > T ? G * DH / T : 1;
    static_assert(G * DH <= T || G * DH % T == 0, "whole columns per thread");
    __shared__ float sf[G][QA_CU_DEC_SPLITS], sl[G][QA_CU_DEC_SPLITS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float *part = a.part + (size_t)kvh * G * QA_CU_DEC_SPLITS * (DH + 2);
    for (int g = warp; g < G; g += DEC_WARPS)
        dec_merge_weights(part + (size_t)g * QA_CU_DEC_SPLITS * (DH + 2), ns, DH + 2, lane, sf[g], sl[g]);
    __syncthreads();
    if (threadIdx.x >= G * DH)
        return; /* fewer columns than threads */
    const float *pp[X], *wf[X], *wl[X];
    int d[X];
#pragma unroll
    for (int x = 0; x < X; x++) {
        const int c = threadIdx.x + T * x, g = c / DH;
        d[x] = c % DH;
        pp[x] = part + (size_t)g * QA_CU_DEC_SPLITS * (DH + 2);
        wf[x] = sf[g];
        wl[x] = sl[g];
    }
    float o[X];
    dec_merge_cols<X>(pp, d, wf, wl, ns, DH + 2, o);
#pragma unroll
    for (int x = 0; x < X; x++)
        qa_attn_put(a.out, a.out_bf16, (size_t)kvh * G * DH + threadIdx.x + T * x, o[x]);
}

/* One slice of keys for the G query heads of kv head blockIdx.y -> partials; MERGE: the kv head's last block to
 * finish then merges them (a.cnt). */
template <int DH, int G, typename KV, bool MERGE>
__global__ void __launch_bounds__(DEC_WARPS * 32) dec_split_kernel(dec_args a)
{
    constexpr int C = (DH + 31) / 32;
    __shared__ float sml[DEC_WARPS][G][2];
    __shared__ float sacc[DEC_WARPS][G][DH];
    qa_pdl_wait(); /* launched with PDL (pdl.cuh): q, the cache rows and the position come from earlier kernels */
    qa_pdl_trigger();
    const int n = dec_keys(a), s = blockIdx.x;
    int ns, chunk;
    dec_slices(n, &ns, &chunk);
    if (s >= ns)
        return; /* a graph's grid covers the most slices; this step has fewer */
    const int j0 = s * chunk, j1 = min(n, j0 + chunk);
    const int kvh = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float qr[G][C], m[G], l[G], acc[G][C];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY;
        l[g] = 0.f;
#pragma unroll
        for (int c = 0; c < C; c++) {
            int d = lane + 32 * c;
            qr[g][c] = (DH % 32 == 0 || d < DH) ? a.q[(size_t)(kvh * G + g) * DH + d] * a.scale : 0.f;
            acc[g][c] = 0.f;
        }
    }
    for (int jb = j0 + warp * DEC_KB; jb < j1; jb += DEC_WARPS * DEC_KB)
        fold_keys<DH, G, KV>(a, kvh, jb, j1, lane, qr, m, l, acc);
#pragma unroll
    for (int g = 0; g < G; g++) {
        if (lane == 0) {
            sml[warp][g][0] = m[g];
            sml[warp][g][1] = l[g];
        }
#pragma unroll
        for (int c = 0; c < C; c++)
            if (DH % 32 == 0 || lane + 32 * c < DH)
                sacc[warp][g][lane + 32 * c] = acc[g][c];
    }
    __syncthreads();
    for (int x = threadIdx.x; x < G * DH; x += DEC_WARPS * 32) {
        int g = x / DH, d = x % DH;
        float M = -INFINITY, L = 0.f, A = 0.f;
        for (int w = 0; w < DEC_WARPS; w++)
            M = fmaxf(M, sml[w][g][0]);
        for (int w = 0; w < DEC_WARPS; w++) {
            float f = sml[w][g][1] > 0.f ? expf(sml[w][g][0] - M) : 0.f; /* a warp without keys adds 0 */
            L += sml[w][g][1] * f;
            A += sacc[w][g][d] * f;
        }
        float *pp = a.part + ((size_t)(kvh * G + g) * QA_CU_DEC_SPLITS + s) * (DH + 2);
        if (d == 0) {
            pp[0] = M;
            pp[1] = L;
        }
        pp[2 + d] = A;
    }
    if constexpr (MERGE) {
        __shared__ int last;
        __syncthreads(); /* the block's partials are written */
        if (threadIdx.x == 0) {
            /* one thread fences for the block, as cooperative groups' grid sync does: the partials visible
             * device-wide before the block counts as arrived; the last one fences again before they are read */
            __threadfence();
            last = atomicAdd(a.cnt + kvh, 1u) == (unsigned)ns - 1; /* the blocks past ns never count */
            if (last) {
                __threadfence();
                a.cnt[kvh] = 0; /* all ns have arrived: zero for the next call (or graph replay) */
            }
        }
        __syncthreads();
        if (last)
            dec_merge_block<DH, G>(a, kvh, ns);
    }
}

/* out[h] = merge of the ns partials of query head blockIdx.x (the QA_CUDA_DEC_MERGE=two path): warp 0 reads the
 * (m, l) of all slices at once and leaves f_s and l_s in shared memory; every thread then sums its columns over
 * the slices in slice order with 8 slices' loads in flight (the loop this replaced waited on one L2 round trip per
 * slice, twice). At least one warp per block (the DH = 16 kernel too). */
template <int DH> __global__ void dec_combine_kernel(dec_args a)
{
    __shared__ float sf[QA_CU_DEC_SPLITS], sl[QA_CU_DEC_SPLITS];
    qa_pdl_wait(); /* the partials of dec_split_kernel */
    qa_pdl_trigger();
    const int n = dec_keys(a), h = blockIdx.x, lane = threadIdx.x & 31;
    int ns, chunk;
    dec_slices(n, &ns, &chunk);
    const float *pp[1] = {a.part + (size_t)h * QA_CU_DEC_SPLITS * (DH + 2)};
    if (threadIdx.x < 32)
        dec_merge_weights(pp[0], ns, DH + 2, lane, sf, sl);
    __syncthreads();
    const float *wf[1] = {sf}, *wl[1] = {sl};
    for (int d = threadIdx.x; d < DH; d += blockDim.x) {
        int dd[1] = {d};
        float o[1];
        dec_merge_cols<1>(pp, dd, wf, wl, ns, DH + 2, o);
        qa_attn_put(a.out, a.out_bf16, (size_t)h * DH + d, o[0]);
    }
}

template <int DH, int G> static cudaError_t launch(cudaStream_t s, const dec_args &a, int kv_bf16, int grid_splits)
{
    dim3 grid(grid_splits, a.Hk);
    if (a.cnt)
        return kv_bf16 ? qa_cu_launch(dec_split_kernel<DH, G, __nv_bfloat16, true>, grid, DEC_WARPS * 32, 0, s, a)
                       : qa_cu_launch(dec_split_kernel<DH, G, float, true>, grid, DEC_WARPS * 32, 0, s, a);
    cudaError_t err = kv_bf16
                          ? qa_cu_launch(dec_split_kernel<DH, G, __nv_bfloat16, false>, grid, DEC_WARPS * 32, 0, s, a)
                          : qa_cu_launch(dec_split_kernel<DH, G, float, false>, grid, DEC_WARPS * 32, 0, s, a);
    if (err != cudaSuccess)
        return err;
    return qa_cu_launch(dec_combine_kernel<DH>, a.H, DH < 32 ? 32 : DH < 128 ? DH : 128, 0, s, a);
}

/* The kernels of G query heads per kv head (qa_cu_attention_decode_supported: G is 1, 2, 4 or 8). */
template <int DH> static cudaError_t launch_g(cudaStream_t s, const dec_args &a, int G, int kv_bf16, int grid_splits)
{
    switch (G) {
    case 1: return launch<DH, 1>(s, a, kv_bf16, grid_splits);
    case 2: return launch<DH, 2>(s, a, kv_bf16, grid_splits);
    case 4: return launch<DH, 4>(s, a, kv_bf16, grid_splits);
    default: return launch<DH, 8>(s, a, kv_bf16, grid_splits);
    }
}

int qa_cu_attention_decode_supported(int Dh, int H, int Hk)
{
    if (Hk <= 0 || H % Hk != 0 || H > 65535)
        return 0;
    int G = H / Hk;
    return (Dh == 16 || Dh == 32 || Dh == 64 || Dh == 128) && (G == 1 || G == 2 || G == 4 || G == 8);
}

qa_status qa_cu_attention_decode(cudaStream_t s, void *out, int out_bf16, const float *q, const void *k, int ldk,
                                 const void *v, int ldv, int kv_bf16, float *part, unsigned *cnt, int H, int Hk,
                                 int Dh, int n, const int32_t *pos, int max_kv, float scale, qa_err *e)
{
    if (!qa_cu_attention_decode_supported(Dh, H, Hk))
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_decode: head dim %d with %d / %d heads not built", Dh, H, Hk);
    if (max_kv <= 0 || (!pos && (n <= 0 || n > max_kv)))
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_decode: %d keys of a %d-row cache", n, max_kv);
    dec_args a = {out, q, k, v, part, Hk <= QA_CU_SYNC_DEC_HEADS ? cnt : NULL, ldk, ldv, H, Hk, n, pos, max_kv, scale,
                  out_bf16};
    /* the host knows n: launch its slices only; a device position: the most slices a step may need */
    int splits = pos ? (max_kv + DEC_MIN_KEYS - 1) / DEC_MIN_KEYS : (n + DEC_MIN_KEYS - 1) / DEC_MIN_KEYS;
    splits = splits < QA_CU_DEC_SPLITS ? splits : QA_CU_DEC_SPLITS;
    int G = H / Hk;
    cudaError_t err;
    switch (Dh) {
    case 16: err = launch_g<16>(s, a, G, kv_bf16, splits); break;
    case 32: err = launch_g<32>(s, a, G, kv_bf16, splits); break;
    case 64: err = launch_g<64>(s, a, G, kv_bf16, splits); break;
    default: err = launch_g<128>(s, a, G, kv_bf16, splits); break;
    }
    QA_CUDA_CHECK(e, err);
    return QA_OK;
}
