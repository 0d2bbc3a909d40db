/* align.h — the forced-aligner forward: features + prompt ids -> a class and a probability per
 * <timestamp>.
 *
 *     qa_inputs in = {feat, 128, ld, frames, ids, T};
 *     int64_t n;  QA_TRY(qa_align_count(model, &in, max_frames, max_tokens, &n, e));
 *     int32_t *cls = <n ints>;  float *prob = <n floats>;   // host, caller's (e.g. numpy arrays)
 *     QA_TRY(qa_align_forward(be, model, ws, &in, 1, NULL, cls, prob, e));
 *
 * Packed batch: an array of B requests, each counted with qa_align_count and added to a qa_pack_size,
 * which must fit the plan's (qa_align_pack_fits); qa_align_forward(be, model, ws, ins, B, ...) then
 * runs them in one forward and writes their outputs one after another.
 * The caller then repairs the classes (frontend/timestamps) and turns them into times (× 80 ms).
 */
#ifndef QA_ALIGN_H
#define QA_ALIGN_H

#include "inputs.h"

/* Validate the request (qa_inputs_check) and count its <timestamp> ids into *n (>= 1, else InputError). */
qa_status qa_align_count(const qa_model *m, const qa_inputs *in, int64_t max_frames, int64_t max_tokens,
                         int64_t *n, qa_err *e);

/* Totals of a packed batch (or the limits of one, from the plan of the longest single request). */
typedef struct qa_pack_size {
    int64_t clips;        /* requests (limit: QA_PACK_MAX) */
    int64_t frames;       /* valid mel frames */
    int64_t chunks;       /* 2·n_window-frame chunks of the conv front, rounded up per clip */
    int64_t audio_tokens; /* <|audio_pad|> rows = audio tower output rows */
    int64_t tokens;       /* prompt ids */
    int64_t stamps;       /* <timestamp> ids */
} qa_pack_size;

/* Add one request with `stamps` <timestamp> ids (from qa_align_count) to the totals *s. */
void qa_align_pack_add(const qa_model *m, const qa_inputs *in, int64_t stamps, qa_pack_size *s);

/* QA_OK when every total of *s is within *lim, else QA_ERR_INPUT naming the first total over it. */
qa_status qa_align_pack_fits(const qa_pack_size *s, const qa_pack_size *lim, qa_err *e);

/* Run audio tower + text model + head at the <timestamp> rows of B requests in[0..B) in one forward
 * (B = 1: one request). Host outputs (any may be NULL), the clips' rows one after another:
 * logits [n, classify_num], classes [n] (argmax), probs [n] (softmax probability of that class),
 * n = the clips' <timestamp> ids together. Each request must have passed qa_align_count and a pack
 * qa_align_pack_fits against the plan's limits; each clip's outputs equal its own forward's. */
qa_status qa_align_forward(qa_backend *be, const qa_model *m, qa_region *ws, const qa_inputs *in, int64_t B,
                           float *logits, int32_t *classes, float *probs, qa_err *e);

#endif
