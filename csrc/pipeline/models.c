/* models.c — load a model set: configs, plan, OOM check, tensor validation, one arena, weights.
 *
 * Contract (models.h): the order is the point. (1) read both configs and check their kinds, (2) compute
 * the plan (pure), (3) compare it with the device's free memory and max_device_bytes and refuse with
 * QA_ERR_OOM and the numbers before anything big exists, (4) open and validate every tensor of every
 * checkpoint (mmap only), (5) allocate the arena once, (6) convert the weights into their regions and
 * check the bytes against the plan, fill the log-mel tables, (7) record the allocation counter. Any
 * failure unwinds all of it.
 * On CUDA the plan keeps the aligner's embedding table off the arena: step 6 allocates it in pinned host
 * memory (the only other allocation, counted) and converts it there (issue #6).
 * qa_models_free is the single place the arena is released (DESIGN.md §5, STYLE.md §2.7).
 */
#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/cuda_api.h"
#include "../backend/cuda_scratch.h"
#include "../core/alloc.h"
#include "../frontend/mel.h"
#include "../weights/checkpoint.h"

static const char *const WEIGHT_REGION[2] = {"weights/aligner", "weights/asr"};

#define GIB(x) ((double)(x) / (1024.0 * 1024.0 * 1024.0))

/* "1.23 GiB" / "45.6 MiB" into buf. */
static const char *human(char *buf, size_t n, size_t bytes)
{
    if (bytes >= (size_t)1 << 30)
        snprintf(buf, n, "%.2f GiB", GIB(bytes));
    else
        snprintf(buf, n, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
    return buf;
}

qa_status qa_models_check_fit(const qa_plan *p, const char *device_name, size_t free_bytes, qa_err *e)
{
    size_t cap = p->limits.max_device_bytes;
    size_t avail = cap && cap < free_bytes ? cap : free_bytes;
    if (p->arena_bytes <= avail)
        return QA_OK;
    char regions[512] = "", secs[128] = "", h1[32], h2[32], h3[32];
    size_t k = 0, j = 0;
    for (int i = 0; i < p->n_regions && k < sizeof regions; i++)
        k += (size_t)snprintf(regions + k, sizeof regions - k, "%s%s %s", i ? ", " : "", p->regions[i].name,
                              human(h1, sizeof h1, p->regions[i].bytes));
    for (int m = 0; m < 2 && j < sizeof secs; m++)
        if (p->model[m].present)
            j += (size_t)snprintf(secs + j, sizeof secs - j, "%s%.0f s %s", j ? ", " : "",
                                  p->limits.max_audio_seconds[m], qa_model_kind_name((qa_model_kind)m));
    QA_FAIL(e, QA_ERR_OOM,
            "the memory plan needs %zu bytes (%s: %s) but %s has %zu bytes (%s) available%s; lower "
            "max_audio_seconds (now %s) or max_new_tokens (now %d), load one model only, or use dtype='bfloat16'",
            p->arena_bytes, human(h2, sizeof h2, p->arena_bytes), regions, device_name, avail,
            human(h3, sizeof h3, avail), cap && cap < free_bytes ? " under max_device_bytes" : "", secs,
            p->limits.max_new_tokens);
    if (e) {
        e->needed = p->arena_bytes;
        e->available = avail;
    }
    return QA_ERR_OOM;
}

static qa_status load_configs(const char *const dirs[2], qa_model_config cfg[2], qa_err *e)
{
    for (int k = 0; k < 2; k++) {
        if (!dirs[k])
            continue;
        QA_TRY(qa_config_load(dirs[k], &cfg[k], e));
        if ((int)cfg[k].kind != k)
            return QA_FAIL(e, QA_ERR_MODEL, "%s holds a %s model (by its config.json) but was passed as %s=", dirs[k],
                           qa_model_kind_name(cfg[k].kind), qa_model_kind_name((qa_model_kind)k));
    }
    if (!dirs[0] && !dirs[1])
        return QA_FAIL(e, QA_ERR_INPUT, "give at least one of aligner= and asr=");
    return QA_OK;
}

/* Issue #6: the aligner's embedding table (152064 x 1024 BF16 = 297 MiB) is only gathered, a few thousand
 * rows per request, so on CUDA it lives in pinned host memory and the rows are uploaded per request
 * (pipeline/inputs.c). The ASR's table stays on the device: it is also its (tied) head, read in full at
 * every decode step. QA_CUDA_EMBED=device keeps the aligner's there too (the comparison of the GPU tests). */
static int embed_table_on_host(void)
{
    const char *v = getenv("QA_CUDA_EMBED");
    return !(v && strcmp(v, "device") == 0);
}

/* Steps 1-4: everything that can fail without the arena. ck[k] are opened checkpoints. */
qa_status qa_models_plan(const qa_model_config *const cfgs[2], const qa_limits *lim, const char *device,
                         qa_plan *p, qa_err *e)
{
    /* One CUDA stream runs one request at a time and each kernel already spreads over the whole GPU;
     * extra workspaces there would only take device memory from max_audio_seconds. */
    if (strncmp(device, "cuda", 4) == 0 && lim->workers > 1)
        return QA_FAIL(e, QA_ERR_INPUT, "workers=%d: several workers are for the CPU; a CUDA device runs one request "
                       "at a time (use workers=1)", lim->workers);
    QA_TRY(qa_plan_compute(cfgs, lim, p, e));
    if (strncmp(device, "cuda", 4) != 0)
        return QA_OK; /* on the CPU every table is host memory already */
    qa_plan_set_scratch(p, qa_backend_cuda_scratch_need(&p->scratch_dims)); /* cuBLAS workspace, staging */
    if (cfgs[QA_MODEL_ALIGNER] && embed_table_on_host())
        qa_plan_embed_to_host(p, QA_MODEL_ALIGNER, cfgs[QA_MODEL_ALIGNER]);
    return QA_OK;
}

static qa_status prepare(qa_models *ms, const char *const dirs[2], const char *device, const qa_limits *lim,
                         qa_model_config cfg[2], qa_checkpoint *ck[2], qa_err *e)
{
    if (strncmp(device, "cuda", 4) == 0) /* backend + arena hooks from libqa_cuda.so (cuda_api.h) */
        QA_TRY(qa_cuda_open(device, &ms->be, &ms->dev, e));
    else
        QA_TRY(qa_device_open(device, &ms->dev, e));
    QA_TRY(load_configs(dirs, cfg, e));
    const qa_model_config *cp[2] = {dirs[0] ? &cfg[0] : NULL, dirs[1] ? &cfg[1] : NULL};
    QA_TRY(qa_models_plan(cp, lim, device, &ms->plan, e));
    size_t free_b = 0, total_b = 0;
    QA_TRY(ms->dev.mem_info(ms->dev.ctx, &free_b, &total_b, e));
    QA_TRY(qa_models_check_fit(&ms->plan, ms->dev.name, free_b, e));
    for (int k = 0; k < 2; k++) {
        if (!cp[k])
            continue;
        QA_TRY(qa_checkpoint_open(dirs[k], &cfg[k], lim->dtype, &ck[k], e));
        if (ms->plan.model[k].host_bytes)
            qa_checkpoint_embed_to_host(ck[k]);
        if (qa_checkpoint_bytes(ck[k]) != ms->plan.model[k].weight_bytes ||
            qa_checkpoint_host_bytes(ck[k]) != ms->plan.model[k].host_bytes)
            return QA_FAIL(e, QA_ERR_INTERNAL,
                           "%s: tensors need %zu bytes (+ %zu on the host), the plan says %zu (+ %zu)", dirs[k],
                           qa_checkpoint_bytes(ck[k]), qa_checkpoint_host_bytes(ck[k]), ms->plan.model[k].weight_bytes,
                           ms->plan.model[k].host_bytes);
    }
    return QA_OK;
}

/* The log-mel constants (backend.h): the region taken whole from load on (the report shows it used)
 * and filled by the backend from frontend/mel.c's filters. */
static qa_status mel_tables(qa_models *ms, qa_err *e)
{
    qa_region *r = qa_models_mel_tables(ms);
    if (!r || r->size < QA_MEL_TABLE_BYTES)
        return QA_FAIL(e, QA_ERR_INTERNAL, "the arena has no %s region of %zu bytes", QA_MEL_REGION,
                       (size_t)QA_MEL_TABLE_BYTES);
    void *tables = qa_arena_take(r, r->size, e);
    float *filters = tables ? qa_calloc_n((size_t)QA_MEL_BINS * QA_MEL_FREQS, sizeof(float), e) : NULL;
    if (!filters)
        return e->code;
    qa_mel_filters(filters);
    qa_status s = ms->be.mel_tables(&ms->be, tables, filters, e);
    qa_free(filters);
    return s;
}

/* Issue #5: the workspace is idle until the first request, so it lends the on-device conversion of
 * F32/F16 weights its first chunk (cuda_scratch.h QA_CUDA_LOAD_CHUNK_BYTES; taken and given back, so the
 * plan covers it). *scratch = NULL where the device converts nothing (CPU, QA_CUDA_CONVERT=host). */
static qa_status load_scratch(qa_models *ms, void **scratch, size_t *bytes, qa_err *e)
{
    qa_region *ws = qa_models_workspace(ms);
    *scratch = NULL;
    *bytes = 0;
    if (!ms->dev.upload_convert || !ws)
        return QA_OK;
    *bytes = ws->size < QA_CUDA_LOAD_CHUNK_BYTES ? ws->size : QA_CUDA_LOAD_CHUNK_BYTES;
    return (*scratch = qa_arena_take(ws, *bytes, e)) ? QA_OK : e->code;
}

static qa_status load_weights(qa_models *ms, qa_checkpoint *ck[2], qa_err *e)
{
    void *scratch;
    size_t scratch_bytes;
    QA_TRY(load_scratch(ms, &scratch, &scratch_bytes, e));
    for (int k = 0; k < 2; k++) {
        if (!ck[k])
            continue;
        size_t host = ms->plan.model[k].host_bytes; /* pinned: the one extra allocation, counted (device.cu) */
        if (host && !ms->dev.host_alloc)
            return QA_FAIL(e, QA_ERR_INTERNAL, "%s cannot hold weights in host memory", ms->dev.name);
        if (host)
            QA_TRY(ms->dev.host_alloc(ms->dev.ctx, host, &ms->host_table[k], e));
        qa_checkpoint_set_targets(ck[k], ms->host_table[k], scratch, scratch_bytes);
        QA_TRY(qa_checkpoint_load(ck[k], qa_arena_region(&ms->arena, WEIGHT_REGION[k]), &ms->dev, &ms->model[k], e));
        ms->present[k] = 1;
    }
    if (scratch)
        qa_region_release(qa_models_workspace(ms), 0);
    return QA_OK;
}

/* The request slots: their regions, and a private copy of the CPU op table for workers 1.. (backend.h:
 * scratch and cancel are written per request, so two requests at once cannot share one table). */
static qa_status make_workers(qa_models *ms, qa_err *e)
{
    char name[QA_REGION_NAME];
    ms->n_workers = ms->plan.limits.workers;
    for (int w = 0; w < ms->n_workers; w++) {
        qa_worker *wk = &ms->worker[w];
        qa_plan_worker_region(name, "workspace", w);
        wk->ws = qa_arena_region(&ms->arena, name);
        qa_plan_worker_region(name, "kv/asr", w);
        wk->kv = qa_arena_region(&ms->arena, name);
        if (!wk->ws)
            return QA_FAIL(e, QA_ERR_INTERNAL, "the arena has no %s region", name);
        if (w > 0)
            wk->own = ms->be;
        wk->be = w == 0 ? &ms->be : &wk->own;
        /* The KV cache is one block for the ASR's whole context, owned from load on (engine.c views it
         * from the region's base): take it now so the report shows it in use. */
        if (wk->kv && wk->kv->size && !qa_arena_take(wk->kv, wk->kv->size, e))
            return e->code;
    }
    return QA_OK;
}

/* Steps 5-6. */
static qa_status place(qa_models *ms, qa_checkpoint *ck[2], qa_err *e)
{
    QA_TRY(qa_arena_create(&ms->arena, &ms->dev, ms->plan.regions, ms->plan.n_regions, e));
    if (ms->dev.kind == QA_DEVICE_CPU)
        QA_TRY(qa_backend_cpu_init(&ms->be, 0, e));
    ms->be.dtype = ms->plan.limits.dtype; /* backend.h: lets CUDA pick BF16 tensor-core attention */
    QA_TRY(load_weights(ms, ck, e));
    QA_TRY(make_workers(ms, e)); /* takes each worker's KV cache */
    return mel_tables(ms, e);
}

qa_status qa_models_load(qa_models **out, const char *const dirs[2], const char *device, const qa_limits *lim,
                         qa_err *e)
{
    *out = NULL;
    qa_models *ms = qa_calloc_n(1, sizeof *ms, e);
    if (!ms)
        return QA_ERR_OOM;
    qa_model_config *cfg = qa_calloc_n(2, sizeof *cfg, e); /* ~5 KB each: keep off the stack */
    qa_checkpoint *ck[2] = {NULL, NULL};
    qa_status s = cfg ? prepare(ms, dirs, device, lim, cfg, ck, e) : QA_ERR_OOM;
    if (s == QA_OK)
        s = place(ms, ck, e);
    for (int k = 0; k < 2; k++)
        qa_checkpoint_close(ck[k]);
    qa_free(cfg);
    if (s != QA_OK) {
        qa_models_free(ms);
        return s;
    }
    qa_models_mark_loaded(ms);
    *out = ms;
    return QA_OK;
}

void qa_models_mark_loaded(qa_models *ms)
{
    ms->allocs_at_load = qa_alloc_scoped_count();
    if (ms->dev.kind == QA_DEVICE_CUDA) {
        qa_cuda_mem_stats st;
        if (qa_cuda_stats(&ms->be, &st, NULL) == QA_OK) {
            ms->cuda_allocs_at_load = st.device_allocs + st.host_allocs;
            ms->cuda_graphs_at_load = st.graph_instantiations;
            ms->cuda_gemm_plans_at_load = st.gemm_plans;
        }
    }
}

void qa_models_free(qa_models *ms)
{
    if (!ms)
        return;
    for (int k = 0; k < 2; k++) {
        qa_model_free(&ms->model[k]);
        if (ms->host_table[k] && ms->dev.host_free)
            ms->dev.host_free(ms->dev.ctx, ms->host_table[k]); /* pinned, through the backend: before destroy */
        ms->host_table[k] = NULL;
    }
    qa_arena_free(&ms->arena); /* through the backend's hooks on CUDA: before destroying it */
    if (ms->be.destroy)
        ms->be.destroy(&ms->be);
    qa_free(ms);
}

qa_model *qa_models_model(qa_models *ms, qa_model_kind kind)
{
    return ms && (kind == QA_MODEL_ALIGNER || kind == QA_MODEL_ASR) && ms->present[kind] ? &ms->model[kind] : NULL;
}

qa_region *qa_models_workspace(qa_models *ms) { return qa_arena_region(&ms->arena, "workspace"); }
qa_region *qa_models_kv(qa_models *ms) { return qa_arena_region(&ms->arena, "kv/asr"); }
qa_region *qa_models_mel_tables(qa_models *ms) { return qa_arena_region(&ms->arena, QA_MEL_REGION); }

qa_worker *qa_models_worker(qa_models *ms, int w)
{
    return ms && w >= 0 && w < ms->n_workers ? &ms->worker[w] : NULL;
}

int qa_models_take_max_active(qa_models *ms)
{
    return atomic_exchange(&ms->max_active, atomic_load(&ms->active));
}

qa_status qa_models_report(qa_models *ms, qa_memory_report *r, qa_err *e)
{
    memset(r, 0, sizeof *r);
    r->arena_bytes = ms->arena.bytes;
    r->used_bytes = qa_arena_used(&ms->arena);
    r->peak_bytes = qa_arena_peak(&ms->arena);
    r->n_regions = ms->arena.n_regions;
    memcpy(r->regions, ms->arena.regions, sizeof r->regions);
    r->allocations_after_load = (int64_t)(qa_alloc_scoped_count() - ms->allocs_at_load);
    for (int k = 0; k < 2; k++)
        r->host_bytes[k] = ms->host_table[k] ? ms->plan.model[k].host_bytes : 0;
    if (ms->dev.kind == QA_DEVICE_CUDA) {
        qa_cuda_mem_stats st;
        QA_TRY(qa_cuda_stats(&ms->be, &st, e));
        r->is_cuda = 1;
        r->cuda_allocations_after_load = (int64_t)(st.device_allocs + st.host_allocs - ms->cuda_allocs_at_load);
        r->allocations_after_load += r->cuda_allocations_after_load;
        r->cuda_device_allocs = st.device_allocs;
        r->cuda_pinned_allocs = st.host_allocs;
        r->cuda_free_at_open = st.free_at_open;
        r->cuda_free_after_handles = st.free_after_handles;
        r->cuda_pinned_bytes = st.pinned_bytes;
        r->cuda_graphs = st.graph_instantiations;
        r->cuda_graphs_after_load = (int64_t)(st.graph_instantiations - ms->cuda_graphs_at_load);
        r->cuda_graph_bytes = st.graph_bytes;
        r->cuda_gemm_plans = st.gemm_plans;
        r->cuda_gemm_plans_after_load = (int64_t)(st.gemm_plans - ms->cuda_gemm_plans_at_load);
        r->cuda_allocations_after_load += r->cuda_graphs_after_load + r->cuda_gemm_plans_after_load;
        r->allocations_after_load += r->cuda_graphs_after_load + r->cuda_gemm_plans_after_load;
    }
    return ms->dev.mem_info(ms->dev.ctx, &r->device_free_bytes, &r->device_total_bytes, e);
}
