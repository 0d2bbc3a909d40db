/* py_holds.h — who may use a Models now, and on which worker (private to csrc/py/).
 *
 *     qa_py_holds h;  qa_py_holds_init(&h);              // once, from Models.__init__
 *     int w;  if (qa_py_hold(&h, &ms, QA_HOLD_WORKER, 1, &w) < 0) return NULL;   // waits without the GIL
 *     ... qa_engine_align(ms, w, ...) with the GIL released ...
 *     qa_py_release(&h, QA_HOLD_WORKER, w);
 *
 * QA_HOLD_WORKER: a compute call; takes a free worker (its workspace, KV cache and backend table,
 *   pipeline/models.h), so up to `workers` calls compute at once and a further one waits.
 * QA_HOLD_SHARED: reads that touch no workspace (memory_report, plan, config, tensors).
 * QA_HOLD_EXCLUSIVE: close(), __init__ on a live object, _region_take: waits until nobody is inside;
 *   new holds queue behind a waiting exclusive one, so close() cannot starve.
 */
#ifndef QA_PY_HOLDS_H
#define QA_PY_HOLDS_H

#include <pthread.h>

#include "../memory/arena.h"

struct qa_models;

enum { QA_HOLD_SHARED = 0, QA_HOLD_WORKER = 1, QA_HOLD_EXCLUSIVE = 2 };

typedef struct qa_py_holds {
    int ready;             /* mu and cv are initialised */
    /* mu is held only for a few instructions, and never by a thread that waits for the GIL, so
     * taking it with the GIL held cannot deadlock. */
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* broadcast whenever a hold ends */
    int holders;           /* shared + worker holds now */
    int exclusive;         /* an exclusive hold is in: nobody else */
    int exclusive_waiting; /* exclusive holds waiting: new shared/worker holds wait behind them */
    unsigned char busy[QA_MAX_WORKERS];
} qa_py_holds;

/* Initialise once (zeroed memory, e.g. a fresh object); 0, or -1 when pthreads refuse. */
int qa_py_holds_init(qa_py_holds *h);
void qa_py_holds_destroy(qa_py_holds *h);

/* Take a hold of `mode` on the models *msp points to (re-read under the lock: NULL = closed; a worker
 * hold on closed models returns at once with *w = -1, and the caller says "closed"). Waits without
 * the GIL (call with it); interruptible: looks for Ctrl-C every 50 ms. 0 = taken (*w = the worker for
 * QA_HOLD_WORKER, else -1), -1 = the signal handler's exception is set. */
int qa_py_hold(qa_py_holds *h, struct qa_models *const *msp, int mode, int interruptible, int *w);

/* End a hold taken with qa_py_hold (with or without the GIL). */
void qa_py_release(qa_py_holds *h, int mode, int w);

#endif
