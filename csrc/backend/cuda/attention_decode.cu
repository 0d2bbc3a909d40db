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
 * a second kernel merges the ns partials of each head: M = max m_s, out = sum acc_s e^(m_s-M) /
 * sum l_s e^(m_s-M). The slicing depends on n only, so the host-position call (decode loop PLAIN)
 * and the device-position call (STEPS / GRAPH: n = pos[0] + 1 read by the kernel, the grid sized for
 * QA_CU_DEC_SPLITS slices, blocks past ns exit at once) add the same numbers in the same order.
 * Causal decode only: the query sits at position n - 1 and sees keys 0 .. n-1 (MODEL_FACTS §5).
 * Both kernels are launched with PDL (pdl.cuh) and wait before reading anything.
 * K / V: FP32 or a BF16 KV cache (template parameter KV: half the bytes a step reads, the math stays
 * FP32 since BF16 -> FP32 is exact).
 * Fused form (qa_cu_attention_decode_fused, a decode step at a device position, issue #6): the split kernel also
 * does qkv_prep's work for the step's row, which saves its launch and the round trip of q and the new K / V row
 * through memory. Each block puts its G query heads through q_norm and RoPE itself (G x Dh values: cheap), and the
 * block whose slice ends at the new key (the last slice of each kv head) makes the new K / V row, folds it from
 * shared memory and writes it to the cache row for later steps; every other row is read from the cache as before.
 * head_prep.cuh's operations, qkv_prep's order, the BF16 rounding before the new key's score, and the same fold
 * code (FUSE template flag): the same bits as qkv_prep then the plain kernels, which stay the default elsewhere.
 */
#include <math.h>
#include <string.h>

#include "attn_out.cuh"
#include "head_prep.cuh"
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

/* Fold keys [jb, jb + DEC_KB) ∩ [.., j1) into the warp's running state of G query heads. FUSE: key jn's row is
 * kn / vn (shared memory, the values the cache row jn is being given) instead of the cache's. */
template <int DH, int G, typename KV, bool FUSE>
__device__ __forceinline__ void fold_keys(const dec_args &a, int kvh, int jb, int j1, int lane,
                                          const float (&qr)[G][(DH + 31) / 32], float (&m)[G], float (&l)[G],
                                          float (&acc)[G][(DH + 31) / 32], const KV *kn, const KV *vn, int jn)
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
            if (FUSE && j == jn) {
                kr[u][c] = ok ? qa_ld(kn, d) : 0.f;
                vr[u][c] = ok ? qa_ld(vn, d) : 0.f;
            } else {
                kr[u][c] = ok ? qa_ld(K, (size_t)j * a.ldk + (size_t)kvh * DH + d) : 0.f;
                vr[u][c] = ok ? qa_ld(V, (size_t)j * a.ldv + (size_t)kvh * DH + d) : 0.f;
            }
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

/* The fused step's q / k / v preparation: qkv_prep's arguments for the step's one row (ops.cuh
 * qa_cu_attention_decode_fused). */
struct dec_fuse {
    const float *q, *k, *v; /* the q / k / v GEMM's output row: [H * DH], [Hk * DH], [Hk * DH] FP32 */
    const float *qw, *kw;   /* q_norm, k_norm [DH] */
    void *kc, *vc;          /* the cache a.k / a.v, written at row pos[0] */
    float eps;
    float inv[QA_CUDA_DEC_MAX_DH / 2]; /* qa_cu_rope_inv, by value in the kernel's parameters */
};

/* Shared memory of the fused prologue. */
template <int DH, int G, typename KV> struct dec_fuse_smem {
    __align__(16) float q[G][DH]; /* the block's query heads, normalised and rotated */
    __align__(16) float k[DH];    /* the new key normalised, before its rotation */
    KV kn[DH], vn[DH];            /* the new K / V row as the cache holds it */
    float cs[DH / 2], sn[DH / 2];
};

/* Ask L2 for cache rows [j0, j1) of kv head kvh, K and V: the fused prologue runs between the wait and the fold's
 * first loads, and with the rows on their way its latency overlaps their HBM reads instead of preceding them. A
 * hint (prefetch.global.L2): no value changes. */
template <int DH, typename KV> __device__ __forceinline__ void dec_prefetch(const dec_args &a, int kvh, int j0, int j1)
{
    constexpr int LINES = (DH * (int)sizeof(KV) + 127) / 128, STEP = 128 / (int)sizeof(KV);
    for (int t = threadIdx.x; t < (j1 - j0) * 2 * LINES; t += DEC_WARPS * 32) {
        const int j = j0 + t / (2 * LINES), r = t % (2 * LINES);
        const KV *row = r < LINES ? (const KV *)a.k + (size_t)j * a.ldk : (const KV *)a.v + (size_t)j * a.ldv;
        asm volatile("prefetch.global.L2 [%0];" ::"l"(row + (size_t)kvh * DH + (r % LINES) * STEP));
    }
}

/* The fused step's prologue in block (slice, kv head kvh): its G query heads through q_norm and RoPE into sm.q and,
 * when fresh (the block whose slice ends at key p, the new one), the new K / V row into sm.kn / sm.vn and the
 * cache row p — head_prep.cuh's operations in qkv_prep's order, so the same bits. Warp w takes items w, w + 4, ...
 * of [G query heads, the key head, the value head], their loads issued first, as qkv.cu's warps do. */
template <int DH, int G, typename KV>
__device__ __forceinline__ void dec_fuse_prep(const dec_args &a, const dec_fuse &f, dec_fuse_smem<DH, G, KV> &sm,
                                              int kvh, int p, bool fresh, int warp, int lane)
{
    constexpr int S = (DH + 127) / 128, IPW = (G + 2 + DEC_WARPS - 1) / DEC_WARPS;
    const int ni = fresh ? G + 2 : G;
    float4 x[IPW][S];
#pragma unroll
    for (int i = 0; i < IPW; i++) {
        const int it = warp + i * DEC_WARPS;
        const float *src = it < G ? f.q + (size_t)(kvh * G + it) * DH : (it == G ? f.k : f.v) + (size_t)kvh * DH;
#pragma unroll
        for (int k = 0; k < S; k++) {
            const int c = lane + 32 * k;
            x[i][k] = it < ni && c < DH / 4 ? ((const float4 *)src)[c] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
    }
    for (int i = threadIdx.x; i < DH / 2; i += DEC_WARPS * 32)
        qa_rope_angle(f.inv[i], p, &sm.cs[i], &sm.sn[i]);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < IPW; i++) { /* `it` is uniform over the warp: the norm's shuffles see all lanes */
        const int it = warp + i * DEC_WARPS;
        if (it < G) {
            qa_head_norm(sm.q[it], x[i], f.qw, DH, f.eps, lane);
            qa_head_rope(sm.q[it], sm.q[it], sm.cs, sm.sn, DH, lane);
        } else if (it == G && it < ni) {
            qa_head_norm(sm.k, x[i], f.kw, DH, f.eps, lane);
            qa_head_rope(sm.kn, sm.k, sm.cs, sm.sn, DH, lane);
        } else if (it < ni) {
#pragma unroll
            for (int k = 0; k < S; k++) {
                const int c = lane + 32 * k;
                if (c < DH / 4) {
                    qa_kv_put(sm.vn + 4 * c, x[i][k].x);
                    qa_kv_put(sm.vn + 4 * c + 1, x[i][k].y);
                    qa_kv_put(sm.vn + 4 * c + 2, x[i][k].z);
                    qa_kv_put(sm.vn + 4 * c + 3, x[i][k].w);
                }
            }
        }
    }
    __syncthreads();
    if (fresh) { /* later steps read the row from the cache */
        KV *kd = (KV *)f.kc + (size_t)p * a.ldk + (size_t)kvh * DH;
        KV *vd = (KV *)f.vc + (size_t)p * a.ldv + (size_t)kvh * DH;
        for (int d = threadIdx.x; d < DH; d += DEC_WARPS * 32) {
            kd[d] = sm.kn[d];
            vd[d] = sm.vn[d];
        }
    }
}

/* One slice of keys for the G query heads of kv head blockIdx.y -> partials. FUSE (`fuse` given): the query heads and
 * the new key's row come from dec_fuse_prep instead of qkv_prep's outputs; everything after is the same code. */
template <int DH, int G, typename KV, bool FUSE> __device__ __forceinline__ void dec_split(const dec_args &a,
                                                                                          const dec_fuse *fuse)
{
    constexpr int C = (DH + 31) / 32;
    __shared__ float sml[DEC_WARPS][G][2];
    __shared__ float sacc[DEC_WARPS][G][DH];
    __shared__ dec_fuse_smem<DH, G, KV> fs; /* unreferenced, so not allocated, without FUSE */
    qa_pdl_wait(); /* launched with PDL (pdl.cuh): q, the cache rows and the position come from earlier kernels */
    qa_pdl_trigger();
    const int n = dec_keys(a), s = blockIdx.x;
    int ns, chunk;
    dec_slices(n, &ns, &chunk);
    if (s >= ns)
        return; /* a graph's grid covers the most slices; this step has fewer */
    const int j0 = s * chunk, j1 = min(n, j0 + chunk);
    const int kvh = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int jn = -1; /* the key whose row is fs.kn / fs.vn */
    if constexpr (FUSE) {
        /* key p = pos[0] is the new one unless the position lies outside the cache (then qkv_prep stores nothing
         * and the attention reads the cache's rows only: so do we) */
        const int p = *a.pos_dev;
        if (p == n - 1 && s == ns - 1)
            jn = p;
        dec_prefetch<DH, KV>(a, kvh, j0, jn >= 0 ? j1 - 1 : j1);
        dec_fuse_prep<DH, G, KV>(a, *fuse, fs, kvh, p, jn >= 0, warp, lane);
    }
    float qr[G][C], m[G], l[G], acc[G][C];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY;
        l[g] = 0.f;
#pragma unroll
        for (int c = 0; c < C; c++) {
            int d = lane + 32 * c;
            qr[g][c] = (DH % 32 == 0 || d < DH) ? (FUSE ? fs.q[g][d] : a.q[(size_t)(kvh * G + g) * DH + d]) * a.scale
                                                : 0.f;
            acc[g][c] = 0.f;
        }
    }
    for (int jb = j0 + warp * DEC_KB; jb < j1; jb += DEC_WARPS * DEC_KB)
        fold_keys<DH, G, KV, FUSE>(a, kvh, jb, j1, lane, qr, m, l, acc, fs.kn, fs.vn, jn);
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
}

