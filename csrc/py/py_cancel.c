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
 * would wait for the lock this call holds; the default handler (raise KeyboardInterrupt) does not.
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
    PyGILState_Release(g);
    return stop;
}

qa_cancel qa_py_cancel_hook(qa_py_cancel_ctx *ctx)
{
    /* a signal that came before the call was handled by the eval loop already: first look later */
    ctx->next_check = now_s() + QA_PY_CANCEL_PERIOD_S;
    return (qa_cancel){check, ctx};
}
