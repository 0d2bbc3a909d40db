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

/* The engine's compute of a request runs between qa_alloc_scope_enter/leave on its thread (nesting
 * allowed). Allocations made inside such a scope, on any thread, are also counted by
 * qa_alloc_scoped_count(): it must not move after load (memory_report's allocations_after_load).
 * The frontend's per-request host buffers (decoded audio, token lists) are made outside the scope. */
void qa_alloc_scope_enter(void);
void qa_alloc_scope_leave(void);
uint64_t qa_alloc_scoped_count(void);

#endif
