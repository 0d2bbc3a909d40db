/* py_engine.c — the compute methods of Models: audio_embeddings, aligner_logits, _align_forward,
 * asr_generate (the low-level API the parity tests and qwen3align/models.py use).
 *
 * Each method converts its arrays once (features -> C-contiguous float32 [mel_bins, frames];
 * ids -> int32 after checking they are integers that fit), takes a free worker of the Models
 * (qa_py_models_enter, waiting without the GIL), validates through the engine (InputError naming
 * the argument or the plan's limit), allocates the NumPy outputs with the sizes the validation
 * returned, then runs the engine with the GIL released. Outputs are fresh NumPy arrays; the engine
 * itself takes nothing outside the arena (pipeline/engine.c). Each request carries a cancellation
 * hook (py_cancel.c), so Ctrl-C stops it between layers with KeyboardInterrupt.
 */
#include "py.h"

#include "../pipeline/engine.h"

typedef struct request {
    PyArrayObject *feat; /* owned */
    PyArrayObject *ids;  /* owned, may be NULL */
    qa_inputs in;
    qa_py_cancel_ctx cancel; /* in.cancel's context: Ctrl-C stops the engine between layers */
} request;

static qa_py_state *state_of(PyObject *self) { return qa_py_state_of_type(Py_TYPE(self)); }

static void request_clear(request *r)
{
    Py_CLEAR(r->feat);
    Py_CLEAR(r->ids);
    qa_py_cancel_clear(&r->cancel);
}

/* features: 2-D float array [mel_bins, frames] -> float32 C-contiguous. */
static int take_features(qa_py_state *st, PyObject *obj, Py_ssize_t valid, request *r)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OF(obj, 0);
    if (!a)
        return -1;
    if (!PyArray_ISFLOAT(a) && !PyArray_ISINTEGER(a)) { /* a forced cast would drop imaginary parts */
        qa_py_input_error(st, "features must be a real-valued (float) array, got %s", PyArray_DESCR(a)->typeobj->tp_name);
        Py_DECREF(a);
        return -1;
    }
    r->feat = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)a, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    if (!r->feat)
        return -1;
    if (PyArray_NDIM(r->feat) != 2) {
        qa_py_input_error(st, "features must be a 2-D array [mel_bins, frames], got %d dimensions",
                          PyArray_NDIM(r->feat));
        return -1;
    }
    r->in.feat = (const float *)PyArray_DATA(r->feat);
    r->in.mel_bins = PyArray_DIM(r->feat, 0);
    r->in.ld = PyArray_DIM(r->feat, 1);
    r->in.frames = valid;
    r->in.cancel = qa_py_cancel_hook(&r->cancel);
    return 0;
}

/* ids: 1-D integer array -> int32 (values must fit; the engine checks the vocabulary range). */
static int take_ids(qa_py_state *st, PyObject *obj, const char *name, request *r)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OF(obj, NPY_ARRAY_IN_ARRAY);
    if (!a)
        return -1;
    if (PyArray_NDIM(a) != 1 || !PyArray_ISINTEGER(a)) {
        qa_py_input_error(st, "%s must be a 1-D integer array, got %d dimensions of %s", name, PyArray_NDIM(a),
                          PyArray_DESCR(a)->typeobj->tp_name);
        Py_DECREF(a);
        return -1;
    }
    PyArrayObject *wide = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)a, NPY_INT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    if (!wide)
        return -1;
    npy_intp n = PyArray_DIM(wide, 0);
    const int64_t *src = (const int64_t *)PyArray_DATA(wide);
    for (npy_intp i = 0; i < n; i++)
        if (src[i] < 0 || src[i] > INT32_MAX) {
            qa_py_input_error(st, "%s[%zd] = %lld is not a token id", name, (Py_ssize_t)i, (long long)src[i]);
            Py_DECREF(wide);
            return -1;
        }
    r->ids = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT32);
    if (!r->ids) {
        Py_DECREF(wide);
        return -1;
    }
    int32_t *dst = (int32_t *)PyArray_DATA(r->ids);
    for (npy_intp i = 0; i < n; i++)
        dst[i] = (int32_t)src[i];
    Py_DECREF(wide);
    r->in.ids = dst;
    r->in.T = n;
    return 0;
}

PyObject *qa_py_audio_embeddings(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"features", "valid_frames", "model", NULL};
    qa_py_state *st = state_of(self);
    PyObject *fobj, *out = NULL;
    Py_ssize_t valid;
    const char *model = "aligner";
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "On|s:audio_embeddings", kwlist, &fobj, &valid, &model))
        return NULL;
    qa_model_kind kind = strcmp(model, "asr") == 0 ? QA_MODEL_ASR : QA_MODEL_ALIGNER;
    if (strcmp(model, "asr") != 0 && strcmp(model, "aligner") != 0)
        return qa_py_input_error(st, "model must be 'aligner' or 'asr', got '%s'", model);
    if (take_features(st, fobj, valid, &r) < 0)
        goto error;
    int w;
    qa_models *ms = qa_py_models_enter(self, &w);
    if (!ms)
        goto error;
    qa_model *m = qa_models_model(ms, kind);
    qa_err e = {0};
    qa_status s = QA_OK;
    if (!m) {
        qa_py_models_leave(self, w);
        qa_py_input_error(st, "no %s model is loaded", model);
        goto error;
    }
    npy_intp dims[2] = {(npy_intp)qa_audio_tokens_of_frames(&m->cfg.audio, valid > 0 ? valid : 0), m->cfg.text.hidden};
    out = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (out) {
        float *dst = (float *)PyArray_DATA((PyArrayObject *)out);
        Py_BEGIN_ALLOW_THREADS
        s = qa_engine_audio(ms, w, kind, &r.in, dst, &e);
        Py_END_ALLOW_THREADS
    }
    qa_py_models_leave(self, w);
    if (out && s != QA_OK) {
        Py_CLEAR(out);
        if (!PyErr_Occurred()) /* an interrupt leaves the signal handler's exception pending */
            qa_py_raise(st, &e);
    }