template <int DH, int G, typename KV> __global__ void __launch_bounds__(DEC_WARPS * 32) dec_split_kernel(dec_args a)
{
    dec_split<DH, G, KV, false>(a, NULL);
}

template <int DH, int G, typename KV>
__global__ void __launch_bounds__(DEC_WARPS * 32) dec_split_fused_kernel(dec_args a, const __grid_constant__ dec_fuse f)
{
    dec_split<DH, G, KV, true>(a, &f);
}

/* out[h] = merge of the ns partials of query head blockIdx.x: M = max_s m_s, f_s = e^(m_s - M),
 * out = sum_s acc_s f_s / sum_s l_s f_s. Warp 0 reads the (m, l) of all slices at once and leaves f_s and l_s in
 * shared memory; every thread then sums its columns over the slices in slice order with 8 slices' loads in flight
 * (the loop this replaces waited on one L2 round trip per slice, twice: ~2 ns round trips per head). Same sums in
 * the same order, so the same bits. At least one warp per block (the DH = 16 kernel too). */
template <int DH> __global__ void dec_combine_kernel(dec_args a)
{
    static_assert(QA_CU_DEC_SPLITS <= 64, "warp 0 holds two slices per lane");
    __shared__ float sf[QA_CU_DEC_SPLITS], sl[QA_CU_DEC_SPLITS];
    qa_pdl_wait(); /* the partials of dec_split_kernel */
    qa_pdl_trigger();
    const int n = dec_keys(a), h = blockIdx.x, lane = threadIdx.x & 31;
    int ns, chunk;
    dec_slices(n, &ns, &chunk);
    const float *pp = a.part + (size_t)h * QA_CU_DEC_SPLITS * (DH + 2);
    if (threadIdx.x < 32) {
        float m[2], l[2], M = -INFINITY;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int sl_i = lane + 32 * i;
            m[i] = sl_i < ns ? pp[(size_t)sl_i * (DH + 2)] : -INFINITY;
            l[i] = sl_i < ns ? pp[(size_t)sl_i * (DH + 2) + 1] : 0.f;
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
    __syncthreads();
    for (int d = threadIdx.x; d < DH; d += blockDim.x) {
        float L = 0.f, A = 0.f;
        int s = 0;
        for (; s + 8 <= ns; s += 8) {
            float v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) /* issued together */
                v[u] = pp[(size_t)(s + u) * (DH + 2) + 2 + d];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                L += sl[s + u] * sf[s + u];
                A += v[u] * sf[s + u];
            }
        }
        for (; s < ns; s++) {
            L += sl[s] * sf[s];
            A += pp[(size_t)s * (DH + 2) + 2 + d] * sf[s];
        }
        qa_attn_put(a.out, a.out_bf16, (size_t)h * DH + d, A / L);
    }
}

