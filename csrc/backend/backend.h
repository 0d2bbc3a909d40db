/* backend.h — the op table every model forward runs on, and the dimension vocabulary.
 *
 * The model code (csrc/model/, csrc/pipeline/) never touches numbers itself: it calls the ops of one
 * qa_backend, a struct of function pointers filled by qa_backend_cpu_init() (backend/cpu/ files,
 * C11 + OpenBLAS) or by qa_backend_cuda_init() exported from libqa_cuda.so (backend/cuda/ files,
 * dlopen()ed by the engine only when a CUDA device is asked for). Both implement the same contract.
 *
 * Basic usage (what csrc/model/ does):
 *     qa_backend be;  QA_TRY(qa_backend_cpu_init(&be, 0, &err));
 *     be.scratch = <view into the arena workspace>;  be.scratch_bytes = be.scratch_need(&be, &dims);
 *     QA_TRY(be.gemm(&be, y, x, &W, &bias, T, K, N, QA_ACT_NONE, 0, &err));   // y = x·Wᵀ + b
 *     ...
 *     be.destroy(&be);
 *
 * Conventions (ggml / llm.c style: output first, shapes in the prototype):
 * - Dimension letters, fixed for the whole code base:
 *     T tokens (rows), D text hidden, H query heads, Hk kv heads, Dh head dim, F ffn width,
 *     M mel bins, V vocab / classes, E encoder width (d_model), C conv channels (480),
 *     K / N the in / out width of a GEMM, R rows of a table.
 * - Activations are float32, row-major, contiguous, in BACKEND memory (device pointers on CUDA).
 *   A backend may compute internally in another precision (bf16 tensor cores) but reads and writes
 *   float32 here.
 * - Weights are qa_tensor (model/weights.h) in backend memory: dtype QA_F32 or QA_BF16 for ndim >= 2,
 *   always QA_F32 for 1-D tensors (biases, norm weights). Linear weights are PyTorch's (out, in).
 * - Integer arrays (token ids, argmax results) are int32 in backend memory unless a parameter says
 *   "host".
 * - Every op returns a qa_status and fills the caller's qa_err on failure (CUDA errors propagate,
 *   they never abort). Ops may run asynchronously (CUDA stream); copy() to the host and sync() wait.
 * - In-place use is allowed only where a prototype says so (y may == x).
 * - Ops allocate nothing: temporary memory comes from be->scratch, which the engine carves out of the
 *   arena workspace with the size be->scratch_need() reports for the model's largest dimensions.
 */
#ifndef QA_BACKEND_H
#define QA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../core/cancel.h"
#include "../core/status.h"
#include "../frontend/mel.h" /* the log-mel constants (bins, n_fft, hop): one definition for both sides */
#include "../model/weights.h"

#define QA_BACKEND_API_VERSION 9 /* 2: qa_backend.cancel; 3: qa_backend.dtype; 4: mel_tables + log_mel;
                                  * 5: decode-step state ops, graphs and decode_mode (layout changes);
                                  * 6: K / V of attention typed (BF16 KV cache), qkv_prep replaces the
                                  *    decoder's rope / rope_at / store_rows_at; norm_gemm and norm_mlp
                                  *    after gemm, silu_mul gone (layout and signatures change);
                                  * 7: ln_gemm after norm_mlp; conv2d and chunk_flatten take xb, the
                                  *    input's deferred bias + GELU (layout and signatures change);
                                  * 8: norm_gemm's and ln_gemm's ldy, norm_mlp's one gu buffer, qkv_prep's
                                  *    qo / ldq / ldkv, attention's ldq / ldkv: q, k, v and gate, up each
                                  *    from one GEMM; BF16 hand-offs: ln_mlp after ln_gemm, attention's
                                  *    out_dtype, gemm_in_dtype + gemm_bf16x after attention; conv2d_pair
                                  *    after conv2d (layout and signatures change);
                                  * 9: graph_begin_loop, decode_mode LOOP, state[QA_STEP_LIMIT]: the decode
                                  *    step recorded as the body of a device-side loop (layout changes) */

/* Optional activation fused into gemm / conv2d. GELU is the exact erf form (nn.GELU()). */
typedef enum qa_act { QA_ACT_NONE = 0, QA_ACT_GELU = 1 } qa_act;

#define QA_NORM_GEMM_MAX 3 /* weights of one norm_gemm: q, k, v */

typedef enum qa_copy_kind {
    QA_COPY_H2D = 0, /* host -> backend */
    QA_COPY_D2H = 1, /* backend -> host (synchronous: the data is on the host when it returns) */
    QA_COPY_D2D = 2  /* backend -> backend */
} qa_copy_kind;

