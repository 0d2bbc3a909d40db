/* status.c — filling and decorating qa_err (see status.h for the contract). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

qa_status qa_err_set(qa_err *e, qa_status code, const char *file, int line, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    e->file = file;
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void qa_err_clear(qa_err *e)
{
    if (!e)
        return;
    memset(e, 0, sizeof *e);
}

void qa_err_prefix(qa_err *e, const char *fmt, ...)
{
    if (!e)
        return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t np = strlen(prefix), no = strlen(e->msg);
    if (np >= sizeof e->msg)
        np = sizeof e->msg - 1;
    if (np + no >= sizeof e->msg)
        no = sizeof e->msg - 1 - np;
    memmove(e->msg + np, e->msg, no);
    memcpy(e->msg, prefix, np);
    e->msg[np + no] = '\0';
}

const char *qa_status_name(qa_status s)
{
    switch (s) {
    case QA_OK: return "ok";
    case QA_ERR_INPUT: return "input error";
    case QA_ERR_AUDIO: return "audio error";
    case QA_ERR_MODEL: return "model load error";
    case QA_ERR_OOM: return "out of memory";
    case QA_ERR_CUDA: return "CUDA error";
    case QA_ERR_INTERRUPTED: return "interrupted";
    case QA_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
