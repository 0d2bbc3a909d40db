/* py_longaudio.c — Python entry point of the long-audio boundary search (csrc/frontend/chunks.c).
 *
 *   _chunk_bounds(audio16k, max_len, search, window=1600) -> int64 [k + 1] boundaries
 *       (0, ..., len(audio16k)); chunk i is audio16k[b[i]:b[i + 1]]; see chunks.h.
 * qwen3align/longaudio.py turns seconds into samples and drives the models chunk by chunk. The
 * samples are converted once to C-contiguous float32 (no copy when they already are); the search
 * runs with the GIL released.
 */
#include "py.h"

#include <string.h>

#include "../frontend/chunks.h"

static PyObject *py_chunk_bounds(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"audio", "max_len", "search", "window", NULL};
    PyObject *obj = NULL, *res = NULL, *tmp = NULL;
    PyArrayObject *audio = NULL;
    Py_ssize_t max_len = 0, search = 0, win = 1600;
    qa_py_state *st = qa_py_state_of_module(module);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onn|n:_chunk_bounds", kwlist, &obj, &max_len, &search, &win))
        return NULL;
    if (max_len <= 0 || search < 0 || win <= 0)
        return qa_py_input_error(st, "_chunk_bounds: need max_len > 0, search >= 0, window > 0 (got %zd, %zd, %zd)",
                                 max_len, search, win);
    audio = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!audio)
        goto error;
    if (PyArray_NDIM(audio) != 1) {
        qa_py_input_error(st, "_chunk_bounds: 'audio' must be 1-D mono samples at 16 kHz, got %d dimensions",
                          PyArray_NDIM(audio));
        goto error;
    }
    size_t n = (size_t)PyArray_DIM(audio, 0);
    size_t cap = qa_chunk_bounds_cap(n, (size_t)max_len, (size_t)search), k = 0;
    npy_intp tdims[1] = {(npy_intp)cap};
    tmp = PyArray_SimpleNew(1, tdims, NPY_UINTP);
    if (!tmp)
        goto error;
    qa_err e;
    qa_err_clear(&e);
    qa_status s;
    Py_BEGIN_ALLOW_THREADS
    s = qa_chunk_bounds(PyArray_DATA(audio), n, (size_t)max_len, (size_t)search, (size_t)win,
                        PyArray_DATA((PyArrayObject *)tmp), cap, &k, &e);
    Py_END_ALLOW_THREADS
    if (s != QA_OK) {
        qa_py_raise(st, &e);
        goto error;
    }
    npy_intp dims[1] = {(npy_intp)k};
    res = PyArray_SimpleNew(1, dims, NPY_INT64);
    if (!res)
        goto error;
    const size_t *b = PyArray_DATA((PyArrayObject *)tmp);
    int64_t *out = PyArray_DATA((PyArrayObject *)res);
    for (size_t i = 0; i < k; i++)
        out[i] = (int64_t)b[i];
error:
    Py_XDECREF(audio);
    Py_XDECREF(tmp);
    return res;
}

static PyMethodDef methods[] = {
    {"_chunk_bounds", (PyCFunction)(void (*)(void))py_chunk_bounds, METH_VARARGS | METH_KEYWORDS,
     "_chunk_bounds(audio16k, max_len, search, window=1600) -> int64 boundaries 0..len at quiet points."},
    {NULL, NULL, 0, NULL},
};

int qa_py_longaudio_init(PyObject *module)
{
    return PyModule_AddFunctions(module, methods);
}
