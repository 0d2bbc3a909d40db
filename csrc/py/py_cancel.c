/* py_cancel.c — KeyboardInterrupt for engine calls that run with the GIL released.
 *
 * Python's SIGINT handler only sets a flag; the exception is raised when the main thread next runs
 * bytecode, which never happens while a long align/transcribe sits in C. The engine polls a
 * qa_cancel hook between layers (core/cancel.h); this hook takes the GIL (PyGILState_Ensure: the
 * calling thread's own state, saved by Py_BEGIN_ALLOW_THREADS) and calls PyErr_CheckSignals, which
 * runs the Python handlers on the main thread (elsewhere it is a no-op). A handler that raises leaves
 * its exception pending on this thread; the hook returns nonzero, the engine returns
 * QA_ERR_INTERRUPTED, and the binding returns NULL with that exception (CPython's own
 * time.sleep/select do the same on EINTR). Each look costs a GIL round trip, so looks are throttled
 * to one per QA_PY_CANCEL_PERIOD_S: the overhead stays negligible and Ctrl-C answers within about a
 * layer's time plus 50 ms. Caveat: a Python signal handler that calls back into the same Models
 * would wait for a worker this call holds; the default handler (raise KeyboardInterrupt) does not.
 * Signals reach the main thread only, so a batch running requests on worker threads
 * (qwen3align/longaudio.py) gives each thread a cancel flag (a bytearray in the thread's state
 * dict): the hook also stops, with KeyboardInterrupt, when the flag of the request's thread is set.
 */
#include "py.h"

#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Called by the engine without the GIL. */
static int check(void *vctx)
{
    qa_py_cancel_ctx *ctx = (qa_py_cancel_ctx *)vctx;
    double t = now_s();
    if (t < ctx->next_check)
        return 0;
    ctx->next_check = t + QA_PY_CANCEL_PERIOD_S;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = PyErr_CheckSignals() < 0;
    if (!stop && ctx->flag && PyByteArray_GET_SIZE(ctx->flag) > 0 && PyByteArray_AS_STRING(ctx->flag)[0]) {
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        stop = 1;
    }
    PyGILState_Release(g);
    return stop;
}

#define THREAD_KEY "qwen3align.cancel"

qa_cancel qa_py_cancel_hook(qa_py_cancel_ctx *ctx)
{
    /* a signal that came before the call was handled by the eval loop already: first look later */
    ctx->next_check = now_s() + QA_PY_CANCEL_PERIOD_S;
    PyObject *d = PyThreadState_GetDict(); /* borrowed; NULL only without a thread state */
    PyObject *flag = d ? PyDict_GetItemString(d, THREAD_KEY) : NULL;
    ctx->flag = flag && PyByteArray_Check(flag) ? Py_NewRef(flag) : NULL;
    return (qa_cancel){check, ctx};
}

void qa_py_cancel_clear(qa_py_cancel_ctx *ctx) { Py_CLEAR(ctx->flag); }

PyObject *qa_py_set_thread_cancel(PyObject *flag)
{
    PyObject *d = PyThreadState_GetDict();
    if (!d)
        return PyErr_Format(PyExc_RuntimeError, "no thread state dict");
    if (flag == Py_None) {
        if (PyDict_GetItemString(d, THREAD_KEY) && PyDict_DelItemString(d, THREAD_KEY) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (!PyByteArray_Check(flag) || PyByteArray_GET_SIZE(flag) < 1)
        return PyErr_Format(PyExc_TypeError, "_set_thread_cancel: flag must be a non-empty bytearray or None");
    if (PyDict_SetItemString(d, THREAD_KEY, flag) < 0)
        return NULL;
    Py_RETURN_NONE;
}
