/* asr.c — Qwen3-ASR greedy generation: prefill over the chat prompt with the audio, then one token
 * per step through the KV cache.
 *
 * Contract (asr.h). Reference: HF generate() with do_sample=False on Qwen3ASRForConditionalGeneration
 * (MODEL_FACTS §8.3): audio features only at the prefill step; logits of the last position only;
 * argmax (first max); MinNewTokensLengthLogitsProcessor sets the EOS logits (151643, 151645) to −inf
 * while fewer than min_new_tokens were generated; stop at EOS or max_new_tokens.
 * Memory: the cache is the arena's kv region (rows = positions, qa_kv_cache); the workspace holds the
 * prompt's x [T, D] during prefill, then the per-step buffers (logits [V], token, two rows [D]) above
 * it — qa_plan_workspace_asr mirrors the takes. Each step copies one int32 back to test for EOS.
 */
#include "asr.h"

#include "../model/heads.h"

qa_status qa_asr_check(const qa_model *m, const qa_inputs *in, int64_t max_frames, int64_t max_tokens,
                       int64_t max_new, int64_t min_new, const qa_kv_cache *kv, qa_err *e)
{
    if (m->cfg.kind != QA_MODEL_ASR)
        return QA_FAIL(e, QA_ERR_INPUT, "this model is not an ASR model");
    if (!in->ids)
        return QA_FAIL(e, QA_ERR_INPUT, "prompt_ids are required");
    QA_TRY(qa_inputs_check(m, in, max_frames, max_tokens, e));
    if (max_new < 1 || min_new < 0 || min_new > max_new)
        return QA_FAIL(e, QA_ERR_INPUT, "need 1 <= max_new_tokens and 0 <= min_new_tokens <= max_new_tokens "
                       "(got %lld, %lld)", (long long)max_new, (long long)min_new);
    if (in->T + max_new > kv->max_ctx)
        return QA_FAIL(e, QA_ERR_INPUT, "prompt of %lld tokens + max_new_tokens %lld exceed the KV cache of %lld "
                       "positions planned (max_new_tokens / max_audio_seconds of load_models)",
                       (long long)in->T, (long long)max_new, (long long)kv->max_ctx);
    return QA_OK;
}

static int is_eos(const qa_model *m, int32_t id)
{
    return id == m->cfg.eos_token_ids[0] || id == m->cfg.eos_token_ids[1];
}

#define TAKE(ptr, bytes)                              \
    do {                                              \
        if (!((ptr) = qa_arena_take(ws, (bytes), e))) \
            return e->code;                           \
    } while (0)

qa_status qa_asr_generate(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv,
                          const qa_inputs *in, int64_t max_new, int64_t min_new, int32_t *out_ids, int64_t *n_out,
                          float *first_logits, qa_err *e)
{
    const qa_model_config *c = &m->cfg;
    int64_t T = in->T, D = c->text.hidden, V = qa_head_classes(m);
    size_t mark = qa_region_mark(ws);
    float *x, *logits, *g, *x1;
    int32_t *tok;
    *n_out = 0;
    TAKE(x, (size_t)(T * D) * sizeof(float));
    QA_TRY(qa_inputs_embed(be, m, ws, in, x, e));
    QA_TRY(qa_decoder_forward(be, m, ws, x, T, 0, kv, e));
    TAKE(logits, (size_t)V * sizeof(float));
    TAKE(tok, sizeof(int32_t));
    TAKE(g, (size_t)D * sizeof(float));
    TAKE(x1, (size_t)D * sizeof(float));
    QA_TRY(qa_head_row(be, m, x + (T - 1) * D, g, logits, e));
    if (first_logits)
        QA_TRY(be->copy(be, first_logits, logits, (size_t)V * sizeof(float), QA_COPY_D2H, e));
    int32_t eos[2] = {c->eos_token_ids[0], c->eos_token_ids[1]};
    for (int64_t i = 0; i < max_new; i++) {
        int32_t id;
        QA_TRY(be->argmax(be, tok, NULL, logits, 1, V, eos, i < min_new ? 2 : 0, e));
        QA_TRY(be->copy(be, &id, tok, sizeof id, QA_COPY_D2H, e));
        if (is_eos(m, id))
            break;
        out_ids[(*n_out)++] = id;
        if (i + 1 == max_new)
            break; /* the last token needs no forward */
        QA_TRY(be->embed(be, x1, &m->dec.embed, tok, 1, e));
        QA_TRY(qa_decoder_forward(be, m, ws, x1, 1, T + i, kv, e));
        QA_TRY(qa_head_row(be, m, x1, g, logits, e));
    }
    qa_region_release(ws, mark);
    return QA_OK;
}
