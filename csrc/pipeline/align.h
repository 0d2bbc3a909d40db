/* align.h — the forced-aligner forward: features + prompt ids -> a class and a probability per
 * <timestamp>.
 *
 *     qa_inputs in = {feat, 128, ld, frames, ids, T};
 *     int64_t n;  QA_TRY(qa_align_count(model, &in, max_frames, max_tokens, &n, e));
 *     int32_t *cls = <n ints>;  float *prob = <n floats>;   // host, caller's (e.g. numpy arrays)
 *     QA_TRY(qa_align_forward(be, model, ws, &in, NULL, cls, prob, e));
 *
 * The caller then repairs the classes (frontend/timestamps) and turns them into times (× 80 ms).
 */
#ifndef QA_ALIGN_H
#define QA_ALIGN_H

#include "inputs.h"

/* Validate the request (qa_inputs_check) and count its <timestamp> ids into *n (>= 1, else InputError). */
qa_status qa_align_count(const qa_model *m, const qa_inputs *in, int64_t max_frames, int64_t max_tokens,
                         int64_t *n, qa_err *e);

/* Run audio tower + text model + head at the <timestamp> rows. Host outputs (any may be NULL):
 * logits [n, classify_num], classes [n] (argmax), probs [n] (softmax probability of that class).
 * The request must have passed qa_align_count. */
qa_status qa_align_forward(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, float *logits,
                           int32_t *classes, float *probs, qa_err *e);

#endif