/* The largest dimensions a backend's scratch must serve (filled by the engine from the plan). */
typedef struct qa_scratch_dims {
    int64_t max_kv;        /* longest key sequence of one attention call (Tkv) */
    int64_t max_q;         /* most query rows of one attention call (Tq) */
    int64_t max_heads;     /* H */
    int64_t max_gemm_k;    /* widest GEMM input K (conv: Cin*9) */
    int64_t max_gemm_n;    /* widest GEMM output N */
    int64_t max_im2col;    /* most elements of one conv2d im2col matrix: Cin*9*Ho*Wo of one chunk */
} qa_scratch_dims;

/* ---- log-mel on the backend: constant tables and per-request work (memory/plan.c sizes with these) ----
 * Tables (the arena's fixed "mel/tables" region, filled once at load by mel_tables): the
 * window-premultiplied DFT matrix, FP64 [2·F, n_fft] (rows k: w·cos, rows F + k: −w·sin, F = 201
 * onesided bins), then the Slaney filters FP32 [M, F]. Only CUDA reads them (the CPU backend runs
 * frontend/mel.c, which rebuilds its small tables per call in the work area), but the region is
 * planned on every device so that the plan differs between devices by the scratch only.
 * Work (workspace, per request): CUDA processes QA_MEL_TILE_FRAMES frames at a time: padded samples
 * FP64 [(F_t + 2)·hop], spectrum FP64 [F_t, 2·F], power FP32 [F_t, F], and one int for the max;
 * the CPU needs frontend/mel.c's workspace (qa_mel_workspace_bytes(), ~150 KB, checked at run time
 * against QA_MEL_CPU_WORK_BYTES). */
#define QA_MEL_FREQS (QA_MEL_N_FFT / 2 + 1)
#define QA_MEL_TILE_FRAMES 2048
#define QA_MEL_DFT_BYTES ((size_t)2 * QA_MEL_FREQS * QA_MEL_N_FFT * sizeof(double))
#define QA_MEL_TABLE_BYTES (QA_MEL_DFT_BYTES + (size_t)QA_MEL_BINS * QA_MEL_FREQS * sizeof(float))
#define QA_MEL_CPU_WORK_BYTES ((size_t)256 << 10)

static inline size_t qa_mel_align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* Bytes of log_mel's work area for n samples (the larger of the two backends' needs). */
static inline size_t qa_mel_work_bytes(int64_t n)
{
    int64_t T = (int64_t)qa_mel_frames(n > 0 ? (size_t)n : 0), F = T < QA_MEL_TILE_FRAMES ? T : QA_MEL_TILE_FRAMES;
    size_t cuda = qa_mel_align256((size_t)(F + 2) * QA_MEL_HOP * sizeof(double)) +
                  qa_mel_align256((size_t)F * 2 * QA_MEL_FREQS * sizeof(double)) +
                  qa_mel_align256((size_t)F * QA_MEL_FREQS * sizeof(float)) + 256;
    return cuda > QA_MEL_CPU_WORK_BYTES ? cuda : QA_MEL_CPU_WORK_BYTES;
}

/* Greedy decoding loop of pipeline/asr.c, chosen by the backend at init (qa_backend.decode_mode):
 * PLAIN: one step at a time with host positions, one 4-byte copy back per token (the reference loop);
 * STEPS: the step reads its position / index from the device state below and writes its token into a
 *        device array, launched op by op; the ids of a block of steps come back in one copy;
 * GRAPH: as STEPS, but the step is recorded once (graph_begin / graph_end) and replayed (graph_launch).
 * LOOP:  as GRAPH, but the recording is the body of a loop on the device (graph_begin_loop, API 9): one
 *        graph_launch runs the steps of a block until an EOS, with no host in between.
 * All four compute the same numbers: the same kernels run, only where the position comes from differs. */
typedef enum qa_decode_mode {
    QA_DECODE_PLAIN = 0,
    QA_DECODE_STEPS = 1,
    QA_DECODE_GRAPH = 2,
    QA_DECODE_LOOP = 3
} qa_decode_mode;

/* The decode-step state: int32[QA_STEP_INTS] in backend memory (written by copy(H2D), advanced by
 * step_advance). A recorded step reads it instead of host arguments, so one recording serves every step. */
