/* ops.cuh — the CUDA backend's kernel launchers, one group per .cu file (internal to libqa_cuda.so).
 *
 * Conventions (the same as backend.h, STYLE.md §2.10): output first, then inputs, then dimensions
 * with the fixed letters (T tokens, D hidden, H heads, Hk kv heads, Dh head dim, F ffn, V vocab,
 * C channels); all pointers are device pointers; activations are FP32, row-major, contiguous unless a
 * row stride `ld*` (in elements) is given. Weights are `const void *` plus their qa_dtype (QA_BF16 on
 * the GPU by default, QA_F32 for dtype="float32"). Every launcher enqueues on stream s, checks the
 * launch (QA_LAUNCH_CHECK) and returns qa_status; nothing synchronises unless it says so.
 * In-place use (out == x) is allowed where the comment says "in place ok".
 */
#ifndef QA_CUDA_OPS_CUH
#define QA_CUDA_OPS_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_check.h"

extern "C" {
#include "../../model/weights.h"
#include "../cuda_scratch.h" /* QA_CUDA_DEC_SPLITS; backend.h's QA_STEP_* */
}

/* Read element i of a weight vector stored as BF16 or FP32 (the two compute dtypes). */
template <typename W> __device__ __forceinline__ float qa_ld(const W *p, size_t i);
template <> __device__ __forceinline__ float qa_ld<float>(const float *p, size_t i) { return p[i]; }
template <> __device__ __forceinline__ float qa_ld<__nv_bfloat16>(const __nv_bfloat16 *p, size_t i)
{
    return __bfloat162float(p[i]);
}

/* The exact (erf) GELU of nn.GELU(), one expression for act.cu's passes and conv.cu's deferred activation, so
 * both give the same bits. */
__device__ __forceinline__ float qa_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

/* silu(g) · u of the SwiGLU MLP, one expression for act.cu's silu·mul kernels and norm_gemm.cu's fused decode
 * MLP, so every path gives the same bits. */
__device__ __forceinline__ float qa_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* Sum over a warp (all 32 lanes active). */
__device__ __forceinline__ float qa_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum of v over the block (blockDim.x a multiple of 32); part: __shared__ float[32]. Every thread gets the
 * total, and part is free again on return. */
__device__ __forceinline__ float qa_block_sum(float v, float *part)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = qa_warp_sum(v);
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.f;
    v = qa_warp_sum(v);
    __syncthreads();
    return v;
}

/* Four values to an FP32 row, or rounded to nearest even into a BF16 row (a GEMM's staged operand). */
__device__ __forceinline__ void qa_store4(float *p, float4 v) { *(float4 *)p = v; }
__device__ __forceinline__ void qa_store4(__nv_bfloat16 *p, float4 v)
{
    __nv_bfloat162 *q = (__nv_bfloat162 *)p;
    q[0] = __floats2bfloat162_rn(v.x, v.y);
    q[1] = __floats2bfloat162_rn(v.z, v.w);
}

/* out[0, D) = x · rsqrt(mean(x²) + eps) · w for one row, by the whole block (Qwen3RMSNorm, FP32 math, then
 * rounded to O): D % 4 == 0, x 16-byte and out 4·sizeof(O)-byte aligned. norm.cu's row kernel and
 * norm_gemm.cu's fused GEMV both normalise with it, so with equal block sizes they give the same bits. */
template <typename W, typename O>
__device__ __forceinline__ void qa_rmsnorm_row(O *out, const float *x, const W *w, int D, float eps, float *part)
{
    const float4 *xr = (const float4 *)x;
    const int D4 = D / 4;
    float s = 0.f;
    for (int i = threadIdx.x; i < D4; i += blockDim.x) {
        float4 v = xr[i];
        s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    const float r = rsqrtf(qa_block_sum(s, part) / D + eps);
    for (int i = threadIdx.x; i < D4; i += blockDim.x) {
        float4 v = xr[i];
        qa_store4(out + 4 * i, make_float4(v.x * r * qa_ld(w, 4 * i), v.y * r * qa_ld(w, 4 * i + 1),
                                           v.z * r * qa_ld(w, 4 * i + 2), v.w * r * qa_ld(w, 4 * i + 3)));
    }
}

/* Eight BF16 (one 16-byte load) as FP32, in order. */
__device__ __forceinline__ void qa_bf16x8(uint4 raw, float f[8])
{
    const __nv_bfloat162 *p = (const __nv_bfloat162 *)&raw;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float2 v = __bfloat1622float2(p[j]);
        f[2 * j] = v.x;
        f[2 * j + 1] = v.y;
    }
}

