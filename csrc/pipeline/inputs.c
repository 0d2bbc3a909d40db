/* inputs.c — validate a request, upload its features, run the audio tower, build the input embeddings.
 *
 * Contract (inputs.h). Reference: HF Qwen3ASRForConditionalGeneration / Qwen3ASRModel.forward:
 * inputs_embeds = embed_tokens(input_ids); audio features -> audio tower -> masked_scatter into the
 * positions where input_ids == audio_token_id, in order; the counts must match ("Audio features and
 * audio tokens do not match" in HF — an InputError here, before any compute).
 * The audio pads of a prompt form one run in practice; any number of runs is handled with one
 * device-to-device row copy per run (no index array needed on the device).
 * A packed batch (pipeline/align.c) is an array of requests: their features, ids and embeddings sit
 * one after another, so masked_scatter over the concatenation is each clip's own scatter.
 */
#include "inputs.h"

#include <math.h>

#include "../backend/cuda_api.h"
#include "../frontend/audio.h"
#include "../frontend/mel.h"
#include "../model/encoder.h"

void qa_inputs_set_samples(qa_inputs *in, const float *samples, int64_t n)
{
    in->feat = NULL;
    in->samples = samples;
    in->n_samples = n;
    in->mel_bins = QA_MEL_BINS;
    in->frames = in->ld = (int64_t)qa_mel_frames(n > 0 ? (size_t)n : 0);
}

/* NaN/inf would spread to every logit silently: the features (or the samples they come from). The vectorised
 * pass first: a plain loop with its early exit runs at a third of the speed (~5 ms for 300 s of samples). */
static qa_status check_finite(const qa_inputs *in, qa_err *e)
{
    if (!in->feat) { /* frontend/mel.c's message, so both paths say the same */
        if (!in->samples || in->n_samples < 0)
            return QA_FAIL(e, QA_ERR_INPUT, "a request needs features or samples");
        size_t i = qa_first_nonfinite(in->samples, (size_t)in->n_samples);
        if (i < (size_t)in->n_samples)
            return QA_FAIL(e, QA_ERR_AUDIO, "log_mel: sample %zu is %s; audio must be finite", i,
                           isnan(in->samples[i]) ? "NaN" : "infinite");
        return QA_OK;
    }
    for (int64_t mrow = 0; mrow < in->mel_bins; mrow++) {
        const float *row = in->feat + mrow * in->ld;
        size_t f = qa_first_nonfinite(row, (size_t)in->frames);
        if (f < (size_t)in->frames)
            return QA_FAIL(e, QA_ERR_INPUT, "features[%lld, %zu] = %g: log-mel features must be finite",
                           (long long)mrow, f, (double)row[f]);
    }
    return QA_OK;
}

qa_status qa_inputs_check_finite(const qa_inputs *in, qa_err *e) { return check_finite(in, e); }

static int scan_deferred(const qa_inputs *in) { return in->scan_at_upload && in->samples && !in->feat; }

qa_status qa_inputs_finite_first(const qa_inputs *in, qa_status s, qa_err *e)
{
    qa_err f = {0};
    if (s == QA_OK || !scan_deferred(in) || check_finite(in, &f) == QA_OK)
        return s;
    *e = f;
    return f.code;
}

/* The prompt: its length within the plan, ids in the vocabulary, as many <|audio_pad|> as audio tokens. */
static qa_status check_ids(const qa_model_config *c, const qa_inputs *in, int64_t max_tokens, qa_err *e)
{
    if (in->T <= 0 || in->T > max_tokens)
        return QA_FAIL(e, QA_ERR_INPUT, "%lld input ids, the plan allows 1 to %lld (max_text_tokens / "
                       "max_audio_seconds)", (long long)in->T, (long long)max_tokens);
    int64_t pads = 0;
    for (int64_t t = 0; t < in->T; t++) {
        if (in->ids[t] < 0 || in->ids[t] >= c->text.vocab)
            return QA_FAIL(e, QA_ERR_INPUT, "input id %d at position %lld is outside the vocabulary [0, %d)",
                           (int)in->ids[t], (long long)t, c->text.vocab);
        pads += in->ids[t] == c->audio_token_id;
    }
    int64_t want = qa_audio_tokens_of_frames(&c->audio, in->frames);
    if (pads != want)
        return QA_FAIL(e, QA_ERR_INPUT, "the prompt has %lld <|audio_pad|> ids (%d) but %lld valid frames give "
                       "%lld audio tokens", (long long)pads, c->audio_token_id, (long long)in->frames,
                       (long long)want);
    return QA_OK;
}

