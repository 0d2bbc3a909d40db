/* decoder.c — the Qwen3 text model layers (aligner and ASR) over backend ops, with an optional KV cache.
 *
 * Contract (decoder.h): x[T, D] residual stream in place; the final RMSNorm and the head are in
 * heads.c (they run only on the rows that are read). Reference: transformers 5.17 Qwen3DecoderLayer /
 * Qwen3Attention / Qwen3MLP (MODEL_FACTS §5):
 *   h = RMSNorm(x); q,k,v = h·Wq/Wk/Wvᵀ (no bias); q,k = RMSNorm per 128-dim head (q_norm, k_norm)
 *   BEFORE RoPE; RoPE θ from the config (plain: M-RoPE rows are equal); causal GQA attention (H/Hk
 *   query heads per kv head), scale 1/√Dh; x += o_proj; x += down(silu(gate(y))·up(y)), y = RMSNorm(x).
 * With a cache, k/v projections are written straight into the cache rows of their positions, so a
 * decode step reads every earlier position from the cache (HF DynamicCache, prefill then one token).
 * The MLP runs QA_MLP_TILE rows at a time. The takes below are mirrored by qa_plan_workspace_decoder().
 * qa_decoder_step_at is one decode row whose position is read from backend memory (the step state),
 * so a recorded step (CUDA graph) serves every position: k, v go to temporaries and store_rows_at puts
 * them into the cache row of that position; the numbers equal the host-position path's.
 */
#include "decoder.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

#define TAKE(ptr, n)                                                       \
    do {                                                                   \
        if (!((ptr) = qa_arena_take(ws, (size_t)(n) * sizeof(float), e))) \
            return e->code;                                                \
    } while (0)

/* Self-attention block: x += o_proj(attn(RMSNorm(x))). h [T, D] is the caller's norm buffer. The rows
 * are the spans sp[0..n_sp) in order (a packed batch: one span per clip, see decoder.h); everything but
 * RoPE and attention is per row, so only those two run per span, each span from position pos0. */
