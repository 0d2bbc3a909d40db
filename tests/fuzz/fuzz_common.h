/* fuzz_common.h — invariants every fuzz target checks, shared by tests/fuzz/fuzz_*.c.
 *
 * A parser may reject any input, but a rejection must carry a status and a message, and a success
 * must hand back something consistent. A broken invariant calls __builtin_trap(), which libFuzzer
 * and the replay main both report as a crash with the input that caused it.
 */
#ifndef QA_FUZZ_COMMON_H
#define QA_FUZZ_COMMON_H

#include <stdio.h>
#include <string.h>

#include "core/status.h"

#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            __builtin_trap();                                                         \
        }                                                                             \
    } while (0)

/* A failed call must say why: a known non-OK code equal to the returned one, and a message. */
static inline void fuzz_check_error(qa_status s, const qa_err *e)
{
    FUZZ_CHECK(s != QA_OK);
    FUZZ_CHECK(e->code == s);
    FUZZ_CHECK(e->msg[0] != '\0');
    FUZZ_CHECK(memchr(e->msg, '\0', sizeof e->msg) != NULL);
}

#endif
