/* py_engine.c — the compute methods of Models: audio_embeddings, aligner_logits, _align_forward,
 * _align_pack (several clips in one aligner forward), asr_generate (the low-level API the parity tests
 * and qwen3align/models.py use).
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
    PyArrayObject *feat; /* owned (features, or the samples of a *_from_audio call) */
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
/* A real-valued array of any float or integer dtype -> float32 C-contiguous in r->feat. */
static int take_real(qa_py_state *st, PyObject *obj, const char *what, request *r)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OF(obj, 0);
    if (!a)
        return -1;
    if (!PyArray_ISFLOAT(a) && !PyArray_ISINTEGER(a)) { /* a forced cast would drop imaginary parts */
        qa_py_input_error(st, "%s must be a real-valued (float) array, got %s", what,
                          PyArray_DESCR(a)->typeobj->tp_name);
        Py_DECREF(a);
        return -1;
    }
    r->feat = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)a, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    return r->feat ? 0 : -1;
}

static int take_features(qa_py_state *st, PyObject *obj, Py_ssize_t valid, request *r)
{
    if (take_real(st, obj, "features", r) < 0)
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

/* samples: 1-D real array (16 kHz mono) -> float32 C-contiguous; the engine computes the features
 * on its backend (frontend/mel.c's numbers; on CUDA the whole request then runs on the device). */
static int take_samples(qa_py_state *st, PyObject *obj, request *r)
{
    if (take_real(st, obj, "samples", r) < 0)
        return -1;
    if (PyArray_NDIM(r->feat) != 1) {
        qa_py_input_error(st, "samples must be a 1-D array of 16 kHz mono audio, got %d dimensions",
                          PyArray_NDIM(r->feat));
        return -1;
    }
    qa_inputs_set_samples(&r->in, (const float *)PyArray_DATA(r->feat), PyArray_DIM(r->feat, 0));
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

static PyObject *audio_run(PyObject *self, qa_py_state *st, request *r, const char *model);

PyObject *qa_py_audio_embeddings(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"features", "valid_frames", "model", NULL};
    qa_py_state *st = state_of(self);
    PyObject *fobj;
    Py_ssize_t valid;
    const char *model = "aligner";
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "On|s:audio_embeddings", kwlist, &fobj, &valid, &model))
        return NULL;
    if (take_features(st, fobj, valid, &r) < 0) {
        request_clear(&r);
        return NULL;
    }
    return audio_run(self, st, &r, model);
}

PyObject *qa_py_audio_embeddings_from_audio(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"samples", "model", NULL};
    qa_py_state *st = state_of(self);
    PyObject *sobj;
    const char *model = "aligner";
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|s:audio_embeddings_from_audio", kwlist, &sobj, &model))
        return NULL;
    if (take_samples(st, sobj, &r) < 0) {
        request_clear(&r);
        return NULL;
    }
    return audio_run(self, st, &r, model);
}

/* Runs r (features or samples; cleared here) through the audio tower of `model`. */
static PyObject *audio_run(PyObject *self, qa_py_state *st, request *rq, const char *model)
{
    PyObject *out = NULL;
    request r = *rq;
    Py_ssize_t valid = (Py_ssize_t)r.in.frames;
    qa_model_kind kind = strcmp(model, "asr") == 0 ? QA_MODEL_ASR : QA_MODEL_ALIGNER;
    if (strcmp(model, "asr") != 0 && strcmp(model, "aligner") != 0) {
        qa_py_input_error(st, "model must be 'aligner' or 'asr', got '%s'", model);
        goto error;
    }
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

static PyObject *align_run(PyObject *self, qa_py_state *st, request *rq, int want_logits);

/* Shared by aligner_logits and _align_forward: want_logits selects the output. */
static PyObject *align_call(PyObject *self, PyObject *args, PyObject *kw, const char *fmt, int want_logits)
{
    static char *kwlist[] = {"features", "valid_frames", "input_ids", NULL};
    qa_py_state *st = state_of(self);
    PyObject *fobj, *iobj;
    Py_ssize_t valid;
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &fobj, &valid, &iobj))
        return NULL;
    if (take_features(st, fobj, valid, &r) < 0 || take_ids(st, iobj, "input_ids", &r) < 0) {
        request_clear(&r);
        return NULL;
    }
    return align_run(self, st, &r, want_logits);
}

/* The same from 16 kHz samples (aligner_logits_from_audio, _align_forward_audio). */
static PyObject *align_audio_call(PyObject *self, PyObject *args, PyObject *kw, const char *fmt, int want_logits)
{
    static char *kwlist[] = {"samples", "input_ids", NULL};
    qa_py_state *st = state_of(self);
    PyObject *sobj, *iobj;
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &sobj, &iobj))
        return NULL;
    if (take_samples(st, sobj, &r) < 0 || take_ids(st, iobj, "input_ids", &r) < 0) {
        request_clear(&r);
        return NULL;
    }
    return align_run(self, st, &r, want_logits);
}

