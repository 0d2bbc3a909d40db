/* arena.c — one block from the device, named regions, bump pointers (see arena.h).
 *
 * Contract: qa_arena_create() is the only place the engine allocates device memory (through the
 * qa_device hook: qa_malloc_aligned on the CPU, cudaMalloc on CUDA), once, for the total of the plan;
 * every tensor and buffer afterwards is a view handed out by qa_arena_take(). Nothing grows at run
 * time (unlike qwen-asr's kv_cache_grow): a take beyond the planned region is QA_ERR_INTERNAL with
 * the numbers, because it means plan.c and the engine disagree. Alignment is 256 bytes (cuBLAS and
 * AVX-512 friendly, the CUDA allocator's own granularity).
 */
#include "arena.h"

#include <string.h>

qa_status qa_arena_create(qa_arena *a, const qa_device *dev, const qa_region_spec *specs, int n, qa_err *e)
{
    memset(a, 0, sizeof *a);
    if (n < 0 || n > QA_MAX_REGIONS)
        return QA_FAIL(e, QA_ERR_INTERNAL, "arena: %d regions (at most %d)", n, QA_MAX_REGIONS);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t sz = qa_align_up(specs[i].bytes);
        if (sz < specs[i].bytes || total + sz < total)
            return QA_FAIL(e, QA_ERR_OOM, "arena: region sizes overflow");
        a->regions[i].size = sz;
        a->regions[i].base = (uint8_t *)(uintptr_t)total; /* offset until the block exists */
        memcpy(a->regions[i].name, specs[i].name, QA_REGION_NAME);
        a->regions[i].name[QA_REGION_NAME - 1] = 0;
        total += sz;
    }
    void *block = NULL;
    if (total) {
        qa_status s = dev->alloc(dev->ctx, total, &block, e);
        if (s != QA_OK) {
            if (e && s == QA_ERR_OOM) {
                e->needed = total;
                qa_err_prefix(e, "arena of %zu bytes on %s: ", total, dev->name);
            }
            memset(a, 0, sizeof *a);
            return s;
        }
    }
    for (int i = 0; i < n; i++)
        a->regions[i].base = (uint8_t *)block + (uintptr_t)a->regions[i].base;
    a->dev = dev;
    a->block = block;
    a->bytes = total;
    a->n_regions = n;
    return QA_OK;
}

void qa_arena_free(qa_arena *a)
{
    if (a->block && a->dev)
        a->dev->free(a->dev->ctx, a->block);
    memset(a, 0, sizeof *a);
}

qa_region *qa_arena_region(qa_arena *a, const char *name)
{
    for (int i = 0; i < a->n_regions; i++)
        if (strcmp(a->regions[i].name, name) == 0)
            return &a->regions[i];
    return NULL;
}

void *qa_arena_take(qa_region *r, size_t bytes, qa_err *e)
{
    size_t need = qa_align_up(bytes);
    if (!r) {
        QA_FAIL(e, QA_ERR_INTERNAL, "arena: take of %zu bytes from a region that is not in the plan", bytes);
        return NULL;
    }
    if (need < bytes || need > r->size - r->used) {
        QA_FAIL(e, QA_ERR_INTERNAL, "%s overflow: needed %zu more bytes with %zu in use, plan has %zu", r->name,
                need, r->used, r->size);
        return NULL;
    }
    void *p = r->base + r->used;
    r->used += need;
    if (r->used > r->peak)
        r->peak = r->used;
    return p;
}

void qa_region_reset(qa_region *r) { r->used = 0; }

void qa_region_release(qa_region *r, size_t mark)
{
    if (mark <= r->used)
        r->used = mark;
}

size_t qa_arena_used(const qa_arena *a)
{
    size_t s = 0;
    for (int i = 0; i < a->n_regions; i++)
        s += a->regions[i].used;
    return s;
}

size_t qa_arena_peak(const qa_arena *a)
{
    size_t s = 0;
    for (int i = 0; i < a->n_regions; i++)
        s += a->regions[i].peak;
    return s;
}
