/* py_models.c — Python entry points of the models area: the Models type, plan, device info, debug hooks.
 *
 * Models (qwen3align._qwen3align.Models, subclassed by qwen3align.models.Models) owns one qa_models
 * (pipeline/models.c): the arena and the loaded weights. Every method that touches the engine takes a
 * "hold" (below): a compute call takes one of the object's `workers` (its own workspace, KV cache and
 * backend table), waiting without the GIL when all are busy, so Streamlit threads sharing one Models
 * queue without freezing the interpreter, and with workers=N (CPU) up to N calls compute at once;
 * a closed object raises InputError ("Models is closed"). The compute methods (py_engine.c) follow:
 *     int w; qa_models *ms = qa_py_models_enter(self, &w); if (!ms) return NULL;
 *     Py_BEGIN_ALLOW_THREADS s = qa_engine_...(ms, w, ...); Py_END_ALLOW_THREADS
 *     qa_py_models_leave(self, w);
 * Module functions: _plan (qwen3align.plan), _device_info, _cuda_probe, _config, _json_parse (debug/fuzz),
 * _blas_threads (OpenBLAS's process-wide thread count, set by qwen3align.longaudio's batches).
 */
#include "py.h"

#include <string.h>

#include "../backend/cuda_api.h"
#include "../backend/cuda_mm_buckets.h"
#include "../memory/plan.h"
#include "../pipeline/models.h"
#include "../weights/checkpoint.h"
#include "../weights/config.h"
#include "../weights/convert.h"
#include "../weights/safetensors.h"
#include "py_holds.h"

typedef struct qa_py_models {
    PyObject_HEAD
    qa_models *ms;         /* NULL when closed or not loaded; changed only under an exclusive hold */
    qa_py_holds holds;     /* who is inside, on which worker (py_holds.h) */
} qa_py_models;

static qa_py_state *state_of(PyObject *self) { return qa_py_state_of_type(Py_TYPE(self)); }

static PyObject *closed_error(qa_py_models *self)
{
    return qa_py_input_error(state_of((PyObject *)self), "Models is closed (call load_models() again)");
}

/* Take a hold of `mode` and return the qa_models (and in *w the worker for QA_HOLD_WORKER), or NULL
 * with InputError when the object is closed (or the signal handler's exception). Pair every
 * non-NULL return with models_leave(self, mode, *w). */
static qa_models *models_enter_mode(qa_py_models *self, int mode, int *w)
{
    *w = -1;
    if (!self->holds.ready || !self->ms) {
        closed_error(self);
        return NULL;
    }
    if (qa_py_hold(&self->holds, &self->ms, mode, 1, w) < 0)
        return NULL;
    if (!self->ms) { /* closed while we waited */
        qa_py_release(&self->holds, mode, *w);
        closed_error(self);
        return NULL;
    }
    return self->ms;
}

static void models_leave_mode(qa_py_models *self, int mode, int w) { qa_py_release(&self->holds, mode, w); }

/* The common case in this file: a shared hold. */
static qa_models *models_enter(qa_py_models *self)
{
    int w;
    return models_enter_mode(self, QA_HOLD_SHARED, &w);
}

static void models_leave(qa_py_models *self) { models_leave_mode(self, QA_HOLD_SHARED, -1); }

/* For the compute methods in py_engine.c (declared in py.h): a worker each. */
qa_models *qa_py_models_enter(PyObject *self, int *worker)
{
    return models_enter_mode((qa_py_models *)self, QA_HOLD_WORKER, worker);
}

void qa_py_models_leave(PyObject *self, int worker) { models_leave_mode((qa_py_models *)self, QA_HOLD_WORKER, worker); }

static int parse_kind(qa_py_state *st, const char *s, qa_model_kind *k)
{
    if (strcmp(s, "aligner") == 0) *k = QA_MODEL_ALIGNER;
    else if (strcmp(s, "asr") == 0) *k = QA_MODEL_ASR;
    else {
        qa_py_input_error(st, "model must be 'aligner' or 'asr', got '%s'", s);
        return -1;
    }
    return 0;
}

