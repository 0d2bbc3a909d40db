/* align.c — one forced-alignment forward: audio tower, prompt embedding, text model, head at <timestamp>.
 *
 * Contract (align.h). Reference: Qwen3ForcedAligner.align (QW) / HF Qwen3ASRForTokenClassification:
 * one non-autoregressive causal forward over [audio_start, N×audio_pad, audio_end, w1 ts ts, ...];
 * logits of the `score` head at the positions where id == timestamp_token_id (151705), argmax =
 * class (first max on ties), its softmax probability is our confidence (MODEL_FACTS §7.3).
 * Workspace: x [T, D] lives through the whole request; the inputs stage, the decoder and the head
 * each take their temporaries above it and give them back (qa_plan_workspace_aligner mirrors this).
 * Timestamp row indices are streamed to the device through a small stack buffer, so nothing of the
 * request's size is allocated outside the arena.
 * Packed batches (issue #6): B clips in ONE forward. Their prompts are concatenated, every row-wise op
 * (embedding, norms, GEMMs, MLP, head) runs once over all rows, and only the encoder's conv front and
 * windows, RoPE positions and causal attention are per clip (encoder.c, decoder.c spans). The pack must
 * fit the plan of the longest single request: its summed mel frames, 100-frame chunks, audio tokens,
 * prompt tokens and timestamps within the plan's (qa_align_pack_fits); every workspace take is then at
 * most the single request's at those sums, so nothing beyond the plan is needed.
 */
#include "align.h"

#include "../model/decoder.h"
#include "../model/heads.h"

#define ROWS_CHUNK 1024 /* timestamp indices staged per host->device copy */

qa_status qa_align_count(const qa_model *m, const qa_inputs *in, int64_t max_frames, int64_t max_tokens,
                         int64_t *n, qa_err *e)
{
    if (m->cfg.kind != QA_MODEL_ALIGNER)
        return QA_FAIL(e, QA_ERR_INPUT, "this model is not a forced aligner");
    if (!in->ids)
        return QA_FAIL(e, QA_ERR_INPUT, "input_ids are required");
    QA_TRY(qa_inputs_check(m, in, max_frames, max_tokens, e));
    *n = 0;
    for (int64_t t = 0; t < in->T; t++)
        *n += in->ids[t] == m->cfg.timestamp_token_id;
    if (*n == 0)
        return qa_inputs_finite_first(in, QA_FAIL(e, QA_ERR_INPUT, "input_ids contain no <timestamp> id (%d): "
                                                  "nothing to align", m->cfg.timestamp_token_id), e);
    return QA_OK;
}

void qa_align_pack_add(const qa_model *m, const qa_inputs *in, int64_t stamps, qa_pack_size *s)
{
    int64_t L = 2 * (int64_t)m->cfg.audio.n_window;
    s->clips += 1;
    s->frames += in->frames;
    s->chunks += (in->frames + L - 1) / L;
    s->audio_tokens += qa_audio_tokens_of_frames(&m->cfg.audio, in->frames);
    s->tokens += in->T;
    s->stamps += stamps;
}

qa_status qa_align_pack_fits(const qa_pack_size *s, const qa_pack_size *lim, qa_err *e)
{
    static const char *const what[] = {"clips", "mel frames", "100-frame chunks", "audio tokens", "prompt tokens",
                                       "<timestamp> ids"};
    const int64_t got[] = {s->clips, s->frames, s->chunks, s->audio_tokens, s->tokens, s->stamps};
    const int64_t max[] = {lim->clips, lim->frames, lim->chunks, lim->audio_tokens, lim->tokens, lim->stamps};
    for (int k = 0; k < 6; k++)
        if (got[k] > max[k])
            return QA_FAIL(e, QA_ERR_INPUT, "a pack of %lld clips has %lld %s in all, the plan of the longest single "
                           "request allows %lld (max_audio_seconds / max_text_tokens of load_models); pack fewer clips",
                           (long long)s->clips, (long long)got[k], what[k], (long long)max[k]);
    return QA_OK;
}

/* Device rows[i] = row of the i-th <timestamp> id in the concatenated prompts of the n clips. */
static qa_status upload_rows(qa_backend *be, const qa_model *m, const qa_inputs *in, int64_t n, int32_t *rows,
                             qa_err *e)
{
    int32_t buf[ROWS_CHUNK];
    int64_t k = 0, done = 0;
    for (int64_t i = 0, t0 = 0; i < n; t0 += in[i].T, i++)
        for (int64_t t = 0; t < in[i].T; t++) {
            if (in[i].ids[t] != m->cfg.timestamp_token_id)
                continue;
            buf[k++] = (int32_t)(t0 + t);
            if (k == ROWS_CHUNK) {
                QA_TRY(be->copy(be, rows + done, buf, (size_t)k * sizeof(int32_t), QA_COPY_H2D, e));
                done += k;
                k = 0;
            }
        }
    if (k)
        QA_TRY(be->copy(be, rows + done, buf, (size_t)k * sizeof(int32_t), QA_COPY_H2D, e));
    return QA_OK;
}

#define TAKE(ptr, bytes)                                  \
    do {                                                  \
        if (!((ptr) = qa_arena_take(ws, (bytes), e)))     \
            return e->code;                               \
    } while (0)

qa_status qa_align_forward(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, int64_t B,
                           float *logits, int32_t *classes, float *probs, qa_err *e)
{
    const qa_model_config *c = &m->cfg;
    int64_t T = 0, D = c->text.hidden, C = qa_head_classes(m), n = 0;
    qa_span spans[QA_PACK_MAX];
    if (B < 1 || B > QA_PACK_MAX)
        return QA_FAIL(e, QA_ERR_INTERNAL, "align: %lld clips, expected 1 to %d", (long long)B, QA_PACK_MAX);
    for (int64_t i = 0; i < B; T += in[i].T, i++) {
        spans[i] = (qa_span){T, in[i].T};
        for (int64_t t = 0; t < in[i].T; t++)
            n += in[i].ids[t] == c->timestamp_token_id;
    }
    size_t mark = qa_region_mark(ws);
    float *x, *lg, *pr;
    int32_t *rows, *cls;
    TAKE(x, (size_t)(T * D) * sizeof(float));
    QA_TRY(qa_inputs_embed(be, m, ws, in, B, x, e));
    QA_TRY(qa_decoder_forward_spans(be, m, ws, x, spans, B, e));
    TAKE(rows, (size_t)n * sizeof(int32_t));
    TAKE(lg, (size_t)(n * C) * sizeof(float));
    TAKE(cls, (size_t)n * sizeof(int32_t));
    TAKE(pr, (size_t)n * sizeof(float));
    QA_TRY(upload_rows(be, m, in, B, rows, e));
    QA_TRY(qa_head_rows(be, m, ws, x, T, rows, n, lg, e));
    QA_TRY(be->argmax(be, cls, pr, lg, n, C, NULL, 0, e));
    if (logits)
        QA_TRY(be->copy(be, logits, lg, (size_t)(n * C) * sizeof(float), QA_COPY_D2H, e));
    if (classes)
        QA_TRY(be->copy(be, classes, cls, (size_t)n * sizeof(int32_t), QA_COPY_D2H, e));
    if (probs)
        QA_TRY(be->copy(be, probs, pr, (size_t)n * sizeof(float), QA_COPY_D2H, e));
    qa_region_release(ws, mark);
    return QA_OK;
}
