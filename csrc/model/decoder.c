/* decoder.c — the Qwen3 text model layers (aligner and ASR) over backend ops, with an optional KV cache.
 *
 * Contract (decoder.h): x[T, D] residual stream in place; the final RMSNorm and the head are in
 * heads.c (they run only on the rows that are read). Reference: transformers 5.17 Qwen3DecoderLayer /
 * Qwen3Attention / Qwen3MLP (MODEL_FACTS §5):
 *   h = RMSNorm(x); q,k,v = h·Wq/Wk/Wvᵀ (no bias); q,k = RMSNorm per 128-dim head (q_norm, k_norm)
 *   BEFORE RoPE; RoPE θ from the config (plain: M-RoPE rows are equal); causal GQA attention (H/Hk
 *   query heads per kv head), scale 1/√Dh; x += o_proj; x += down(silu(gate(y))·up(y)), y = RMSNorm(x).
 * The q / k / v projections land in one float32 temporary [T, H·Dh + 2·Hk·Dh] (q | k | v per row: with the
 * weights adjacent in the arena the backend runs them as one GEMM, backend.h norm_gemm); one qkv_prep op
 * per layer normalises and rotates q into its own [T, H·Dh] buffer (the layout attention reads) and k, and
 * stores the K / V rows at their positions in the kv dtype: the cache rows (HF DynamicCache, prefill then
 * one token per step) or, without a cache, workspace buffers of the weights' compute dtype (BF16 K / V for
 * a bfloat16 engine: half the bytes, exact reads). The attention output then reuses the temporary.
 * Each RMSNorm in front of Linear layers runs inside them (backend.h norm_gemm for q/k/v, norm_mlp for the
 * MLP), so the normalised x never sits in the workspace. The MLP runs QA_MLP_TILE rows at a time, its
 * gate and up outputs in one [tile, 2F] buffer (one GEMM on CUDA).
 * The takes below are mirrored by qa_plan_workspace_decoder().
 * qa_decoder_step_at is one decode row whose position is read from backend memory (the step state),
 * so a recorded step (CUDA graph) serves every position: qkv_prep and attention_at read it when they
 * run; the numbers equal the host-position path's.
 */
#include "decoder.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* One workspace buffer of n bytes. */
#define TAKE_BYTES(ptr, n)                                  \
    do {                                                    \
        if (!((ptr) = qa_arena_take(ws, (size_t)(n), e)))   \
            return e->code;                                 \
    } while (0)
#define TAKE(ptr, n) TAKE_BYTES(ptr, (size_t)(n) * sizeof(float))

/* qkv[T, QD + 2·KD] = RMSNorm(x) · [Wq; Wk; Wv]ᵀ: one norm_gemm, the normalised x shared (no copy); q, k, v
 * are the row's three column blocks, so adjacent weights make it one GEMM. */
static qa_status qkv_proj(qa_backend *be, const qa_decoder_layer *l, const float *x, float *qkv, int64_t T, int64_t D,
                          int64_t QD, int64_t KD, float eps, qa_err *e)
{
    float *const y[3] = {qkv, qkv + QD, qkv + QD + KD};
    const qa_tensor *const W[3] = {&l->q_w, &l->k_w, &l->v_w};
    const int64_t N[3] = {QD, KD, KD};
    return be->norm_gemm(be, y, QD + 2 * KD, x, &l->in_norm, eps, W, N, 3, T, D, 0, e);
}

/* The K or V rows of the span starting at row r0: the cache rows are positions (one span), the
 * workspace rows of a packed batch are the span's own rows. */
static void *span_rows(void *base, const qa_kv_cache *kv, int64_t r0, size_t row_bytes)
{
    return kv ? base : (char *)base + (size_t)r0 * row_bytes;
}

/* Self-attention block: x += o_proj(attn(RMSNorm(x))). The rows are the spans sp[0..n_sp) in order (a
 * packed batch: one span per clip, see decoder.h); everything but qkv_prep (RoPE positions, K / V rows)
 * and attention is per row, so only those two run per span, each span from position pos0 — or pos[0]
 * when pos (backend memory, a decode step: T = 1, kv given) is set. With a cache there is one span. */
