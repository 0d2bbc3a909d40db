/* inputs.h — a request's model inputs: validation, feature upload, prompt embedding with the audio.
 *
 *     qa_inputs in = {feat, 128, ld, frames, ids, T};                 // host arrays, borrowed
 *     (or: qa_inputs in = {0}; qa_inputs_set_samples(&in, samples, n); in.ids = ids; in.T = T;)
 *     QA_TRY(qa_inputs_check(model, &in, max_frames, max_tokens, e)); // before touching the device
 *     float *x = qa_arena_take(ws, T * D * 4, e);
 *     QA_TRY(qa_inputs_embed(be, model, ws, &in, 1, x, e));           // x = embed(ids) with audio rows
 *
 * Shared by pipeline/align.c and pipeline/asr.c. Temporaries come from the workspace and are
 * released before returning (peak qa_plan_workspace_inputs()).
 */
#ifndef QA_INPUTS_H
#define QA_INPUTS_H

#include "../backend/backend.h"
#include "../memory/device.h"
#include "../memory/plan.h"
#include "../model/weights.h"

/* Most clips in one packed forward (pipeline/align.c): the per-clip host arrays of the engine (spans,
 * encoder clips, request copies) live on the stack, so a pack allocates nothing. */
#define QA_PACK_MAX 256

typedef struct qa_inputs {
    const float *feat;  /* host [mel_bins, ld] log-mel, valid frames first; NULL: from samples */
    int64_t mel_bins;
    int64_t ld;
    int64_t frames;     /* valid mel frames */
    const int32_t *ids; /* host [T] prompt ids (NULL for audio-only requests) */
    int64_t T;
    qa_cancel cancel;   /* polled between layers; {0} = never cancelled (core/cancel.h) */
    /* Audio instead of features (qa_inputs_set_samples): the backend computes the features
     * (be->log_mel) after uploading the samples with dev->copy_h2d (CUDA: the pinned staging). */
    const float *samples;   /* host [n_samples] 16 kHz mono, or NULL */
    int64_t n_samples;
    const qa_device *dev;   /* set by the engine */
    const void *mel_tables; /* backend memory (the arena's mel/tables), set by the engine */
    /* Samples only, set by the engine (the aligner's): qa_inputs_check leaves the finiteness check to the
     * upload, which scans each chunk right before copying it (one pass over the samples, not two). */
    int scan_at_upload;
} qa_inputs;

/* Make `in` a request from samples (host, borrowed): feat = NULL, mel_bins = 128,
 * frames = ld = the samples' mel frames (frontend/mel.c qa_mel_frames). */
void qa_inputs_set_samples(qa_inputs *in, const float *samples, int64_t n);

/* feat_dev [mel_bins, frames] (backend memory) = the request's features: uploaded (feat) or
 * computed on the backend from the samples (samples + log_mel work taken above feat_dev from ws and
 * released; qa_plan_workspace_mel). */
qa_status qa_inputs_features(qa_backend *be, qa_region *ws, const qa_inputs *in, float *feat_dev, qa_err *e);

/* QA_ERR_INPUT naming the argument / limit when: mel_bins != the model's, frames not in (0, ld], a
 * valid feature is NaN or infinite (QA_ERR_AUDIO: a sample is),
 * frames > max_frames (the plan's max_audio_seconds), T > max_tokens, an id outside [0, vocab),
 * or the number of <|audio_pad|> ids != the audio tokens of `frames`. */
qa_status qa_inputs_check(const qa_model *m, const qa_inputs *in, int64_t max_frames, int64_t max_tokens,
                          qa_err *e);

/* QA_ERR_AUDIO naming the first non-finite sample (QA_ERR_INPUT: feature) of `in`, else QA_OK: the
 * finiteness check of qa_inputs_check alone. */
qa_status qa_inputs_check_finite(const qa_inputs *in, qa_err *e);

/* A check of `in` that came after the finiteness one in qa_inputs_check's order failed with s (in *e):
 * when the request left that check to the upload (scan_at_upload), it runs now, and its error replaces
 * s, so errors come in the same order as without the deferral. Returns s otherwise. */
qa_status qa_inputs_finite_first(const qa_inputs *in, qa_status s, qa_err *e);

/* x[T, D] (backend memory) = embeddings of ids with the audio tower's rows at the <|audio_pad|>
 * positions, in order (HF masked_scatter). in[0..n): the requests of a packed batch (n = 1: one request,
 * 1 <= n <= QA_PACK_MAX), each checked by qa_inputs_check; x holds their rows one after another
 * (T = the sum of their T). */
qa_status qa_inputs_embed(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, int64_t n,
                          float *x, qa_err *e);

/* Audio tower only: out_host [N_audio, D] (host memory, caller's) = encoder + projector output. */
qa_status qa_inputs_audio(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, float *out_host,
                          qa_err *e);

#endif
