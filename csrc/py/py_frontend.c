/* py_frontend.c — Python entry points of the audio frontend: audio decoding/normalisation and log-mel.
 *
 *   _load_audio_file(path) / _load_audio_bytes(data, name) / _load_audio_array(array, sample_rate)
 *       -> float32 [n] mono 16 kHz (qwen3align/audio.py picks one from the source's type)
 *   _samples16k(array) -> the array itself if it is already such samples, else None (no copy)
 *   log_mel(audio16k) -> (float32 [128, T padded to a multiple of 100], valid_frames)
 *   HAVE_AUDIO_LIBS: 0 in a build without libsndfile/libsoxr (QA_NO_AUDIO_LIBS)
 * Arrays are converted once here (native byte order, C-contiguous); the engine (csrc/frontend/audio.c,
 * mel.c) runs with the GIL released. Engine buffers are handed to NumPy without a copy: the array
 * owns them through a capsule that calls qa_free.
 */
#include "py.h"

#include <stdarg.h>

#include "../core/alloc.h"
#include "../frontend/audio.h"
#include "../frontend/mel.h"

static void free_capsule(PyObject *cap)
{
    qa_free(PyCapsule_GetPointer(cap, "qwen3align.samples"));
}

/* A 1-D float32 NumPy array that takes ownership of data (qa_malloc'd); frees data on failure. */
static PyObject *wrap_samples(float *data, size_t n)
{
    npy_intp dims[1] = {(npy_intp)n};
    PyObject *cap = PyCapsule_New(data, "qwen3align.samples", free_capsule);
    if (!cap) {
        qa_free(data);
        return NULL;
    }
    PyObject *arr = PyArray_SimpleNewFromData(1, dims, NPY_FLOAT32, data);
    if (!arr || PyArray_SetBaseObject((PyArrayObject *)arr, cap) < 0) {
        Py_XDECREF(arr);
        Py_DECREF(cap);
        return NULL;
    }
    return arr;
}

/* Raise AudioError with a printf-style message; returns NULL. */
static PyObject *audio_error(PyObject *module, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qa_err e;
    qa_err_clear(&e);
    QA_FAIL(&e, QA_ERR_AUDIO, "%s", msg);
    return qa_py_raise(qa_py_state_of_module(module), &e);
}

/* One audio source for the engine: a file path, file bytes (type < 0) or samples of `type`. */
typedef struct audio_source {
    const char *path;
    const void *data;
    size_t len; /* bytes of a file held in memory */
    int type;   /* qa_sample_type of samples, or -1 */
    size_t frames, channels;
    double rate;
    const char *name;
} audio_source;

/* Run the engine with the GIL released; return the samples as a NumPy array or raise. */
static PyObject *load(PyObject *module, const audio_source *src)
{
    float *out = NULL;
    size_t n = 0;
    qa_err e;
    qa_err_clear(&e);
    qa_status s;
    Py_BEGIN_ALLOW_THREADS
    if (src->path)
        s = qa_audio_from_file(src->path, &out, &n, &e);
    else if (src->type < 0)
        s = qa_audio_from_memory(src->data, src->len, src->name, &out, &n, &e);
    else
        s = qa_audio_from_samples(src->data, (qa_sample_type)src->type, src->frames, src->channels, src->rate,
                                  src->name, &out, &n, &e);
    Py_END_ALLOW_THREADS
    if (s != QA_OK)
        return qa_py_raise(qa_py_state_of_module(module), &e);
    return wrap_samples(out, n);
}

static PyObject *py_load_audio_file(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", NULL};
    PyObject *path = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&:_load_audio_file", kwlist, PyUnicode_FSConverter, &path))
        return NULL;
    audio_source src = {.path = PyBytes_AS_STRING(path), .type = -1};
    PyObject *res = load(module, &src);
    Py_DECREF(path);
    return res;
}