static int parse_dtype(qa_py_state *st, const char *s, qa_dtype *d)
{
    if (strcmp(s, "float32") == 0) *d = QA_F32;
    else if (strcmp(s, "bfloat16") == 0) *d = QA_BF16;
    else {
        qa_py_input_error(st, "dtype must be 'float32' or 'bfloat16' (or 'auto'), got '%s'", s);
        return -1;
    }
    return 0;
}

static const char *dtype_name(qa_dtype d) { return d == QA_F32 ? "float32" : d == QA_BF16 ? "bfloat16" : "float16"; }

/* ---- dict builders ---- */

static int set_item(PyObject *d, const char *k, PyObject *v) /* steals v */
{
    if (!v)
        return -1;
    int rc = PyDict_SetItemString(d, k, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *size_or_none(size_t n) { return n ? PyLong_FromSize_t(n) : Py_NewRef(Py_None); }

static PyObject *limits_dict(const qa_plan *p)
{
    PyObject *d = PyDict_New(), *sec = PyDict_New();
    if (!d || !sec)
        goto error;
    for (int k = 0; k < 2; k++)
        if (p->model[k].present &&
            set_item(sec, qa_model_kind_name((qa_model_kind)k), PyFloat_FromDouble(p->limits.max_audio_seconds[k])) < 0)
            goto error;
    if (set_item(d, "max_audio_seconds", Py_NewRef(sec)) < 0 ||
        set_item(d, "max_new_tokens", PyLong_FromLong(p->limits.max_new_tokens)) < 0 ||
        set_item(d, "max_text_tokens", PyLong_FromLong(p->limits.max_text_tokens)) < 0 ||
        set_item(d, "max_device_bytes", size_or_none(p->limits.max_device_bytes)) < 0 ||
        set_item(d, "dtype", PyUnicode_FromString(dtype_name(p->limits.dtype))) < 0 ||
        set_item(d, "workers", PyLong_FromLong(p->limits.workers)) < 0)
        goto error;
    Py_DECREF(sec);
    return d;
error:
    Py_XDECREF(sec);
    Py_XDECREF(d);
    return NULL;
}

static PyObject *plan_model_dict(const qa_plan_model *m)
{
    return Py_BuildValue("{s:s,s:n,s:n,s:n,s:n,s:i,s:i,s:i,s:i}", "name", m->name, "weight_bytes",
                         (Py_ssize_t)m->weight_bytes, "host_bytes", (Py_ssize_t)m->host_bytes, "kv_bytes",
                         (Py_ssize_t)m->kv_bytes, "workspace_bytes", (Py_ssize_t)m->workspace_bytes, "mel_frames",
                         m->mel_frames, "audio_tokens", m->audio_tokens, "text_tokens", m->text_tokens, "seq_tokens",
                         m->seq_tokens);
}

/* {"host/<model>": bytes} of weights kept in pinned host memory, outside the arena (issue #6). */
static PyObject *host_regions_dict(const size_t bytes[2])
{
    PyObject *d = PyDict_New();
    char name[QA_REGION_NAME];
    for (int k = 0; d && k < 2; k++) {
        snprintf(name, sizeof name, "host/%s", qa_model_kind_name((qa_model_kind)k));
        if (bytes[k] && set_item(d, name, PyLong_FromSize_t(bytes[k])) < 0)
            Py_CLEAR(d);
    }
    return d;
}

/* d["host_regions"], d["host_bytes"]: the pinned host part of a plan or report. */
static int set_host_items(PyObject *d, const size_t bytes[2])
{
    return set_item(d, "host_regions", host_regions_dict(bytes)) < 0 ||
                   set_item(d, "host_bytes", PyLong_FromSize_t(bytes[0] + bytes[1])) < 0
               ? -1
               : 0;
}

static PyObject *plan_dict(const qa_plan *p)
{
    PyObject *d = PyDict_New(), *regions = PyDict_New(), *models = PyDict_New();
    if (!d || !regions || !models)
        goto error;
    for (int i = 0; i < p->n_regions; i++)
        if (set_item(regions, p->regions[i].name, PyLong_FromSize_t(p->regions[i].bytes)) < 0)
            goto error;
    for (int k = 0; k < 2; k++)
        if (p->model[k].present && set_item(models, qa_model_kind_name((qa_model_kind)k), plan_model_dict(&p->model[k])) < 0)
            goto error;
    if (set_item(d, "arena_bytes", PyLong_FromSize_t(p->arena_bytes)) < 0 ||
        set_item(d, "regions", Py_NewRef(regions)) < 0 || set_item(d, "limits", limits_dict(p)) < 0 ||
        set_item(d, "models", Py_NewRef(models)) < 0)
        goto error;
    const size_t host[2] = {p->model[0].host_bytes, p->model[1].host_bytes};
    if (set_host_items(d, host) < 0)
        goto error;
    Py_DECREF(regions);
    Py_DECREF(models);
    return d;
error:
    Py_XDECREF(regions);
    Py_XDECREF(models);
    Py_XDECREF(d);
    return NULL;
}

static PyObject *config_dict(const qa_model_config *c)
{
    PyObject *langs = PyList_New(0);
    if (!langs)
        return NULL;
    for (int i = 0; i < c->n_languages; i++) {
        PyObject *s = PyUnicode_FromString(c->languages[i]);
        int rc = s ? PyList_Append(langs, s) : -1;
        Py_XDECREF(s);
        if (rc < 0) {
            Py_DECREF(langs);
            return NULL;
        }
    }
    const qa_audio_config *a = &c->audio;
    const qa_text_config *t = &c->text;
    return Py_BuildValue(
        "{s:s,s:s,s:s,s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i},s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:d,s:d,s:O},"
        "s:i,s:i,s:i,s:i,s:i,s:i,s:(ii),s:N}",
        "name", c->name, "kind", qa_model_kind_name(c->kind), "layout", c->layout == QA_LAYOUT_HF ? "hf" : "original",
        "audio", "num_mel_bins", a->num_mel_bins, "layers", a->layers, "heads", a->heads, "ffn", a->ffn, "d_model",
        a->d_model, "output_dim", a->output_dim, "n_window", a->n_window, "n_window_infer", a->n_window_infer,
        "down_hidden", a->down_hidden, "text", "vocab", t->vocab, "hidden", t->hidden, "inter", t->inter, "layers",
        t->layers, "heads", t->heads, "kv_heads", t->kv_heads, "head_dim", t->head_dim, "max_positions",
        t->max_positions, "rms_eps", t->rms_eps, "rope_theta", t->rope_theta, "tie_word_embeddings",
        t->tie_word_embeddings ? Py_True : Py_False, "classify_num", c->classify_num, "audio_token_id",
        c->audio_token_id, "audio_start_token_id", c->audio_start_token_id, "audio_end_token_id",
        c->audio_end_token_id, "timestamp_token_id", c->timestamp_token_id, "timestamp_segment_ms",
        c->timestamp_segment_ms, "eos_token_ids", c->eos_token_ids[0], c->eos_token_ids[1], "languages", langs);
}

/* ---- shared argument parsing: model folders + limits ---- */

static char *LOAD_KW[] = {"aligner", "asr", "device", "max_audio_seconds_aligner", "max_audio_seconds_asr",
                          "max_new_tokens", "max_text_tokens", "max_device_bytes", "dtype", "workers", NULL};

typedef struct load_args {
    const char *dirs[2];
    const char *device;
    qa_limits lim;
} load_args;

static int parse_load_args(qa_py_state *st, PyObject *args, PyObject *kw, const char *fmt, load_args *a)
{
    const char *dtype = "float32";
    Py_ssize_t cap = 0;
    a->dirs[0] = a->dirs[1] = NULL;
    a->device = "cpu";
    a->lim = qa_limits_default();
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, LOAD_KW, &a->dirs[0], &a->dirs[1], &a->device,
                                     &a->lim.max_audio_seconds[0], &a->lim.max_audio_seconds[1],
                                     &a->lim.max_new_tokens, &a->lim.max_text_tokens, &cap, &dtype,
                                     &a->lim.workers))
        return -1;
    if (cap < 0) {
        qa_py_input_error(st, "max_device_bytes must be positive, got %zd", cap);
        return -1;
    }
    a->lim.max_device_bytes = (size_t)cap;
    return parse_dtype(st, dtype, &a->lim.dtype);
}

