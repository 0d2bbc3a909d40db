/* arena.h — ONE device allocation, carved into named regions with bump pointers.
 *
 * Lifecycle (llm.c's malloc_and_point_parameters, ggml-alloc's reserve -> alloc):
 *     qa_region_spec specs[] = {{"weights/aligner", wa}, {"kv/asr", kv}, {"workspace", ws}};
 *     qa_arena a;
 *     QA_TRY(qa_arena_create(&a, &dev, specs, 3, e));          // the only allocation
 *     qa_region *ws = qa_arena_region(&a, "workspace");
 *     float *x = qa_arena_take(ws, n * sizeof(float), e);       // view into the arena, 256-aligned
 *     ...                                                       // NULL + QA_ERR_INTERNAL if over plan
 *     qa_region_reset(ws);                                      // per request: used = 0, peak kept
 *     qa_arena_free(&a);                                        // idempotent
 *
 * Every region size comes from plan.c; taking more than the plan is a bug of ours and fails loudly
 * (QA_ERR_INTERNAL "workspace overflow: needed X, plan has Y"). Regions are contiguous in the order
 * given. Region memory is device memory (host memory on the CPU device).
 */
#ifndef QA_ARENA_H
#define QA_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"
#include "device.h"

#define QA_ARENA_ALIGN 256
#define QA_MAX_WORKERS 16 /* CPU request workers: one workspace (+ KV cache) each (memory/plan.h) */
#define QA_MAX_REGIONS (2 + 2 * QA_MAX_WORKERS) /* two weight regions, kv + workspace per worker */
#define QA_REGION_NAME 32

static inline size_t qa_align_up(size_t n) { return (n + QA_ARENA_ALIGN - 1) & ~(size_t)(QA_ARENA_ALIGN - 1); }

typedef struct qa_region_spec {
    char name[QA_REGION_NAME];
    size_t bytes; /* rounded up to QA_ARENA_ALIGN by the arena */
} qa_region_spec;

typedef struct qa_region {
    char name[QA_REGION_NAME];
    uint8_t *base;  /* view into the arena (device pointer on CUDA) */
    size_t size;    /* bytes planned */
    size_t used;    /* bump pointer */
    size_t peak;    /* highest `used` since create */
} qa_region;

typedef struct qa_arena {
    const qa_device *dev; /* borrowed; must outlive the arena */
    void *block;          /* the single allocation (NULL when freed) */
    size_t bytes;
    qa_region regions[QA_MAX_REGIONS];
    int n_regions;
} qa_arena;

/* Allocate the sum of the specs once through dev->alloc and lay the regions out in order.
 * On failure nothing is allocated and *a is zeroed. */
qa_status qa_arena_create(qa_arena *a, const qa_device *dev, const qa_region_spec *specs, int n, qa_err *e);

/* Release the block (dev->free); zeroes *a. Safe on a zeroed or freed arena. */
void qa_arena_free(qa_arena *a);

/* Borrowed: the region named name, or NULL. */
qa_region *qa_arena_region(qa_arena *a, const char *name);

/* View of `bytes` (rounded up to 256) from r; NULL and QA_ERR_INTERNAL naming the region, the bytes
 * needed and the plan when it does not fit (an allocation outside the plan is a bug). */
void *qa_arena_take(qa_region *r, size_t bytes, qa_err *e);

/* Forget every take of r (used = 0); peak is kept for memory_report(). */
void qa_region_reset(qa_region *r);

/* Stack discipline inside a region: mark = qa_region_mark(r); ...takes...; qa_region_release(r, mark)
 * frees everything taken after the mark (buffers of layer i reused by layer i+1). */
static inline size_t qa_region_mark(const qa_region *r) { return r->used; }
void qa_region_release(qa_region *r, size_t mark);

/* Bytes used / peak over all regions. */
size_t qa_arena_used(const qa_arena *a);
size_t qa_arena_peak(const qa_arena *a);

#endif
