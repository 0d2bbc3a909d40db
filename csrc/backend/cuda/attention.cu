/* attention.cu — fused scaled-dot-product attention (flash-style online softmax, FP32 on CUDA cores).
 *
 * Contract: ops.cuh (qa_cu_attention). Never stores the T x T score matrix: each block keeps 16 query
 * rows of one head in shared memory, walks the visible keys in tiles of 32 (K, V staged in shared
 * memory), and folds each tile into running (max m, sum l, acc) per query, the FlashAttention
 * recurrence: m' = max(m, max_j s_j), acc = acc * e^(m - m') + sum_j e^(s_j - m') v_j, l likewise;
 * out = acc / l. Inside a warp, lane j scores key j of the tile (q from shared memory is a broadcast,
 * K rows are padded by one float so the 32 lanes hit 32 banks), then each lane owns Dh/32 output
 * columns and accumulates p_j v_j with p_j broadcast by shuffle.
 * Masks (MODEL_FACTS §4.6, §5): encoder — bidirectional inside windows of 104 tokens, nothing across
 * (transformers' cu_seqlens); decoder — causal with GQA (kv head = h / (H / Hk)), queries at absolute
 * positions q0 + i against a cache of Tk keys. Softmax in fp32 as in transformers' eager/sdpa path.
 * K / V are FP32 or a BF16 KV cache (template parameter KV; staged into shared memory as FP32, exactly).
 */
#include <math.h>

#include "attn_out.cuh"
#include "ops.cuh"

#define BQ 16     /* query rows per block */
#define QPW 4     /* query rows per warp */
#define BK 32     /* keys per tile (one per lane) */
#define WARPS (BQ / QPW)

struct attn_args {
    void *out; /* FP32, or BF16 when out_bf16 (attn_out.cuh) */
    const float *q;
    const void *k, *v; /* KV elements (FP32 or BF16) */
    int ldo, ldq, ldk, ldv;
    int Tq, Tk, H, Hk, q0, causal, window;
    float scale;
    int out_bf16;
};

/* Visible keys [lo, hi) of the query at absolute position p. */
template <typename A> __device__ __forceinline__ void key_range(const A &a, int p, int *lo, int *hi)
{
    qa_attn_key_range(p, a.Tk, a.window, a.causal, lo, hi);
}