/* Attention masks (backend.h attention): the visible keys [lo, hi) of the query at absolute position p
 * among Tk keys: inside its window of `window` positions when window > 0, keys <= p when causal. */
__device__ __forceinline__ void qa_attn_key_range(int p, int Tk, int window, int causal, int *lo, int *hi)
{
    int l = 0, h = Tk;
    if (window > 0) {
        l = (p / window) * window;
        h = min(h, l + window);
    }
    if (causal)
        h = min(h, p + 1);
    *lo = l;
    *hi = h;
}

/* What every attention launcher checks first: whole GQA groups, and H fitting the grid's y dimension. */
static inline qa_status qa_cu_attention_heads_ok(const char *who, int H, int Hk, qa_err *e)
{
    if (Hk <= 0 || H % Hk != 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: %d query heads not a multiple of %d kv heads", who, H, Hk);
    if (H > 65535)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: %d heads exceed the grid limit", who, H);
    return QA_OK;
}

/* Reject a weight dtype the kernels were not built for. */
qa_status qa_cu_check_wdtype(qa_dtype t, const char *what, qa_err *e);

/* ---- norm.cu ---------------------------------------------------------------------------------- */
/* out[r] = (x[r] - mean) / sqrt(var + eps) * w + b over D, rows r < T (nn.LayerNorm). in place ok. */
/* layernorm rounded to BF16 (a GEMM's staged operand, ln_gemm.cu): D % 4 == 0, D <= 4096, x 16-byte and out
 * 8-byte aligned; FP32 w, b. */
qa_status qa_cu_layernorm_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, const float *w, const float *b,
                               int T, int D, float eps, qa_err *e);
qa_status qa_cu_layernorm(cudaStream_t s, float *out, const float *x, const void *w, const void *b,
                          qa_dtype wt, int T, int D, float eps, qa_err *e);
/* out[r] = x[r] * rsqrt(mean(x[r]^2) + eps) * w over D, rows r < R (Qwen3RMSNorm). With R = T*H and
 * D = Dh it is the per-head q_norm / k_norm. in place ok. */
qa_status qa_cu_rmsnorm(cudaStream_t s, float *out, const float *x, const void *w, qa_dtype wt, int R, int D,
                        float eps, qa_err *e);
/* The same rows rounded to BF16: a GEMM's staged operand (norm_gemm.cu), the bits gemm.cu's staging of the
 * FP32 rmsnorm output would hold. w FP32. */
qa_status qa_cu_rmsnorm_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, const float *w, int R, int D,
                             float eps, qa_err *e);

/* ---- rope.cu ---------------------------------------------------------------------------------- */
/* In place x[T, E] += sinusoid(t mod period) (backend.h add_sinusoid). */
qa_status qa_cu_add_sinusoid(cudaStream_t s, float *x, long long T, int E, long long period, qa_err *e);

/* ---- qkv.cu ----------------------------------------------------------------------------------- */
/* backend.h qkv_prep: per head of row t at position p = (pos_dev ? pos_dev[0] : pos0) + t (pos_dev read
 * when the kernel runs): qo [T, H*Dh] <- rope_p(rmsnorm(q) * qw) (q row stride ldq; qo == q in place when
 * ldq == H*Dh); kdst row p <- rope_p(rmsnorm(k) * kw), vdst row p <- v (k, v row stride ldkv), as BF16
 * (kv_bf16) or FP32; rows p outside [0, max_rows) of kdst / vdst skipped. inv: host [Dh/2],
 * qa_cu_rope_inv(theta). qw, kw FP32 [Dh]. Dh, ldq, ldkv % 4 == 0, Dh <= QA_CU_QKV_MAX_DH; T * (H + 2 Hk),
 * T * ldq, T * ldkv and (max_rows + T) * Hk * Dh within int. kdst == k / vdst == v only for FP32, ldkv == Hk*Dh,
 * pos_dev NULL and pos0 == 0. */
