/* cpu.h — private declarations shared by the CPU backend files (backend/cpu/), not an engine API.
 *
 * Each op family lives in its own file (gemm.c, norm_gemm.c, norm.c, rope.c, qkv.c, attention.c, act.c,
 * conv.c, embed.c, logmel.c, step.c);
 * backend_cpu.c fills the qa_backend table with them. The signatures are exactly the function
 * pointer types of backend.h. Scratch (be->scratch, float32) is used per call from offset 0:
 *   attention: scores QA_CPU_ATTN_BQ × Tkv, then (BF16 K / V) QA_CPU_KV_CHUNK_FLOATS of converted rows;
 *   gemm: one BF16 weight tile (QA_CPU_TILE_FLOATS);
 *   conv2d: im2col of one chunk, then the weight tile after it (first the activated input plane with xb);
 *   norm_gemm / norm_mlp: the weight tile, then normalised rows (at least QA_CPU_NORM_ROWS of them).
 * scratch_need() is the maximum of these for the dims the engine passes.
 */
#ifndef QA_BACKEND_CPU_H
#define QA_BACKEND_CPU_H

#include <math.h>

#include "../backend.h"

/* Query rows per attention tile: the score tile is QA_CPU_ATTN_BQ × Tkv floats, never Tq × Tkv. */
#define QA_CPU_ATTN_BQ 128
/* Floats of BF16 K or V rows converted to F32 at a time by attention (rows = this / Dh). */
#define QA_CPU_KV_CHUNK_FLOATS ((int64_t)1 << 16)
/* Largest Dh / 2 of rope and qkv_prep (stack tables of cos / sin). */
#define QA_CPU_ROPE_MAX_HALF 512
/* Floats of one BF16 -> F32 weight tile (4 MiB): rows = QA_CPU_TILE_FLOATS / K, at least 1. */
#define QA_CPU_TILE_FLOATS ((int64_t)1 << 20)
/* Normalised rows of max_gemm_k floats norm_gemm / norm_mlp hold at once, at least (more when the scratch,
 * sized for attention or the convs, has room). */
#define QA_CPU_NORM_ROWS 256

/* Scratch (be->scratch) as float32, checked: returns the first `floats` floats after `offset` floats, or
 * NULL with QA_ERR_INTERNAL naming `what` when the engine gave less than scratch_need promised. */
float *qa_cpu_scratch(qa_backend *be, int64_t offset, int64_t floats, const char *what, qa_err *e);

/* dst[n] = src[n] read as bf16 bit patterns (exact: the bf16 is the upper half of the float's bits). */
void qa_cpu_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);

/* Rows [r0, r0+rows) of W viewed as (N, K), as float32: F32 -> a pointer into W, BF16 -> converted
 * into `tile` (rows*K floats). */
const float *qa_cpu_weight_rows(const qa_tensor *W, int64_t K, int64_t r0, int64_t rows, float *tile);

/* 1-D F32 tensor data checked for length n (NULL tensor or NULL data -> NULL without error). */
qa_status qa_cpu_vec(const qa_tensor *t, int64_t n, const char *what, const float **out, qa_err *e);

/* Check W is 2-D (N, K) (or 4-D conv (N, K/9, 3, 3)) and F32/BF16. */
qa_status qa_cpu_check_weight(const qa_tensor *W, int64_t N, int64_t K, const char *op, qa_err *e);

/* The GEMM core, tiling BF16 weights through `tile` (QA_CPU_TILE_FLOATS floats), P = free dimension:
 *   w_left == 0: y[P, N] (row stride ldy) = x[P, K] · W[N, K]ᵀ + beta·y     (nn.Linear)
 *   w_left != 0: y[N, P] (row stride ldy) = W[N, K] · x[K, P] + beta·y      (conv on im2col)   */
void qa_cpu_matmul(float *y, int64_t ldy, const float *x, const qa_tensor *W, int64_t P, int64_t K,
                   int64_t N, float beta, int w_left, float *tile);

/* Number of rows of W (N×K) converted per tile. */
int64_t qa_cpu_tile_rows(const qa_tensor *W, int64_t K);

/* y[D] = x · rsqrt(mean(x²) + eps) · w (w may be NULL: no weight); y may == x (norm.c). */
void qa_cpu_rmsnorm_row(float *y, const float *x, const float *w, int64_t D, float eps);