enum {
    QA_STEP_POS = 0,     /* position of the row being decoded = KV rows already in the cache */
    QA_STEP_INDEX = 1,   /* index of the token this step's argmax produces (0 = first generated) */
    QA_STEP_MIN_NEW = 2, /* EOS suppressed while QA_STEP_INDEX < this (min_new_tokens) */
    QA_STEP_LIMIT = 3,   /* a device loop (graph_begin_loop) stops once QA_STEP_INDEX reaches this (API 9) */
    QA_STEP_INTS = 4
};

typedef struct qa_backend qa_backend;

struct qa_backend {
    int api_version;       /* QA_BACKEND_API_VERSION of the implementation */
    const char *name;      /* "cpu" or "cuda" (static string) */
    void *ctx;             /* backend-private state (CUDA stream, cuBLASLt handle, ...) */
    void *scratch;         /* backend memory given by the engine (arena view), see scratch_need */
    size_t scratch_bytes;
    qa_cancel cancel;      /* per request, set by the engine: polled between layers (core/cancel.h) */
    qa_dtype dtype;        /* compute dtype of the loaded models, set by the engine after init (init
                            * leaves QA_F32). QA_BF16 lets a backend run attention with BF16 operands
                            * (CUDA: tensor cores, FP32 softmax), as a bf16 engine does; QA_F32 keeps
                            * every op in exact FP32 (the parity tests). */

    /* ---- lifetime and memory -------------------------------------------------------------- */

    /* Release ctx (not the arena, not scratch). Safe to call twice. */
    void (*destroy)(qa_backend *be);

    /* One allocation of backend memory (used ONLY by memory/arena.c for the arena block);
     * 256-byte aligned. Free with mem_free. */
    qa_status (*mem_alloc)(qa_backend *be, void **out, size_t bytes, qa_err *e);
    void (*mem_free)(qa_backend *be, void *p);

    /* Free and total bytes of the device (CPU: available and total physical RAM). */
    qa_status (*mem_info)(qa_backend *be, size_t *free_bytes, size_t *total_bytes, qa_err *e);

    /* Bytes of scratch the ops need for these largest dimensions (pure function of d). */
    size_t (*scratch_need)(const qa_backend *be, const qa_scratch_dims *d);

    qa_status (*copy)(qa_backend *be, void *dst, const void *src, size_t bytes, qa_copy_kind kind,
                      qa_err *e);
    qa_status (*memset0)(qa_backend *be, void *dst, size_t bytes, qa_err *e);
    qa_status (*sync)(qa_backend *be, qa_err *e);

    /* ---- linear algebra ------------------------------------------------------------------- */

    /* y[T,N] = act(x[T,K] · W[N,K]ᵀ + b[N]).  b may be NULL.
     * accumulate != 0: y[T,N] += x·Wᵀ + b (residual add; act must be QA_ACT_NONE).
     * W: QA_F32 or QA_BF16 with shape (N, K) — or 4-D (N, K/9, 3, 3) conv weights seen as (N, K).
     * Reference: torch.nn.Linear; accumulation in float32. */
    qa_status (*gemm)(qa_backend *be, float *y, const float *x, const qa_tensor *W, const qa_tensor *b,
                      int64_t T, int64_t K, int64_t N, qa_act act, int accumulate, qa_err *e);

    /* The decoder's GEMMs with the RMSNorm in front fused in (API 6): fewer, larger kernels for a decode
     * step, and no normalised copy of x in the workspace. Both read x[T, K] and normalise it exactly as
     * rmsnorm(h, x, norm_w, T, K, eps) does; on a backend that feeds GEMMs BF16 operands (CUDA, BF16
     * weights) the normalised values are rounded to BF16 as gemm rounds its input. The numbers are
     * those of the separate ops up to the FP32 summation order.
     *
     * norm_gemm: y[i][T, N[i]] = h · W[i]ᵀ (+ y[i] when accumulate), h = RMSNorm(x) (the one shared
     * input of q/k/v), for i < n, 1 <= n <= QA_NORM_GEMM_MAX; W[i] (N[i], K), all of one dtype. Every y[i]
     * has row stride ldy floats (0: N[i], contiguous). The y[i] must not overlap x or each other.
     * (API 8) When the y[i] are the column blocks of one matrix (y[i+1] == y[i] + N[i], ldy == ΣN) and the
     * W[i] the row blocks of one weight (W[i+1].data right after W[i]'s elements — how the loader places
     * q/k/v), a backend may run ONE GEMM of N = ΣN: the same products, fewer and larger kernels (CUDA;
     * QA_CUDA_FUSED_GEMM=0 keeps one GEMM per weight). */
    qa_status (*norm_gemm)(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *norm_w,
                           float eps, const qa_tensor *const W[], const int64_t N[], int n, int64_t T, int64_t K,
                           int accumulate, qa_err *e);

