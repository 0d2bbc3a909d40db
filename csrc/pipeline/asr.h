/* asr.h — greedy speech recognition: features + chat prompt ids -> generated token ids.
 *
 *     qa_inputs in = {feat, 128, ld, frames, prompt_ids, T};
 *     qa_kv_cache kv = {kv_region_base, max_ctx, Hk*Dh};
 *     int32_t out[max_new]; int64_t n;
 *     QA_TRY(qa_asr_check(model, &in, max_frames, max_prompt, max_new, min_new, &kv, e));
 *     QA_TRY(qa_asr_generate(be, model, ws, &kv, &in, max_new, min_new, plan_max_new, out, &n, first_logits, e));
 */
#ifndef QA_ASR_H
#define QA_ASR_H

#include "../model/decoder.h"
#include "inputs.h"

/* Validate (qa_inputs_check + 0 <= min_new <= max_new, max_new >= 1, T + max_new within the cache). */
qa_status qa_asr_check(const qa_model *m, const qa_inputs *in, int64_t max_frames, int64_t max_tokens,
                       int64_t max_new, int64_t min_new, const qa_kv_cache *kv, qa_err *e);

/* Prefill then greedy decoding with the KV cache: out_ids[*n_out] (host, room for max_new) gets the
 * generated ids, stopping after max_new tokens or at an EOS (eos_token_ids; the EOS itself is not
 * stored). EOS is suppressed while fewer than min_new tokens were generated. first_logits (host
 * [vocab], may be NULL) receives the logits of the first generated position. cap: the plan's
 * max_new_tokens (>= max_new), which sizes the device ids buffer so that the workspace layout is the
 * same in every request (a recorded decode step depends on it). */
qa_status qa_asr_generate(qa_backend *be, const qa_model *m, qa_region *ws, const qa_kv_cache *kv,
                          const qa_inputs *in, int64_t max_new, int64_t min_new, int64_t cap, int32_t *out_ids,
                          int64_t *n_out, float *first_logits, qa_err *e);

#endif