#define QA_CU_QKV_MAX_DH 256
qa_status qa_cu_qkv_prep(cudaStream_t s, float *qo, const float *q, int ldq, void *kdst, void *vdst, int kv_bf16,
                         const float *k, const float *v, int ldkv, const float *qw, const float *kw, int T, int H, int Hk,
                         int Dh, int pos0, const int32_t *pos_dev, int max_rows, const float *inv, float eps, qa_err *e);
/* inv[0, Dh/2) = the RoPE frequencies of theta (host; qkv_prep's `inv`). */
void qa_cu_rope_inv(float *inv, int Dh, float theta);

/* ---- act.cu ----------------------------------------------------------------------------------- */
qa_status qa_cu_gelu(cudaStream_t s, float *out, const float *x, size_t n, qa_err *e);          /* erf GELU */
/* out = BF16(gelu(x)), rounded to nearest even: what qa_cu_gelu then gemm.cu's staging make of x (ln_mlp) */
qa_status qa_cu_gelu_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, size_t n, qa_err *e);
/* out[r, c] (row stride ldo) = silu(gate[r, c]) * up[r, c] (gate, up row stride ld; the two halves of norm_mlp's
 * [rows, 2F] g | u buffer), c < F, r < rows: FP32, or rounded to BF16 (the down GEMM's staged operand).
 * out may be gate (ldo == ld). */
qa_status qa_cu_silu_mul(cudaStream_t s, float *out, int ldo, const float *gate, const float *up, int ld, int rows,
                         int F, qa_err *e);
qa_status qa_cu_silu_mul_bf16(cudaStream_t s, __nv_bfloat16 *out, int ldo, const float *gate, const float *up, int ld,
                              int rows, int F, qa_err *e);
/* qa_cu_silu_mul_bf16 with gate and up BF16 (norm_mlp's gate | up GEMM output rounded to BF16, as torch's bf16
 * Linear returns it): out[r, c] = BF16(silu(g) * u), the formula in FP32 on the BF16 values. out must not overlap
 * gate / up. */
qa_status qa_cu_silu_mul_bf16in(cudaStream_t s, __nv_bfloat16 *out, int ldo, const __nv_bfloat16 *gate,
                                const __nv_bfloat16 *up, int ld, int rows, int F, qa_err *e);
qa_status qa_cu_add(cudaStream_t s, float *out, const float *a, const float *b, size_t n, qa_err *e);
/* In place over n elements: x[i] += bias[(i / inner) % D] (bias may be NULL), then GELU when gelu != 0.
 * inner = 1: row bias of [T, D]; inner = Ho*Wo: channel bias of [N, D, Ho, Wo]. */
qa_status qa_cu_bias_act(cudaStream_t s, float *x, const float *bias, size_t n, int D, size_t inner, int gelu,
                         qa_err *e);

/* ---- convert.cu ------------------------------------------------------------------------------- */
qa_status qa_cu_f32_to_bf16(cudaStream_t s, __nv_bfloat16 *out, const float *x, size_t n, qa_err *e);
/* out[t*K + i] = bf16(x[t*ldx + i]) for t < T, i < K (a strided activation into packed staging). */
qa_status qa_cu_f32_to_bf16_rows(cudaStream_t s, __nv_bfloat16 *out, const float *x, int T, int K, int ldx,
                                 qa_err *e);
qa_status qa_cu_bf16_to_f32(cudaStream_t s, float *out, const __nv_bfloat16 *x, size_t n, qa_err *e);
/* Weight upload: n elements of src (QA_BF16, QA_F16 or QA_F32, as stored in the checkpoint) to dst in
 * the compute dtype dt (QA_BF16 or QA_F32), bit-equal to weights/convert.c (NaN payloads included).
 * Same dtype is a device copy. */
qa_status qa_cu_convert(cudaStream_t s, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                        qa_err *e);

/* ---- embed.cu --------------------------------------------------------------------------------- */
/* out[t, :] = table[ids[t], :] (table [V, D] in wt); ids outside [0, V) give zero rows and set
 * *bad (device int, may be NULL) to 1. */
qa_status qa_cu_embed(cudaStream_t s, float *out, const void *table, qa_dtype wt, const int32_t *ids, int T,
                      int D, int V, int *bad, qa_err *e);

