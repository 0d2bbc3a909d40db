/* decoder.h — the Qwen3 text model: embedded tokens -> final hidden states (before the final norm).
 *
 *     qa_kv_cache kv = qa_kv_view(arena_kv_region_base, &cfg->text, max_ctx);   // ASR only
 *     QA_TRY(qa_decoder_forward(be, model, ws, x, T, 0, &kv, e));               // prefill
 *     QA_TRY(qa_decoder_forward(be, model, ws, x1, 1, T, &kv, e));              // one decode step
 *     QA_TRY(qa_decoder_forward(be, model, ws, x, T, 0, NULL, e));              // aligner: no cache
 *     QA_TRY(qa_decoder_forward_spans(be, model, ws, x, spans, n, e));          // aligner: packed clips
 *     QA_TRY(qa_decoder_step_at(be, model, ws, x1, state + QA_STEP_POS, &kv, e)); // position on the device
 *
 * x [T, D] float32 in backend memory is updated in place (the residual stream). Temporaries come from
 * the workspace region and are released before returning; peak qa_plan_workspace_decoder(). Without a
 * cache the layer's K / V rows are of the weights' compute dtype too (workspace buffers).
 */
#ifndef QA_DECODER_H
#define QA_DECODER_H

#include "../backend/backend.h"
#include "../memory/plan.h" /* QA_MLP_TILE */
#include "weights.h"

/* A KV cache view (backend memory) of dtype QA_F32, or QA_BF16 for a bfloat16 engine (the compute dtype:
 * half the bytes; attention reads the rows back exactly as the float32 they round to): layer l's keys
 * at element (2l)·max_ctx·KD of base, values at (2l+1)·max_ctx·KD, KD = Hk·Dh, rows = positions.
 * Borrowed from the arena's kv region. */
typedef struct qa_kv_cache {
    void *base;
    qa_dtype dtype;
    int64_t max_ctx;
    int64_t kd;     /* Hk·Dh */
} qa_kv_cache;

/* Rows [row0, row0 + rows) of one clip in a packed batch of clips (pipeline/align.c). */
typedef struct qa_span {
    int64_t row0;
    int64_t rows;
} qa_span;

/* Run the text layers on x[T, D] (rows at positions pos0 .. pos0+T−1). kv: NULL (whole sequence at
 * once, pos0 must be 0) or a cache whose rows [0, pos0) hold the earlier positions; rows
 * [pos0, pos0+T) are written. Borrowed: everything. */
qa_status qa_decoder_forward(qa_backend *be, const qa_model *m, qa_region *ws, float *x, int64_t T, int64_t pos0,
                             const qa_kv_cache *kv, qa_err *e);

/* Run the text layers on a packed batch: x[T, D] holds the clips' rows one after another, span s =
 * sp[s] (row0 = the rows of the spans before it, rows >= 1; T = their sum). Norms, projections and the
 * MLP run once over all T rows (large GEMMs); RoPE restarts at position 0 in every span and the causal
 * attention stays inside it, so each clip's rows equal its own qa_decoder_forward(x_clip, rows, 0, NULL)
 * (same ops on row slices). No cache. Borrowed: everything. */
qa_status qa_decoder_forward_spans(qa_backend *be, const qa_model *m, qa_region *ws, float *x, const qa_span *sp,
                                   int64_t n_sp, qa_err *e);

/* One decode row x[1, D] at the position pos[0] (int32 in backend memory, read when the ops run):
 * writes cache row pos[0] of every layer and reads rows [0, pos[0]]. The caller keeps
 * pos[0] < kv->max_ctx. Same numbers as qa_decoder_forward(x, 1, pos[0], kv), with the same
 * temporaries (qa_plan_workspace_decoder(c, 1, 1, dtype)). Borrowed: everything. */
qa_status qa_decoder_step_at(qa_backend *be, const qa_model *m, qa_region *ws, float *x, const int32_t *pos,
                             const qa_kv_cache *kv, qa_err *e);

#endif
