/* engine.h — the compute entry points of a loaded model set (what csrc/py/py_models.c calls).
 *
 *     qa_inputs in = {feat, 128, ld, frames, ids, T};          // host arrays, borrowed
 *     int64_t n;  QA_TRY(qa_engine_align_count(ms, &in, &n, e));
 *     QA_TRY(qa_engine_align(ms, 0, &in, NULL, classes, probs, e)); // on worker 0; n host values
 * Every entry also takes a request from samples (qa_inputs_set_samples): the samples are uploaded and
 * the features computed on the backend (be->log_mel), so a CUDA request runs wholly on the device.
 *
 * Each call validates against the plan's limits (frames, tokens, new tokens) with an InputError
 * naming the limit, resets its worker's workspace region, takes the backend scratch from it, and
 * runs. Nothing of the request's size is allocated outside the arena. Calls on DIFFERENT workers
 * may run at once on different threads (CPU); one worker serves one call at a time, which the
 * caller guarantees (py_models.c hands each worker to one request).
 */
#ifndef QA_ENGINE_H
#define QA_ENGINE_H

#include "align.h"
#include "inputs.h"
#include "models.h"

/* Audio tower of model `kind`: out_host [N_audio, D]. ids of `in` are ignored. */
qa_status qa_engine_audio(qa_models *ms, int worker, qa_model_kind kind, const qa_inputs *in, float *out_host, qa_err *e);

/* Validate an aligner request; *n = its <timestamp> count (the size of the outputs below). */
qa_status qa_engine_align_count(qa_models *ms, const qa_inputs *in, int64_t *n, qa_err *e);

/* Aligner forward; host outputs (each may be NULL): logits [n, classify_num], classes [n], probs [n]. */
qa_status qa_engine_align(qa_models *ms, int worker, const qa_inputs *in, float *logits, int32_t *classes, float *probs,
                          qa_err *e);

/* Packed batch (issue #6): B requests (1 <= B <= QA_PACK_MAX) in one forward. pack_count validates each
 * like qa_engine_align_count (the first failing clip's error, prefixed "clip i of the pack: ") and their
 * totals against *lim of pack_limit (the plan of the longest single request); n[i] = clip i's
 * <timestamp> count. qa_engine_align_pack writes the clips' outputs one after another (sum n[i] rows);
 * the request's cancellation hook is in[0].cancel. counted: the n of a pack_count of these same inputs,
 * unchanged since (their ids at least: the caller's own copy), so the forward skips the validation (the
 * prompt, and a pass over every feature); NULL validates again. A clip from samples is checked for
 * non-finite values by the forward's upload, chunk by chunk as it copies them (one pass over the samples):
 * pack_count reads no sample unless another check fails, when an earlier clip's (or the same clip's)
 * non-finite sample is still the error reported, as when that check came first. */
void qa_engine_align_pack_limit(qa_models *ms, qa_pack_size *lim);
qa_status qa_engine_align_pack_count(qa_models *ms, const qa_inputs *in, int64_t B, int64_t *n, qa_err *e);
qa_status qa_engine_align_pack(qa_models *ms, int worker, const qa_inputs *in, int64_t B, const int64_t *counted,
                               float *logits, int32_t *classes, float *probs, qa_err *e);

/* Validate an ASR request (prompt within the plan, 0 <= min_new <= max_new <= plan's max_new_tokens). */
qa_status qa_engine_asr_check(qa_models *ms, const qa_inputs *in, int64_t max_new, int64_t min_new, qa_err *e);

/* Greedy ASR: ids [*n] (host, room for max_new), first_logits [vocab] (host, may be NULL). */
qa_status qa_engine_asr(qa_models *ms, int worker, const qa_inputs *in, int64_t max_new, int64_t min_new, int32_t *ids,
                        int64_t *n, float *first_logits, qa_err *e);

/* Log-mel features of a request from samples (qa_inputs_set_samples), computed by the backend's
 * log_mel: out_host [128, frames] (host, caller's). The same features every entry above computes on
 * the backend when `in` carries samples instead of features. */
qa_status qa_engine_mel(qa_models *ms, int worker, const qa_inputs *in, float *out_host, qa_err *e);

#endif
