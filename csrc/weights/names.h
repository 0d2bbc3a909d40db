/* names.h — the tensors a model of a given config must have: canonical names, shapes, weight slots.
 *
 * One table drives three users, so they cannot disagree: the loader (checkpoint.c: which tensor goes
 * into which qa_tensor slot, with which shape), the plan (plan.c: weight bytes from the config alone)
 * and the debug accessor (py_models.c: Models._tensor(kind, name)).
 * Canonical names are the original layout's (`thinker.audio_tower.conv2d1.weight`, ...);
 * qa_names_file_name() maps one to the spelling of the folder's layout (MODEL_FACTS.md §2.3).
 *
 *     qa_names_foreach(cfg, model_or_NULL, fn, ctx, e);   // fn(ctx, slot, e) for every tensor, in order
 */
#ifndef QA_NAMES_H
#define QA_NAMES_H

#include <stddef.h>

#include "../model/weights.h"

#define QA_NAME_MAX 128

typedef struct qa_weight_slot {
    char name[QA_NAME_MAX]; /* canonical (original-layout) name */
    qa_tensor *t;           /* the slot in the qa_model, or NULL when enumerating without a model */
    int ndim;
    int64_t shape[4];
    int tied;               /* ASR tied head: a view of the embedding, nothing stored or loaded */
} qa_weight_slot;

typedef qa_status (*qa_slot_fn)(void *ctx, const qa_weight_slot *slot, qa_err *e);

/* Call fn for every tensor of a model with config cfg (encoder, projector, decoder, head). m may be
 * NULL (slots then have t == NULL); when given, m->enc.layers / m->dec.layers must be allocated with
 * cfg's layer counts. Stops at and returns the first failure of fn. */
qa_status qa_names_foreach(const qa_model_config *cfg, qa_model *m, qa_slot_fn fn, void *ctx, qa_err *e);

/* The name of canonical tensor `canon` in a folder of cfg's layout (kind decides lm_head vs score). */
void qa_names_file_name(const qa_model_config *cfg, const char *canon, char *out, size_t out_size);

/* Elements of a slot's tensor. */
size_t qa_slot_numel(const qa_weight_slot *s);

/* Storage dtype in the arena: ndim >= 2 -> the compute dtype; 1-D (biases, norms) -> always QA_F32. */
qa_dtype qa_slot_dtype(const qa_weight_slot *s, qa_dtype compute);

/* Bytes the slot takes in its weights region (0 for a tied head), rounded up to the arena alignment. */
size_t qa_slot_bytes(const qa_weight_slot *s, qa_dtype compute);

/* Weight region bytes of a model from its config alone (sum of qa_slot_bytes). */
size_t qa_names_weight_bytes(const qa_model_config *cfg, qa_dtype compute);

#endif