/* RoPE pieces (rope.c), shared by rope and qkv_prep so both round alike: inv[Dh/2] = 1 / theta^(2i/Dh)
 * (fails for an odd Dh or Dh / 2 > QA_CPU_ROPE_MAX_HALF, naming `who`); c, s[half] = cos, sin of
 * (float)pos · inv; one head v[2·half] rotated in place (rotate_half). */
qa_status qa_cpu_rope_freqs(float *inv, int64_t Dh, float theta, const char *who, qa_err *e);
void qa_cpu_rope_angles(float *c, float *s, const float *inv, int64_t half, int64_t pos);
void qa_cpu_rope_head(float *v, const float *c, const float *s, int64_t half);

/* GELU(erf) of one value (inline: the conv's im2col applies it per element), and in place over n. */
static inline float qa_cpu_gelu1(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
void qa_cpu_gelu_inplace(float *x, int64_t n);

/* y[n] = silu(gate[n]) · up[n] (Qwen3MLP act_fn(gate_proj(x)) * up_proj(x)); y may == gate (norm_mlp). */
void qa_cpu_silu_mul(float *y, const float *gate, const float *up, int64_t n);

size_t qa_cpu_scratch_need(const qa_backend *be, const qa_scratch_dims *d);

qa_status qa_cpu_gemm(qa_backend *be, float *y, const float *x, const qa_tensor *W, const qa_tensor *b,
                      int64_t T, int64_t K, int64_t N, qa_act act, int accumulate, qa_err *e);
/* qa_cpu_gemm with y's row stride ldy (>= N): the same numbers (the stride only moves the stores). */
qa_status qa_cpu_gemm_ld(qa_backend *be, float *y, int64_t ldy, const float *x, const qa_tensor *W, const qa_tensor *b,
                         int64_t T, int64_t K, int64_t N, qa_act act, int accumulate, qa_err *e);
qa_status qa_cpu_norm_gemm(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *norm_w,
                           float eps, const qa_tensor *const W[], const int64_t N[], int n, int64_t T, int64_t K,
                           int accumulate, qa_err *e);
qa_status qa_cpu_norm_mlp(qa_backend *be, float *x, const qa_tensor *norm_w, float eps, const qa_tensor *Wg,
                          const qa_tensor *Wu, const qa_tensor *Wd, float *gu, int64_t T, int64_t D, int64_t F,
                          qa_err *e);
qa_status qa_cpu_ln_gemm(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *ln_w, const qa_tensor *ln_b,
                         float eps, const qa_tensor *const W[], const qa_tensor *const b[], const int64_t N[], int n,
                         int64_t T, int64_t K, qa_act act, qa_err *e);
qa_status qa_cpu_ln_mlp(qa_backend *be, float *x, const qa_tensor *ln_w, const qa_tensor *ln_b, float eps,
                        const qa_tensor *W1, const qa_tensor *b1, const qa_tensor *W2, const qa_tensor *b2, float *f,
                        int64_t T, int64_t E, int64_t F, qa_err *e);
qa_dtype qa_cpu_gemm_in_dtype(const qa_backend *be, const qa_tensor *W, int64_t T);
qa_status qa_cpu_gemm_bf16x(qa_backend *be, float *y, const void *x, const qa_tensor *W, const qa_tensor *b, int64_t T,
                            int64_t K, int64_t N, int accumulate, qa_err *e);
qa_status qa_cpu_layernorm(qa_backend *be, float *y, const float *x, const qa_tensor *w,
                           const qa_tensor *b, int64_t T, int64_t D, float eps, qa_err *e);
qa_status qa_cpu_rmsnorm(qa_backend *be, float *y, const float *x, const qa_tensor *w, int64_t T,
                         int64_t D, float eps, qa_err *e);
qa_status qa_cpu_qkv_prep(qa_backend *be, float *qo, const float *q, int64_t ldq, void *kdst, void *vdst,
                          qa_dtype kv_dtype, const float *k, const float *v, int64_t ldkv, const qa_tensor *q_norm,
                          const qa_tensor *k_norm, int64_t T, int64_t H, int64_t Hk, int64_t Dh, int64_t pos0,
                          const int32_t *pos, int64_t max_rows, float theta, float eps, qa_err *e);
qa_status qa_cpu_add_sinusoid(qa_backend *be, float *x, int64_t T, int64_t E, int64_t period, qa_err *e);
qa_status qa_cpu_attention(qa_backend *be, float *out, const float *q, const void *k, const void *v,
                           qa_dtype kv_dtype, int64_t ldq, int64_t ldkv, int64_t Tq, int64_t Tkv, int64_t H,
                           int64_t Hk, int64_t Dh, int64_t q_pos0, int causal, int64_t window, qa_err *e);
/* backend.h attention: qa_cpu_attention for out_dtype QA_F32, the only one gemm_in_dtype asks for here. */
qa_status qa_cpu_attention_op(qa_backend *be, void *out, const float *q, const void *k, const void *v,
                              qa_dtype kv_dtype, int64_t ldq, int64_t ldkv, int64_t Tq, int64_t Tkv, int64_t H,
                              int64_t Hk, int64_t Dh, int64_t q_pos0, int causal, int64_t window, qa_dtype out_dtype,
                              qa_err *e);
qa_status qa_cpu_gelu(qa_backend *be, float *y, const float *x, int64_t n, qa_err *e);
qa_status qa_cpu_add(qa_backend *be, float *y, const float *a, const float *b, int64_t n, qa_err *e);
qa_status qa_cpu_mel_chunks(qa_backend *be, float *y, const float *feat, int64_t M, int64_t ld,
                            int64_t frame0, int64_t valid_frames, int64_t N, int64_t L, qa_err *e);
qa_status qa_cpu_conv2d(qa_backend *be, float *y, const float *x, const qa_tensor *xb, const qa_tensor *w,
                        const qa_tensor *b, int64_t N, int64_t Cin, int64_t Hi, int64_t Wi, int64_t Cout, qa_act act,
                        qa_err *e);
qa_status qa_cpu_conv2d_pair(qa_backend *be, float *y, float *tmp, const float *x, const qa_tensor *w1,
                             const qa_tensor *b1, const qa_tensor *w2, int64_t N, int64_t Hi, int64_t Wi, int64_t C1,
                             int64_t C2, qa_err *e);
qa_status qa_cpu_chunk_flatten(qa_backend *be, float *y, const float *x, const qa_tensor *xb, int64_t N, int64_t C,
                               int64_t Fq, int64_t Tc, qa_err *e);
qa_status qa_cpu_embed(qa_backend *be, float *y, const qa_tensor *table, const int32_t *ids, int64_t T,
                       qa_err *e);
qa_status qa_cpu_argmax(qa_backend *be, int32_t *idx, float *prob, const float *x, int64_t R, int64_t V,
                        const int32_t *suppress, int n_suppress, qa_err *e);
qa_status qa_cpu_mel_tables(qa_backend *be, void *tables, const float *filters_host, qa_err *e);
qa_status qa_cpu_log_mel(qa_backend *be, float *feat, const float *samples, int64_t n, const void *tables,
                         void *work, size_t work_bytes, qa_err *e);

/* step.c: the decode-step ops (backend.h API 4) and the refusing graph ops. */
qa_status qa_cpu_attention_at(qa_backend *be, float *out, const float *q, const void *k, const void *v,
                              qa_dtype kv_dtype, int64_t Tq, int64_t max_kv, int64_t H, int64_t Hk, int64_t Dh,
                              const int32_t *pos, qa_err *e);
qa_status qa_cpu_argmax_at(qa_backend *be, int32_t *ids, int64_t cap, int32_t *tok, const float *x, int64_t V,
                           const int32_t *suppress, int n_suppress, const int32_t *state, qa_err *e);
qa_status qa_cpu_step_advance(qa_backend *be, int32_t *state, qa_err *e);
qa_status qa_cpu_graph_begin(qa_backend *be, qa_err *e);
qa_status qa_cpu_graph_end(qa_backend *be, int slot, const void *key, qa_err *e);
qa_status qa_cpu_graph_launch(qa_backend *be, int slot, qa_err *e);
int qa_cpu_graph_ready(const qa_backend *be, int slot, const void *key);
qa_status qa_cpu_graph_begin_loop(qa_backend *be, const int32_t *state, const int32_t *tok, const int32_t *stop,
                                  int n_stop, int64_t block, qa_err *e);

#endif
