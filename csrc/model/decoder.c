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
 * Each RMSNorm in front of Linear layers runs inside them (backend.h norm_gemm for q/k/v, norm_mlp for the
 * MLP), so the normalised x never sits in the workspace. The MLP runs QA_MLP_TILE rows at a time.
 * The takes below are mirrored by qa_plan_workspace_decoder().
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

/* q, k, v [T, H·Dh / Hk·Dh] = RMSNorm(x) · Wq/Wk/Wvᵀ: one norm_gemm, the normalised x shared (no copy). */
static qa_status qkv_proj(qa_backend *be, const qa_decoder_layer *l, const float *x, float *q, float *k, float *v,
                          int64_t T, int64_t D, int64_t QD, int64_t KD, float eps, qa_err *e)
{
    float *const y[3] = {q, k, v};
    const qa_tensor *const W[3] = {&l->q_w, &l->k_w, &l->v_w};
    const int64_t N[3] = {QD, KD, KD};
    return be->norm_gemm(be, y, x, &l->in_norm, eps, W, N, 3, T, D, 0, e);
}

/* Self-attention block: x += o_proj(attn(RMSNorm(x))). */
static qa_status attn_block(qa_backend *be, const qa_decoder_layer *l, const qa_text_config *t, qa_region *ws,
                            float *x, int64_t T, int64_t pos0, const qa_kv_cache *kv, int li, qa_err *e)
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
    QA_TRY(qkv_proj(be, l, x, q, k, v, T, D, QD, KD, eps, e));
    QA_TRY(be->rmsnorm(be, q, q, &l->q_norm, T * H, Dh, eps, e)); /* q_norm over each head, before RoPE */
    QA_TRY(be->rmsnorm(be, k, k, &l->k_norm, T * Hk, Dh, eps, e));
    QA_TRY(be->rope(be, q, T, H, Dh, pos0, theta, e));
    QA_TRY(be->rope(be, k, T, Hk, Dh, pos0, theta, e));
    int64_t Tkv = kv ? pos0 + T : T, qpos = kv ? pos0 : 0;
    QA_TRY(be->attention(be, a, q, kall, vall, T, Tkv, H, Hk, Dh, qpos, 1, 0, e));
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
    float *g, *u;
    TAKE(g, tile * F);
    TAKE(u, tile * F);
    for (int64_t r0 = 0; r0 < T; r0 += tile)
        QA_TRY(be->norm_mlp(be, x + r0 * D, &l->post_norm, (float)t->rms_eps, &l->gate_w, &l->up_w, &l->down_w, g,
                            u, min64(tile, T - r0), D, F, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

qa_status qa_decoder_forward(qa_backend *be, const qa_model *m, qa_region *ws, float *x, int64_t T, int64_t pos0,
                             const qa_kv_cache *kv, qa_err *e)
{
    const qa_text_config *t = &m->cfg.text;
    if (!kv && pos0 != 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "decoder: a start position %lld needs a KV cache", (long long)pos0);
    if (kv && pos0 + T > kv->max_ctx)
        return QA_FAIL(e, QA_ERR_INPUT, "decoder: %lld positions exceed the KV cache of %lld (max_new_tokens / "
                       "max_audio_seconds of the plan)", (long long)(pos0 + T), (long long)kv->max_ctx);
    for (int i = 0; i < t->layers; i++) {
        QA_TRY(qa_cancel_poll(&be->cancel, "a decoder layer", e));
        QA_TRY(attn_block(be, &m->dec.layers[i], t, ws, x, T, pos0, kv, i, e));
        QA_TRY(mlp_block(be, &m->dec.layers[i], t, ws, x, T, e));
    }
    return QA_OK;
}

/* Attention block of one decode row at position *pos (backend memory): as attn_block with T = 1, but
 * k, v are computed in temporaries and stored into the cache row by store_rows_at. */
static qa_status attn_block_at(qa_backend *be, const qa_decoder_layer *l, const qa_text_config *t, qa_region *ws,
                               float *x, const int32_t *pos, const qa_kv_cache *kv, int li, qa_err *e)
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
    QA_TRY(qkv_proj(be, l, x, q, k, v, 1, D, QD, KD, eps, e));
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
    for (int i = 0; i < t->layers; i++) {
        QA_TRY(qa_cancel_poll(&be->cancel, "a decoder layer", e));
        QA_TRY(attn_block_at(be, &m->dec.layers[i], t, ws, x, pos, kv, i, e));
        QA_TRY(mlp_block(be, &m->dec.layers[i], t, ws, x, 1, e));
    }
    return QA_OK;
}
