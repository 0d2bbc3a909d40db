/* status.h — how every fallible engine function reports failure.
 *
 * Contract: a function that can fail returns a qa_status and, on failure, fills the caller-owned
 * qa_err (code, message, file:line of the failing check). Nothing in the engine prints, exits or
 * aborts on an input-dependent path; csrc/py/module.c is the single place that turns a qa_err into
 * a Python exception (QA_ERR_INPUT -> InputError, QA_ERR_AUDIO -> AudioError, QA_ERR_MODEL ->
 * ModelLoadError, QA_ERR_OOM -> OutOfMemoryError, anything else -> Qwen3AlignError).
 * Messages follow the gguf form: who/what, expected, got ("tensor 'x' has shape [3,4], expected
 * [3,5] (file model.safetensors)").
 */
#ifndef QA_STATUS_H
#define QA_STATUS_H

#include <stddef.h>

typedef enum qa_status {
    QA_OK = 0,
    QA_ERR_INPUT,       /* bad argument or data from the caller */
    QA_ERR_AUDIO,       /* audio that cannot be decoded or is unusable */
    QA_ERR_MODEL,       /* checkpoint folder, config, tokenizer or weights are invalid */
    QA_ERR_OOM,         /* the plan does not fit, or a host allocation failed */
    QA_ERR_CUDA,        /* a CUDA / cuBLAS call failed */
    QA_ERR_INTERRUPTED, /* cancelled between stages (KeyboardInterrupt) */
    QA_ERR_INTERNAL     /* a broken invariant of ours: always a bug */
} qa_status;

typedef struct qa_err {
    qa_status code;
    char msg[1024];
    const char *file; /* __FILE__ of the check that failed (static string) */
    int line;
    size_t needed;    /* QA_ERR_OOM: bytes asked for */
    size_t available; /* QA_ERR_OOM: bytes that were free */
} qa_err;

/* Fill *e (if e is non-NULL) and return code. printf-style message. */
qa_status qa_err_set(qa_err *e, qa_status code, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Reset *e to QA_OK with an empty message. */
void qa_err_clear(qa_err *e);

/* Prefix the existing message with context ("loading aligner: " + old message); keeps code/line. */
void qa_err_prefix(qa_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

const char *qa_status_name(qa_status s);

#define QA_FAIL(e, code, ...) qa_err_set((e), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Propagate a failure: the callee already filled the qa_err. */
#define QA_TRY(expr)                        \
    do {                                    \
        qa_status qa_try_s_ = (expr);       \
        if (qa_try_s_ != QA_OK)             \
            return qa_try_s_;               \
    } while (0)

#endif
