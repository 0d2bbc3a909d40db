/* alloc.c — counting host allocator with try-semantics and overflow checks (see alloc.h). */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t alloc_count;
static _Atomic uint64_t scoped_count;
static _Thread_local int scope_depth;

static void *counted(void *p, size_t size, qa_err *e)
{
    if (!p) {
        QA_FAIL(e, QA_ERR_OOM, "host allocation of %zu bytes failed", size);
        if (e) {
            e->needed = size;
            e->available = 0;
        }
        return NULL;
    }
    atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    if (scope_depth > 0)
        atomic_fetch_add_explicit(&scoped_count, 1, memory_order_relaxed);
    return p;
}

static int mul_overflows(size_t num, size_t size, size_t *out)
{
    if (size && num > SIZE_MAX / size)
        return 1;
    *out = num * size;
    return 0;
}

void *qa_malloc(size_t size, qa_err *e)
{
    return counted(malloc(size ? size : 1), size, e);
}

void *qa_malloc_n(size_t num, size_t size, qa_err *e)
{
    size_t total;
    if (mul_overflows(num, size, &total)) {
        QA_FAIL(e, QA_ERR_OOM, "allocation of %zu x %zu bytes overflows", num, size);
        return NULL;
    }
    return qa_malloc(total, e);
}

void *qa_calloc_n(size_t num, size_t size, qa_err *e)
{
    size_t total;
    if (mul_overflows(num, size, &total)) {
        QA_FAIL(e, QA_ERR_OOM, "allocation of %zu x %zu bytes overflows", num, size);
        return NULL;
    }
    return counted(calloc(total ? num : 1, total ? size : 1), total, e);
}

void *qa_realloc_n(void *p, size_t num, size_t size, qa_err *e)
{
    size_t total;
    if (mul_overflows(num, size, &total)) {
        QA_FAIL(e, QA_ERR_OOM, "allocation of %zu x %zu bytes overflows", num, size);
        return NULL;
    }
    return counted(realloc(p, total ? total : 1), total, e);
}

char *qa_strdup(const char *s, qa_err *e)
{
    size_t n = strlen(s) + 1;
    char *d = qa_malloc(n, e);
    if (d)
        memcpy(d, s, n);
    return d;
}

void qa_free(void *p)
{
    free(p);
}

void *qa_malloc_aligned(size_t size, size_t alignment, qa_err *e)
{
    void *p = NULL;
    if (posix_memalign(&p, alignment, size ? size : alignment) != 0)
        p = NULL;
    return counted(p, size, e);
}

void qa_free_aligned(void *p)
{
    free(p);
}

uint64_t qa_alloc_count(void)
{
    return atomic_load_explicit(&alloc_count, memory_order_relaxed);
}

void qa_alloc_scope_enter(void)
{
    scope_depth++;
}

void qa_alloc_scope_leave(void)
{
    if (scope_depth > 0)
        scope_depth--;
}

uint64_t qa_alloc_scoped_count(void)
{
    return atomic_load_explicit(&scoped_count, memory_order_relaxed);
}