    /* norm_mlp: x[T, D] += (silu(h·Wgᵀ) · (h·Wuᵀ)) · Wdᵀ, h = RMSNorm(x) — Qwen3MLP after
     * post_attention_layernorm, with the residual add (silu(g) = g / (1 + exp(−g)) in FP32).
     * Wg, Wu (F, D), Wd (D, F), one dtype. gu: [T, 2F] backend memory for the intermediates (API 8: one
     * buffer, so that gate and up adjacent in memory run as one GEMM of N = 2F; its contents afterwards
     * are unspecified). A backend that rounds the GEMM operands to BF16 may also round g and u to BF16
     * before silu, as transformers' bf16 Linear returns them (CUDA past its decode rows; QA_CUDA_GU_BF16=0:
     * FP32 g and u). */
    qa_status (*norm_mlp)(qa_backend *be, float *x, const qa_tensor *norm_w, float eps, const qa_tensor *Wg,
                          const qa_tensor *Wu, const qa_tensor *Wd, float *gu, int64_t T, int64_t D, int64_t F,
                          qa_err *e);

    /* The audio encoder's LayerNorm fused into the Linear layers behind it (API 7; q/k/v after
     * self_attn_layer_norm, fc1 after final_layer_norm): y[i][T, N[i]] = act(h · W[i]ᵀ + b[i]),
     * h = layernorm(x, ln_w, ln_b, eps) computed once for the n weights, 1 <= n <= QA_NORM_GEMM_MAX;
     * b[i] FP32 [N[i]] or NULL; act NONE or GELU; W[i] (N[i], K), one dtype. The numbers are those of
     * layernorm then gemm (h rounded to BF16 where gemm rounds its input) up to the FP32 summation order.
     * Every y[i] has row stride ldy floats (0: N[i]; GELU needs contiguous rows). The y[i] must not overlap x
     * or each other. One GEMM of N = ΣN as in norm_gemm (API 8) when, besides the weights, the biases lie
     * one after another too (b[i+1].data right after b[i]'s N[i] floats: the loader emits the encoder's
     * q/k/v weights, then their biases) or are all NULL. */
    qa_status (*ln_gemm)(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *ln_w,
                         const qa_tensor *ln_b, float eps, const qa_tensor *const W[], const qa_tensor *const b[],
                         const int64_t N[], int n, int64_t T, int64_t K, qa_act act, qa_err *e);

    /* The audio encoder's MLP with final_layer_norm and the residual add (API 8), QA_MLP_TILE rows per call:
     * x[T, E] += fc2(gelu(fc1(h))), h = layernorm(x, ln_w, ln_b, eps), fc1 = h·W1ᵀ + b1 (W1 (F, E)),
     * fc2 = ·W2ᵀ + b2 (W2 (E, F)); b1, b2 FP32 or NULL; W1, W2 one dtype. f: [T, F] backend memory for
     * fc1's output (its contents afterwards are unspecified). The numbers are those of ln_gemm (n = 1,
     * GELU) into f then gemm(x, f, W2, b2, accumulate) to the bit: on CUDA with BF16 weights the GELU
     * writes fc2's BF16 operand directly instead of FP32 that gemm then rounds (one pass instead of three;
     * QA_CUDA_BF16_HANDOFF=0 runs the two ops). */
    qa_status (*ln_mlp)(qa_backend *be, float *x, const qa_tensor *ln_w, const qa_tensor *ln_b, float eps,
                        const qa_tensor *W1, const qa_tensor *b1, const qa_tensor *W2, const qa_tensor *b2, float *f,
                        int64_t T, int64_t E, int64_t F, qa_err *e);

    /* ---- normalisation -------------------------------------------------------------------- */

    /* y[T,D] = (x − mean) / sqrt(var + eps) · w + b, per row, biased variance (nn.LayerNorm).
     * y may == x. */
    qa_status (*layernorm)(qa_backend *be, float *y, const float *x, const qa_tensor *w,
                           const qa_tensor *b, int64_t T, int64_t D, float eps, qa_err *e);

    /* y[T,D] = x · rsqrt(mean(x²) + eps) · w, per row (Qwen3RMSNorm, float32 math). y may == x.
     * The per-head q/k norm is the same op on a [T·H, Dh] view with w of shape (Dh). */
    qa_status (*rmsnorm)(qa_backend *be, float *y, const float *x, const qa_tensor *w, int64_t T,
                         int64_t D, float eps, qa_err *e);

