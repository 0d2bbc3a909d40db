/* grow.h — amortised growth of the frontend's append-only arrays (ids, token pool, word bytes).
 *
 * qa_grow returns p itself when it already holds `need` elements of `elem` bytes, else a larger
 * block (capacity doubled from `first`) with the old contents, updating *cap; NULL (QA_ERR_OOM in
 * *e, p untouched and still owned by the caller) when the allocation fails.
 */
#ifndef QA_GROW_H
#define QA_GROW_H

#include "../core/alloc.h"

static inline void *qa_grow(void *p, size_t *cap, size_t need, size_t elem, size_t first, qa_err *e)
{
    if (need <= *cap && p)
        return p;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    void *q = qa_realloc_n(p, c, elem, e);
    if (q)
        *cap = c;
    return q;
}

#endif