/* ---- the Models type ---- */

static void release(qa_py_models *self)
{
    qa_models *ms = self->ms;
    self->ms = NULL;
    qa_models_free(ms);
}

/* Wait for an exclusive hold without the GIL (not interruptible: init and close must not half-happen). */
static void hold_exclusive(qa_py_models *self)
{
    int w;
    qa_py_hold(&self->holds, &self->ms, QA_HOLD_EXCLUSIVE, 0, &w);
}

static int Models_init(qa_py_models *self, PyObject *args, PyObject *kw)
{
    qa_py_state *st = state_of((PyObject *)self);
    load_args a;
    if (parse_load_args(st, args, kw, "|zz$sddiinsi:Models", &a) < 0)
        return -1;
    if (qa_py_holds_init(&self->holds) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    hold_exclusive(self); /* __init__ on a live object: calls in flight on other threads finish first */
    release(self);
    qa_err e = {0};
    qa_models *ms = NULL;
    qa_status s;
    Py_BEGIN_ALLOW_THREADS
    s = qa_models_load(&ms, a.dirs, a.device, &a.lim, &e);
    Py_END_ALLOW_THREADS
    self->ms = s == QA_OK ? ms : NULL;
    qa_py_release(&self->holds, QA_HOLD_EXCLUSIVE, -1);
    if (s != QA_OK) {
        qa_py_raise(st, &e);
        return -1;
    }
    return 0;
}

static void Models_dealloc(qa_py_models *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    release(self); /* no call can be in flight: each holds a reference to self */
    qa_py_holds_destroy(&self->holds);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Models_close(qa_py_models *self, PyObject *unused)
{
    if (!self->holds.ready || !self->ms)
        Py_RETURN_NONE; /* closing twice is harmless */
    hold_exclusive(self);
    release(self);
    qa_py_release(&self->holds, QA_HOLD_EXCLUSIVE, -1);
    Py_RETURN_NONE;
}

/* End of load as seen from Python (after the tokenizers): allocations_after_load counts from here. */
static PyObject *Models_mark_loaded(qa_py_models *self, PyObject *unused)
{
    qa_models *ms = models_enter(self);
    if (!ms)
        return NULL;
    qa_models_mark_loaded(ms);
    models_leave(self);
    Py_RETURN_NONE;
}

static PyObject *Models_closed(qa_py_models *self, void *unused) { return PyBool_FromLong(self->ms == NULL); }

static PyObject *Models_workers(qa_py_models *self, void *unused)
{
    qa_models *ms = models_enter(self);
    if (!ms)
        return NULL;
    int n = ms->n_workers;
    models_leave(self);
    return PyLong_FromLong(n);
}

/* Debug (tests/test_batch.py): the most requests that were inside the engine at once since the last
 * call; the counter restarts from the requests inside now. */
static PyObject *Models_max_concurrent(qa_py_models *self, PyObject *unused)
{
    qa_models *ms = models_enter(self);
    if (!ms)
        return NULL;
    int n = qa_models_take_max_active(ms);
    models_leave(self);
    return PyLong_FromLong(n);
}

static PyObject *regions_dict(const qa_memory_report *r, int what)
{
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < r->n_regions; i++) {
        const qa_region *g = &r->regions[i];
        if (set_item(d, g->name, PyLong_FromSize_t(what == 0 ? g->size : what == 1 ? g->used : g->peak)) < 0)
            Py_CLEAR(d);
    }
    return d;
}

/* CUDA part of the report: counted allocations, and where the device memory outside the arena went. */
static PyObject *cuda_dict(const qa_memory_report *r)
{
    if (!r->is_cuda)
        Py_RETURN_NONE;
    size_t total = r->device_total_bytes;
    return Py_BuildValue("{s:L,s:K,s:K,s:n,s:n,s:n,s:n,s:K,s:L,s:n,s:K,s:L}", "allocations_after_load",
                         (long long)r->cuda_allocations_after_load, "cuda_malloc_calls",
                         (unsigned long long)r->cuda_device_allocs, "pinned_host_alloc_calls",
                         (unsigned long long)r->cuda_pinned_allocs, "free_bytes_at_context_creation",
                         (Py_ssize_t)r->cuda_free_at_open, "context_and_other_processes_bytes",
                         (Py_ssize_t)(total - r->cuda_free_at_open), "stream_and_cublas_bytes",
                         (Py_ssize_t)(r->cuda_free_at_open - r->cuda_free_after_handles), "pinned_staging_bytes",
                         (Py_ssize_t)r->cuda_pinned_bytes, "graph_instantiations",
                         (unsigned long long)r->cuda_graphs, "graph_instantiations_after_load",
                         (long long)r->cuda_graphs_after_load, "graph_bytes", (Py_ssize_t)r->cuda_graph_bytes,
                         "gemm_plans", (unsigned long long)r->cuda_gemm_plans, "gemm_plans_after_load",
                         (long long)r->cuda_gemm_plans_after_load);
}

static PyObject *report_dict_base(const qa_models *ms, const qa_memory_report *r);

static PyObject *report_dict(const qa_models *ms, const qa_memory_report *r)
{
    PyObject *d = report_dict_base(ms, r);
    if (d && (set_item(d, "cuda", cuda_dict(r)) < 0 || set_host_items(d, r->host_bytes) < 0))
        Py_CLEAR(d);
    return d;
}

static PyObject *report_dict_base(const qa_models *ms, const qa_memory_report *r)
{
    return Py_BuildValue("{s:n,s:n,s:n,s:N,s:N,s:N,s:s,s:n,s:n,s:L,s:N}", "arena_bytes", (Py_ssize_t)r->arena_bytes,
                         "used_bytes", (Py_ssize_t)r->used_bytes, "peak_bytes", (Py_ssize_t)r->peak_bytes, "regions",
                         regions_dict(r, 0), "regions_used", regions_dict(r, 1), "regions_peak", regions_dict(r, 2),
                         "device", ms->dev.name, "device_total_bytes", (Py_ssize_t)r->device_total_bytes,
                         "device_free_bytes", (Py_ssize_t)r->device_free_bytes, "allocations_after_load",
                         (long long)r->allocations_after_load, "limits", limits_dict(&ms->plan));
}

static PyObject *Models_memory_report(qa_py_models *self, PyObject *unused)
{
    qa_models *ms = models_enter(self);
    if (!ms)
        return NULL;
    qa_memory_report r;
    qa_err e = {0};
    qa_status s = qa_models_report(ms, &r, &e);
    PyObject *out = s == QA_OK ? report_dict(ms, &r) : qa_py_raise(state_of((PyObject *)self), &e);
    models_leave(self);
    return out;
}

static PyObject *Models_plan(qa_py_models *self, PyObject *unused)
{
    qa_models *ms = models_enter(self);
    if (!ms)
        return NULL;
    PyObject *out = plan_dict(&ms->plan);
    models_leave(self);
    return out;
}

/* Borrowed model of kind s, or NULL with InputError. Call between enter/leave. */
static qa_model *kind_model(qa_py_models *self, qa_models *ms, const char *s)
{
    qa_model_kind k;
    if (parse_kind(state_of((PyObject *)self), s, &k) < 0)
        return NULL;
    qa_model *m = qa_models_model(ms, k);
    if (!m)
        qa_py_input_error(state_of((PyObject *)self), "no %s model is loaded", s);
    return m;
}

static PyObject *Models_config(qa_py_models *self, PyObject *args)
{
    const char *kind;
    if (!PyArg_ParseTuple(args, "s:_config", &kind))
        return NULL;
    qa_models *ms = models_enter(self);
    if (!ms)
        return NULL;
    qa_model *m = kind_model(self, ms, kind);
    PyObject *out = m ? config_dict(&m->cfg) : NULL;
    models_leave(self);
    return out;
}

static qa_st_dtype st_dtype(qa_dtype d) { return d == QA_F32 ? QA_ST_F32 : d == QA_BF16 ? QA_ST_BF16 : QA_ST_F16; }

/* NumPy float32 copy of tensor t (device memory copied back first when not host-accessible). */
static PyObject *tensor_copy(qa_py_state *st, const qa_device *dev, const qa_tensor *t, int on_host)
{
    npy_intp dims[4];
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        dims[i] = (npy_intp)t->shape[i];
        n *= (size_t)t->shape[i];
    }
    PyObject *arr = PyArray_SimpleNew(t->ndim, dims, NPY_FLOAT32);
    if (!arr)
        return NULL;
    const void *src = t->data;
    void *tmp = NULL;
    qa_err e = {0};
    if (!dev->host_accessible && !on_host) {
        if (!(tmp = PyMem_Malloc(n * qa_dtype_size(t->dtype) + 1))) {
            Py_DECREF(arr);
            return PyErr_NoMemory();
        }
        if (dev->copy_d2h(dev->ctx, tmp, t->data, n * qa_dtype_size(t->dtype), &e) != QA_OK) {
            PyMem_Free(tmp);
            Py_DECREF(arr);
            return qa_py_raise(st, &e);
        }
        src = tmp;
    }
    qa_convert(PyArray_DATA((PyArrayObject *)arr), QA_F32, src, st_dtype(t->dtype), n);
    PyMem_Free(tmp);
    return arr;
}