qa_status qa_inputs_check(const qa_model *m, const qa_inputs *in, int64_t max_frames, int64_t max_tokens,
                          qa_err *e)
{
    const qa_model_config *c = &m->cfg;
    if (in->mel_bins != c->audio.num_mel_bins)
        return QA_FAIL(e, QA_ERR_INPUT, "features have %lld mel bins, the model expects %d", (long long)in->mel_bins,
                       c->audio.num_mel_bins);
    if (in->frames <= 0 || in->frames > in->ld)
        return QA_FAIL(e, QA_ERR_INPUT, "valid_frames %lld must be in [1, %lld] (the features' frame count)",
                       (long long)in->frames, (long long)in->ld);
    if (in->frames > max_frames)
        return QA_FAIL(e, QA_ERR_INPUT, "%lld mel frames (%.2f s) exceed the plan's limit of %lld frames "
                       "(max_audio_seconds %.2f); load the models with a larger max_audio_seconds",
                       (long long)in->frames, in->frames / 100.0, (long long)max_frames, max_frames / 100.0);
    if (!scan_deferred(in))
        QA_TRY(check_finite(in, e));
    return in->ids ? qa_inputs_finite_first(in, check_ids(c, in, max_tokens, e), e) : QA_OK;
}

/* Features host [M, ld] -> backend [M, frames] (only the valid frames travel). */
static qa_status upload_features(qa_backend *be, const qa_inputs *in, float *dst, qa_err *e)
{
    if (in->ld == in->frames)
        return be->copy(be, dst, in->feat, (size_t)(in->mel_bins * in->frames) * sizeof(float), QA_COPY_H2D, e);
    for (int64_t mrow = 0; mrow < in->mel_bins; mrow++)
        QA_TRY(be->copy(be, dst + mrow * in->frames, in->feat + mrow * in->ld, (size_t)in->frames * sizeof(float),
                        QA_COPY_H2D, e));
    return QA_OK;
}

#define SCAN_CHUNK (256 * 1024) /* samples scanned, then copied, per step: 1 MiB, still in the CPU's cache */

/* Host samples [i0, i0 + n) -> dst: through the device's upload hook (CUDA: pinned double-buffered staging,
 * asynchronous on the stream the ops run on) when the engine gave one, else be->copy. */
static qa_status copy_samples(qa_backend *be, const qa_inputs *in, float *dst, int64_t i0, int64_t n, qa_err *e)
{
    size_t bytes = (size_t)n * sizeof(float);
    if (in->dev && in->dev->copy_h2d)
        return in->dev->copy_h2d(in->dev->ctx, dst + i0, in->samples + i0, bytes, e);
    return be->copy(be, dst + i0, in->samples + i0, bytes, QA_COPY_H2D, e);
}

/* The samples to the backend; with scan_at_upload the finiteness check of qa_inputs_check happens here, a
 * chunk at a time just before its copy reads it again from the cache (the same error as there). */
static qa_status upload_samples(qa_backend *be, const qa_inputs *in, float *dst, qa_err *e)
{
    if (!scan_deferred(in))
        return copy_samples(be, in, dst, 0, in->n_samples, e);
    for (int64_t i = 0; i < in->n_samples; i += SCAN_CHUNK) {
        int64_t n = in->n_samples - i < SCAN_CHUNK ? in->n_samples - i : SCAN_CHUNK;
        if (!qa_all_finite(in->samples + i, (size_t)n))
            return check_finite(in, e);
        QA_TRY(copy_samples(be, in, dst, i, n, e));
    }
    return QA_OK;
}