    /* ---- position --------------------------------------------------------------------------- */

    /* The decoder's q / k / v of one layer in one op (API 6; one launch instead of norm, norm, rope,
     * rope and two row stores). Row t < T has position p = (pos ? pos[0] : pos0) + t; pos (int32 in
     * backend memory, may be NULL) is read when the op runs, so a recorded decode step serves every
     * position. rmsnorm as above, then rope_p: NeoX split-half RoPE (transformers rotate_half),
     * inv_freq[i] = 1 / theta^(2i/Dh) (float32), angle = (float)p · inv_freq[i] rounded to float32,
     * out = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x[Dh/2:], x[:Dh/2]) (Qwen3Attention:
     * q_norm / k_norm over each head BEFORE RoPE, MODEL_FACTS §5), per head:
     *   qo[t, h]   <- rope_p(rmsnorm(q[t, h]) · q_norm)                 float32, h < H
     *   kdst[p, g] <- kv_dtype(rope_p(rmsnorm(k[t, g]) · k_norm))        g < Hk
     *   vdst[p, g] <- kv_dtype(v[t, g])
     * q [T, H·Dh] with row stride ldq, k, v [T, Hk·Dh] with row stride ldkv, float32 (API 8: the q, k, v
     * column blocks of one [T, H·Dh + 2·Hk·Dh] GEMM output); qo [T, H·Dh] contiguous, the layout attention
     * reads (qo may be q when ldq == H·Dh: in place); kdst, vdst [max_rows, Hk·Dh] of kv_dtype (QA_F32, or
     * QA_BF16 rounded to nearest even: a BF16 KV cache). Rows p outside [0, max_rows) of kdst / vdst are not
     * written (qo is); the engine keeps them inside. q_norm, k_norm: F32 (Dh).
     * Aliasing: kdst may be k and vdst may be v only when kv_dtype is QA_F32, ldkv == Hk·Dh, pos is NULL and
     * pos0 is 0 (every row goes back to where it came from); otherwise the outputs must not overlap the
     * inputs. CUDA builds Dh % 4 == 0, Dh <= 256, ldq and ldkv multiples of 4; the CPU any even Dh <= 1024. */
    qa_status (*qkv_prep)(qa_backend *be, float *qo, const float *q, int64_t ldq, void *kdst, void *vdst,
                          qa_dtype kv_dtype, const float *k, const float *v, int64_t ldkv, const qa_tensor *q_norm,
                          const qa_tensor *k_norm, int64_t T, int64_t H, int64_t Hk, int64_t Dh, int64_t pos0,
                          const int32_t *pos, int64_t max_rows, float theta, float eps, qa_err *e);

    /* In place x[T,E] += sinusoid(t mod period) (Whisper/Qwen3-ASR SinusoidsPositionEmbedding):
     * half = E/2, inc = ln(10000)/(half−1), inv[i] = exp(−inc·i), row p = [sin(p·inv), cos(p·inv)]
     * (concatenated, float32). period = tokens per 100-frame chunk (13): positions restart per chunk. */
    qa_status (*add_sinusoid)(qa_backend *be, float *x, int64_t T, int64_t E, int64_t period,
                              qa_err *e);

    /* ---- attention ------------------------------------------------------------------------ */

    /* out[Tq, H·Dh] = softmax(q·kᵀ / sqrt(Dh) + mask) · v, per head, GQA: query head h reads kv head
     * h / (H/Hk) (repeat_kv). q[Tq, H·Dh] float32 with row stride ldq (0: H·Dh); k, v[Tkv, Hk·Dh] of kv_dtype
     * with row stride ldkv (0: Hk·Dh; API 8: the encoder's q, k, v are column blocks of one [T, 3E] GEMM
     * output): QA_F32, or QA_BF16 (a BF16 KV cache: the values are read as the float32 they convert to,
     * exactly); a KV cache's first Tkv rows work as is. out is contiguous. CUDA: ldq, ldkv multiples of 4.
     * Query row i has absolute position q_pos0 + i; key row j has position j.
     * causal != 0: key j visible iff j <= q_pos0 + i.
     * window > 0: key j visible iff j / window == (q_pos0 + i) / window (the encoder's cu_seqlens:
     *   bidirectional inside consecutive windows of `window` tokens, last one shorter, none across).
     * Both may be combined; every query row must see at least one key. Never materialises a Tq×Tkv
     * matrix for the whole sequence (tiles of at most scratch_need's size).
     * out_dtype (API 8): QA_F32, or QA_BF16 where gemm_in_dtype asked for BF16 (out is then BF16 [Tq, H·Dh],
     * each value the FP32 one rounded to nearest even: the o-proj's operand as gemm would stage it). */
    qa_status (*attention)(qa_backend *be, void *out, const float *q, const void *k, const void *v,
                           qa_dtype kv_dtype, int64_t ldq, int64_t ldkv, int64_t Tq, int64_t Tkv, int64_t H,
                           int64_t Hk, int64_t Dh, int64_t q_pos0, int causal, int64_t window, qa_dtype out_dtype,
                           qa_err *e);

