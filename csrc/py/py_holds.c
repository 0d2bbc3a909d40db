/* py_holds.c — the worker table of a Models (see py_holds.h).
 *
 * A waiting thread does not hold the GIL and, when interruptible, looks for Ctrl-C every 50 ms (with
 * the GIL): a thread queued behind long calls stays interruptible whichever thread the signal reached
 * (CPython's lock.acquire relies on EINTR, which only the thread that took the signal sees) — the
 * try-then-wait-without-GIL pattern of CPython's ACQUIRE_LOCK in _bz2module.c, with a condition
 * variable instead of one lock because a call may take any of several workers.
 * The models pointer changes only under an exclusive hold, so reading it under mu while no
 * exclusive hold is in is race-free.
 */
#include "py.h"

#include <time.h>

#include "../pipeline/models.h"
#include "py_holds.h"

int qa_py_holds_init(qa_py_holds *h)
{
    if (h->ready)
        return 0;
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&h->cv, NULL) != 0) {
        pthread_mutex_destroy(&h->mu);
        return -1;
    }
    h->ready = 1;
    return 0;
}

void qa_py_holds_destroy(qa_py_holds *h)
{
    if (!h->ready)
        return;
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    h->ready = 0;
}

/* Under mu: take the hold if it is free now. */
static int try_hold(qa_py_holds *h, const qa_models *ms, int mode, int *w)
{
    *w = -1;
    if (h->exclusive)
        return 0;
    if (mode == QA_HOLD_EXCLUSIVE) {
        if (h->holders)
            return 0;
        h->exclusive = 1;
        return 1;
    }
    if (h->exclusive_waiting)
        return 0;
    int n = ms ? ms->n_workers : 0;
    for (int i = 0; mode == QA_HOLD_WORKER && *w < 0 && i < n; i++)
        if (!h->busy[i])
            *w = i;
    if (mode == QA_HOLD_WORKER && *w < 0 && ms)
        return 0; /* all busy (closed models: "taken" with no worker, so that the caller says so) */
    if (*w >= 0)
        h->busy[*w] = 1;
    h->holders++;
    return 1;
}

void qa_py_release(qa_py_holds *h, int mode, int w)
{
    pthread_mutex_lock(&h->mu);
    if (mode == QA_HOLD_EXCLUSIVE) {
        h->exclusive = 0;
    } else {
        if (w >= 0)
            h->busy[w] = 0;
        h->holders--;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* One wait of at most 50 ms on cv, without the GIL; mu is released before the GIL is taken back
 * (a thread holding the GIL may be blocked on mu). 1 = taken meanwhile. */
static int wait_once(qa_py_holds *h, struct qa_models *const *msp, int mode, int *w)
{
    struct timespec until;
    int taken;
    Py_BEGIN_ALLOW_THREADS
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 50 * 1000 * 1000;
    until.tv_sec += until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    pthread_cond_timedwait(&h->cv, &h->mu, &until);
    taken = try_hold(h, *msp, mode, w);
    pthread_mutex_unlock(&h->mu);
    Py_END_ALLOW_THREADS
    return taken;
}

int qa_py_hold(qa_py_holds *h, struct qa_models *const *msp, int mode, int interruptible, int *w)
{
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    h->exclusive_waiting += mode == QA_HOLD_EXCLUSIVE;
    while (!try_hold(h, *msp, mode, w)) {
        int taken = wait_once(h, msp, mode, w); /* returns with mu released */
        if (!taken && interruptible && PyErr_CheckSignals() < 0)
            rc = -1;
        pthread_mutex_lock(&h->mu);
        if (taken || rc < 0)
            break;
    }
    h->exclusive_waiting -= mode == QA_HOLD_EXCLUSIVE;
    pthread_cond_broadcast(&h->cv); /* a waiter that gave up may have held others back */
    pthread_mutex_unlock(&h->mu);
    return rc;
}