static qa_status attn_block(qa_backend *be, const qa_decoder_layer *l, const qa_text_config *t, qa_region *ws,
                            float *x, int64_t T, int64_t pos0, const int32_t *pos, const qa_kv_cache *kv, int li,
                            const qa_span *sp, int64_t n_sp, qa_err *e)
{
    int64_t D = t->hidden, H = t->heads, Hk = t->kv_heads, Dh = t->head_dim, QD = H * Dh, KD = Hk * Dh;
    int64_t W = QD + 2 * KD;
    float eps = (float)t->rms_eps, theta = (float)t->rope_theta;
    qa_dtype dt = kv ? kv->dtype : l->k_w.dtype; /* the compute dtype */
    size_t mark = qa_region_mark(ws);
    float *q, *qkv;
    void *kc, *vc;
    TAKE(q, T * QD);
    TAKE(qkv, T * W);
    float *a = qkv; /* the attention output: qkv is consumed by qkv_prep before any attention writes a */
    int64_t rows = T;
    if (kv) {
        size_t es = qa_dtype_size(dt), layer = (size_t)kv->max_ctx * (size_t)KD * es;
        kc = (char *)kv->base + (size_t)(2 * li) * layer;
        vc = (char *)kv->base + (size_t)(2 * li + 1) * layer;
        rows = kv->max_ctx;
    } else {
        TAKE_BYTES(kc, (size_t)(T * KD) * qa_dtype_size(dt));
        TAKE_BYTES(vc, (size_t)(T * KD) * qa_dtype_size(dt));
    }
    QA_TRY(qkv_proj(be, l, x, qkv, T, D, QD, KD, eps, e));
    size_t kvrow = (size_t)KD * qa_dtype_size(dt);
    /* every span's qkv_prep first: the projections live in a, which the attentions then overwrite */
    for (int64_t s = 0; s < n_sp; s++) {
        int64_t r0 = sp[s].row0, n = sp[s].rows;
        const float *qs = qkv + r0 * W;
        QA_TRY(be->qkv_prep(be, q + r0 * QD, qs, W, span_rows(kc, kv, r0, kvrow), span_rows(vc, kv, r0, kvrow), dt,
                            qs + QD, qs + QD + KD, W, &l->q_norm, &l->k_norm, n, H, Hk, Dh, pos0, pos,
                            kv ? rows : n, theta, eps, e));
    }
    /* the attention writes the o-proj's operand in the dtype the GEMM multiplies (a holds BF16 rows too); a
     * decode step at a device position (one row) stays FP32 */
    qa_dtype od = pos ? QA_F32 : be->gemm_in_dtype(be, &l->o_w, T);
    size_t arow = (size_t)QD * qa_dtype_size(od);
    for (int64_t s = 0; s < n_sp; s++) {
        int64_t r0 = sp[s].row0, n = sp[s].rows;
        float *qs = q + r0 * QD;
        void *as = (char *)a + (size_t)r0 * arow;
        void *ks = span_rows(kc, kv, r0, kvrow), *vs = span_rows(vc, kv, r0, kvrow);
        if (pos)
            QA_TRY(be->attention_at(be, as, qs, ks, vs, dt, n, kv->max_ctx, H, Hk, Dh, pos, e));
        else
            QA_TRY(be->attention(be, as, qs, ks, vs, dt, 0, 0, n, kv ? pos0 + n : n, H, Hk, Dh, pos0, 1, 0, od, e));
    }
    if (od == QA_BF16)
        QA_TRY(be->gemm_bf16x(be, x, a, &l->o_w, NULL, T, QD, D, 1, e));
    else
        QA_TRY(be->gemm(be, x, a, &l->o_w, NULL, T, QD, D, QA_ACT_NONE, 1, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

/* MLP block: x += down(silu(gate(y)) · up(y)), y = RMSNorm(x), QA_MLP_TILE rows at a time (norm_mlp). */
static qa_status mlp_block(qa_backend *be, const qa_decoder_layer *l, const qa_text_config *t, qa_region *ws,
                           float *x, int64_t T, qa_err *e)
{
    int64_t D = t->hidden, F = t->inter, tile = min64(T, QA_MLP_TILE);
    size_t mark = qa_region_mark(ws);
    float *gu;
    TAKE(gu, tile * 2 * F);
    for (int64_t r0 = 0; r0 < T; r0 += tile)
        QA_TRY(be->norm_mlp(be, x + r0 * D, &l->post_norm, (float)t->rms_eps, &l->gate_w, &l->up_w, &l->down_w, gu,
                            min64(tile, T - r0), D, F, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

static qa_status run_layers(qa_backend *be, const qa_model *m, qa_region *ws, float *x, int64_t T, int64_t pos0,
                            const int32_t *pos, const qa_kv_cache *kv, const qa_span *sp, int64_t n_sp, qa_err *e)
{
    const qa_text_config *t = &m->cfg.text;
    for (int i = 0; i < t->layers; i++) {
        QA_TRY(qa_cancel_poll(&be->cancel, "a decoder layer", e));
        QA_TRY(attn_block(be, &m->dec.layers[i], t, ws, x, T, pos0, pos, kv, i, sp, n_sp, e));
        QA_TRY(mlp_block(be, &m->dec.layers[i], t, ws, x, T, e));
    }
    return QA_OK;
}

qa_status qa_decoder_forward_spans(qa_backend *be, const qa_model *m, qa_region *ws, float *x, const qa_span *sp,
                                   int64_t n_sp, qa_err *e)
{
    int64_t T = 0;
    for (int64_t s = 0; s < n_sp; T += sp[s].rows, s++)
        if (sp[s].row0 != T || sp[s].rows < 1)
            return QA_FAIL(e, QA_ERR_INTERNAL, "decoder: span %lld starts at row %lld with %lld rows, expected "
                           "row %lld and >= 1 row", (long long)s, (long long)sp[s].row0, (long long)sp[s].rows,
                           (long long)T);
    return run_layers(be, m, ws, x, T, 0, NULL, NULL, sp, n_sp, e);
}

qa_status qa_decoder_forward(qa_backend *be, const qa_model *m, qa_region *ws, float *x, int64_t T, int64_t pos0,
                             const qa_kv_cache *kv, qa_err *e)
{
    if (!kv && pos0 != 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "decoder: a start position %lld needs a KV cache", (long long)pos0);
    if (kv && pos0 + T > kv->max_ctx)
        return QA_FAIL(e, QA_ERR_INPUT, "decoder: %lld positions exceed the KV cache of %lld (max_new_tokens / "
                       "max_audio_seconds of the plan)", (long long)(pos0 + T), (long long)kv->max_ctx);
    qa_span all = {0, T};
    return run_layers(be, m, ws, x, T, pos0, NULL, kv, &all, 1, e);
}

qa_status qa_decoder_step_at(qa_backend *be, const qa_model *m, qa_region *ws, float *x, const int32_t *pos,
                             const qa_kv_cache *kv, qa_err *e)
{
    if (!kv)
        return QA_FAIL(e, QA_ERR_INTERNAL, "decoder: a step at a device position needs a KV cache");
    qa_span one = {0, 1};
    return run_layers(be, m, ws, x, 1, 0, pos, kv, &one, 1, e);
}