    /* BF16 hand-off to a GEMM (API 8). gemm_in_dtype: the dtype gemm wants its x in for weight W and T rows —
     * QA_BF16 where gemm rounds FP32 x to BF16 before the product anyway (CUDA, BF16 W, more rows than its
     * GEMV takes, unless QA_CUDA_BF16_HANDOFF=0), else QA_F32 (always on the CPU). A producer that can write
     * that dtype (attention's out_dtype) writes the rounded rows itself, and gemm_bf16x multiplies them:
     * y[T, N] = x[T, K] (BF16, 16-byte aligned) · Wᵀ + b (+ y when accumulate), the numbers of gemm on the FP32
     * rows to the bit. gemm_bf16x only where gemm_in_dtype(W, T) said QA_BF16 (else QA_ERR_INTERNAL). */
    qa_dtype (*gemm_in_dtype)(const qa_backend *be, const qa_tensor *W, int64_t T);
    qa_status (*gemm_bf16x)(qa_backend *be, float *y, const void *x, const qa_tensor *W, const qa_tensor *b,
                            int64_t T, int64_t K, int64_t N, int accumulate, qa_err *e);

    /* ---- elementwise ---------------------------------------------------------------------- */

    /* y[n] = gelu_erf(x[n]) = 0.5·x·(1 + erf(x/√2)).  y may == x. */
    qa_status (*gelu)(qa_backend *be, float *y, const float *x, int64_t n, qa_err *e);

    /* y[n] = a[n] + b[n].  y may == a or b. */
    qa_status (*add)(qa_backend *be, float *y, const float *a, const float *b, int64_t n, qa_err *e);

    /* ---- audio front of the encoder -------------------------------------------------------- */

    /* Cut mel features into zero-padded chunks: y[N, 1, M, L] with
     * y[n,0,m,t] = feat[m·ld + f] if f = frame0 + n·L + t < valid_frames, else 0.
     * feat is [M, ld] (ld >= valid_frames) in backend memory. (HF pads the last chunk with zeros.) */
    qa_status (*mel_chunks)(qa_backend *be, float *y, const float *feat, int64_t M, int64_t ld,
                            int64_t frame0, int64_t valid_frames, int64_t N, int64_t L, qa_err *e);

    /* Conv2d 3×3, stride 2, padding 1, NCHW, N chunks at once:
     * y[N, Cout, Ho, Wo] = act(conv(x'[N, Cin, Hi, Wi], w (Cout, Cin, 3, 3)) + b[Cout]),
     * Ho = (Hi − 1)/2 + 1, Wo = (Wi − 1)/2 + 1 (integer division), b may be NULL; x' = x, or with xb
     * (a [Cin] tensor) x'[n, c] = GELU(x[n, c] + xb[c]): the previous conv ran with b = NULL and no act,
     * and its bias and GELU are applied here as the input is read (zero padding stays 0). An input plane
     * Hi·Wi holds at most 12288 values (CUDA stages it in shared memory; the tower's largest is 3200). */
    qa_status (*conv2d)(qa_backend *be, float *y, const float *x, const qa_tensor *xb, const qa_tensor *w,
                        const qa_tensor *b, int64_t N, int64_t Cin, int64_t Hi, int64_t Wi,
                        int64_t Cout, qa_act act, qa_err *e);

    /* conv1 and conv2 of the tower in one op: y[N, C2, H2, W2] = conv(GELU(conv(x[N, 1, Hi, Wi], w1) + b1), w2),
     * raw (no bias, no act: the next op reads y with xb = conv2's bias), w1 (C1, 1, 3, 3), b1 [C1], w2
     * (C2, C1, 3, 3), sizes as conv2d's. tmp [N, C1, H1, W1] floats: room for the inner map, which an
     * implementation may write there (its contents after the call are unspecified) or never materialise
     * (CUDA with BF16 weights writes conv2's GEMM operand straight from conv1). Each value equals the
     * conv2d(w1, b1, GELU) then conv2d(w2) sequence's. */
    qa_status (*conv2d_pair)(qa_backend *be, float *y, float *tmp, const float *x, const qa_tensor *w1,
                             const qa_tensor *b1, const qa_tensor *w2, int64_t N, int64_t Hi, int64_t Wi,
                             int64_t C1, int64_t C2, qa_err *e);

