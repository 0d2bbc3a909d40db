/* alloc.h — the counting host allocator every engine file uses (never plain malloc).
 *
 * Try-semantics (zmalloc's ztrymalloc): on failure it returns NULL and fills the qa_err with
 * QA_ERR_OOM and the byte count; qa_calloc_n / qa_malloc_n check num*size for overflow before
 * multiplying. Every successful allocation bumps a process-wide counter, which is how tests prove
 * that a request after load_models() allocates nothing of size (allocations_after_load).
 * The counter is the only process-wide mutable state of the engine; it is atomic.
 * Ownership: the caller frees with qa_free (NULL is fine).
 */
#ifndef QA_ALLOC_H
#define QA_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

void *qa_malloc(size_t size, qa_err *e);
void *qa_malloc_n(size_t num, size_t size, qa_err *e);
void *qa_calloc_n(size_t num, size_t size, qa_err *e);
void *qa_realloc_n(void *p, size_t num, size_t size, qa_err *e);
char *qa_strdup(const char *s, qa_err *e);
void qa_free(void *p);

/* Aligned allocation (alignment a power of two >= sizeof(void*)); free with qa_free_aligned. */
void *qa_malloc_aligned(size_t size, size_t alignment, qa_err *e);
void qa_free_aligned(void *p);

/* Number of successful allocations since the process started (monotonic). */
uint64_t qa_alloc_count(void);

#endif