template <int DH, typename KV> __global__ void __launch_bounds__(WARPS * 32) attention_kernel(attn_args a)
{
    constexpr int C = (DH + 31) / 32; /* output columns per lane (lanes >= DH idle when DH < 32) */
    __shared__ float Qs[BQ][DH];
    __shared__ float Ks[BK][DH + 1];
    __shared__ float Vs[BK][DH];
    const int h = blockIdx.y, kvh = h / (a.H / a.Hk);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int i0 = blockIdx.x * BQ;
    const KV *K = (const KV *)a.k, *V = (const KV *)a.v;

    for (int x = tid; x < BQ * DH; x += WARPS * 32) {
        int r = x / DH, d = x % DH;
        Qs[r][d] = (i0 + r < a.Tq) ? a.q[(size_t)(i0 + r) * a.ldq + (size_t)h * DH + d] * a.scale : 0.f;
    }
    /* Keys any query of this block can see: lo of the first row, hi of the last (both monotone). */
    int last = min(i0 + BQ, a.Tq) - 1, klo, khi, dummy;
    key_range(a, a.q0 + i0, &klo, &dummy);
    key_range(a, a.q0 + last, &dummy, &khi);

    int qlo[QPW], qhi[QPW];
    float m[QPW], l[QPW], acc[QPW][C];
#pragma unroll
    for (int r = 0; r < QPW; r++) {
        int i = i0 + warp * QPW + r;
        if (i < a.Tq)
            key_range(a, a.q0 + i, &qlo[r], &qhi[r]);
        else
            qlo[r] = qhi[r] = 0;
        m[r] = -INFINITY;
        l[r] = 0.f;
#pragma unroll
        for (int c = 0; c < C; c++)
            acc[r][c] = 0.f;
    }

    for (int j0 = klo; j0 < khi; j0 += BK) {
        __syncthreads(); /* previous tile fully consumed (and Qs written on the first pass) */
        for (int x = tid; x < BK * DH; x += WARPS * 32) {
            int r = x / DH, d = x % DH, j = j0 + r;
            bool ok = j < khi;
            Ks[r][d] = ok ? qa_ld(K, (size_t)j * a.ldk + (size_t)kvh * DH + d) : 0.f;
            Vs[r][d] = ok ? qa_ld(V, (size_t)j * a.ldv + (size_t)kvh * DH + d) : 0.f;
        }
        __syncthreads();
        float s[QPW];
#pragma unroll
        for (int r = 0; r < QPW; r++)
            s[r] = 0.f;
        for (int d = 0; d < DH; d++) {
            float kd = Ks[lane][d];
#pragma unroll
            for (int r = 0; r < QPW; r++)
                s[r] += Qs[warp * QPW + r][d] * kd;
        }
        const int j = j0 + lane;
#pragma unroll
        for (int r = 0; r < QPW; r++) {
            if (j0 >= qhi[r] || j0 + BK <= qlo[r]) /* warp-uniform: tile invisible to this row */
                continue;
            float sc = (j >= qlo[r] && j < qhi[r]) ? s[r] : -INFINITY;
            float tm = sc;
            for (int o = 16; o > 0; o >>= 1)
                tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, o));
            float mn = fmaxf(m[r], tm); /* finite: the tile holds at least one visible key */
            float corr = expf(m[r] - mn);
            float p = expf(sc - mn);
            l[r] = l[r] * corr + qa_warp_sum(p);
            m[r] = mn;
#pragma unroll
            for (int c = 0; c < C; c++)
                acc[r][c] *= corr;
            for (int jj = 0; jj < BK; jj++) {
                float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int c = 0; c < C; c++)
                    if (DH % 32 == 0 || lane + 32 * c < DH)
                        acc[r][c] += pj * Vs[jj][lane + 32 * c];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < QPW; r++) {
        int i = i0 + warp * QPW + r;
        if (i >= a.Tq)
            continue;
        float inv = l[r] > 0.f ? 1.0f / l[r] : 0.f;
#pragma unroll
        for (int c = 0; c < C; c++)
            if (DH % 32 == 0 || lane + 32 * c < DH)
                qa_attn_put(a.out, a.out_bf16, (size_t)i * a.ldo + (size_t)h * DH + lane + 32 * c, acc[r][c] * inv);
    }
}

template <int DH> static void launch(cudaStream_t s, const attn_args &a, int kv_bf16)
{
    dim3 grid(qa_cuda_blocks((size_t)a.Tq, BQ), a.H);
    if (kv_bf16)
        attention_kernel<DH, __nv_bfloat16><<<grid, WARPS * 32, 0, s>>>(a);
    else
        attention_kernel<DH, float><<<grid, WARPS * 32, 0, s>>>(a);
}

qa_status qa_cu_attention(cudaStream_t s, void *out, int out_bf16, int ldo, const float *q, int ldq, const void *k,
                          int ldk, const void *v, int ldv, int kv_bf16, int Tq, int Tk, int H, int Hk, int Dh, int q0,
                          int causal, int window, float scale, qa_err *e)
{
    QA_TRY(qa_cu_attention_heads_ok("attention", H, Hk, e));
    if (Tq <= 0)
        return QA_OK;
    attn_args a = {out, q, k, v, ldo, ldq, ldk, ldv, Tq, Tk, H, Hk, q0, causal, window, scale, out_bf16};
    switch (Dh) { /* the real models use 64 (encoder) and 128 (decoder); the test fixtures 16 */
    case 16: launch<16>(s, a, kv_bf16); break;
    case 32: launch<32>(s, a, kv_bf16); break;
    case 64: launch<64>(s, a, kv_bf16); break;
    case 128: launch<128>(s, a, kv_bf16); break;
    default: return QA_FAIL(e, QA_ERR_INTERNAL, "attention: head dim %d not built (16, 32, 64 or 128)", Dh);
    }
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