    /* Conv output to tokens: y[N·Tc, C·Fq] with y[n·Tc + t, c·Fq + f] = x'[n, c, f, t]
     * (x is [N, C, Fq, Tc]; HF: permute(0, 3, 1, 2).view(b, t, c·f) — feature index channel·16+freq);
     * x' = x, or GELU(x[n, c] + xb[c]) with xb (a [C] tensor; conv2d's deferred bias + GELU). */
    qa_status (*chunk_flatten)(qa_backend *be, float *y, const float *x, const qa_tensor *xb, int64_t N,
                               int64_t C, int64_t Fq, int64_t Tc, qa_err *e);

    /* ---- tokens ------------------------------------------------------------------------------- */

    /* y[T, D] = table[ids[t], :] (embedding lookup; also gathers rows of an activation buffer wrapped
     * as a QA_F32 qa_tensor). table: (R, D), QA_F32 or QA_BF16. ids: int32 [T], backend memory,
     * each in [0, R) (the engine validates on the host before the call). */
    qa_status (*embed)(qa_backend *be, float *y, const qa_tensor *table, const int32_t *ids, int64_t T,
                       qa_err *e);

    /* Per row r of x[R, V]: idx[r] = first index of the maximum (torch.argmax), prob[r] =
     * softmax(x[r])[idx[r]]. suppress (HOST array of n_suppress ids) are treated as −inf
     * (MinNewTokensLengthLogitsProcessor for EOS). idx: int32 [R], prob: float [R], both backend
     * memory; prob may be NULL. */
    qa_status (*argmax)(qa_backend *be, int32_t *idx, float *prob, const float *x, int64_t R,
                        int64_t V, const int32_t *suppress, int n_suppress, qa_err *e);

    /* ---- log-mel features (API 4) ------------------------------------------------------------- */

    /* Once at load: fill tables (QA_MEL_TABLE_BYTES of backend memory, see above) from
     * filters_host (HOST [M, 201], frontend/mel.c qa_mel_filters). CUDA builds the DFT matrix on the
     * device from its formula and uploads the filters; the CPU has nothing to do. */
    qa_status (*mel_tables)(qa_backend *be, void *tables, const float *filters_host, qa_err *e);

    /* feat[M, T] (row stride T = qa_mel_frames(n)) = frontend/mel.c's log-mel of samples[n]
     * (16 kHz, backend memory, finite: the engine checks them on the host): reflect-padded STFT
     * (n_fft 400, hop 160, periodic Hann), power, Slaney filters, log10(max(x, 1e-10)), floor at
     * (max over the whole clip − 8), (x + 4) / 4; clips under 8000 samples count as zero-padded.
     * tables: as filled by mel_tables; work: work_bytes >= qa_mel_work_bytes(n) of backend memory.
     * CPU: exactly frontend/mel.c. CUDA: FP64 DFT GEMM, FP32 filterbank GEMM, the max reduced on the
     * device (no host sync); within ~1e-6 of the CPU. */
    qa_status (*log_mel)(qa_backend *be, float *feat, const float *samples, int64_t n, const void *tables,
                         void *work, size_t work_bytes, qa_err *e);

    /* ---- decode steps with the position in backend memory (API 4) -------------------------------
     * The same math as attention / argmax above, with pos = state[QA_STEP_POS] read by the op when it
     * runs (not when it is enqueued), so a recorded step stays valid for every step (qkv_prep above
     * takes such a pos too). */

    /* Causal attention of Tq query rows at positions pos[0] + i over the first pos[0] + Tq rows of k, v
     * (a KV cache of max_kv rows of kv_dtype; pos[0] + Tq <= max_kv): attention(..., Tkv = pos[0] + Tq,
     * q_pos0 = pos[0], causal = 1, window = 0), same numbers. */
    qa_status (*attention_at)(qa_backend *be, float *out, const float *q, const void *k, const void *v,
                              qa_dtype kv_dtype, int64_t Tq, int64_t max_kv, int64_t H, int64_t Hk, int64_t Dh,
                              const int32_t *pos, qa_err *e);

