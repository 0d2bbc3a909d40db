/* device.c — the CPU device hooks and device-name parsing (see device.h).
 *
 * The CPU "device" is host memory: one qa_malloc_aligned block, MemAvailable from /proc/meminfo as
 * the free figure (what the kernel can hand out without swapping, proc(5)), memcpy for copies.
 * CUDA devices are not wired in this file yet: the CUDA backend (libqa_cuda.so) fills a qa_device
 * with its own hooks; until then asking for one is an InputError that says why.
 */
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"

#define CPU_ALIGN 256

static qa_status cpu_alloc(void *ctx, size_t bytes, void **out, qa_err *e)
{
    *out = qa_malloc_aligned(bytes, CPU_ALIGN, e);
    return *out ? QA_OK : QA_ERR_OOM;
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
        /* CUDA hook point: the CUDA backend fills *dev here (cudaMalloc, cudaMemGetInfo, cudaMemcpy). */
        return QA_FAIL(e, QA_ERR_INPUT,
                       "device '%s' requested but this build has no CUDA backend (qwen3align/libqa_cuda.so "
                       "not built); use device='cpu'", spec);
    }
    return QA_FAIL(e, QA_ERR_INPUT, "unknown device '%s' (expected 'auto', 'cpu', 'cuda' or 'cuda:N')", spec);
}