error:
    request_clear(&r);
    return out;
}

/* Shared by aligner_logits and _align_forward: want_logits selects the output. */
static PyObject *align_call(PyObject *self, PyObject *args, PyObject *kw, const char *fmt, int want_logits)
{
    static char *kwlist[] = {"features", "valid_frames", "input_ids", NULL};
    qa_py_state *st = state_of(self);
    PyObject *fobj, *iobj, *out = NULL, *a = NULL, *b = NULL;
    Py_ssize_t valid;
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &fobj, &valid, &iobj))
        return NULL;
    if (take_features(st, fobj, valid, &r) < 0 || take_ids(st, iobj, "input_ids", &r) < 0)
        goto error;
    int w;
    qa_models *ms = qa_py_models_enter(self, &w);
    if (!ms)
        goto error;
    qa_err e = {0};
    int64_t n = 0;
    qa_status s = qa_engine_align_count(ms, &r.in, &n, &e);
    if (s == QA_OK) {
        const qa_model *m = qa_models_model(ms, QA_MODEL_ALIGNER);
        npy_intp dl[2] = {(npy_intp)n, m->cfg.classify_num}, dn[1] = {(npy_intp)n};
        a = want_logits ? PyArray_SimpleNew(2, dl, NPY_FLOAT32) : PyArray_SimpleNew(1, dn, NPY_INT32);
        b = want_logits ? NULL : PyArray_SimpleNew(1, dn, NPY_FLOAT32);
        if (a && (want_logits || b)) {
            float *lg = want_logits ? (float *)PyArray_DATA((PyArrayObject *)a) : NULL;
            int32_t *cls = want_logits ? NULL : (int32_t *)PyArray_DATA((PyArrayObject *)a);
            float *pr = want_logits ? NULL : (float *)PyArray_DATA((PyArrayObject *)b);
            Py_BEGIN_ALLOW_THREADS
            s = qa_engine_align(ms, w, &r.in, lg, cls, pr, &e);
            Py_END_ALLOW_THREADS
        } else {
            s = QA_ERR_OOM; /* NumPy raised MemoryError already */
        }
    }
    qa_py_models_leave(self, w);
    if (s == QA_OK)
        out = want_logits ? Py_NewRef(a) : PyTuple_Pack(2, a, b);
    else if (!PyErr_Occurred())
        qa_py_raise(st, &e);
error:
    Py_XDECREF(a);
    Py_XDECREF(b);
    request_clear(&r);
    return out;
}

PyObject *qa_py_aligner_logits(PyObject *self, PyObject *args, PyObject *kw)
{
    return align_call(self, args, kw, "OnO:aligner_logits", 1);
}

PyObject *qa_py_align_forward(PyObject *self, PyObject *args, PyObject *kw)
{
    return align_call(self, args, kw, "OnO:_align_forward", 0);
}

PyObject *qa_py_asr_generate(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"features", "valid_frames", "prompt_ids", "max_new_tokens", "min_new_tokens", NULL};
    qa_py_state *st = state_of(self);
    PyObject *fobj, *iobj, *out = NULL, *ids = NULL, *logits = NULL;
    Py_ssize_t valid, max_new, min_new = 0;
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OnOn|n:asr_generate", kwlist, &fobj, &valid, &iobj, &max_new,
                                     &min_new))
        return NULL;
    if (take_features(st, fobj, valid, &r) < 0 || take_ids(st, iobj, "prompt_ids", &r) < 0)
        goto error;
    int w;
    qa_models *ms = qa_py_models_enter(self, &w);
    if (!ms)
        goto error;
    qa_err e = {0};
    int64_t n = 0;
    qa_status s = qa_engine_asr_check(ms, &r.in, max_new, min_new, &e);
    if (s == QA_OK) {
        const qa_model *m = qa_models_model(ms, QA_MODEL_ASR);
        npy_intp di[1] = {(npy_intp)max_new}, dv[1] = {m->cfg.text.vocab};
        ids = PyArray_SimpleNew(1, di, NPY_INT32);
        logits = PyArray_SimpleNew(1, dv, NPY_FLOAT32);
        if (ids && logits) {
            int32_t *pi = (int32_t *)PyArray_DATA((PyArrayObject *)ids);
            float *pl = (float *)PyArray_DATA((PyArrayObject *)logits);
            Py_BEGIN_ALLOW_THREADS
            s = qa_engine_asr(ms, w, &r.in, max_new, min_new, pi, &n, pl, &e);
            Py_END_ALLOW_THREADS
        } else {
            s = QA_ERR_OOM;
        }
    }
    qa_py_models_leave(self, w);
    if (s == QA_OK) {
        PyObject *head = PySequence_GetSlice(ids, 0, (Py_ssize_t)n); /* the ids actually generated */
        if (head)
            out = PyTuple_Pack(2, head, logits);
        Py_XDECREF(head);
    } else if (!PyErr_Occurred()) {
        qa_py_raise(st, &e);
    }
error:
    Py_XDECREF(ids);
    Py_XDECREF(logits);
    request_clear(&r);
    return out;
}