/* ---- gemv.cu ---------------------------------------------------------------------------------- */
#define QA_CU_GEMV_MAX_ROWS 4
/* Whether qa_cu_gemv_bf16 takes these operands: 1..4 rows, K % 8 == 0, 16-byte aligned x rows and W. */
int qa_cu_gemv_bf16_fits(const float *x, int ldx, const void *W, int T, int K);
/* y[T, N] (stride ldy) = bf16(x[T, K]) (stride ldx) W[N, K]^T + beta y, W BF16 row-major, FP32 sums. */
qa_status qa_cu_gemv_bf16(cudaStream_t s, float *y, int ldy, const float *x, int ldx, const void *W, int T, int N,
                          int K, float beta, qa_err *e);

/* ---- norm_gemm.cu ----------------------------------------------------------------------------- */
/* Decode rows of norm_gemm / norm_mlp in one launch: every block normalises x [T, K] itself (qa_rmsnorm_row,
 * rounded to BF16 into shared memory), then each warp streams the BF16 weight rows of its outputs. */
typedef struct qa_cu_ngemv_seg { /* one weight of a norm_gemm: y [T, N] (row stride N) += W [N, K] */
    const void *W;
    float *y;
    int N;
} qa_cu_ngemv_seg;
/* Whether the fused decode kernel takes these operands: 1..4 rows, K % 8 == 0, x and every W 16-byte
 * aligned, and T·K BF16 values in 48 KiB of shared memory. */
int qa_cu_norm_gemv_fits(const float *x, const void *const W[], int n, int T, int K);
/* silu == 0: seg[i].y = bf16(RMSNorm(x)) seg[i].W^T + beta seg[i].y for i < n (the outputs of n <= 3 weights
 * as one grid). silu != 0: n == 2 (gate, up of width N = seg[0].N = seg[1].N), seg[0].y [T, N] =
 * silu(h Wg^T) * (h Wu^T) with h = bf16(RMSNorm(x)), FP32, beta unused. w: the norm weight, FP32 [K]. */
qa_status qa_cu_norm_gemv(cudaStream_t s, const qa_cu_ngemv_seg *seg, int n, int silu, const float *x,
                          const float *w, float eps, int T, int K, float beta, qa_err *e);

/* ---- argmax.cu -------------------------------------------------------------------------------- */
#define QA_CU_MAX_SUPPRESS 16
typedef struct qa_cu_suppress { /* ids treated as -inf, passed by value to the kernel */
    int n;
    int ids[QA_CU_MAX_SUPPRESS];
} qa_cu_suppress;
typedef struct qa_cu_argmax_part { /* one block's slice of a row: max, its first index, sum exp(x - max) */
    float m;
    int i;
    float s;
} qa_cu_argmax_part;
#define QA_CU_ARGMAX_SLICE 4096 /* logits per block when a long row is split */
/* Bytes of work area the split path needs for R rows of N (0: one block per row). */
size_t qa_cu_argmax_split_bytes(int R, int N);
/* Per row r < R of x [R, N]: idx[r] = first argmax (torch semantics), prob[r] = softmax(x[r])[idx]
 * (prob may be NULL). work: device scratch for the split path (used when work_bytes suffices).
 * state (device, may be NULL; then R = 1): backend.h step state — sup applies only while
 * state[QA_STEP_INDEX] < state[QA_STEP_MIN_NEW], and ids[state[QA_STEP_INDEX]] (< cap) gets idx[0]. */
qa_status qa_cu_argmax(cudaStream_t s, int32_t *idx, float *prob, const float *x, int R, int N,
                       const qa_cu_suppress *sup, void *work, size_t work_bytes, const int32_t *state, int32_t *ids,
                       int cap, qa_err *e);

/* ---- conv.cu ---------------------------------------------------------------------------------- */
/* y[n, 0, m, t] = feat[m*ld + f] if f = frame0 + n*L + t < valid, else 0 (backend.h mel_chunks). */
qa_status qa_cu_mel_chunks(cudaStream_t s, float *y, const float *feat, int M, long long ld, long long frame0,
                           long long valid, int N, int L, qa_err *e);
/* im2col of a 3x3, stride 2, pad 1 convolution over N images x [N, Cin, Hi, Wi]:
 * col[n][(ci*9 + ky*3 + kx)][oy*Wo + ox] (BF16 when bf16 != 0, else FP32), Ho = (Hi-1)/2+1,
 * Wo = (Wi-1)/2+1, zero padding. xb (may be NULL): the input is GELU(x + xb[ci]) (a deferred bias + GELU).
 * x8: BF16 rows of Ho*Wo % 8 == 0 columns may go through the 16-byte-store kernel (the same bits). */