template <int DH, int G>
static cudaError_t launch(cudaStream_t s, const dec_args &a, const dec_fuse *f, int kv_bf16, int grid_splits)
{
    dim3 grid(grid_splits, a.Hk);
    cudaError_t err;
    if (f)
        err = kv_bf16 ? qa_cu_launch(dec_split_fused_kernel<DH, G, __nv_bfloat16>, grid, DEC_WARPS * 32, 0, s, a, *f)
                      : qa_cu_launch(dec_split_fused_kernel<DH, G, float>, grid, DEC_WARPS * 32, 0, s, a, *f);
    else
        err = kv_bf16 ? qa_cu_launch(dec_split_kernel<DH, G, __nv_bfloat16>, grid, DEC_WARPS * 32, 0, s, a)
                      : qa_cu_launch(dec_split_kernel<DH, G, float>, grid, DEC_WARPS * 32, 0, s, a);
    if (err != cudaSuccess)
        return err;
    return qa_cu_launch(dec_combine_kernel<DH>, a.H, DH < 32 ? 32 : DH < 128 ? DH : 128, 0, s, a);
}

/* The kernels of G query heads per kv head (qa_cu_attention_decode_supported: G is 1, 2, 4 or 8). */
template <int DH>
static cudaError_t launch_g(cudaStream_t s, const dec_args &a, const dec_fuse *f, int G, int kv_bf16, int grid_splits)
{
    switch (G) {
    case 1: return launch<DH, 1>(s, a, f, kv_bf16, grid_splits);
    case 2: return launch<DH, 2>(s, a, f, kv_bf16, grid_splits);
    case 4: return launch<DH, 4>(s, a, f, kv_bf16, grid_splits);
    default: return launch<DH, 8>(s, a, f, kv_bf16, grid_splits);
    }
}

