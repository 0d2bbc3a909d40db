/* models.h — the owner of everything a loaded model set holds: device, plan, ONE arena, the models.
 *
 * Lifecycle (one create/free pair, llama2.c's build_transformer / free_transformer):
 *     qa_models *ms = NULL;
 *     const char *dirs[2] = {"…/Qwen3-ForcedAligner-0.6B", NULL};          // [aligner, asr]
 *     qa_limits lim = qa_limits_default();
 *     QA_TRY(qa_models_load(&ms, dirs, "cpu", &lim, e));   // configs -> plan -> OOM check -> validate
 *                                                          // tensors -> one arena -> convert weights
 *     const qa_model *al = qa_models_model(ms, QA_MODEL_ALIGNER);           // NULL if not loaded
 *     qa_worker *w = qa_models_worker(ms, 0);  qa_region_reset(w->ws);     // per request
 *     qa_models_free(ms);                                                   // arena released at once
 *
 * Workers (lim.workers = W, CPU only): W request slots over the one set of weights, each with its
 * own workspace region, KV cache region and backend table (scratch + cancellation hook are per
 * request). Requests on different workers may run at once on different threads; the caller makes
 * sure one worker serves one request at a time (csrc/py/py_models.c hands workers out).
 *
 * After load, a request must take memory only from the arena: allocations_after_load (host
 * allocations made inside the engine's compute scope since the end of load, core/alloc.h, plus
 * CUDA device/pinned allocations) stays 0. The frontend's input-sized host buffers (decoded audio,
 * token lists) are made outside that scope and freed when the call returns.
 */
#ifndef QA_MODELS_H
#define QA_MODELS_H

#include <stdatomic.h>
#include <stdint.h>

#include "../backend/backend.h"
#include "../memory/arena.h"
#include "../memory/device.h"
#include "../memory/plan.h"
#include "../model/weights.h"

/* One request slot. Worker 0 uses the models' backend itself (on CUDA it is the only worker and
 * owns the stream); the others use a copy of the CPU op table, whose ops keep no state besides
 * the per-request scratch and cancellation hook, which are the fields a copy makes private. */
typedef struct qa_worker {
    qa_backend *be;      /* &ms->be for worker 0, else &own */
    qa_backend own;
    qa_region *ws;       /* "workspace" / "workspace/<w>": reset per request */
    qa_region *kv;       /* "kv/asr" / "kv/asr/<w>"; NULL without an ASR model */
} qa_worker;

typedef struct qa_models {
    qa_device dev;
    qa_plan plan;
    qa_arena arena;
    qa_model model[2];     /* [QA_MODEL_ALIGNER], [QA_MODEL_ASR]; valid where present[k] */
    int present[2];
    uint64_t allocs_at_load; /* qa_alloc_scoped_count() at the end of load */
    uint64_t cuda_allocs_at_load; /* CUDA device + pinned allocations at the end of load */
    uint64_t cuda_graphs_at_load; /* graph instantiations at the end of load (after the warm-up) */
    uint64_t cuda_gemm_plans_at_load; /* planned GEMM kernels at the end of load (backend/cuda/matmul.cu) */
    void *host_table[2];   /* pinned host memory of the tables the plan keeps off the device (plan.host_bytes):
                            * the CUDA aligner's embedding table; NULL elsewhere. Freed by qa_models_free */
    qa_backend be;         /* the op table of dev; owns the backend context (destroyed once, at free) */
    int n_workers;         /* plan.limits.workers */
    qa_worker worker[QA_MAX_WORKERS];
    _Atomic int active;    /* requests inside the engine now (pipeline/engine.c) */
    _Atomic int max_active; /* most requests seen inside the engine at once: a debug counter that
                            * tests read to prove that workers overlap (reset with qa_models_reset_max_active) */
} qa_models;