qa_status qa_cu_im2col3s2(cudaStream_t s, void *col, int bf16, int x8, const float *x, const float *xb, int N,
                          int Cin, int Hi, int Wi, qa_err *e);
/* The same convolution for Cin = 1, direct: y[N, Cout, Ho, Wo] = act(conv(x, w) + b) (b may be NULL, GELU when
 * gelu != 0); w [Cout, 9] BF16 (bf16 != 0: x rounded to BF16 first) or FP32. */
qa_status qa_cu_conv1ch3s2(cudaStream_t s, float *y, const float *x, const void *w, int bf16, const float *b, int N,
                           int Hi, int Wi, int Cout, int gelu, qa_err *e);
/* conv1 then conv2's im2col, fused (BF16 weights): col[n][(ci*9 + ky*3 + kx)][oy*W2 + ox] (BF16) of the map
 * GELU(conv(x[N, 1, Hi, Wi], w) + b) (w [C1, 9] BF16, b [C1] or NULL), bit-equal to qa_cu_conv1ch3s2 (gelu) then
 * qa_cu_im2col3s2 (bf16); only where qa_cu_conv1_im2col_fits(Hi, Wi) (the conv1 planes fit shared memory). */
int qa_cu_conv1_im2col_fits(int Hi, int Wi);
qa_status qa_cu_conv1_im2col(cudaStream_t s, void *col, const float *x, const void *w, const float *b, int N, int C1,
                             int Hi, int Wi, qa_err *e);
/* [N, C, Fq, Tt] conv output -> [N, Tt, C*Fq] rows for conv_out (feature index c*Fq + f); xb (may be NULL):
 * GELU(x + xb[c]) is written instead of x. */
qa_status qa_cu_conv_flatten(cudaStream_t s, float *out, const float *x, const float *xb, int N, int C, int Fq,
                             int Tt, qa_err *e);

/* ---- attention.cu ----------------------------------------------------------------------------- */
/* Fused softmax(q k^T * scale) v without storing scores (flash-style online softmax, fp32).
 * q [Tq, H, Dh] (row stride ldq), k, v [Tk, Hk, Dh] (row strides ldk, ldv; FP32, or BF16 when kv_bf16:
 * a BF16 KV cache, converted exactly as loaded), out [Tq, H, Dh] (ldo), FP32 or BF16 (out_bf16: attn_out.cuh).
 * Query i sits at absolute position q0 + i; key j at position j. causal: keys j <= q0 + i.
 * window > 0: bidirectional inside consecutive windows of `window` positions (key j visible to
 * query i iff j / window == (q0 + i) / window). GQA: query head h reads kv head h / (H / Hk).
 * Dh must be 16, 32, 64 or 128. */
qa_status qa_cu_attention(cudaStream_t s, void *out, int out_bf16, int ldo, const float *q, int ldq, const void *k,
                          int ldk, const void *v, int ldv, int kv_bf16, int Tq, int Tk, int H, int Hk, int Dh, int q0,
                          int causal, int window, float scale, qa_err *e);

/* ---- attention_enc.cu ------------------------------------------------------------------------- */
/* The audio encoder's windowed attention for dtype="bfloat16" (issue #6): qa_cu_attention_tc's numerics
 * (q, k, v rounded to BF16, FP32 scores and softmax, P rounded to BF16 for P V) with one block per
 * (window, head) and an exact softmax over the window. q [T, H, 64] (ldq), k, v FP32 [T, H, 64] (ldkv),
 * out [T, H, 64] (ldo) FP32 or BF16 (out_bf16: attn_out.cuh); bidirectional inside consecutive windows of
 * `window` positions (0: one window of all T), nothing across. _fits: the call is that case (Dh 64, no
 * GQA, FP32 K / V, not causal, q0 0, Tq == Tk > 0, windows of at most QA_CU_ENC_MAX_WINDOW) with
 * qa_cu_attention_tc_supported's alignment. */
#define QA_CU_ENC_MAX_WINDOW 112
int qa_cu_attention_enc_fits(int Dh, int H, int Hk, int kv_bf16, int causal, int q0, int Tq, int Tk, int window,
                             const float *q, int ldq, const void *k, const void *v, int ldkv, const void *out, int ldo);
