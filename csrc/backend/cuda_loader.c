/* cuda_loader.c — find and load the CUDA backend library at run time (cuda_api.h).
 *
 * Contract: qa_cuda_load() dlopen()s libqa_cuda.so from the folder of the extension module that
 * contains this code (dladdr on one of our own functions), once per process, and returns its table
 * after checking QA_CUDA_API_VERSION. Failures are QA_ERR_INPUT with a message that says what to do:
 * "CUDA backend not built" (the library is absent: nvcc was not found when building), "cannot be
 * loaded" (with dlerror(): typically libcudart/libcublas missing), or a version mismatch (a stale
 * build). The handle is never dlclose()d: unloading the CUDA runtime under live contexts is unsafe.
 * Thread safety: pthread_once.
 */
#include "cuda_api.h"

#include <stdint.h>
#include <stdlib.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const qa_cuda_api *loaded;
static qa_err load_err;

/* <folder of the extension module>/libqa_cuda.so into buf. */
static qa_status library_path(char *buf, size_t n, qa_err *e)
{
    Dl_info info;
    if (!dladdr((void *)&library_path, &info) || !info.dli_fname)
        return QA_FAIL(e, QA_ERR_INTERNAL, "CUDA backend: cannot find the extension module's own path (dladdr)");
    const char *slash = strrchr(info.dli_fname, '/');
    size_t dir = slash ? (size_t)(slash - info.dli_fname) : 1;
    const char *base = slash ? info.dli_fname : ".";
    if (dir + 1 + strlen(QA_CUDA_LIBRARY) + 1 > n)
        return QA_FAIL(e, QA_ERR_INTERNAL, "CUDA backend: extension path too long (%zu bytes)", dir);
    snprintf(buf, n, "%.*s/%s", (int)dir, base, QA_CUDA_LIBRARY);
    return QA_OK;
}

static void load_once(void)
{
    qa_err *e = &load_err;
    char path[PATH_MAX];
    if (library_path(path, sizeof path, e) != QA_OK)
        return;
    struct stat st;
    if (stat(path, &st) != 0) {
        QA_FAIL(e, QA_ERR_INPUT,
                "CUDA backend not built: %s does not exist (nvcc was not found, or QA_NO_CUDA was set, when "
                "qwen3align was built); rebuild with nvcc on PATH or use device=\"cpu\"", path);
        return;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        QA_FAIL(e, QA_ERR_INPUT, "CUDA backend cannot be loaded from %s: %s (are the CUDA runtime and cuBLAS "
                "libraries installed?); use device=\"cpu\"", path, why ? why : "unknown dlopen error");
        return;
    }
    qa_cuda_api_get_fn get;
    *(void **)&get = dlsym(h, QA_CUDA_ENTRY);
    if (!get) {
        QA_FAIL(e, QA_ERR_INPUT, "CUDA backend %s does not export %s (a stale or foreign library); rebuild",
                path, QA_CUDA_ENTRY);
        return;
    }
    const qa_cuda_api *api = get();
    if (!api || api->version != QA_CUDA_API_VERSION) {
        QA_FAIL(e, QA_ERR_INPUT, "CUDA backend %s has table version %d, this extension expects %d; rebuild both",
                path, api ? api->version : -1, QA_CUDA_API_VERSION);
        return;
    }
    loaded = api;
}

qa_status qa_cuda_load(const qa_cuda_api **out, qa_err *e)
{
    pthread_once(&once, load_once);
    *out = loaded;
    if (loaded)
        return QA_OK;
    if (e)
        *e = load_err;
    return load_err.code != QA_OK ? load_err.code : QA_ERR_INTERNAL;
}

qa_status qa_backend_cuda_open(qa_backend *be, int device, qa_err *e)
{
    const qa_cuda_api *api;
    QA_TRY(qa_cuda_load(&api, e));
    qa_cuda_probe pr;
    QA_TRY(api->probe(device, &pr, e)); /* the QA_ERR_INPUT reasons before any context exists */
    return api->init(be, device, e);
}

/* ---- the arena's device hooks (memory/device.h) over an open CUDA backend --------------------- */

static qa_status dev_alloc(void *ctx, size_t bytes, void **out, qa_err *e)
{
    qa_backend *be = ctx;
    return be->mem_alloc(be, out, bytes, e);
}

static void dev_free(void *ctx, void *p)
{
    qa_backend *be = ctx;
    be->mem_free(be, p);
}

static qa_status dev_mem_info(void *ctx, size_t *free_bytes, size_t *total_bytes, qa_err *e)
{
    qa_backend *be = ctx;
    return be->mem_info(be, free_bytes, total_bytes, e);
}

static qa_status dev_h2d(void *ctx, void *dst, const void *src, size_t bytes, qa_err *e)
{
    return loaded->upload((qa_backend *)ctx, dst, src, bytes, e); /* pinned double buffer, async */
}

static qa_status dev_d2h(void *ctx, void *dst, const void *src, size_t bytes, qa_err *e)
{
    qa_backend *be = ctx;
    return be->copy(be, dst, src, bytes, QA_COPY_D2H, e);
}

