/* models.h — the owner of everything a loaded model set holds: device, plan, ONE arena, the models.
 *
 * Lifecycle (one create/free pair, llama2.c's build_transformer / free_transformer):
 *     qa_models *ms = NULL;
 *     const char *dirs[2] = {"…/Qwen3-ForcedAligner-0.6B", NULL};          // [aligner, asr]
 *     qa_limits lim = qa_limits_default();
 *     QA_TRY(qa_models_load(&ms, dirs, "cpu", &lim, e));   // configs -> plan -> OOM check -> validate
 *                                                          // tensors -> one arena -> convert weights
 *     const qa_model *al = qa_models_model(ms, QA_MODEL_ALIGNER);           // NULL if not loaded
 *     qa_region *ws = qa_models_workspace(ms);  qa_region_reset(ws);        // per request
 *     qa_models_free(ms);                                                   // arena released at once
 *
 * After load, a request must take memory only from the arena: allocations_after_load (the host
 * allocation counter now minus its value at the end of load) stays 0.
 */
#ifndef QA_MODELS_H
#define QA_MODELS_H

#include <stdint.h>

#include "../backend/backend.h"
#include "../memory/arena.h"
#include "../memory/device.h"
#include "../memory/plan.h"
#include "../model/weights.h"

typedef struct qa_models {
    qa_device dev;
    qa_plan plan;
    qa_arena arena;
    qa_model model[2];     /* [QA_MODEL_ALIGNER], [QA_MODEL_ASR]; valid where present[k] */
    int present[2];
    uint64_t allocs_at_load; /* qa_alloc_count() at the end of load */
    qa_backend be;         /* the op table of dev (CPU today); scratch set per request (pipeline/engine.c) */
} qa_models;

typedef struct qa_memory_report {
    size_t arena_bytes, used_bytes, peak_bytes;
    int n_regions;
    qa_region regions[QA_MAX_REGIONS];     /* copies: name, size, used, peak */
    size_t device_total_bytes, device_free_bytes;
    int64_t allocations_after_load;
} qa_memory_report;

/* Load the models named in dirs[QA_MODEL_ALIGNER] / dirs[QA_MODEL_ASR] (either may be NULL) on device
 * ("cpu", "cuda:N"). *out is a new qa_models (caller frees with qa_models_free) or NULL on failure, in
 * which case nothing stays allocated. Errors: QA_ERR_MODEL (folder/config/tensors), QA_ERR_OOM (plan
 * does not fit free memory or max_device_bytes; needed/available set), QA_ERR_INPUT (limits, device). */
qa_status qa_models_load(qa_models **out, const char *const dirs[2], const char *device, const qa_limits *lim,
                         qa_err *e);

/* Release the arena and everything else. NULL is fine. */
void qa_models_free(qa_models *ms);

/* Borrowed (valid until qa_models_free): the loaded model of that kind, or NULL. */
qa_model *qa_models_model(qa_models *ms, qa_model_kind kind);

/* Borrowed regions of the arena (NULL if the plan has none: kv/asr without an ASR model). */
qa_region *qa_models_workspace(qa_models *ms);
qa_region *qa_models_kv(qa_models *ms);

/* Fill *r with the arena's state now and the device's free/total memory. */
qa_status qa_models_report(qa_models *ms, qa_memory_report *r, qa_err *e);

/* QA_ERR_OOM with the numbers and what to lower if plan p does not fit `free_bytes` or the cap. */
qa_status qa_models_check_fit(const qa_plan *p, const char *device_name, size_t free_bytes, qa_err *e);

#endif