static PyObject *py_load_audio_bytes(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "name", NULL};
    Py_buffer buf = {0};
    const char *name = "<bytes>";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|s:_load_audio_bytes", kwlist, &buf, &name))
        return NULL;
    audio_source src = {.data = buf.buf, .len = (size_t)buf.len, .type = -1, .name = name};
    PyObject *res = load(module, &src);
    PyBuffer_Release(&buf);
    return res;
}

/* NumPy dtype -> engine sample type; -1 for dtypes that are not audio. *cast = 1: convert to float64
 * first (float16, float64, longdouble), else 0 (the dtype is kept, in native byte order). */
static int sample_type_of(PyArray_Descr *d, int *cast)
{
    *cast = 0;
    int esz = (int)PyDataType_ELSIZE(d);
    if (d->kind == 'f') {
        if (esz == 4)
            return QA_SAMPLES_F32;
        *cast = 1;
        return QA_SAMPLES_F64;
    }
    static const int ints[4] = {QA_SAMPLES_I8, QA_SAMPLES_I16, QA_SAMPLES_I32, QA_SAMPLES_I64};
    static const int uints[4] = {QA_SAMPLES_U8, QA_SAMPLES_U16, QA_SAMPLES_U32, QA_SAMPLES_U64};
    int idx = esz == 1 ? 0 : esz == 2 ? 1 : esz == 4 ? 2 : esz == 8 ? 3 : -1;
    if (idx >= 0 && d->kind == 'i')
        return ints[idx];
    if (idx >= 0 && d->kind == 'u')
        return uints[idx];
    return -1;
}

static void shape_str(PyArrayObject *a, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < PyArray_NDIM(a) && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %ld" : "%ld", (long)PyArray_DIM(a, i));
    if (used < cap)
        snprintf(buf + used, cap - used, PyArray_NDIM(a) == 1 ? ",)" : ")");
}

static PyObject *py_load_audio_array(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"array", "sample_rate", NULL};
    PyArrayObject *in = NULL, *arr = NULL;
    double rate = 0.0;
    PyObject *res = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!d:_load_audio_array", kwlist, &PyArray_Type, &in, &rate))
        return NULL;
    char shape[128], name[160];
    shape_str(in, shape, sizeof shape);
    snprintf(name, sizeof name, "array of shape %s", shape);
    int cast = 0, type = sample_type_of(PyArray_DESCR(in), &cast);
    if (type < 0) {
        PyObject *dt = PyObject_Str((PyObject *)PyArray_DESCR(in));
        const char *dts = dt ? PyUnicode_AsUTF8(dt) : NULL;
        if (dts)
            audio_error(module, "%s: dtype %s is not audio samples; expected an integer or float dtype", name, dts);
        Py_XDECREF(dt);
        return NULL;
    }
    if (PyArray_NDIM(in) != 1 && PyArray_NDIM(in) != 2)
        return audio_error(module, "%s: expected 1-D (frames,) or 2-D (frames, channels)", name);
    PyArray_Descr *want = cast ? PyArray_DescrFromType(NPY_FLOAT64)
                               : PyArray_DescrNewByteorder(PyArray_DESCR(in), NPY_NATIVE);
    if (!want)
        return NULL;
    arr = (PyArrayObject *)PyArray_FromArray(in, want, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!arr)
        return NULL;
    audio_source src = {.data = PyArray_DATA(arr), .type = type, .frames = (size_t)PyArray_DIM(arr, 0),
                        .channels = PyArray_NDIM(arr) == 2 ? (size_t)PyArray_DIM(arr, 1) : 1, .rate = rate,
                        .name = name};
    res = load(module, &src);
    Py_DECREF(arr);
    return res;
}

/* The request path's shortcut: an array already in the models' input form is used as is (no copy, no
 * page faults of a fresh buffer: ~50 ms for 300 s on a VM); anything else returns None -> load_audio. */