static PyObject *Models_tensor(qa_py_models *self, PyObject *args)
{
    const char *kind, *name;
    if (!PyArg_ParseTuple(args, "ss:_tensor", &kind, &name))
        return NULL;
    qa_models *ms = models_enter(self);
    if (!ms)
        return NULL;
    qa_py_state *st = state_of((PyObject *)self);
    PyObject *out = NULL;
    qa_model *m = kind_model(self, ms, kind);
    const qa_tensor *t = m ? qa_model_find(m, name) : NULL;
    if (m && !t)
        qa_py_input_error(st, "no tensor named '%s' in the %s (use the original-layout name)", name, kind);
    if (t)
        out = tensor_copy(st, &ms->dev, t, m->dec.embed_on_host && t == &m->dec.embed); /* pinned host table */
    models_leave(self);
    return out;
}

/* Debug: take `bytes` from a region (offset in the region returned) or reset it (bytes < 0). */
static PyObject *Models_region_take(qa_py_models *self, PyObject *args)
{
    const char *name;
    Py_ssize_t bytes;
    if (!PyArg_ParseTuple(args, "sn:_region_take", &name, &bytes))
        return NULL;
    int w;
    qa_models *ms = models_enter_mode(self, QA_HOLD_EXCLUSIVE, &w); /* a workspace may be a request's */
    if (!ms)
        return NULL;
    PyObject *out = NULL;
    qa_err e = {0};
    qa_region *r = qa_arena_region(&ms->arena, name);
    if (!r) {
        qa_py_input_error(state_of((PyObject *)self), "no region named '%s' in the arena", name);
    } else if (bytes < 0) {
        qa_region_reset(r);
        out = Py_NewRef(Py_None);
    } else {
        void *p = qa_arena_take(r, (size_t)bytes, &e);
        out = p ? PyLong_FromSize_t((size_t)((uint8_t *)p - r->base)) : qa_py_raise(state_of((PyObject *)self), &e);
    }
    models_leave_mode(self, QA_HOLD_EXCLUSIVE, -1);
    return out;
}

