/* asr.c — Qwen3-ASR greedy generation: prefill over the chat prompt with the audio, then one token
 * per step through the KV cache.
 *
 * Contract (asr.h). Reference: HF generate() with do_sample=False on Qwen3ASRForConditionalGeneration
 * (MODEL_FACTS §8.3): audio features only at the prefill step; logits of the last position only;
 * argmax (first max); MinNewTokensLengthLogitsProcessor sets the EOS logits (151643, 151645) to −inf
 * while fewer than min_new_tokens were generated; stop at EOS or max_new_tokens.
 * Memory: the cache is the arena's kv region (rows = positions, qa_kv_cache). The workspace holds,
 * right after the backend scratch and so at the same offsets in every request, the decode loop's
 * buffers (logits [V], token, two rows [D], generated ids [plan's max_new], step state); above them
 * the prompt's x [T, D] during prefill, released before the first decode step so that the step's
 * temporaries sit at fixed offsets too — qa_plan_workspace_asr mirrors the takes.
 * Decode loops (backend.h qa_decode_mode), all with the same numbers:
 *   PLAIN  host positions, one 4-byte copy back per token to test for EOS (CPU; QA_CUDA_GRAPH=0);
 *   STEPS  position / step index / min_new in the device step state, token ids written on the device,
 *          QA_ASR_BLOCK steps enqueued, then ONE copy of their ids and a host scan for EOS (steps
 *          computed past an EOS are discarded: their cache rows are never read);
 *   GRAPH  as STEPS with the step recorded once (the first request, i.e. load_models' warm-up) and
 *          replayed: one launch per token instead of ~450 (issue #6);
 *   LOOP   as GRAPH with the recording the body of a loop on the device (backend.h graph_begin_loop): one
 *          launch per block of QA_ASR_LOOP_BLOCK steps, which ends after the step that picks an EOS — no
 *          host round trip between tokens, no step computed past an EOS.
 * Cancellation is polled between blocks (and per layer while a step runs op by op).
 */
#include "asr.h"

#include <stdint.h>

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

/* Steps enqueued before their ids are copied back: a sync per block instead of per token, at the cost
 * of at most QA_ASR_BLOCK − 1 steps computed past an EOS. The device loop stops at an EOS itself, so its
 * block only sets how often the host polls for cancellation (~50 ms of 1.7B steps) and reads the ids. */
#define QA_ASR_BLOCK 8
#define QA_ASR_LOOP_BLOCK 32
#define QA_ASR_GRAPH_SLOT 0
_Static_assert(QA_ASR_LOOP_BLOCK >= QA_ASR_BLOCK, "step_loop's ids of a block hold either loop's");

/* The decode loop's buffers (backend memory, fixed workspace offsets). */
typedef struct asr_bufs {
    float *logits;  /* [V] logits of the row being picked */
    int32_t *tok;   /* [1] the picked token */
    float *g, *x1;  /* [D] final-norm row, token row (the residual stream of the step) */
    int32_t *ids;   /* [cap] generated ids (device-state loops) */
    int32_t *state; /* [QA_STEP_INTS] backend.h step state */
    int64_t cap;
} asr_bufs;

static qa_status take_bufs(qa_region *ws, const qa_model *m, int64_t cap, asr_bufs *b, qa_err *e)
{
    int64_t D = m->cfg.text.hidden, V = qa_head_classes(m);
    TAKE(b->logits, (size_t)V * sizeof(float));
    TAKE(b->tok, sizeof(int32_t));
    TAKE(b->g, (size_t)D * sizeof(float));
    TAKE(b->x1, (size_t)D * sizeof(float));
    TAKE(b->ids, (size_t)cap * sizeof(int32_t));
    TAKE(b->state, QA_STEP_INTS * sizeof(int32_t));
    b->cap = cap;
    return QA_OK;
}