qa_status qa_cu_attention_enc(cudaStream_t s, void *out, int out_bf16, int ldo, const float *q, int ldq,
                              const float *k, const float *v, int ldkv, int T, int H, int window, float scale,
                              qa_err *e);

/* ---- attention_decode.cu ---------------------------------------------------------------------- */
/* One causal query row (a decode step) against n keys, split over the keys (flash-decoding), FP32 math:
 * out [H*Dh] = softmax(q [H*Dh] . k[0..n)^T * scale) v[0..n), GQA as qa_cu_attention; k, v rows of
 * stride ldk, ldv in a cache of max_kv rows, FP32 or BF16 (kv_bf16, loads converted exactly). pos (device int32, may be NULL): n = pos[0] + 1 read when
 * the kernels run (the grid then covers the most slices of max_kv keys). part: scratch of
 * H * QA_CUDA_DEC_SPLITS * (Dh + 2) floats. Same numbers for a host n and a device pos[0] = n - 1.
 * cnt: NULL, a second kernel merges the slices; else QA_CU_SYNC_DEC_HEADS zeroed device counters (cuda_scratch.h),
 * left at zero: the last slice block of each kv head merges (same bits; Hk above that count: two kernels).
 * _supported: Dh 16 / 32 / 64 / 128 and H / Hk in 1, 2, 4, 8. */
int qa_cu_attention_decode_supported(int Dh, int H, int Hk);
qa_status qa_cu_attention_decode(cudaStream_t s, void *out, int out_bf16, const float *q, const void *k, int ldk,
                                 const void *v, int ldv, int kv_bf16, float *part, unsigned *cnt, int H, int Hk,
                                 int Dh, int n, const int32_t *pos, int max_kv, float scale, qa_err *e);
#define QA_CU_DEC_SPLITS QA_CUDA_DEC_SPLITS
#define QA_CU_SYNC_DEC_HEADS ((int)(QA_CUDA_SYNC_BYTES / sizeof(unsigned))) /* arrival counters: one per kv head */

/* ---- step.cu ---------------------------------------------------------------------------------- */
/* state[QA_STEP_POS] += 1, state[QA_STEP_INDEX] += 1. */
qa_status qa_cu_step_advance(cudaStream_t s, int32_t *state, qa_err *e);
/* The condition of a device loop over decode steps (backend.h graph_begin_loop), passed by value. */
typedef struct qa_cu_loop {
    const int32_t *state; /* the step state: INDEX, LIMIT */
    const int32_t *tok;   /* [1] the token the step just picked */
    qa_cu_suppress stop;  /* the ids that end the loop (EOS) */
    int block;            /* the loop also ends when INDEX reaches a multiple of this */
} qa_cu_loop;
/* Enqueue the kernel that ends one run of the loop's body: it sets handle to whether the body runs again (loop as
 * graph_begin_loop checked it: block >= 1, at most QA_CU_MAX_SUPPRESS stop ids). */
qa_status qa_cu_step_continue(cudaStream_t s, cudaGraphConditionalHandle handle, const qa_cu_loop *loop, qa_err *e);

/* ---- attention_tc.cu -------------------------------------------------------------------------- */
/* Which tensor-core attention kernel runs, and what the device allows it: set once when the context
 * opens (qa_cu_attention_tc_setup), read by every call. kernel: QA_CUDA_ATTN's choice — AUTO
 * (attention_mma.cu, 64- or 128-row blocks by its own rule), MMA64 / MMA128 (that tiling; 128 rows only
 * with BF16 K / V and where it fits), WMMA (attention_tc.cu's first kernel), WGMMA / WGMMA1 (attention_wgmma.cu's
 * warp-specialized or first kernel for the causal BF16 K / V head dim 128 calls on Hopper, AUTO's choice for
 * the others). AUTO takes attention_wgmma.cu's first kernel where it applies. */
enum { QA_CU_TC_AUTO = 0, QA_CU_TC_MMA64 = 1, QA_CU_TC_MMA128 = 2, QA_CU_TC_WMMA = 3, QA_CU_TC_WGMMA = 4,
       QA_CU_TC_WGMMA1 = 5 };
