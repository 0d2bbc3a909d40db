/* device.cu — opening the CUDA backend: version and device checks, the context (stream + cuBLAS),
 * the counting device-memory hooks the arena uses, and the weight upload path.
 *
 * Contract: cuda_api.h (the table) and cuda_ctx.cuh. Every cudaMalloc / cudaMallocHost the backend
 * makes goes through counted_* below, so memory_report() can show that nothing is allocated after
 * load (DESIGN.md §5). The arena's single allocation is the only dev_alloc of a normal run; the
 * pinned staging buffers exist only between the first upload and upload_finish.
 * Checks, in the order load_models needs them: a driver at all (cudaDriverGetVersion == 0 means none),
 * driver >= runtime (otherwise every call fails with cudaErrorInsufficientDriver), a visible device
 * with the asked index.
 */
#include <atomic>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "../../core/alloc.h"
#include "../cuda_api.h"
}
#include "cuda_ctx.cuh"
#include "ops.cuh"

static std::atomic<unsigned long long> n_dev_allocs{0}, n_host_allocs{0};

#define PIN_BYTES ((size_t)8 << 20) /* each of the two pinned staging buffers */

static qa_status counted_dev_malloc(void **p, size_t bytes, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaMalloc(p, bytes));
    n_dev_allocs.fetch_add(1);
    return QA_OK;
}

static qa_status counted_host_malloc(void **p, size_t bytes, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaMallocHost(p, bytes));
    n_host_allocs.fetch_add(1);
    return QA_OK;
}

static qa_status probe(int device, qa_cuda_probe *out, qa_err *e)
{
    memset(out, 0, sizeof *out);
    cudaDriverGetVersion(&out->driver_version);
    cudaRuntimeGetVersion(&out->runtime_version);
    if (out->driver_version == 0)
        return QA_FAIL(e, QA_ERR_INPUT, "no CUDA driver found (libcuda.so not loadable); use device=\"cpu\"");
    if (out->driver_version < out->runtime_version)
        return QA_FAIL(e, QA_ERR_INPUT,
                       "CUDA driver older than runtime: the driver supports CUDA %d.%d, the CUDA backend was "
                       "built with CUDA %d.%d; update the NVIDIA driver or use device=\"cpu\"",
                       out->driver_version / 1000, out->driver_version % 1000 / 10, out->runtime_version / 1000,
                       out->runtime_version % 1000 / 10);
    cudaError_t err = cudaGetDeviceCount(&out->device_count);
    if (err == cudaErrorNoDevice || (err == cudaSuccess && out->device_count == 0)) {
        cudaGetLastError();
        return QA_FAIL(e, QA_ERR_INPUT, "no CUDA device visible (CUDA_VISIBLE_DEVICES=%s); use device=\"cpu\"",
                       getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "<unset>");
    }
    QA_CUDA_CHECK(e, err);
    if (device < 0 || device >= out->device_count)
        return QA_FAIL(e, QA_ERR_INPUT, "device cuda:%d asked, but %d CUDA device%s visible", device,
                       out->device_count, out->device_count == 1 ? " is" : "s are");
    cudaDeviceProp prop;
    QA_CUDA_CHECK(e, cudaGetDeviceProperties(&prop, device));
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    out->cc_major = prop.major;
    out->cc_minor = prop.minor;
    out->total_mem = prop.totalGlobalMem;
    if (prop.major < 8)
        return QA_FAIL(e, QA_ERR_INPUT, "cuda:%d (%s) has compute capability %d.%d; the CUDA backend needs 8.0 or "
                       "newer (BF16 tensor cores)", device, prop.name, prop.major, prop.minor);
    return QA_OK;
}