    /* Greedy pick of one logits row x[V] for decode step i = state[QA_STEP_INDEX]: argmax (R = 1, no
     * prob) with the suppress ids (HOST array) applied only while i < state[QA_STEP_MIN_NEW]; the id goes
     * to tok[0] and to ids[i] (int32 backend memory of cap entries; not written when i >= cap). */
    qa_status (*argmax_at)(qa_backend *be, int32_t *ids, int64_t cap, int32_t *tok, const float *x, int64_t V,
                           const int32_t *suppress, int n_suppress, const int32_t *state, qa_err *e);

    /* state[QA_STEP_POS] += 1, state[QA_STEP_INDEX] += 1. */
    qa_status (*step_advance)(qa_backend *be, int32_t *state, qa_err *e);

    /* ---- recorded steps (CUDA graphs) --------------------------------------------------------------
     * graph_begin: the ops enqueued from now on are recorded, not run, until graph_end(slot, key):
     * key != NULL stores the recording in slot [0, QA_GRAPH_SLOTS) under that key (replacing what was
     * there), key == NULL drops it (an op failed while recording). graph_launch runs slot's recording
     * once, asynchronously, on the backend's stream. A recording holds every pointer and host value it
     * was recorded with: the engine records only steps whose buffers sit at fixed places (weights, KV
     * cache, fixed workspace offsets), keeps what changes between launches in backend memory (the step
     * state), and passes as key an address that changes when that layout does. graph_ready: slot holds a
     * recording made under key. Recording happens once per loaded model set (load_models' warm-up); the
     * device memory a recording needs is reported by memory_report (cuda.graph_bytes).
     * Backends without graphs (CPU) never set decode_mode GRAPH or LOOP; their begin / end / launch fail with
     * QA_ERR_INTERNAL "not supported" and ready returns 0. */
    qa_status (*graph_begin)(qa_backend *be, qa_err *e);
    qa_status (*graph_end)(qa_backend *be, int slot, const void *key, qa_err *e);
    qa_status (*graph_launch)(qa_backend *be, int slot, qa_err *e);
    int (*graph_ready)(const qa_backend *be, int slot, const void *key);

    /* A recording that loops on the device (API 9; decode_mode LOOP): as graph_begin, and the graph_end that
     * follows stores a loop whose body is the recording. One graph_launch of the slot runs the body once, then
     * again while, read on the device after each run: tok[0] is none of the n_stop stop ids (HOST array, at
     * most 16), state[QA_STEP_INDEX] < state[QA_STEP_LIMIT], and state[QA_STEP_INDEX] is not a multiple of
     * block (> 0). So a launch at an index that is a multiple of block runs up to block steps (a block), ends
     * after the step that picked a stop id, and never passes the limit; the host then reads the block's ids
     * once. Pointers and stop ids are recorded like the body's (fixed places). CPU: fails ("not supported"). */
    qa_status (*graph_begin_loop)(qa_backend *be, const int32_t *state, const int32_t *tok, const int32_t *stop,
                                  int n_stop, int64_t block, qa_err *e);

    qa_decode_mode decode_mode; /* set by init: CPU PLAIN (QA_CPU_DECODE=steps: STEPS, for tests);
                                 * CUDA LOOP (QA_CUDA_DECODE_LOOP=host: GRAPH, QA_CUDA_GRAPH=0: PLAIN,
                                 * QA_CUDA_GRAPH=steps: STEPS) */
};

#define QA_GRAPH_SLOTS 2 /* slot 0: the ASR decode step */

/* The CPU backend's scratch_need as a plain function (memory/plan.c sizes the workspace with it). */
size_t qa_backend_cpu_scratch_need(const qa_scratch_dims *d);

/* Fill *be with the CPU backend (backend/cpu/). n_threads <= 0: OpenBLAS / OpenMP defaults.
 * be->scratch stays NULL until the engine sets it. Release with be->destroy(be). */
qa_status qa_backend_cpu_init(qa_backend *be, int n_threads, qa_err *e);

/* OpenBLAS's thread count, process-wide (openblas_get/set_num_threads): each GEMM of any CPU request
 * uses up to this many threads. qwen3align/longaudio.py lowers it while several workers compute. */
int qa_backend_cpu_threads(void);
void qa_backend_cpu_set_threads(int n);

/* Exported by libqa_cuda.so (backend/cuda/), looked up with dlsym("qa_backend_cuda_init"):
 * fill *be for CUDA device `device`. */
typedef qa_status (*qa_backend_cuda_init_fn)(qa_backend *be, int device, qa_err *e);
#define QA_BACKEND_CUDA_INIT_SYMBOL "qa_backend_cuda_init"

#endif