typedef struct qa_cu_tc_dev {
    int kernel;     /* QA_CU_TC_* */
    int smem_optin; /* cudaDevAttrMaxSharedMemoryPerBlockOptin: bytes of shared memory a block may have */
    int sms;        /* multiprocessors */
    int wgmma;      /* attention_wgmma.cu's kernels set up (kernel AUTO, WGMMA or WGMMA1 on a compute capability 9.0
                       device): 0 none, 1 the first kernel, 2 the warp-specialized one (and its split variant) */
    int split;      /* QA_CUDA_ATTN_SPLIT: where wgmma is 2, attention_wgmma.cu's split kernel for short sequences
                       -1 (unset) by grid size when kernel is AUTO, 0 never, 1 always */
} qa_cu_tc_dev;
/* For the current device (the context's, made current by the caller): fills d (kernel and split as given)
 * and raises the dynamic shared-memory limit of every tensor-core attention kernel `kernel` can launch (the
 * mma.sync ones; the WMMA ones when chosen) that the device allows, so no launch needs a runtime query
 * or attribute call. */
qa_status qa_cu_attention_tc_setup(qa_cu_tc_dev *d, int kernel, int split, qa_err *e);

/* The same attention on BF16 tensor cores (dtype="bfloat16"): q, k, v rounded to BF16 when staged,
 * FP32 scores / softmax / accumulation, P rounded to BF16 for P V. k, v are FP32 (kv_bf16 = 0) or BF16
 * (a BF16 KV cache). Dh 64 or 128 only; q, k, v, out 16-byte aligned with row strides of 16 bytes
 * multiples (see _supported). d (borrowed): the context's qa_cu_tc_dev, which picks the kernel. */
int qa_cu_attention_tc_supported(int Dh, const float *q, int ldq, const void *k, int ldk, const void *v, int ldv,
                                 int out_ld, const void *out, int kv_bf16);
qa_status qa_cu_attention_tc(cudaStream_t s, void *out, int out_bf16, int ldo, const float *q, int ldq,
                             const void *k, int ldk, const void *v, int ldv, int kv_bf16, int Tq, int Tk, int H,
                             int Hk, int Dh, int q0, int causal, int window, float scale, const qa_cu_tc_dev *d,
                             qa_err *e);

/* ---- attention_mma.cu ------------------------------------------------------------------------- */
/* qa_cu_attention_tc's default kernel (mma.sync m16n8k16, S / O / softmax in registers) on the arguments
 * qa_cu_attention_tc has checked (heads, Tq > 0, qa_cu_attention_tc_supported); scale_log2 = scale · log2 e. */
typedef struct qa_cu_tc_args {
    void *out; /* FP32, or BF16 when out_bf16 (attn_out.cuh) */
    const float *q;
    const void *k, *v;
    int ldo, ldq, ldk, ldv;
    int Tq, Tk, H, Hk, q0, causal, window;
    float scale_log2; /* softmax in base 2 */
    int out_bf16;
} qa_cu_tc_args;
qa_status qa_cu_attention_mma(cudaStream_t s, const qa_cu_tc_args &a, int Dh, int kv_bf16, const qa_cu_tc_dev *d,
                              qa_err *e);
/* qa_cu_attention_tc_setup's part for these kernels: the shared-memory limit of each that fits optin bytes. */
qa_status qa_cu_attention_mma_setup(int optin, qa_err *e);

/* ---- attention_wgmma.cu ----------------------------------------------------------------------- */
/* The wgmma (sm_90a) kernels of the causal BF16 K / V head dim 128 calls (the default on Hopper: the
 * warp-specialized one, or its split variant where that one's grid fits one wave (d->split); QA_CUDA_ATTN=wgmma
 * the warp-specialized one, wgmma1 the first), same numerics as qa_cu_attention_mma, on the arguments
 * qa_cu_attention_tc has checked. _setup (d->smem_optin, d->kernel filled): on a compute capability 9.0 device
 * with the shared memory they need, raises their limits and sets d->wgmma (which kernel). _fits:
 * d->wgmma and a call it covers (causal, no window, Dh 128, BF16 K / V); the others go to
 * qa_cu_attention_mma. */
qa_status qa_cu_attention_wgmma_setup(qa_cu_tc_dev *d, qa_err *e);
int qa_cu_attention_wgmma_fits(const qa_cu_tc_args &a, int Dh, int kv_bf16, const qa_cu_tc_dev *d);
qa_status qa_cu_attention_wgmma(cudaStream_t s, const qa_cu_tc_args &a, const qa_cu_tc_dev *d, qa_err *e);

#endif
