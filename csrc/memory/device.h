/* device.h — the tiny hook table through which the arena reaches device memory.
 *
 * The arena logic (one block, regions, bump pointers) is the same on every backend; only how the
 * block is obtained, how much memory is free, and how host bytes reach it differ. A qa_device bundles
 * those few functions: the CPU one is filled here (qa_malloc_aligned, /proc/meminfo MemAvailable,
 * memcpy); the CUDA backend fills the same struct with cudaMalloc / cudaMemGetInfo / cudaMemcpy
 * (qa_device_open("cuda:N") is the one place to wire it).
 *
 *     qa_device dev;
 *     QA_TRY(qa_device_open("cpu", &dev, e));
 *     size_t free_b, total_b; QA_TRY(dev.mem_info(dev.ctx, &free_b, &total_b, e));
 */
#ifndef QA_DEVICE_H
#define QA_DEVICE_H

#include <stddef.h>

#include "../core/status.h"

typedef enum qa_device_kind { QA_DEVICE_CPU = 0, QA_DEVICE_CUDA = 1 } qa_device_kind;

typedef struct qa_device {
    char name[32];          /* "cpu", "cuda:0" */
    qa_device_kind kind;
    int index;              /* CUDA ordinal; 0 on the CPU */
    int host_accessible;    /* 1: the CPU may read/write arena memory directly (CPU backend) */
    void *ctx;              /* backend state, passed back to every hook */
    /* One allocation of `bytes` (256-byte aligned at least). Caller frees with free(). */
    qa_status (*alloc)(void *ctx, size_t bytes, void **out, qa_err *e);
    void (*free)(void *ctx, void *p);
    /* Free and total bytes of the device right now (CPU: MemAvailable / MemTotal). */
    qa_status (*mem_info)(void *ctx, size_t *free_bytes, size_t *total_bytes, qa_err *e);
    /* Copy host -> device memory (CPU: memcpy) and back (used by debug accessors). */
    qa_status (*copy_h2d)(void *ctx, void *dst, const void *src, size_t bytes, qa_err *e);
    qa_status (*copy_d2h)(void *ctx, void *dst, const void *src, size_t bytes, qa_err *e);
    /* Optional (NULL on the CPU, where arena memory is host memory anyway). Pinned host memory for
     * weights kept off the device (caller frees with host_free, at load only). */
    qa_status (*host_alloc)(void *ctx, size_t bytes, void **out, qa_err *e);
    void (*host_free)(void *ctx, void *p);
    /* Optional: n elements of host src in dtype st -> dst (device) in dtype dt (qa_dtype values, see
     * model/weights.h), converted on the device through `scratch` (device memory of scratch_bytes: the
     * arena workspace, idle during load). Bit-equal to weights/convert.c. NULL: convert on the host. */
    qa_status (*upload_convert)(void *ctx, void *dst, int dt, const void *src, int st, size_t n, void *scratch,
                                size_t scratch_bytes, qa_err *e);
} qa_device;

/* Fill *dev for "cpu" or "cuda" / "cuda:N". QA_ERR_INPUT saying why when the device is unusable
 * (never a silent CPU fallback). */
qa_status qa_device_open(const char *spec, qa_device *dev, qa_err *e);

/* The CPU device (always available). */
void qa_device_cpu(qa_device *dev);

#endif