static qa_status dev_host_alloc(void *ctx, size_t bytes, void **out, qa_err *e)
{
    return loaded->host_alloc((qa_backend *)ctx, out, bytes, e);
}

static void dev_host_free(void *ctx, void *p) { loaded->host_free((qa_backend *)ctx, p); }

static qa_status dev_upload_convert(void *ctx, void *dst, int dt, const void *src, int st, size_t n, void *scratch,
                                    size_t scratch_bytes, qa_err *e)
{
    return loaded->upload_convert((qa_backend *)ctx, dst, dt, src, st, n, scratch, scratch_bytes, e);
}

/* QA_CUDA_CONVERT=host: convert F32/F16 weights on the host as before the on-device conversion existed
 * (the reference path of the GPU tests, and a way out should a driver misbehave). */
static int convert_on_host(void)
{
    const char *v = getenv("QA_CUDA_CONVERT");
    return v && strcmp(v, "host") == 0;
}

/* "cuda" -> 0, "cuda:N" -> N; -1 if malformed. */
static int cuda_index(const char *spec)
{
    if (strcmp(spec, "cuda") == 0)
        return 0;
    if (strncmp(spec, "cuda:", 5) != 0 || !spec[5])
        return -1;
    char *end;
    long v = strtol(spec + 5, &end, 10);
    return (*end || v < 0 || v > 1024) ? -1 : (int)v;
}

static qa_status info_mem(void *ctx, size_t *free_bytes, size_t *total_bytes, qa_err *e)
{
    return loaded->mem_query((int)(intptr_t)ctx, free_bytes, total_bytes, e);
}

static qa_status info_alloc(void *ctx, size_t bytes, void **out, qa_err *e)
{
    *out = NULL;
    return QA_FAIL(e, QA_ERR_INTERNAL, "a device from qa_cuda_device_info cannot allocate; use qa_cuda_open");
}

static void info_free(void *ctx, void *p) {}

static qa_status info_copy(void *ctx, void *dst, const void *src, size_t bytes, qa_err *e)
{
    return QA_FAIL(e, QA_ERR_INTERNAL, "a device from qa_cuda_device_info cannot copy; use qa_cuda_open");
}

qa_status qa_cuda_device_info(const char *spec, qa_device *dev, qa_err *e)
{
    int index = cuda_index(spec);
    if (index < 0)
        return QA_FAIL(e, QA_ERR_INPUT, "device '%s' is not 'cuda' or 'cuda:N'", spec);
    const qa_cuda_api *api;
    QA_TRY(qa_cuda_load(&api, e));
    qa_cuda_probe pr;
    QA_TRY(api->probe(index, &pr, e));
    memset(dev, 0, sizeof *dev);
    snprintf(dev->name, sizeof dev->name, "cuda:%d", index);
    dev->kind = QA_DEVICE_CUDA;
    dev->index = index;
    dev->ctx = (void *)(intptr_t)index;
    dev->alloc = info_alloc;
    dev->free = info_free;
    dev->mem_info = info_mem;
    dev->copy_h2d = info_copy;
    dev->copy_d2h = info_copy;
    return QA_OK;
}

qa_status qa_cuda_open(const char *spec, qa_backend *be, qa_device *dev, qa_err *e)
{
    int index = cuda_index(spec);
    if (index < 0)
        return QA_FAIL(e, QA_ERR_INPUT, "device '%s' is not 'cuda' or 'cuda:N'", spec);
    QA_TRY(qa_backend_cuda_open(be, index, e));
    memset(dev, 0, sizeof *dev);
    snprintf(dev->name, sizeof dev->name, "cuda:%d", index);
    dev->kind = QA_DEVICE_CUDA;
    dev->index = index;
    dev->host_accessible = 0;
    dev->ctx = be;
    dev->alloc = dev_alloc;
    dev->free = dev_free;
    dev->mem_info = dev_mem_info;
    dev->copy_h2d = dev_h2d;
    dev->copy_d2h = dev_d2h;
    dev->host_alloc = dev_host_alloc;
    dev->host_free = dev_host_free;
    dev->upload_convert = convert_on_host() ? NULL : dev_upload_convert;
    return QA_OK;
}

qa_status qa_cuda_stats(const qa_backend *be, qa_cuda_mem_stats *out, qa_err *e)
{
    const qa_cuda_api *api;
    QA_TRY(qa_cuda_load(&api, e));
    api->mem_stats(be, out);
    return QA_OK;
}

qa_status qa_cuda_embed_rows(qa_backend *be, float *dst, const qa_tensor *table, const int32_t *ids, int64_t T,
                             qa_err *e)
{
    const qa_cuda_api *api;
    QA_TRY(qa_cuda_load(&api, e));
    if (!table || !table->data || table->ndim != 2)
        return QA_FAIL(e, QA_ERR_INTERNAL, "upload_rows: the host table must be a 2-D tensor");
    return api->upload_rows(be, dst, table->data, (int)table->dtype, table->shape[0], table->shape[1], ids, T, e);
}
