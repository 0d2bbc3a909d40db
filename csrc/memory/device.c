/* device.c — the CPU device hooks and device-name parsing (see device.h).
 *
 * The CPU "device" is host memory: one qa_malloc_aligned block, MemAvailable from /proc/meminfo as
 * the free figure (what the kernel can hand out without swapping, proc(5)), memcpy for copies.
 * CUDA devices: qa_device_open("cuda:N") gives a memory-query-only device (backend/cuda_loader.c);
 * load_models opens the real one with qa_cuda_open, which fills the same hooks over the CUDA backend.
 */
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../backend/cuda_api.h"
#include "../core/alloc.h"

#define CPU_ALIGN 256
#define HUGE_PAGE ((size_t)2 << 20)

/* A multi-GiB arena in 4 KiB pages costs one page fault per page when the weights are first
 * written (~1M faults for the float32 aligner; on a VM each is several microseconds: most of the
 * load time). Transparent huge pages cut that 512-fold; "madvise" is the common THP default, so
 * ask for them. Failure only costs speed, so it is not an error. */
static qa_status cpu_alloc(void *ctx, size_t bytes, void **out, qa_err *e)
{
    int huge = bytes >= 16 * HUGE_PAGE;
    *out = qa_malloc_aligned(bytes, huge ? HUGE_PAGE : CPU_ALIGN, e);
    if (!*out)
        return QA_ERR_OOM;
#ifdef MADV_HUGEPAGE
    if (huge)
        (void)madvise(*out, (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
    return QA_OK;
}

static void cpu_free(void *ctx, void *p) { qa_free_aligned(p); }

/* "MemAvailable:   123456 kB" -> bytes; 0 if absent. */
static size_t meminfo_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        return 0;
    p += strlen(key);
    unsigned long long kb = strtoull(p, NULL, 10);
    return (size_t)kb * 1024u;
}

static qa_status cpu_mem_info(void *ctx, size_t *free_bytes, size_t *total_bytes, qa_err *e)
{
    char buf[8192];
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return QA_FAIL(e, QA_ERR_INTERNAL, "cannot read /proc/meminfo");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    *free_bytes = meminfo_field(buf, "MemAvailable:");
    *total_bytes = meminfo_field(buf, "MemTotal:");
    if (!*total_bytes)
        return QA_FAIL(e, QA_ERR_INTERNAL, "/proc/meminfo has no MemTotal");
    return QA_OK;
}

static qa_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes, qa_err *e)
{
    memcpy(dst, src, bytes);
    return QA_OK;
}

void qa_device_cpu(qa_device *dev)
{
    memset(dev, 0, sizeof *dev);
    snprintf(dev->name, sizeof dev->name, "cpu");
    dev->kind = QA_DEVICE_CPU;
    dev->host_accessible = 1;
    dev->alloc = cpu_alloc;
    dev->free = cpu_free;
    dev->mem_info = cpu_mem_info;
    dev->copy_h2d = cpu_copy;
    dev->copy_d2h = cpu_copy;
}

qa_status qa_device_open(const char *spec, qa_device *dev, qa_err *e)
{
    if (strcmp(spec, "cpu") == 0) {
        qa_device_cpu(dev);
        return QA_OK;
    }
    if (strncmp(spec, "cuda", 4) == 0 && (spec[4] == 0 || spec[4] == ':')) {
        /* memory queries only; load_models opens CUDA with qa_cuda_open (backend + these hooks) */
        return qa_cuda_device_info(spec, dev, e);
    }
    return QA_FAIL(e, QA_ERR_INPUT, "unknown device '%s' (expected 'auto', 'cpu', 'cuda' or 'cuda:N')", spec);
}