static PyObject *py_samples16k(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyArray_Check(arg))
        Py_RETURN_NONE;
    PyArrayObject *a = (PyArrayObject *)arg;
    if (PyArray_TYPE(a) != NPY_FLOAT32 || PyArray_NDIM(a) != 1 || !PyArray_ISCARRAY_RO(a) ||
        !PyArray_ISNOTSWAPPED(a))
        Py_RETURN_NONE;
    const float *x = (const float *)PyArray_DATA(a);
    size_t n = (size_t)PyArray_DIM(a, 0);
    int ready;
    Py_BEGIN_ALLOW_THREADS
    ready = qa_audio_ready16k(x, n);
    Py_END_ALLOW_THREADS
    if (!ready)
        Py_RETURN_NONE;
    Py_INCREF(arg);
    return arg;
}

static PyObject *py_log_mel(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"audio", NULL};
    PyObject *obj = NULL, *feats = NULL, *res = NULL;
    PyArrayObject *audio = NULL;
    void *ws = NULL;
    qa_py_state *st = qa_py_state_of_module(module);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:log_mel", kwlist, &obj))
        return NULL;
    audio = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!audio)
        goto error;
    if (PyArray_NDIM(audio) != 1) {
        qa_py_input_error(st, "log_mel: 'audio' must be 1-D mono samples at 16 kHz, got %d dimensions",
                          PyArray_NDIM(audio));
        goto error;
    }
    size_t n = (size_t)PyArray_DIM(audio, 0);
    npy_intp dims[2] = {QA_MEL_BINS, (npy_intp)qa_mel_frames_padded(n)};
    feats = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    qa_err e;
    qa_err_clear(&e);
    if (!feats || !(ws = qa_malloc_aligned(qa_mel_workspace_bytes(), 64, &e))) {
        if (feats)
            qa_py_raise(st, &e);
        goto error;
    }
    qa_status s;
    Py_BEGIN_ALLOW_THREADS
    s = qa_log_mel(PyArray_DATA(audio), n, PyArray_DATA((PyArrayObject *)feats), ws,
                   qa_mel_workspace_bytes(), &e);
    Py_END_ALLOW_THREADS
    if (s != QA_OK) {
        qa_py_raise(st, &e);
        goto error;
    }
    res = Py_BuildValue("(On)", feats, (Py_ssize_t)qa_mel_frames(n));
error:
    qa_free_aligned(ws);
    Py_XDECREF(feats);
    Py_XDECREF(audio);
    return res;
}

static PyMethodDef methods[] = {
    {"_load_audio_file", (PyCFunction)(void (*)(void))py_load_audio_file, METH_VARARGS | METH_KEYWORDS,
     "_load_audio_file(path) -> float32 mono 16 kHz samples (libsndfile decode, soxr resample)."},
    {"_load_audio_bytes", (PyCFunction)(void (*)(void))py_load_audio_bytes, METH_VARARGS | METH_KEYWORDS,
     "_load_audio_bytes(data, name='<bytes>') -> float32 mono 16 kHz samples of an audio file's bytes."},
    {"_load_audio_array", (PyCFunction)(void (*)(void))py_load_audio_array, METH_VARARGS | METH_KEYWORDS,
     "_load_audio_array(array, sample_rate) -> float32 mono 16 kHz samples of a (frames,) or "
     "(frames, channels) array."},
    {"_samples16k", (PyCFunction)py_samples16k, METH_O,
     "_samples16k(array) -> the array itself when it is float32 mono 16 kHz input as load_audio would "
     "return it (1-D, contiguous, finite, peak <= 1), else None."},
    {"log_mel", (PyCFunction)(void (*)(void))py_log_mel, METH_VARARGS | METH_KEYWORDS,
     "log_mel(audio16k) -> (features float32 [128, T padded to a multiple of 100], valid_frames)."},
    {NULL, NULL, 0, NULL},
};

int qa_py_frontend_init(PyObject *module)
{
#ifdef QA_NO_AUDIO_LIBS
    const int have_audio_libs = 0; /* files and resampling fail with a clear AudioError */
#else
    const int have_audio_libs = 1;
#endif
    if (PyModule_AddIntConstant(module, "HAVE_AUDIO_LIBS", have_audio_libs) < 0)
        return -1;
    return PyModule_AddFunctions(module, methods);
}
