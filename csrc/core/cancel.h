/* cancel.h — cooperative cancellation of a running request (Ctrl-C while the GIL is released).
 *
 * The engine is pure C and never calls Python; the caller passes a hook (function pointer + its
 * context) with the request, and the pipelines poll it at cheap boundaries: between encoder layers,
 * between decoder layers (so also between ASR decode steps). A hook that returns nonzero stops the
 * request with QA_ERR_INTERRUPTED; the models stay usable (every request starts from an empty
 * workspace, pipeline/engine.c). csrc/py/ implements the hook with PyErr_CheckSignals, so a
 * KeyboardInterrupt raised by Python's SIGINT handler surfaces within a layer's time.
 *
 *     qa_cancel c = {my_check, my_ctx};       // {NULL, NULL}: never cancelled
 *     QA_TRY(qa_cancel_poll(&c, "decoder layer", e));
 */
#ifndef QA_CANCEL_H
#define QA_CANCEL_H

#include "status.h"

typedef struct qa_cancel {
    int (*check)(void *ctx); /* nonzero = stop now; called on the request's thread; may be NULL */
    void *ctx;               /* borrowed, owned by the caller for the request's duration */
} qa_cancel;

/* QA_OK, or QA_ERR_INTERRUPTED (message names `where`) when c->check says stop. c may be NULL. */
qa_status qa_cancel_poll(const qa_cancel *c, const char *where, qa_err *e);

#endif
