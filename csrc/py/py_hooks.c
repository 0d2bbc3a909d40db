/* py_hooks.c — module functions for tests, fuzzing and the batch runner, not for users: the JSON and
 * safetensors parsers on raw bytes, the host allocation counters, OpenBLAS's thread count, and the
 * per-thread cancel flag of a batch worker thread (py_cancel.c). Kept out of py_models.c, which binds
 * the Models type. */
#include "py.h"

#include "../backend/backend.h"
#include "../core/alloc.h"
#include "../weights/json.h"
#include "../weights/safetensors.h"

static PyObject *json_to_py(const qa_json *v)
{
    switch (v->type) {
    case QA_JSON_NULL: Py_RETURN_NONE;
    case QA_JSON_BOOL: return PyBool_FromLong(v->boolean);
    case QA_JSON_NUMBER: return v->is_int ? PyLong_FromLongLong(v->i) : PyFloat_FromDouble(v->num);
    case QA_JSON_STRING: return PyUnicode_DecodeUTF8(v->str, (Py_ssize_t)v->str_len, "strict");
    case QA_JSON_ARRAY: {
        PyObject *l = PyList_New((Py_ssize_t)v->n);
        for (size_t i = 0; l && i < v->n; i++) {
            PyObject *x = json_to_py(&v->items[i]);
            if (!x)
                Py_CLEAR(l);
            else
                PyList_SET_ITEM(l, (Py_ssize_t)i, x);
        }
        return l;
    }
    default: {
        PyObject *d = PyDict_New();
        for (size_t i = 0; d && i < v->n; i++) {
            PyObject *k = PyUnicode_DecodeUTF8(v->items[i].key, (Py_ssize_t)v->items[i].key_len, "strict");
            PyObject *x = k ? json_to_py(&v->items[i]) : NULL;
            if (!x || PyDict_SetItem(d, k, x) < 0)
                Py_CLEAR(d);
            Py_XDECREF(k);
            Py_XDECREF(x);
        }
        return d;
    }
    }
}

static PyObject *py_json_parse(PyObject *module, PyObject *args)
{
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*:_json_parse", &buf))
        return NULL;
    qa_json_doc *doc = NULL;
    qa_err e = {0};
    qa_status s = qa_json_parse(buf.buf, (size_t)buf.len, &doc, &e);
    PyBuffer_Release(&buf);
    if (s != QA_OK)
        return qa_py_raise(qa_py_state_of_module(module), &e);
    PyObject *out = json_to_py(qa_json_root(doc));
    qa_json_free(doc);
    return out;
}

/* {name: (dtype, shape tuple, (begin, end))} of a safetensors image, or ModelLoadError. */
static PyObject *st_to_py(const qa_safetensors *st)
{
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < st->n; i++) {
        const qa_st_tensor *t = &st->tensors[i];
        PyObject *shape = PyTuple_New(t->ndim);
        for (int k = 0; shape && k < t->ndim; k++)
            PyTuple_SET_ITEM(shape, k, PyLong_FromLongLong(t->shape[k]));
        PyObject *v = shape ? Py_BuildValue("(sN(nn))", qa_st_dtype_name(t->dtype), shape, (Py_ssize_t)t->begin,
                                            (Py_ssize_t)t->end) : NULL;
        if (!v || PyDict_SetItemString(d, t->name, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *py_safetensors_parse(PyObject *module, PyObject *args)
{
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*:_safetensors_parse", &buf))
        return NULL;
    qa_safetensors *st = NULL;
    qa_err e = {0};
    qa_status s = qa_safetensors_parse(buf.buf, (size_t)buf.len, "<bytes>", &st, &e);
    PyObject *out = s == QA_OK ? st_to_py(st) : qa_py_raise(qa_py_state_of_module(module), &e);
    qa_safetensors_close(st);
    PyBuffer_Release(&buf);
    return out;
}

/* _blas_threads(n=0) -> the OpenBLAS thread count before the call; n > 0 sets it (process-wide). */
static PyObject *py_blas_threads(PyObject *module, PyObject *args)
{
    int n = 0;
    if (!PyArg_ParseTuple(args, "|i:_blas_threads", &n))
        return NULL;
    int before = qa_backend_cpu_threads();
    if (n > 0)
        qa_backend_cpu_set_threads(n);
    return PyLong_FromLong(before);
}

static PyObject *py_set_thread_cancel(PyObject *module, PyObject *flag)
{
    return qa_py_set_thread_cancel(flag);
}

static PyObject *py_alloc_count(PyObject *module, PyObject *unused)
{
    return PyLong_FromUnsignedLongLong((unsigned long long)qa_alloc_count());
}

/* One allocation inside an engine scope: proves the scoped counter behind allocations_after_load. */
static PyObject *py_alloc_scope_probe(PyObject *module, PyObject *unused)
{
    qa_err e = {0};
    uint64_t before = qa_alloc_scoped_count();
    qa_alloc_scope_enter();
    void *p = qa_malloc(64, &e);
    qa_alloc_scope_leave();
    qa_free(p);
    return PyLong_FromUnsignedLongLong((unsigned long long)(qa_alloc_scoped_count() - before));
}

static PyMethodDef methods[] = {
    {"_json_parse", py_json_parse, METH_VARARGS, "_json_parse(bytes) -> Python object (debug / fuzzing)."},
    {"_safetensors_parse", py_safetensors_parse, METH_VARARGS,
     "_safetensors_parse(bytes) -> {name: (dtype, shape, (begin, end))} (debug / fuzzing)."},
    {"_alloc_count", py_alloc_count, METH_NOARGS, "Host allocations made by the engine so far."},
    {"_blas_threads", py_blas_threads, METH_VARARGS,
     "_blas_threads(n=0) -> OpenBLAS threads before the call; n > 0 sets them (process-wide)."},
    {"_set_thread_cancel", py_set_thread_cancel, METH_O,
     "_set_thread_cancel(flag) -> None: engine calls made later on THIS thread stop with KeyboardInterrupt "
     "once flag[0] != 0 (flag: a bytearray, or None to forget it)."},
    {"_alloc_scope_probe", py_alloc_scope_probe, METH_NOARGS,
     "Allocate once inside an engine allocation scope; returns how much the scoped counter moved (1)."},
    {NULL, NULL, 0, NULL},
};

int qa_py_hooks_init(PyObject *module) { return PyModule_AddFunctions(module, methods); }