typedef struct qa_memory_report {
    size_t arena_bytes, used_bytes, peak_bytes;
    int n_regions;
    qa_region regions[QA_MAX_REGIONS];     /* copies: name, size, used, peak */
    size_t device_total_bytes, device_free_bytes;
    int64_t allocations_after_load;
    /* CUDA only (is_cuda): the counting wrapper's cudaMalloc + cudaMallocHost calls since load (0 expected),
     * in total, and cudaMemGetInfo at context creation / after the stream + cuBLAS handle. */
    int is_cuda;
    int64_t cuda_allocations_after_load;
    uint64_t cuda_device_allocs, cuda_pinned_allocs;
    size_t cuda_free_at_open, cuda_free_after_handles, cuda_pinned_bytes;
    size_t host_bytes[2];  /* pinned host weights per model (the plan's host_bytes), outside the arena */
    /* recorded decode steps (backend/cuda/graph.cu): cudaGraphInstantiate calls in all and since load
     * (counted in cuda_allocations_after_load too: the driver allocates for them), and their bytes */
    uint64_t cuda_graphs;
    int64_t cuda_graphs_after_load;
    size_t cuda_graph_bytes;
    /* planned GEMM kernels (backend/cuda/matmul.cu) in all and since load: a kernel first needed after
     * load is loaded then (lazy module loading takes device memory), so it counts as an allocation */
    uint64_t cuda_gemm_plans;
    int64_t cuda_gemm_plans_after_load;
} qa_memory_report;

/* Load the models named in dirs[QA_MODEL_ALIGNER] / dirs[QA_MODEL_ASR] (either may be NULL) on device
 * ("cpu", "cuda:N"). *out is a new qa_models (caller frees with qa_models_free) or NULL on failure, in
 * which case nothing stays allocated. Errors: QA_ERR_MODEL (folder/config/tensors), QA_ERR_OOM (plan
 * does not fit free memory or max_device_bytes; needed/available set), QA_ERR_INPUT (limits, device). */
/* The plan load_models makes for these configs, limits and device ("cpu", "cuda[:N]"): the CPU
 * formulas, with the CUDA backend's scratch on CUDA devices. plan() and memory_report() agree. */
qa_status qa_models_plan(const qa_model_config *const cfgs[2], const qa_limits *lim, const char *device,
                         qa_plan *p, qa_err *e);

qa_status qa_models_load(qa_models **out, const char *const dirs[2], const char *device, const qa_limits *lim,
                         qa_err *e);

/* Release the arena and everything else. NULL is fine. */
void qa_models_free(qa_models *ms);

/* Borrowed (valid until qa_models_free): the loaded model of that kind, or NULL. */
qa_model *qa_models_model(qa_models *ms, qa_model_kind kind);

/* Borrowed regions of the arena (NULL if the plan has none): worker 0's workspace and kv/asr, the
 * log-mel tables (backend.h, filled at load). */
qa_region *qa_models_workspace(qa_models *ms);
qa_region *qa_models_kv(qa_models *ms);
qa_region *qa_models_mel_tables(qa_models *ms);

/* Borrowed: worker w (0 <= w < n_workers), or NULL when w is out of range. */
qa_worker *qa_models_worker(qa_models *ms, int w);

/* The debug counter max_active: returned, then reset to the number of requests active now. */
int qa_models_take_max_active(qa_models *ms);

/* Fill *r with the arena's state now and the device's free/total memory. */
/* The end of load_models: restart the after-load counters (host allocations, CUDA allocations and graph
 * instantiations) here, after the tokenizers and the warm-up request that records the decode step. */
void qa_models_mark_loaded(qa_models *ms);

qa_status qa_models_report(qa_models *ms, qa_memory_report *r, qa_err *e);

/* QA_ERR_OOM with the numbers and what to lower if plan p does not fit `free_bytes` or the cap. */
qa_status qa_models_check_fit(const qa_plan *p, const char *device_name, size_t free_bytes, qa_err *e);

#endif