/* Both forms: the grid (the slices of n keys, or the most a device position may need) and the head dim. */
static qa_status launch_dh(cudaStream_t s, const dec_args &a, const dec_fuse *f, int Dh, int kv_bf16, qa_err *e)
{
    int keys = a.pos_dev ? a.max_kv : a.n_host, splits = (keys + DEC_MIN_KEYS - 1) / DEC_MIN_KEYS;
    splits = splits < QA_CU_DEC_SPLITS ? splits : QA_CU_DEC_SPLITS;
    int G = a.H / a.Hk;
    cudaError_t err;
    switch (Dh) {
    case 16: err = launch_g<16>(s, a, f, G, kv_bf16, splits); break;
    case 32: err = launch_g<32>(s, a, f, G, kv_bf16, splits); break;
    case 64: err = launch_g<64>(s, a, f, G, kv_bf16, splits); break;
    default: err = launch_g<128>(s, a, f, G, kv_bf16, splits); break;
    }
    QA_CUDA_CHECK(e, err);
    return QA_OK;
}

int qa_cu_attention_decode_supported(int Dh, int H, int Hk)
{
    if (Hk <= 0 || H % Hk != 0 || H > 65535)
        return 0;
    int G = H / Hk;
    return (Dh == 16 || Dh == 32 || Dh == 64 || Dh == 128) && (G == 1 || G == 2 || G == 4 || G == 8);
}

qa_status qa_cu_attention_decode(cudaStream_t s, void *out, int out_bf16, const float *q, const void *k, int ldk,
                                 const void *v, int ldv, int kv_bf16, float *part, int H, int Hk, int Dh, int n,
                                 const int32_t *pos, int max_kv, float scale, qa_err *e)
{
    if (!qa_cu_attention_decode_supported(Dh, H, Hk))
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_decode: head dim %d with %d / %d heads not built", Dh, H, Hk);
    if (max_kv <= 0 || (!pos && (n <= 0 || n > max_kv)))
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_decode: %d keys of a %d-row cache", n, max_kv);
    dec_args a = {out, q, k, v, part, ldk, ldv, H, Hk, n, pos, max_kv, scale, out_bf16};
    return launch_dh(s, a, NULL, Dh, kv_bf16, e);
}

qa_status qa_cu_attention_decode_fused(cudaStream_t s, float *out, const float *q, const float *k, const float *v,
                                       const float *qw, const float *kw, void *kc, void *vc, int kv_bf16, float *part,
                                       int H, int Hk, int Dh, const int32_t *pos, int max_kv, float scale,
                                       const float *inv, float eps, qa_err *e)
{
    if (!qa_cu_attention_decode_supported(Dh, H, Hk) || !pos || max_kv <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_decode_fused: head dim %d with %d / %d heads, a %d-row cache "
                       "and %s position not built", Dh, H, Hk, max_kv, pos ? "a device" : "no");
    const int ld = Hk * Dh;
    dec_args a = {out, NULL, kc, vc, part, ld, ld, H, Hk, 0, pos, max_kv, scale, 0};
    dec_fuse f = {q, k, v, qw, kw, kc, vc, eps, {0}};
    memcpy(f.inv, inv, (size_t)(Dh / 2) * sizeof(float));
    return launch_dh(s, a, &f, Dh, kv_bf16, e);
}
