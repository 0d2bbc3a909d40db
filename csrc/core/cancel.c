/* cancel.c — polling the caller's cancellation hook (contract in cancel.h).
 *
 * The hook decides how often it really looks (the Python one throttles itself to a few checks per
 * second, since each look takes the GIL); this side only turns "stop" into QA_ERR_INTERRUPTED
 * with the stage's name, which csrc/py/module.c maps to KeyboardInterrupt when Python has no
 * exception of its own pending.
 */
#include "cancel.h"

qa_status qa_cancel_poll(const qa_cancel *c, const char *where, qa_err *e)
{
    if (!c || !c->check || !c->check(c->ctx))
        return QA_OK;
    return QA_FAIL(e, QA_ERR_INTERRUPTED, "interrupted at %s", where);
}