static PyMethodDef Models_methods[] = {
    {"close", (PyCFunction)Models_close, METH_NOARGS, "Free the arena now. Closing twice is harmless."},
    {"_memory_report", (PyCFunction)Models_memory_report, METH_NOARGS, "Arena, regions and device memory (dict)."},
    {"_plan", (PyCFunction)Models_plan, METH_NOARGS, "The memory plan this object was loaded with (dict)."},
    {"_config", (PyCFunction)Models_config, METH_VARARGS, "_config(kind) -> dict of the loaded model's config."},
    {"_tensor", (PyCFunction)Models_tensor, METH_VARARGS,
     "_tensor(kind, name) -> float32 NumPy copy of a loaded tensor (original-layout name)."},
    {"_mark_loaded", (PyCFunction)Models_mark_loaded, METH_NOARGS,
     "Restart the allocations_after_load count (called by load_models after the tokenizers)."},
    {"_region_take", (PyCFunction)Models_region_take, METH_VARARGS,
     "_region_take(region, nbytes) -> offset (debug); nbytes < 0 resets the region."},
    {"_max_concurrent", (PyCFunction)Models_max_concurrent, METH_NOARGS,
     "Most requests inside the engine at once since the last call (debug; restarts the count)."},
    QA_PY_ENGINE_METHODS
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Models_getset[] = {
    {"closed", (getter)Models_closed, NULL, "True once close() ran.", NULL},
    {"workers", (getter)Models_workers, NULL, "Requests that may compute at once (one workspace each).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Models_slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Models_init},
    {Py_tp_dealloc, Models_dealloc},
    {Py_tp_methods, Models_methods},
    {Py_tp_getset, Models_getset},
    {Py_tp_doc, "Models(aligner=None, asr=None, *, device='cpu', max_audio_seconds_aligner=300.0, "
                "max_audio_seconds_asr=300.0, max_new_tokens=1024, max_text_tokens=0, max_device_bytes=0, "
                "dtype='float32', workers=1): the C owner of one arena and the loaded models (see qwen3align.load_models)."},
    {0, NULL},
};

static PyType_Spec Models_spec = {
    .name = "qwen3align._qwen3align.Models",
    .basicsize = sizeof(qa_py_models),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = Models_slots,
};

/* ---- module functions ---- */

static PyObject *py_plan(PyObject *module, PyObject *args, PyObject *kw)
{
    qa_py_state *st = qa_py_state_of_module(module);
    load_args a;
    if (parse_load_args(st, args, kw, "|zz$sddiinsi:_plan", &a) < 0)
        return NULL;
    qa_model_config cfg[2];
    const qa_model_config *cp[2] = {NULL, NULL};
    qa_err e = {0};
    for (int k = 0; k < 2; k++) {
        if (!a.dirs[k])
            continue;
        if (qa_config_resolve(a.dirs[k], &cfg[k], &e) != QA_OK)
            return qa_py_raise(st, &e);
        if ((int)cfg[k].kind != k)
            return qa_py_input_error(st, "%s is a %s model, passed as %s=", a.dirs[k], qa_model_kind_name(cfg[k].kind),
                                     qa_model_kind_name((qa_model_kind)k));
        cp[k] = &cfg[k];
    }
    qa_plan p;
    if (qa_models_plan(cp, &a.lim, a.device, &p, &e) != QA_OK)
        return qa_py_raise(st, &e);
    return plan_dict(&p);
}

/* _cuda_probe(device=0): what the CUDA backend sees (driver, runtime, devices), or InputError saying why
 * it is unusable ("CUDA backend not built", "no CUDA driver", "driver older than runtime", "no device"). */
static PyObject *py_cuda_probe(PyObject *module, PyObject *args)
{
    int device = 0;
    if (!PyArg_ParseTuple(args, "|i:_cuda_probe", &device))
        return NULL;
    const qa_cuda_api *api = NULL;
    qa_cuda_probe pr;
    qa_err e = {0};
    qa_status s;
    Py_BEGIN_ALLOW_THREADS
    s = qa_cuda_load(&api, &e);
    if (s == QA_OK)
        s = api->probe(device, &pr, &e);
    Py_END_ALLOW_THREADS
    if (s != QA_OK)
        return qa_py_raise(qa_py_state_of_module(module), &e);
    return Py_BuildValue("{s:i,s:i,s:i,s:s,s:i,s:i,s:n}", "device_count", pr.device_count, "driver_version",
                         pr.driver_version, "runtime_version", pr.runtime_version, "name", pr.name, "cc_major",
                         pr.cc_major, "cc_minor", pr.cc_minor, "total_bytes", (Py_ssize_t)pr.total_mem);
}

/* _cuda_gemm_buckets(): the upper bounds of the size buckets the CUDA backend plans products in (the last, open
 * bucket left out), for QA_CUDA_MM_BUCKETS as it is now: the warm-up requests visit each (qwen3align/models.py). */
static PyObject *py_cuda_gemm_buckets(PyObject *module, PyObject *noargs)
{
    (void)module;
    (void)noargs;
    const qa_mm_buckets *bk = qa_mm_buckets_of(qa_mm_buckets_old_env());
    PyObject *t = PyTuple_New(bk->n - 1);
    for (int i = 0; t && i < bk->n - 1; i++) {
        PyObject *v = PyLong_FromLong(bk->hi[i]);
        if (!v) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *py_device_info(PyObject *module, PyObject *args)
{
    const char *spec;
    if (!PyArg_ParseTuple(args, "s:_device_info", &spec))
        return NULL;
    qa_device dev;
    qa_err e = {0};
    size_t free_b = 0, total_b = 0;
    if (qa_device_open(spec, &dev, &e) != QA_OK || dev.mem_info(dev.ctx, &free_b, &total_b, &e) != QA_OK)
        return qa_py_raise(qa_py_state_of_module(module), &e);
    return Py_BuildValue("{s:s,s:n,s:n}", "name", dev.name, "free_bytes", (Py_ssize_t)free_b, "total_bytes",
                         (Py_ssize_t)total_b);
}

static PyObject *py_config(PyObject *module, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:_config", &name))
        return NULL;
    qa_model_config cfg;
    qa_err e = {0};
    if (qa_config_resolve(name, &cfg, &e) != QA_OK)
        return qa_py_raise(qa_py_state_of_module(module), &e);
    return config_dict(&cfg);
}

static PyMethodDef methods[] = {
    {"_plan", (PyCFunction)(void (*)(void))py_plan, METH_VARARGS | METH_KEYWORDS,
     "_plan(aligner=None, asr=None, *, ...) -> dict: the memory plan from configs/presets and limits."},
    {"_device_info", py_device_info, METH_VARARGS, "_device_info(device) -> {name, free_bytes, total_bytes}."},
    {"_cuda_probe", py_cuda_probe, METH_VARARGS,
     "_cuda_probe(device=0) -> {device_count, driver_version, runtime_version, name, cc_major, cc_minor, "
     "total_bytes}; InputError saying why when CUDA is unusable."},
    {"_config", py_config, METH_VARARGS, "_config(folder_or_preset) -> dict of the parsed config."},
    {"_cuda_gemm_buckets", py_cuda_gemm_buckets, METH_NOARGS,
     "_cuda_gemm_buckets() -> tuple of int: upper bounds of the CUDA GEMM size buckets (QA_CUDA_MM_BUCKETS), the "
     "last open bucket left out."},
    {NULL, NULL, 0, NULL},
};

int qa_py_models_init(PyObject *module)
{
    if (PyModule_AddFunctions(module, methods) < 0)
        return -1;
    return qa_py_add_type(module, &Models_spec) ? 0 : -1;
}
