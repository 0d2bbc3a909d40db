/* module.c — the extension module qwen3align._qwen3align: init, exceptions, status -> exception.
 *
 * Multi-phase init with module state (the CPython _bz2 shape). The exception classes live in the
 * module state; qwen3align/errors.py re-exports them. qa_py_raise() is the single place where an
 * engine qa_status becomes a Python exception: QA_ERR_INPUT -> InputError, QA_ERR_AUDIO ->
 * AudioError, QA_ERR_MODEL -> ModelLoadError, QA_ERR_OOM -> OutOfMemoryError (with needed_bytes /
 * available_bytes attributes), QA_ERR_INTERRUPTED -> KeyboardInterrupt, others -> Qwen3AlignError.
 */
#define QA_PY_MODULE_C
#include "py.h"

#include <stdarg.h>

qa_py_state *qa_py_state_of_module(PyObject *module)
{
    return (qa_py_state *)PyModule_GetState(module);
}

qa_py_state *qa_py_state_of_type(PyTypeObject *tp)
{
    PyObject *m = PyType_GetModuleByDef(tp, &qa_py_moduledef);
    return m ? qa_py_state_of_module(m) : NULL;
}

static PyObject *exception_for(qa_py_state *st, qa_status code)
{
    switch (code) {
    case QA_ERR_INPUT: return st->InputError;
    case QA_ERR_AUDIO: return st->AudioError;
    case QA_ERR_MODEL: return st->ModelLoadError;
    case QA_ERR_OOM: return st->OutOfMemoryError;
    case QA_ERR_INTERRUPTED: return PyExc_KeyboardInterrupt;
    default: return st->Qwen3AlignError;
    }
}

PyObject *qa_py_raise(qa_py_state *st, const qa_err *e)
{
    PyObject *type = exception_for(st, e->code);
    PyObject *msg = (e->code == QA_ERR_INTERNAL || e->code == QA_ERR_CUDA)
                        ? PyUnicode_FromFormat("%s (%s:%d)", e->msg, e->file ? e->file : "?", e->line)
                        : PyUnicode_DecodeUTF8(e->msg, (Py_ssize_t)strlen(e->msg), "replace");
    if (!msg)
        return NULL;
    PyObject *exc = PyObject_CallOneArg(type, msg);
    Py_DECREF(msg);
    if (!exc)
        return NULL;
    if (e->code == QA_ERR_OOM) {
        PyObject *needed = PyLong_FromSize_t(e->needed);
        PyObject *avail = PyLong_FromSize_t(e->available);
        if (!needed || !avail || PyObject_SetAttrString(exc, "needed_bytes", needed) < 0 ||
            PyObject_SetAttrString(exc, "available_bytes", avail) < 0) {
            Py_XDECREF(needed);
            Py_XDECREF(avail);
            Py_DECREF(exc);
            return NULL;
        }
        Py_DECREF(needed);
        Py_DECREF(avail);
    }
    PyErr_SetObject(type, exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *qa_py_input_error(qa_py_state *st, const char *fmt, ...)
{
    qa_err e = {0};
    e.code = QA_ERR_INPUT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return qa_py_raise(st, &e);
}

PyTypeObject *qa_py_add_type(PyObject *module, PyType_Spec *spec)
{
    qa_py_state *st = qa_py_state_of_module(module);
    if (st->n_types >= (int)(sizeof st->types / sizeof st->types[0])) {
        PyErr_SetString(PyExc_RuntimeError, "qwen3align: too many heap types for the module state");
        return NULL;
    }
    PyObject *tp = PyType_FromModuleAndSpec(module, spec, NULL);
    if (!tp)
        return NULL;
    if (PyModule_AddType(module, (PyTypeObject *)tp) < 0) {
        Py_DECREF(tp);
        return NULL;
    }
    st->types[st->n_types++] = tp;
    return (PyTypeObject *)tp;
}

static int add_exception(PyObject *m, PyObject **slot, const char *name, PyObject *bases, const char *doc)
{
    *slot = PyErr_NewExceptionWithDoc(name, doc, bases, NULL);
    if (!*slot)
        return -1;
    return PyModule_AddObjectRef(m, strrchr(name, '.') + 1, *slot);
}

static int add_exceptions(PyObject *m, qa_py_state *st)
{
    if (add_exception(m, &st->Qwen3AlignError, "qwen3align.Qwen3AlignError", NULL,
                      "Base class of every error raised by qwen3align.") < 0)
        return -1;
    struct { PyObject **slot; const char *name; PyObject *extra; const char *doc; } subs[] = {
        {&st->ModelLoadError, "qwen3align.ModelLoadError", NULL,
         "A checkpoint folder, config, tokenizer file or weight tensor is missing or invalid."},
        {&st->OutOfMemoryError, "qwen3align.OutOfMemoryError", PyExc_MemoryError,
         "The memory plan does not fit the device (see needed_bytes / available_bytes)."},
        {&st->AudioError, "qwen3align.AudioError", PyExc_ValueError,
         "Audio that cannot be decoded, resampled or used."},
        {&st->InputError, "qwen3align.InputError", PyExc_ValueError,
         "A bad argument: text, language, limits, shapes, or use of a closed Models."},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        PyObject *bases = subs[i].extra ? PyTuple_Pack(2, st->Qwen3AlignError, subs[i].extra)
                                        : PyTuple_Pack(1, st->Qwen3AlignError);
        if (!bases)
            return -1;
        int rc = add_exception(m, subs[i].slot, subs[i].name, bases, subs[i].doc);
        Py_DECREF(bases);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int module_exec(PyObject *m)
{
    if (_import_array() < 0)
        return -1;
    qa_py_state *st = qa_py_state_of_module(m);
    if (add_exceptions(m, st) < 0)
        return -1;
#ifdef QA_HAVE_CUDA
    if (PyModule_AddIntConstant(m, "HAVE_CUDA", 1) < 0)
        return -1;
#else
    if (PyModule_AddIntConstant(m, "HAVE_CUDA", 0) < 0)
        return -1;
#endif
    if (qa_py_frontend_init(m) < 0 || qa_py_text_init(m) < 0 || qa_py_models_init(m) < 0 ||
        qa_py_longaudio_init(m) < 0 || qa_py_hooks_init(m) < 0)
        return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
    qa_py_state *st = qa_py_state_of_module(m);
    Py_VISIT(st->Qwen3AlignError);
    Py_VISIT(st->ModelLoadError);
    Py_VISIT(st->OutOfMemoryError);
    Py_VISIT(st->AudioError);
    Py_VISIT(st->InputError);
    for (int i = 0; i < st->n_types; i++)
        Py_VISIT(st->types[i]);
    return 0;
}

static int module_clear(PyObject *m)
{
    qa_py_state *st = qa_py_state_of_module(m);
    Py_CLEAR(st->Qwen3AlignError);
    Py_CLEAR(st->ModelLoadError);
    Py_CLEAR(st->OutOfMemoryError);
    Py_CLEAR(st->AudioError);
    Py_CLEAR(st->InputError);
    for (int i = 0; i < st->n_types; i++)
        Py_CLEAR(st->types[i]);
    st->n_types = 0;
    return 0;
}

static void module_free(void *m)
{
    module_clear((PyObject *)m);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

PyModuleDef qa_py_moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "qwen3align._qwen3align",
    .m_doc = "C engine of qwen3align: Qwen3-ForcedAligner / Qwen3-ASR without PyTorch.",
    .m_size = sizeof(qa_py_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__qwen3align(void)
{
    return PyModuleDef_Init(&qa_py_moduledef);
}