/* The reference loop: host positions, one copy back per token. */
static qa_status plain_loop(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv, int64_t T,
                            int64_t max_new, int64_t min_new, const asr_bufs *b, int32_t *out_ids, int64_t *n_out,
                            qa_err *e)
{
    int32_t eos[2] = {m->cfg.eos_token_ids[0], m->cfg.eos_token_ids[1]};
    for (int64_t i = 0; i < max_new; i++) {
        int32_t id;
        QA_TRY(be->argmax(be, b->tok, NULL, b->logits, 1, qa_head_classes(m), eos, i < min_new ? 2 : 0, e));
        QA_TRY(be->copy(be, &id, b->tok, sizeof id, QA_COPY_D2H, e));
        if (is_eos(m, id))
            break;
        out_ids[(*n_out)++] = id;
        if (i + 1 == max_new)
            break; /* the last token needs no forward */
        QA_TRY(be->embed(be, b->x1, &m->dec.embed, b->tok, 1, e));
        QA_TRY(qa_decoder_forward(be, m, ws, b->x1, 1, T + i, kv, e));
        QA_TRY(qa_head_row(be, m, b->x1, b->g, b->logits, e));
    }
    return QA_OK;
}

/* Pick token i = state[INDEX] from logits (EOS suppressed while i < min_new), i.e. the plain loop's
 * argmax with the suppression decided on the device. */
static qa_status pick_at(qa_backend *be, const qa_model *m, const asr_bufs *b, qa_err *e)
{
    int32_t eos[2] = {m->cfg.eos_token_ids[0], m->cfg.eos_token_ids[1]};
    return be->argmax_at(be, b->ids, b->cap, b->tok, b->logits, qa_head_classes(m), eos, 2, b->state, e);
}

/* One decode step on the device state: pick token i, run it at position state[POS], leave the logits
 * of the next row, advance the state. This is the unit a graph records. */
static qa_status decode_step(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv,
                             const asr_bufs *b, qa_err *e)
{
    QA_TRY(pick_at(be, m, b, e));
    QA_TRY(be->embed(be, b->x1, &m->dec.embed, b->tok, 1, e));
    QA_TRY(qa_decoder_step_at(be, m, ws, b->x1, b->state + QA_STEP_POS, kv, e));
    QA_TRY(qa_head_row(be, m, b->x1, b->g, b->logits, e));
    return be->step_advance(be, b->state, e);
}

/* Record decode_step into the graph slot, keyed by the state buffer's address (a different workspace
 * layout records again): as the body of the device loop (LOOP: stop at an EOS, at the request's last step
 * with a forward, or at the end of a block) or alone (GRAPH). A failure while recording drops the partial
 * recording. */
static qa_status record_step(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv,
                             const asr_bufs *b, qa_err *e)
{
    int32_t eos[2] = {m->cfg.eos_token_ids[0], m->cfg.eos_token_ids[1]};
    if (be->decode_mode == QA_DECODE_LOOP)
        QA_TRY(be->graph_begin_loop(be, b->state, b->tok, eos, 2, QA_ASR_LOOP_BLOCK, e));
    else
        QA_TRY(be->graph_begin(be, e));
    qa_status s = decode_step(be, m, ws, kv, b, e);
    if (s != QA_OK) {
        qa_err ignored;
        be->graph_end(be, QA_ASR_GRAPH_SLOT, NULL, &ignored);
        return s;
    }
    return be->graph_end(be, QA_ASR_GRAPH_SLOT, b->state, e);
}

/* Enqueue steps [i0, i0 + n): a forward for each but the last step of the request, which only picks. */
static qa_status enqueue_block(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv,
                               const asr_bufs *b, int64_t i0, int64_t n, int64_t max_new, qa_err *e)
{
    for (int64_t i = i0; i < i0 + n; i++) {
        if (i + 1 == max_new)
            QA_TRY(pick_at(be, m, b, e));
        else if (be->decode_mode == QA_DECODE_GRAPH)
            QA_TRY(be->graph_launch(be, QA_ASR_GRAPH_SLOT, e));
        else
            QA_TRY(decode_step(be, m, ws, kv, b, e));
    }
    return QA_OK;
}

/* Steps [i0, i0 + n) on the device loop, i0 a multiple of its block: one launch runs the steps with a forward,
 * up to the block's end or an EOS; the request's last step only picks, enqueued here as in enqueue_block
 * (after an EOS it picks an id past it, which nobody reads). */