qa_status qa_inputs_features(qa_backend *be, qa_region *ws, const qa_inputs *in, float *feat_dev, qa_err *e)
{
    if (in->feat)
        return upload_features(be, in, feat_dev, e);
    if (!in->mel_tables)
        return QA_FAIL(e, QA_ERR_INTERNAL, "log_mel: the engine set no mel tables");
    size_t mark = qa_region_mark(ws), work_bytes = qa_mel_work_bytes(in->n_samples);
    float *x = qa_arena_take(ws, (size_t)in->n_samples * sizeof(float), e);
    void *work = x ? qa_arena_take(ws, work_bytes, e) : NULL;
    if (!work)
        return e->code;
    QA_TRY(upload_samples(be, in, x, e));
    QA_TRY(be->log_mel(be, feat_dev, x, in->n_samples, in->mel_tables, work, work_bytes, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

/* Takes feat + emb from ws (in that order) and runs the tower over the n clips into emb: their
 * features one after another in feat (clip i's block [M, frames_i]), their embeddings likewise. */
static qa_status run_tower(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, int64_t n,
                           float **emb, qa_err *e)
{
    int64_t F = 0, N = 0, M = in[0].mel_bins, D = m->cfg.text.hidden;
    qa_enc_clip clips[QA_PACK_MAX];
    if (n < 1 || n > QA_PACK_MAX)
        return QA_FAIL(e, QA_ERR_INTERNAL, "inputs: %lld clips, expected 1 to %d", (long long)n, QA_PACK_MAX);
    for (int64_t i = 0; i < n; i++) {
        F += in[i].frames;
        N += qa_audio_tokens_of_frames(&m->cfg.audio, in[i].frames);
    }
    float *feat = qa_arena_take(ws, (size_t)(M * F) * sizeof(float), e);
    if (!feat)
        return e->code;
    for (int64_t i = 0, off = 0; i < n; off += M * in[i].frames, i++) {
        qa_status s = qa_inputs_features(be, ws, &in[i], feat + off, e);
        if (s == QA_ERR_AUDIO && n > 1) /* a non-finite sample found by the upload: named as the count would */
            qa_err_prefix(e, "clip %lld of the pack: ", (long long)i);
        QA_TRY(s);
        clips[i] = (qa_enc_clip){feat + off, in[i].frames, in[i].frames};
    }
    if (!(*emb = qa_arena_take(ws, (size_t)(N * D) * sizeof(float), e)))
        return e->code;
    return qa_encoder_forward(be, m, ws, clips, n, *emb, e);
}

/* x[t] = the host table's row of ids[t] for the ids of one clip that are not <|audio_pad|>, one gather
 * per run of them: the pads' rows would be overwritten by scatter_audio, and they are most of a long
 * clip's prompt (3,900 of 6,168 rows at 300 s: 16 MB less to convert on the CPU and copy). */
static qa_status embed_host_rows(qa_backend *be, const qa_model *m, const qa_inputs *in, float *x, qa_err *e)
{
    int64_t D = m->cfg.text.hidden, pad = m->cfg.audio_token_id;
    for (int64_t t = 0; t < in->T;) {
        if (in->ids[t] == pad) {
            t++;
            continue;
        }
        int64_t run = 1;
        while (t + run < in->T && in->ids[t + run] != pad)
            run++;
        QA_TRY(qa_cuda_embed_rows(be, x + t * D, &m->dec.embed, in->ids + t, run, e));
        t += run;
    }
    return QA_OK;
}

/* x[T, D] = embedding rows of the prompt ids of the n clips, one after another (the <|audio_pad|> rows
 * may be left unset: scatter_audio writes them). A host-resident table (the CUDA aligner's, issue #6) is
 * gathered by the CPU and only its rows travel (bit-equal: BF16 -> F32 is exact); `ids` (device) is then
 * unused but stays taken, so the workspace peak is the plan's on every backend. */
static qa_status embed_tokens(qa_backend *be, const qa_model *m, const qa_inputs *in, int64_t n, int32_t *ids,
                              float *x, qa_err *e)
{
    int64_t D = m->cfg.text.hidden, T = 0;
    for (int64_t i = 0; i < n; T += in[i].T, i++) {
        if (m->dec.embed_on_host)
            QA_TRY(embed_host_rows(be, m, &in[i], x + T * D, e));
        else
            QA_TRY(be->copy(be, ids + T, in[i].ids, (size_t)in[i].T * sizeof(int32_t), QA_COPY_H2D, e));
    }
    return m->dec.embed_on_host ? QA_OK : be->embed(be, x, &m->dec.embed, ids, T, e);
}

/* x[t0 + t] = the next audio row for every <|audio_pad|> id t of one clip (one copy per run of pads);
 * *used counts the audio rows consumed, across clips (their audio rows follow each other in emb). */
static qa_status scatter_audio(qa_backend *be, const qa_model *m, const qa_inputs *in, float *x, const float *emb,
                               int64_t *used, qa_err *e)
{
    int64_t D = m->cfg.text.hidden;
    for (int64_t t = 0; t < in->T;) {
        if (in->ids[t] != m->cfg.audio_token_id) {
            t++;
            continue;
        }
        int64_t run = 1;
        while (t + run < in->T && in->ids[t + run] == m->cfg.audio_token_id)
            run++;
        QA_TRY(be->copy(be, x + t * D, emb + *used * D, (size_t)(run * D) * sizeof(float), QA_COPY_D2D, e));
        *used += run;
        t += run;
    }
    return QA_OK;
}

qa_status qa_inputs_embed(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, int64_t n,
                          float *x, qa_err *e)
{
    int64_t D = m->cfg.text.hidden, T = 0, used = 0;
    for (int64_t i = 0; i < n; i++)
        T += in[i].T;
    size_t mark = qa_region_mark(ws);
    int32_t *ids = qa_arena_take(ws, (size_t)T * sizeof(int32_t), e);
    float *emb = NULL;
    if (!ids)
        return e->code;
    QA_TRY(run_tower(be, m, ws, in, n, &emb, e));
    QA_TRY(embed_tokens(be, m, in, n, ids, x, e));
    for (int64_t i = 0, t0 = 0; i < n; t0 += in[i].T, i++)
        QA_TRY(scatter_audio(be, m, &in[i], x + t0 * D, emb, &used, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

qa_status qa_inputs_audio(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, float *out_host,
                          qa_err *e)
{
    int64_t N = qa_audio_tokens_of_frames(&m->cfg.audio, in->frames), D = m->cfg.text.hidden;
    size_t mark = qa_region_mark(ws);
    float *emb = NULL;
    QA_TRY(run_tower(be, m, ws, in, 1, &emb, e));
    QA_TRY(be->copy(be, out_host, emb, (size_t)(N * D) * sizeof(float), QA_COPY_D2H, e));
    qa_region_release(ws, mark);
    return QA_OK;
}