static qa_status attn_block(qa_backend *be, const qa_decoder_layer *l, const qa_text_config *t, qa_region *ws,
                            float *x, float *h, int64_t T, int64_t pos0, const qa_kv_cache *kv, int li,
                            const qa_span *sp, int64_t n_sp, qa_err *e)
{
    int64_t D = t->hidden, H = t->heads, Hk = t->kv_heads, Dh = t->head_dim, QD = H * Dh, KD = Hk * Dh;
    float eps = (float)t->rms_eps, theta = (float)t->rope_theta;
    size_t mark = qa_region_mark(ws);
    float *q, *a, *k, *v, *kall, *vall;
    TAKE(q, T * QD);
    TAKE(a, T * QD);
    if (kv) {
        kall = kv->base + (int64_t)(2 * li) * kv->max_ctx * KD;
        vall = kv->base + (int64_t)(2 * li + 1) * kv->max_ctx * KD;
        k = kall + pos0 * KD;
        v = vall + pos0 * KD;
    } else {
        TAKE(k, T * KD);
        TAKE(v, T * KD);
        kall = k;
        vall = v;
    }
    QA_TRY(be->rmsnorm(be, h, x, &l->in_norm, T, D, eps, e));
    QA_TRY(be->gemm(be, q, h, &l->q_w, NULL, T, D, QD, QA_ACT_NONE, 0, e));
    QA_TRY(be->gemm(be, k, h, &l->k_w, NULL, T, D, KD, QA_ACT_NONE, 0, e));
    QA_TRY(be->gemm(be, v, h, &l->v_w, NULL, T, D, KD, QA_ACT_NONE, 0, e));
    QA_TRY(be->rmsnorm(be, q, q, &l->q_norm, T * H, Dh, eps, e)); /* q_norm over each head, before RoPE */
    QA_TRY(be->rmsnorm(be, k, k, &l->k_norm, T * Hk, Dh, eps, e));
    for (int64_t s = 0; s < n_sp; s++) { /* with a cache: one span, rows 0..T (decoder.h) */
        int64_t r0 = sp[s].row0, n = sp[s].rows, Tkv = kv ? pos0 + n : n, qpos = kv ? pos0 : 0;
        QA_TRY(be->rope(be, q + r0 * QD, n, H, Dh, pos0, theta, e));
        QA_TRY(be->rope(be, k + r0 * KD, n, Hk, Dh, pos0, theta, e));
        QA_TRY(be->attention(be, a + r0 * QD, q + r0 * QD, kall + r0 * KD, vall + r0 * KD, n, Tkv, H, Hk, Dh, qpos,
                             1, 0, e));
    }
    QA_TRY(be->gemm(be, x, a, &l->o_w, NULL, T, QD, D, QA_ACT_NONE, 1, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

/* MLP block: x += down(silu(gate(y)) · up(y)), y = RMSNorm(x), QA_MLP_TILE rows at a time. */
static qa_status mlp_block(qa_backend *be, const qa_decoder_layer *l, const qa_text_config *t, qa_region *ws,
                           float *x, float *h, int64_t T, qa_err *e)
{
    int64_t D = t->hidden, F = t->inter, tile = min64(T, QA_MLP_TILE);
    size_t mark = qa_region_mark(ws);
    float *g, *u;
    TAKE(g, tile * F);
    TAKE(u, tile * F);
    QA_TRY(be->rmsnorm(be, h, x, &l->post_norm, T, D, (float)t->rms_eps, e));
    for (int64_t r0 = 0; r0 < T; r0 += tile) {
        int64_t rows = min64(tile, T - r0);
        QA_TRY(be->gemm(be, g, h + r0 * D, &l->gate_w, NULL, rows, D, F, QA_ACT_NONE, 0, e));
        QA_TRY(be->gemm(be, u, h + r0 * D, &l->up_w, NULL, rows, D, F, QA_ACT_NONE, 0, e));
        QA_TRY(be->silu_mul(be, g, g, u, rows * F, e));
        QA_TRY(be->gemm(be, x + r0 * D, g, &l->down_w, NULL, rows, F, D, QA_ACT_NONE, 1, e));
    }
    qa_region_release(ws, mark);
    return QA_OK;
}

static qa_status run_layers(qa_backend *be, const qa_model *m, qa_region *ws, float *x, int64_t T, int64_t pos0,
                            const qa_kv_cache *kv, const qa_span *sp, int64_t n_sp, qa_err *e)
{
    const qa_text_config *t = &m->cfg.text;
    size_t mark = qa_region_mark(ws);
    float *h;
    TAKE(h, T * t->hidden);
    for (int i = 0; i < t->layers; i++) {
        QA_TRY(qa_cancel_poll(&be->cancel, "a decoder layer", e));
        QA_TRY(attn_block(be, &m->dec.layers[i], t, ws, x, h, T, pos0, kv, i, sp, n_sp, e));
        QA_TRY(mlp_block(be, &m->dec.layers[i], t, ws, x, h, T, e));
    }
    qa_region_release(ws, mark);
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
    return run_layers(be, m, ws, x, T, 0, NULL, sp, n_sp, e);
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
    return run_layers(be, m, ws, x, T, pos0, kv, &all, 1, e);
}

/* Attention block of one decode row at position *pos (backend memory): as attn_block with T = 1, but
 * k, v are computed in temporaries and stored into the cache row by store_rows_at. */
static qa_status attn_block_at(qa_backend *be, const qa_decoder_layer *l, const qa_text_config *t, qa_region *ws,
                               float *x, float *h, const int32_t *pos, const qa_kv_cache *kv, int li, qa_err *e)
{
    int64_t D = t->hidden, H = t->heads, Hk = t->kv_heads, Dh = t->head_dim, QD = H * Dh, KD = Hk * Dh;
    float eps = (float)t->rms_eps, theta = (float)t->rope_theta;
    size_t mark = qa_region_mark(ws);
    float *q, *a, *k, *v;
    float *kall = kv->base + (int64_t)(2 * li) * kv->max_ctx * KD;
    float *vall = kv->base + (int64_t)(2 * li + 1) * kv->max_ctx * KD;
    TAKE(q, QD);
    TAKE(a, QD);
    TAKE(k, KD);
    TAKE(v, KD);
    QA_TRY(be->rmsnorm(be, h, x, &l->in_norm, 1, D, eps, e));
    QA_TRY(be->gemm(be, q, h, &l->q_w, NULL, 1, D, QD, QA_ACT_NONE, 0, e));
    QA_TRY(be->gemm(be, k, h, &l->k_w, NULL, 1, D, KD, QA_ACT_NONE, 0, e));
    QA_TRY(be->gemm(be, v, h, &l->v_w, NULL, 1, D, KD, QA_ACT_NONE, 0, e));
    QA_TRY(be->rmsnorm(be, q, q, &l->q_norm, H, Dh, eps, e));
    QA_TRY(be->rmsnorm(be, k, k, &l->k_norm, Hk, Dh, eps, e));
    QA_TRY(be->rope_at(be, q, 1, H, Dh, pos, theta, e));
    QA_TRY(be->rope_at(be, k, 1, Hk, Dh, pos, theta, e));
    QA_TRY(be->store_rows_at(be, kall, k, 1, KD, pos, kv->max_ctx, e));
    QA_TRY(be->store_rows_at(be, vall, v, 1, KD, pos, kv->max_ctx, e));
    QA_TRY(be->attention_at(be, a, q, kall, vall, 1, kv->max_ctx, H, Hk, Dh, pos, e));
    QA_TRY(be->gemm(be, x, a, &l->o_w, NULL, 1, QD, D, QA_ACT_NONE, 1, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

qa_status qa_decoder_step_at(qa_backend *be, const qa_model *m, qa_region *ws, float *x, const int32_t *pos,
                             const qa_kv_cache *kv, qa_err *e)
{
    const qa_text_config *t = &m->cfg.text;
    size_t mark = qa_region_mark(ws);
    float *h;
    TAKE(h, t->hidden);
    for (int i = 0; i < t->layers; i++) {
        QA_TRY(qa_cancel_poll(&be->cancel, "a decoder layer", e));
        QA_TRY(attn_block_at(be, &m->dec.layers[i], t, ws, x, h, pos, kv, i, e));
        QA_TRY(mlp_block(be, &m->dec.layers[i], t, ws, x, h, 1, e));
    }
    qa_region_release(ws, mark);
    return QA_OK;
}