/* The aligner over B requests in one forward (B = 1: one request): logits [n, classes], or
 * (classes [n], probs [n]); packed calls append counts int64 [B] (each clip's rows). */
static PyObject *align_exec(PyObject *self, qa_py_state *st, const qa_inputs *ins, Py_ssize_t B, int want_logits,
                            int packed)
{
    PyObject *out = NULL, *a = NULL, *b = NULL, *cnt = NULL;
    npy_intp dc[1] = {B};
    int64_t one = 0, *n = &one, total = 0;
    if (packed && !(cnt = PyArray_SimpleNew(1, dc, NPY_INT64)))
        return NULL;
    if (packed)
        n = (int64_t *)PyArray_DATA((PyArrayObject *)cnt);
    int w;
    qa_models *ms = qa_py_models_enter(self, &w);
    if (!ms)
        goto error;
    qa_err e = {0};
    qa_status s;
    Py_BEGIN_ALLOW_THREADS /* a pass over every sample or feature: a batch prepares the next clips meanwhile */
    s = qa_engine_align_pack_count(ms, ins, B, n, &e);
    Py_END_ALLOW_THREADS
    if (s == QA_OK) {
        const qa_model *m = qa_models_model(ms, QA_MODEL_ALIGNER);
        for (Py_ssize_t i = 0; i < B; i++)
            total += n[i];
        npy_intp dl[2] = {(npy_intp)total, m->cfg.classify_num}, dn[1] = {(npy_intp)total};
        a = want_logits ? PyArray_SimpleNew(2, dl, NPY_FLOAT32) : PyArray_SimpleNew(1, dn, NPY_INT32);
        b = want_logits ? NULL : PyArray_SimpleNew(1, dn, NPY_FLOAT32);
        if (a && (want_logits || b)) {
            float *lg = want_logits ? (float *)PyArray_DATA((PyArrayObject *)a) : NULL;
            int32_t *cls = want_logits ? NULL : (int32_t *)PyArray_DATA((PyArrayObject *)a);
            float *pr = want_logits ? NULL : (float *)PyArray_DATA((PyArrayObject *)b);
            Py_BEGIN_ALLOW_THREADS
            s = qa_engine_align_pack(ms, w, ins, B, n, lg, cls, pr, &e); /* validated just above */
            Py_END_ALLOW_THREADS
        } else {
            s = QA_ERR_OOM; /* NumPy raised MemoryError already */
        }
    }
    qa_py_models_leave(self, w);
    if (s == QA_OK && packed)
        out = want_logits ? PyTuple_Pack(2, a, cnt) : PyTuple_Pack(3, a, b, cnt);
    else if (s == QA_OK)
        out = want_logits ? Py_NewRef(a) : PyTuple_Pack(2, a, b);
    else if (!PyErr_Occurred())
        qa_py_raise(st, &e);
error:
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(cnt);
    return out;
}

/* Runs r (cleared here) through the aligner. */
static PyObject *align_run(PyObject *self, qa_py_state *st, request *rq, int want_logits)
{
    request r = *rq;
    PyObject *out = align_exec(self, st, &r.in, 1, want_logits, 0);
    request_clear(&r);
    return out;
}

/* clips[i] of _align_pack: (features, valid_frames, input_ids) or (samples, input_ids). */
static int take_clip(qa_py_state *st, PyObject *item, Py_ssize_t i, request *r)
{
    char name[64];
    Py_ssize_t size = PyTuple_Check(item) ? PyTuple_GET_SIZE(item) : 0;
    snprintf(name, sizeof name, "clips[%zd] input_ids", i);
    if (size == 3) {
        Py_ssize_t valid = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
        if (valid == -1 && PyErr_Occurred())
            return -1;
        if (take_features(st, PyTuple_GET_ITEM(item, 0), valid, r) < 0)
            return -1;
    } else if (size == 2) {
        if (take_samples(st, PyTuple_GET_ITEM(item, 0), r) < 0)
            return -1;
    } else {
        qa_py_input_error(st, "clips[%zd] must be a tuple (features, valid_frames, input_ids) or (samples, "
                          "input_ids), got %s", i, Py_TYPE(item)->tp_name);
        return -1;
    }
    return take_ids(st, PyTuple_GET_ITEM(item, size - 1), name, r);
}

PyObject *qa_py_align_pack(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"clips", "logits", NULL};
    qa_py_state *st = state_of(self);
    PyObject *cobj, *seq, *out = NULL;
    int want_logits = 0;
    request *rs = NULL;
    qa_inputs *ins = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$p:_align_pack", kwlist, &cobj, &want_logits))
        return NULL;
    if (!(seq = PySequence_Fast(cobj, "clips must be a sequence of tuples")))
        return NULL;
    Py_ssize_t B = PySequence_Fast_GET_SIZE(seq);
    if (B < 1 || B > QA_PACK_MAX) {
        qa_py_input_error(st, "a pack holds 1 to %d clips, got %zd", QA_PACK_MAX, B);
        goto error;
    }
    rs = PyMem_Calloc((size_t)B, sizeof *rs);
    ins = PyMem_Calloc((size_t)B, sizeof *ins);
    if (!rs || !ins) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < B; i++) {
        if (take_clip(st, PySequence_Fast_GET_ITEM(seq, i), i, &rs[i]) < 0)
            goto error;
        ins[i] = rs[i].in;
    }
    out = align_exec(self, st, ins, B, want_logits, 1);