static qa_status loop_block(qa_backend *be, const qa_model *m, const asr_bufs *b, int64_t i0, int64_t n,
                            int64_t max_new, qa_err *e)
{
    if (i0 + 1 < max_new) /* a step with a forward in the block: the loop runs from i0 */
        QA_TRY(be->graph_launch(be, QA_ASR_GRAPH_SLOT, e));
    if (i0 + n == max_new)
        QA_TRY(pick_at(be, m, b, e));
    return QA_OK;
}

/* Device-state loop (STEPS / GRAPH / LOOP): blocks of steps, one copy of their ids each, stop at the first EOS.
 * state[LIMIT] = max_new − 1: the steps with a forward, where the device loop stops. */
static qa_status step_loop(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv, int64_t T,
                           int64_t max_new, int64_t min_new, const asr_bufs *b, int32_t *out_ids, int64_t *n_out,
                           qa_err *e)
{
    int loop = be->decode_mode == QA_DECODE_LOOP;
    int64_t block = loop ? QA_ASR_LOOP_BLOCK : QA_ASR_BLOCK;
    if (max_new > b->cap)
        return QA_FAIL(e, QA_ERR_INTERNAL, "asr: max_new_tokens %lld beyond the %lld ids planned",
                       (long long)max_new, (long long)b->cap);
    if ((loop || be->decode_mode == QA_DECODE_GRAPH) && !be->graph_ready(be, QA_ASR_GRAPH_SLOT, b->state))
        QA_TRY(record_step(be, m, ws, kv, b, e));
    int32_t st[QA_STEP_INTS] = {(int32_t)T, 0, (int32_t)min_new, (int32_t)(max_new - 1)};
    QA_TRY(be->copy(be, b->state, st, sizeof st, QA_COPY_H2D, e));
    for (int64_t i0 = 0; i0 < max_new; i0 += block) {
        QA_TRY(qa_cancel_poll(&be->cancel, "greedy decoding", e));
        int64_t n = max_new - i0 < block ? max_new - i0 : block;
        int32_t got[QA_ASR_LOOP_BLOCK];
        if (loop)
            QA_TRY(loop_block(be, m, b, i0, n, max_new, e));
        else
            QA_TRY(enqueue_block(be, m, ws, kv, b, i0, n, max_new, e));
        QA_TRY(be->copy(be, got, b->ids + i0, (size_t)n * sizeof(int32_t), QA_COPY_D2H, e));
        for (int64_t j = 0; j < n; j++) {
            if (is_eos(m, got[j]))
                return QA_OK;
            out_ids[(*n_out)++] = got[j];
        }
    }
    return QA_OK;
}

qa_status qa_asr_generate(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv,
                          const qa_inputs *in, int64_t max_new, int64_t min_new, int64_t cap, int32_t *out_ids,
                          int64_t *n_out, float *first_logits, qa_err *e)
{
    int64_t T = in->T, D = m->cfg.text.hidden, V = qa_head_classes(m);
    size_t mark = qa_region_mark(ws);
    asr_bufs b;
    float *x;
    *n_out = 0;
    if (in->T > INT32_MAX - max_new || min_new > INT32_MAX)
        return QA_FAIL(e, QA_ERR_INPUT, "asr: %lld prompt + %lld new positions exceed int32", (long long)T,
                       (long long)max_new);
    QA_TRY(take_bufs(ws, m, cap, &b, e));
    size_t fixed = qa_region_mark(ws);
    TAKE(x, (size_t)(T * D) * sizeof(float));
    QA_TRY(qa_inputs_embed(be, m, ws, in, 1, x, e));
    QA_TRY(qa_decoder_forward(be, m, ws, x, T, 0, kv, e));
    QA_TRY(qa_head_row(be, m, x + (T - 1) * D, b.g, b.logits, e));
    if (first_logits)
        QA_TRY(be->copy(be, first_logits, b.logits, (size_t)V * sizeof(float), QA_COPY_D2H, e));
    qa_region_release(ws, fixed); /* x is done: the decode step's temporaries start at a fixed offset */
    if (be->decode_mode == QA_DECODE_PLAIN)
        QA_TRY(plain_loop(be, m, ws, kv, T, max_new, min_new, &b, out_ids, n_out, e));
    else
        QA_TRY(step_loop(be, m, ws, kv, T, max_new, min_new, &b, out_ids, n_out, e));
    qa_region_release(ws, mark);
    return QA_OK;
}