static qa_status open_handles(qa_cuda_ctx *c, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    size_t fr, tot;
    QA_CUDA_CHECK(e, cudaMemGetInfo(&fr, &tot)); /* first runtime call that creates the context */
    c->free_at_open = fr;
    c->total_at_open = tot;
    QA_CUDA_CHECK(e, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    QA_CUBLAS_CHECK(e, cublasCreate(&c->blas));
    QA_CUBLAS_CHECK(e, cublasSetStream(c->blas, c->stream));
    /* TF32 stays off: COMPUTE_32F GEMMs are true FP32 (the float32 parity mode relies on it). */
    QA_CUBLAS_CHECK(e, cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    for (int i = 0; i < 2; i++)
        QA_CUDA_CHECK(e, cudaEventCreateWithFlags(&c->pin_done[i], cudaEventDisableTiming));
    QA_CUDA_CHECK(e, cudaMemGetInfo(&fr, &tot));
    c->free_after_handles = fr;
    return QA_OK;
}

static void ctx_close(qa_cuda_ctx *c)
{
    if (!c)
        return;
    cudaSetDevice(c->device);
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    for (int i = 0; i < 2; i++) {
        if (c->pin[i])
            cudaFreeHost(c->pin[i]);
        if (c->pin_done[i])
            cudaEventDestroy(c->pin_done[i]);
    }
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    qa_free(c);
}

static qa_status ctx_open(int device, qa_cuda_ctx **out, qa_err *e)
{
    *out = NULL;
    qa_cuda_probe pr;
    QA_TRY(probe(device, &pr, e));
    qa_cuda_ctx *c = (qa_cuda_ctx *)qa_calloc_n(1, sizeof *c, e);
    if (!c)
        return QA_ERR_OOM;
    c->device = device;
    snprintf(c->name, sizeof c->name, "%s", pr.name);
    c->cc_major = pr.cc_major;
    c->cc_minor = pr.cc_minor;
    c->total_mem = pr.total_mem;
    qa_status s = open_handles(c, e);
    if (s != QA_OK) {
        ctx_close(c);
        return s;
    }
    *out = c;
    return QA_OK;
}

qa_status qa_cuda_ctx_open(qa_cuda_ctx **out, int device, qa_err *e) { return ctx_open(device, out, e); }
void qa_cuda_ctx_close(qa_cuda_ctx *c) { ctx_close(c); }

qa_status qa_cuda_ctx_usable(qa_cuda_ctx *c, qa_err *e)
{
    if (!c->broken)
        return QA_OK;
    if (e) {
        *e = c->first_err;
        qa_err_prefix(e, "CUDA backend unusable after an earlier error (reload the models in a new process): ");
    }
    return QA_ERR_CUDA;
}

qa_status qa_cuda_ctx_note(qa_cuda_ctx *c, qa_status s, const qa_err *e)
{
    if (s == QA_ERR_CUDA && !c->broken) {
        c->broken = 1;
        if (e)
            c->first_err = *e;
    }
    return s;
}

qa_status qa_cuda_ctx_set_scratch(qa_cuda_ctx *c, void *blas_ws, size_t blas_ws_bytes, void *stage,
                                  size_t stage_bytes, qa_err *e)
{
    QA_TRY(qa_cuda_ctx_usable(c, e));
    if (blas_ws) {
        QA_CUBLAS_CHECK(e, cublasSetWorkspace(c->blas, blas_ws, blas_ws_bytes));
        c->blas_ws = blas_ws;
        c->blas_ws_bytes = blas_ws_bytes;
    }
    c->stage = (__nv_bfloat16 *)stage;
    c->stage_elems = stage_bytes / sizeof(__nv_bfloat16);
    return QA_OK;
}

static qa_status dev_alloc(qa_cuda_ctx *c, void **out, size_t bytes, qa_err *e)
{
    *out = NULL;
    QA_TRY(qa_cuda_ctx_usable(c, e));
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    qa_status s = counted_dev_malloc(out, bytes, e);
    if (s == QA_ERR_OOM && e) {
        e->needed = bytes;
        qa_err_prefix(e, "allocating the %zu-byte arena on cuda:%d (%s): ", bytes, c->device, c->name);
    }
    return s;
}

static void dev_free(qa_cuda_ctx *c, void *p)
{
    if (!p)
        return;
    cudaSetDevice(c->device);
    cudaStreamSynchronize(c->stream);
    cudaFree(p);
}

static qa_status mem_info(qa_cuda_ctx *c, size_t *fr, size_t *tot, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    QA_CUDA_CHECK(e, cudaMemGetInfo(fr, tot));
    return QA_OK;
}

static void mem_stats(qa_cuda_ctx *c, qa_cuda_mem_stats *out)
{
    out->device_allocs = n_dev_allocs.load();
    out->host_allocs = n_host_allocs.load();
    out->free_at_open = c ? c->free_at_open : 0;
    out->free_after_handles = c ? c->free_after_handles : 0;
    out->total = c ? c->total_at_open : 0;
}

/* ---- weight upload -------------------------------------------------------------------------- */

static qa_status upload_chunk(qa_cuda_ctx *c, void *dst, qa_dtype dt, const char *src, qa_dtype st, size_t n,
                              qa_err *e)
{
    int b = c->pin_next;
    c->pin_next ^= 1;
    QA_CUDA_CHECK(e, cudaEventSynchronize(c->pin_done[b])); /* the GPU finished reading pin[b] */
    size_t bytes = n * qa_dtype_size(st);
    memcpy(c->pin[b], src, bytes);
    void *target = dt == st ? dst : (void *)c->stage;
    QA_CUDA_CHECK(e, cudaMemcpyAsync(target, c->pin[b], bytes, cudaMemcpyHostToDevice, c->stream));
    QA_CUDA_CHECK(e, cudaEventRecord(c->pin_done[b], c->stream));
    if (dt != st) /* same stream: the next copy into the bounce buffer waits for this conversion */
        QA_TRY(qa_cu_convert(c->stream, dst, dt, c->stage, st, n, e));
    return QA_OK;
}

static qa_status upload(qa_cuda_ctx *c, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                        qa_err *e)
{
    QA_TRY(qa_cuda_ctx_usable(c, e));
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    if (!c->pin[0]) {
        for (int i = 0; i < 2; i++)
            QA_TRY(counted_host_malloc(&c->pin[i], PIN_BYTES, e));
        c->pin_bytes = PIN_BYTES;
    }
    size_t es = qa_dtype_size(st), per = c->pin_bytes / es;
    if (dt != st) {
        size_t bounce = c->stage_elems * sizeof(__nv_bfloat16) / es;
        if (bounce == 0)
            return QA_FAIL(e, QA_ERR_INTERNAL, "upload: converting weights needs set_scratch() first");
        per = per < bounce ? per : bounce;
    }
    for (size_t i = 0; i < n; i += per) {
        size_t m = n - i < per ? n - i : per;
        QA_TRY(upload_chunk(c, (char *)dst + i * qa_dtype_size(dt), dt, (const char *)src + i * es, st, m, e));
    }
    return QA_OK;
}

static qa_status upload_finish(qa_cuda_ctx *c, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaStreamSynchronize(c->stream));
    for (int i = 0; i < 2; i++) {
        if (c->pin[i])
            QA_CUDA_CHECK(e, cudaFreeHost(c->pin[i]));
        c->pin[i] = NULL;
    }
    return QA_OK;
}

static qa_status copy(qa_cuda_ctx *c, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, qa_err *e)
{
    QA_TRY(qa_cuda_ctx_usable(c, e));
    if (!bytes)
        return QA_OK;
    QA_CUDA_CHECK(e, cudaMemcpyAsync(dst, src, bytes, kind, c->stream));
    QA_CUDA_CHECK(e, cudaStreamSynchronize(c->stream));
    return QA_OK;
}

static qa_status to_device(qa_cuda_ctx *c, void *dst, const void *src, size_t bytes, qa_err *e)
{
    return qa_cuda_ctx_note(c, copy(c, dst, src, bytes, cudaMemcpyHostToDevice, e), e);
}

static qa_status to_host(qa_cuda_ctx *c, void *dst, const void *src, size_t bytes, qa_err *e)
{
    return qa_cuda_ctx_note(c, copy(c, dst, src, bytes, cudaMemcpyDeviceToHost, e), e);
}

static qa_status sync(qa_cuda_ctx *c, qa_err *e)
{
    QA_TRY(qa_cuda_ctx_usable(c, e));
    cudaError_t err = cudaStreamSynchronize(c->stream);
    if (err != cudaSuccess)
        return qa_cuda_ctx_note(c, qa_cuda_fail(e, err, "cudaStreamSynchronize(stream)", __func__, __FILE__,
                                                __LINE__), e);
    return QA_OK;
}

static qa_status set_scratch(qa_cuda_ctx *c, void *ws, size_t wsb, void *stage, size_t sb, qa_err *e)
{
    return qa_cuda_ctx_set_scratch(c, ws, wsb, stage, sb, e);
}

static qa_status upload_noted(qa_cuda_ctx *c, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                              qa_err *e)
{
    return qa_cuda_ctx_note(c, upload(c, dst, dt, src, st, n, e), e);
}

static qa_status upload_finish_noted(qa_cuda_ctx *c, qa_err *e) { return qa_cuda_ctx_note(c, upload_finish(c, e), e); }

static const qa_cuda_api api = {
    QA_CUDA_API_VERSION, probe, ctx_open, ctx_close, dev_alloc, dev_free, mem_info, mem_stats, set_scratch,
    upload_noted, upload_finish_noted, to_device, to_host, sync, QA_CUDA_BLAS_WS_BYTES,
};

extern "C" __attribute__((visibility("default"))) const qa_cuda_api *qa_cuda_api_get(void) { return &api; }