error:
    for (Py_ssize_t i = 0; rs && i < B; i++)
        request_clear(&rs[i]);
    PyMem_Free(rs);
    PyMem_Free(ins);
    Py_DECREF(seq);
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

PyObject *qa_py_aligner_logits_from_audio(PyObject *self, PyObject *args, PyObject *kw)
{
    return align_audio_call(self, args, kw, "OO:aligner_logits_from_audio", 1);
}

PyObject *qa_py_align_forward_audio(PyObject *self, PyObject *args, PyObject *kw)
{
    return align_audio_call(self, args, kw, "OO:_align_forward_audio", 0);
}

static PyObject *asr_run(PyObject *self, qa_py_state *st, request *rq, Py_ssize_t max_new, Py_ssize_t min_new);

PyObject *qa_py_asr_generate(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"features", "valid_frames", "prompt_ids", "max_new_tokens", "min_new_tokens", NULL};
    qa_py_state *st = state_of(self);
    PyObject *fobj, *iobj;
    Py_ssize_t valid, max_new, min_new = 0;
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OnOn|n:asr_generate", kwlist, &fobj, &valid, &iobj, &max_new,
                                     &min_new))
        return NULL;
    if (take_features(st, fobj, valid, &r) < 0 || take_ids(st, iobj, "prompt_ids", &r) < 0) {
        request_clear(&r);
        return NULL;
    }
    return asr_run(self, st, &r, max_new, min_new);
}

PyObject *qa_py_asr_generate_from_audio(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"samples", "prompt_ids", "max_new_tokens", "min_new_tokens", NULL};
    qa_py_state *st = state_of(self);
    PyObject *sobj, *iobj;
    Py_ssize_t max_new, min_new = 0;
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOn|n:asr_generate_from_audio", kwlist, &sobj, &iobj, &max_new,
                                     &min_new))
        return NULL;
    if (take_samples(st, sobj, &r) < 0 || take_ids(st, iobj, "prompt_ids", &r) < 0) {
        request_clear(&r);
        return NULL;
    }
    return asr_run(self, st, &r, max_new, min_new);
}

/* Runs r (cleared here) through greedy ASR. */
static PyObject *asr_run(PyObject *self, qa_py_state *st, request *rq, Py_ssize_t max_new, Py_ssize_t min_new)
{
    PyObject *out = NULL, *ids = NULL, *logits = NULL;
    request r = *rq;
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


PyObject *qa_py_mel_features(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"samples", NULL};
    qa_py_state *st = state_of(self);
    PyObject *sobj, *out = NULL;
    request r = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:mel_features", kwlist, &sobj))
        return NULL;
    if (take_samples(st, sobj, &r) < 0)
        goto error;
    npy_intp dims[2] = {(npy_intp)r.in.mel_bins, (npy_intp)r.in.frames};
    if (!(out = PyArray_SimpleNew(2, dims, NPY_FLOAT32)))
        goto error;
    int w;
    qa_models *ms = qa_py_models_enter(self, &w);
    if (!ms) {
        Py_CLEAR(out);
        goto error;
    }
    qa_err e = {0};
    qa_status s;
    float *dst = (float *)PyArray_DATA((PyArrayObject *)out);
    Py_BEGIN_ALLOW_THREADS
    s = qa_engine_mel(ms, w, &r.in, dst, &e);
    Py_END_ALLOW_THREADS
    qa_py_models_leave(self, w);
    if (s != QA_OK) {
        Py_CLEAR(out);
        if (!PyErr_Occurred())
            qa_py_raise(st, &e);
    }
error:
    request_clear(&r);
    return out;
}

PyObject *qa_py_align_pack_limits(PyObject *self, PyObject *noargs)
{
    int w;
    qa_pack_size lim;
    qa_models *ms = qa_py_models_enter(self, &w);
    if (!ms)
        return NULL;
    int have = qa_models_model(ms, QA_MODEL_ALIGNER) != NULL;
    if (have)
        qa_engine_align_pack_limit(ms, &lim);
    qa_py_models_leave(self, w);
    if (!have)
        return qa_py_input_error(state_of(self), "no aligner model is loaded");
    return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:L}", "clips", (long long)lim.clips, "frames", (long long)lim.frames,
                         "chunks", (long long)lim.chunks, "audio_tokens", (long long)lim.audio_tokens, "tokens",
                         (long long)lim.tokens, "stamps", (long long)lim.stamps);
}
