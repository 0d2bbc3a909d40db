/* device.cu — opening the CUDA backend: version and device checks, the context (stream + cuBLASLt),
 * the counting device-memory wrapper the arena's block goes through, scratch partitioning, and the
 * pinned-staging weight upload.
 *
 * Contract: cuda_ctx.cuh and cuda_api.h. Every cudaMalloc / cudaMallocHost the backend makes goes
 * through counted_* below, so memory_report() can show that nothing is allocated after load
 * (DESIGN.md §5). The arena's single block is the only device allocation of a normal run; the two
 * 8 MiB pinned staging buffers are allocated at the first upload and kept until close (so a later
 * request never allocates), and the aligner's embedding table, kept in pinned host memory because a
 * request only gathers a few thousand of its rows (upload_rows), is allocated at load and freed at close.
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

#define PIN_BYTES QA_CUDA_LOAD_CHUNK_BYTES /* each of the two pinned staging buffers (cuda_scratch.h) */

/* Counted per context (what one Models made: its after-load count must stay 0 even while other
 * Models load in the same process) and per process (the report's totals). */
static qa_status counted_dev_malloc(qa_cuda_ctx *c, void **p, size_t bytes, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaMalloc(p, bytes));
    n_dev_allocs.fetch_add(1);
    c->n_dev_allocs++;
    return QA_OK;
}

static qa_status counted_host_malloc(qa_cuda_ctx *c, void **p, size_t bytes, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaMallocHost(p, bytes));
    n_host_allocs.fetch_add(1);
    c->n_host_allocs++;
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

/* The driver reserves cudaLimitStackSize bytes of local memory for every thread the device can hold
 * (H200: 132 SMs x 2048 threads): the default 1 KiB/thread is 264 MiB of the context's ~520 MiB. Our
 * kernels need at most QA_CUDA_STACK_BYTES (tests/test_cuda_build.py reads ptxas' frame sizes); a
 * kernel of another library that needs more still runs — the driver grows the reservation at its
 * launch (which memory_report / QA_CUDA_MEMWATCH would show). Only ever lowered, never raised. */
static qa_status lower_stack_limit(qa_err *e)
{
    size_t now = 0;
    QA_CUDA_CHECK(e, cudaDeviceGetLimit(&now, cudaLimitStackSize));
    if (now > QA_CUDA_STACK_BYTES)
        QA_CUDA_CHECK(e, cudaDeviceSetLimit(cudaLimitStackSize, QA_CUDA_STACK_BYTES));
    return QA_OK;
}

static qa_status open_handles(qa_cuda_ctx *c, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    QA_TRY(lower_stack_limit(e)); /* creates the context; measured below with its lowered reservation */
    size_t fr, tot;
    QA_CUDA_CHECK(e, cudaMemGetInfo(&fr, &tot));
    c->free_at_open = fr;
    c->total_at_open = tot;
    QA_CUDA_CHECK(e, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    QA_CUBLAS_CHECK(e, cublasLtCreate(&c->lt));
    if (!(c->mm_plans = (qa_mm_plan *)qa_calloc_n(1, qa_cuda_mm_plans_bytes(), e)))
        return QA_ERR_OOM;
    for (int i = 0; i < 2; i++)
        QA_CUDA_CHECK(e, cudaEventCreateWithFlags(&c->pin_done[i], cudaEventDisableTiming));
    QA_CUDA_CHECK(e, cudaMemGetInfo(&fr, &tot));
    c->free_after_handles = fr;
    return QA_OK;
}

/* QA_CUDA_ATTN: "fp32" falls back to the FP32 attention kernel; "wmma" keeps BF16 tensor cores but on the
 * first WMMA kernel (attention_tc.cu); "mma64" / "mma128" force attention_mma.cu's 64- or 128-row blocks
 * (and keep the causal BF16 K / V head dim 128 calls off attention_wgmma.cu, which the default gives them on
 * Hopper: its warp-specialized ping-pong kernel, also "wgmma"); "wgmma1" its first (lock-step) kernel — all to
 * compare on the GPU. QA_CUDA_ATTN_SPLIT=0 / 1: never / always attention_wgmma.cu's split kernel where the
 * warp-specialized one runs (unset: by default where its 64-row grid fits one wave; "wgmma" never), to
 * compare. The kernels' shared-memory limits are raised here, once per context.
 * QA_CUDA_ENC_ATTN=old: the encoder's windowed calls take that general path again (attention_mma.cu) instead of
 * attention_enc.cu, to compare; a forced QA_CUDA_ATTN kernel keeps them on the general path too. */
static qa_status attention_setup(qa_cuda_ctx *c, qa_err *e)
{
    const char *attn = getenv("QA_CUDA_ATTN");
    int kernel = QA_CU_TC_AUTO;
    if (attn && strcmp(attn, "wmma") == 0)
        kernel = QA_CU_TC_WMMA;
    else if (attn && strcmp(attn, "mma64") == 0)
        kernel = QA_CU_TC_MMA64;
    else if (attn && strcmp(attn, "mma128") == 0)
        kernel = QA_CU_TC_MMA128;
    else if (attn && strcmp(attn, "wgmma") == 0)
        kernel = QA_CU_TC_WGMMA;
    else if (attn && strcmp(attn, "wgmma1") == 0)
        kernel = QA_CU_TC_WGMMA1;
    c->attn_fp32 = attn && strcmp(attn, "fp32") == 0;
    const char *enc = getenv("QA_CUDA_ENC_ATTN");
    c->attn_enc = kernel == QA_CU_TC_AUTO && !c->attn_fp32 && !(enc && strcmp(enc, "old") == 0);
    const char *sp = getenv("QA_CUDA_ATTN_SPLIT");
    const int split = sp && strcmp(sp, "0") == 0 ? 0 : sp && strcmp(sp, "1") == 0 ? 1 : -1;
    return qa_cu_attention_tc_setup(&c->attn_tc, kernel, split, e);
}

static void ctx_close(qa_cuda_ctx *c)
{
    if (!c)
        return;
    cudaSetDevice(c->device);
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    qa_cuda_prof_close(c->prof);
    qa_cuda_graphs_free(c);
    for (int i = 0; i < 2; i++) {
        if (c->pin[i])
            cudaFreeHost(c->pin[i]);
        if (c->pin_done[i])
            cudaEventDestroy(c->pin_done[i]);
    }
    if (c->lt)
        cublasLtDestroy(c->lt);
    qa_free(c->mm_plans);
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
    /* QA_CUDA_CONV=old: conv2d_pair as its two conv2d and the im2col's 2-byte stores (conv.cu's fused conv1 +
     * im2col and 16-byte-store kernels off), to compare on the GPU */
    c->conv_old = getenv("QA_CUDA_CONV") && strcmp(getenv("QA_CUDA_CONV"), "old") == 0;
    qa_status s = open_handles(c, e);
    if (s == QA_OK)
        s = attention_setup(c, e);
    if (s == QA_OK) {
        /* QA_CUDA_BF16_HANDOFF=0: producers write FP32 and gemm.cu stages it, as before API 8 (the same bits;
         * kept to measure the hand-offs, backend.h gemm_in_dtype / ln_mlp) */
        const char *h = getenv("QA_CUDA_BF16_HANDOFF");
        c->bf16_handoff = !(h && strcmp(h, "0") == 0);
        c->prof = qa_cuda_prof_open();
        qa_cuda_memwatch_open(c);
        /* QA_CUDA_FUSED_GEMM=0: one GEMM per weight of q/k/v and gate/up again (norm_gemm.cu), to compare */
        const char *fused = getenv("QA_CUDA_FUSED_GEMM");
        c->fused_gemm = !(fused && strcmp(fused, "0") == 0);
        /* QA_CUDA_GU_BF16=0: norm_mlp's gate | up output FP32 again (norm_gemm.cu), to compare */
        const char *gu = getenv("QA_CUDA_GU_BF16");
        c->gu_bf16 = !(gu && strcmp(gu, "0") == 0);
        /* QA_CUDA_DEC_MERGE=two: the split decode attention merges its partials in a second kernel again
         * (attention_decode.cu), to compare; the default merges in the split kernel's last block */
        const char *merge = getenv("QA_CUDA_DEC_MERGE");
        c->dec_merge = !(merge && strcmp(merge, "two") == 0);
        /* QA_CUDA_MM_BUCKETS=old: matmul.cu's five size buckets of before issue 6 (cuda_mm_buckets.h), to compare */
        c->mm_buckets = qa_mm_buckets_of(qa_mm_buckets_old_env());
    }
    if (s != QA_OK) {
        ctx_close(c);
        return s;
    }
    *out = c;
    return QA_OK;
}

qa_status qa_cuda_ctx_open(qa_cuda_ctx **out, int device, qa_err *e) { return ctx_open(device, out, e); }
void qa_cuda_ctx_close(qa_cuda_ctx *c) { ctx_close(c); }

static qa_status set_device(qa_cuda_ctx *c, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    return QA_OK;
}

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

qa_status qa_cuda_ctx_enter(qa_cuda_ctx *c, qa_err *e)
{
    QA_TRY(qa_cuda_ctx_usable(c, e));
    /* the current device is per host thread: a Streamlit worker thread may call us first */
    return qa_cuda_ctx_note(c, set_device(c, e), e);
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

qa_status qa_cuda_bind_scratch(qa_cuda_ctx *c, void *scratch, size_t bytes, qa_err *e)
{
    if (scratch == c->scratch && bytes == c->scratch_bytes && scratch)
        return QA_OK;
    if (!scratch || bytes < QA_CUDA_BLAS_WS_BYTES + 256 + QA_CUDA_SYNC_BYTES)
        return QA_FAIL(e, QA_ERR_INTERNAL,
                       "CUDA backend: scratch of %zu bytes at %p is missing or smaller than the cuBLAS workspace "
                       "and the counters (%zu bytes); set be->scratch to scratch_need() bytes of the arena workspace",
                       bytes, scratch, QA_CUDA_BLAS_WS_BYTES + 256 + QA_CUDA_SYNC_BYTES);
    /* the counters at the end, 256-byte aligned like the rest: a scratch larger than scratch_need grows the work
     * area; zeroed once here, in stream order before any kernel of this scratch counts (cuda_scratch.h) */
    size_t sync_at = (bytes - QA_CUDA_SYNC_BYTES) & ~(size_t)255;
    QA_CUDA_CHECK(e, cudaMemsetAsync((char *)scratch + sync_at, 0, QA_CUDA_SYNC_BYTES, c->stream));
    c->scratch = scratch;
    c->scratch_bytes = bytes;
    c->work = (char *)scratch + QA_CUDA_BLAS_WS_BYTES;
    c->work_bytes = sync_at - QA_CUDA_BLAS_WS_BYTES;
    c->sync = (unsigned *)((char *)scratch + sync_at);
    return QA_OK;
}

qa_status qa_cuda_dev_alloc(qa_cuda_ctx *c, void **out, size_t bytes, qa_err *e)
{
    *out = NULL;
    QA_TRY(qa_cuda_ctx_usable(c, e));
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    qa_status s = counted_dev_malloc(c, out, bytes, e);
    if (s == QA_ERR_OOM && e) {
        e->needed = bytes;
        qa_err_prefix(e, "allocating the %zu-byte arena on cuda:%d (%s): ", bytes, c->device, c->name);
    }
    return s;
}

/* ---- weight upload: two pinned buffers, the CPU fills one while the DMA drains the other ------- */

/* The staging buffers exist from the first upload (load) on; a request finds them (no allocation). */
static qa_status ensure_pins(qa_cuda_ctx *c, qa_err *e)
{
    QA_TRY(qa_cuda_ctx_usable(c, e));
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    if (c->pin[0])
        return QA_OK;
    for (int i = 0; i < 2; i++)
        QA_TRY(counted_host_malloc(c, &c->pin[i], PIN_BYTES, e));
    c->pin_bytes = PIN_BYTES;
    return QA_OK;
}

/* Next staging buffer, once the DMA out of it has finished: the caller may fill it. */
static qa_status stage_begin(qa_cuda_ctx *c, int *b, qa_err *e)
{
    *b = c->pin_next;
    c->pin_next ^= 1;
    QA_CUDA_CHECK(e, cudaEventSynchronize(c->pin_done[*b]));
    return QA_OK;
}

/* Enqueue the copy of `bytes` of pin[b] to dst and mark the buffer busy until it has run. */
static qa_status stage_end(qa_cuda_ctx *c, int b, void *dst, size_t bytes, qa_err *e)
{
    QA_CUDA_CHECK(e, cudaMemcpyAsync(dst, c->pin[b], bytes, cudaMemcpyHostToDevice, c->stream));
    QA_CUDA_CHECK(e, cudaEventRecord(c->pin_done[b], c->stream));
    return QA_OK;
}

qa_status qa_cuda_upload(qa_cuda_ctx *c, void *dst, const void *src, size_t bytes, qa_err *e)
{
    QA_TRY(ensure_pins(c, e));
    for (size_t off = 0; off < bytes; off += c->pin_bytes) {
        size_t n = bytes - off < c->pin_bytes ? bytes - off : c->pin_bytes;
        int b;
        QA_TRY(stage_begin(c, &b, e));
        memcpy(c->pin[b], (const char *)src + off, n);
        QA_TRY(stage_end(c, b, (char *)dst + off, n, e));
    }
    return QA_OK;
}

/* Rows ids[0..n) of a host table (R, D) as float32 into out (BF16 -> F32 is exact: bits << 16). */
static void gather_rows(float *out, const void *table, qa_dtype dt, int64_t D, const int32_t *ids, int64_t n)
{
    for (int64_t t = 0; t < n; t++) {
        float *o = out + t * D;
        if (dt == QA_F32) {
            memcpy(o, (const float *)table + (size_t)ids[t] * (size_t)D, (size_t)D * sizeof(float));
            continue;
        }
        const uint16_t *row = (const uint16_t *)table + (size_t)ids[t] * (size_t)D;
        for (int64_t j = 0; j < D; j++) {
            uint32_t u = (uint32_t)row[j] << 16;
            memcpy(o + j, &u, 4);
        }
    }
}

qa_status qa_cuda_upload_rows(qa_cuda_ctx *c, float *dst, const void *table, qa_dtype dt, int64_t R, int64_t D,
                              const int32_t *ids, int64_t T, qa_err *e)
{
    if ((dt != QA_F32 && dt != QA_BF16) || D <= 0 || T < 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "upload_rows: table dtype %d, D %lld, T %lld", (int)dt, (long long)D,
                       (long long)T);
    for (int64_t t = 0; t < T; t++) /* the engine validated them; a bad id here would read outside the table */
        if (ids[t] < 0 || ids[t] >= R)
            return QA_FAIL(e, QA_ERR_INTERNAL, "upload_rows: id %d at %lld outside [0, %lld)", (int)ids[t],
                           (long long)t, (long long)R);
    QA_TRY(ensure_pins(c, e));
    int64_t per = (int64_t)(c->pin_bytes / ((size_t)D * sizeof(float)));
    if (per < 1)
        return QA_FAIL(e, QA_ERR_INTERNAL, "upload_rows: a row of %lld floats exceeds the %zu-byte staging buffer",
                       (long long)D, c->pin_bytes);
    for (int64_t t0 = 0; t0 < T; t0 += per) {
        int64_t n = T - t0 < per ? T - t0 : per;
        int b;
        QA_TRY(stage_begin(c, &b, e));
        gather_rows((float *)c->pin[b], table, dt, D, ids + t0, n);
        QA_TRY(stage_end(c, b, dst + t0 * D, (size_t)(n * D) * sizeof(float), e));
    }
    return QA_OK;
}

/* Raw file bytes -> pinned staging -> scratch (device) -> kernel -> dst. One stream: the copy of chunk
 * i + 1 into scratch starts after the kernel of chunk i has read it, while the CPU already fills the
 * other pinned buffer (the overlap that matters: memcpy out of the mmap vs the PCIe transfer). */
qa_status qa_cuda_upload_convert(qa_cuda_ctx *c, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                                 void *scratch, size_t scratch_bytes, qa_err *e)
{
    if (dt == st)
        return qa_cuda_upload(c, dst, src, n * qa_dtype_size(st), e);
    QA_TRY(ensure_pins(c, e));
    size_t ss = qa_dtype_size(st), ds = qa_dtype_size(dt);
    size_t chunk = scratch_bytes < c->pin_bytes ? scratch_bytes : c->pin_bytes;
    size_t per = chunk / ss;
    if (!scratch || per < 1)
        return QA_FAIL(e, QA_ERR_INTERNAL, "upload_convert: device scratch of %zu bytes at %p cannot hold one element",
                       scratch_bytes, scratch);
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        int b;
        QA_TRY(stage_begin(c, &b, e));
        memcpy(c->pin[b], (const char *)src + i * ss, k * ss);
        QA_TRY(stage_end(c, b, scratch, k * ss, e));
        QA_TRY(qa_cu_convert(c->stream, (char *)dst + i * ds, dt, scratch, st, k, e));
    }
    return QA_OK;
}

/* Pinned host weights (the aligner's embedding table): counted like the staging buffers. */
qa_status qa_cuda_host_alloc(qa_cuda_ctx *c, void **out, size_t bytes, qa_err *e)
{
    *out = NULL;
    QA_TRY(qa_cuda_ctx_usable(c, e));
    QA_CUDA_CHECK(e, cudaSetDevice(c->device));
    qa_status s = counted_host_malloc(c, out, bytes, e);
    if (s != QA_OK) {
        if (e) {
            e->needed = bytes;
            qa_err_prefix(e, "allocating %zu bytes of pinned host memory for weights kept off cuda:%d: ", bytes,
                          c->device);
        }
        return s;
    }
    return QA_OK;
}

void qa_cuda_host_free(qa_cuda_ctx *c, void *p)
{
    if (!p)
        return;
    if (c) /* the GPU never reads the table (rows are gathered by the CPU): no stream to wait for */
        cudaSetDevice(c->device);
    cudaFreeHost(p);
}

void qa_cuda_mem_stats_of(const qa_cuda_ctx *c, qa_cuda_mem_stats *out)
{
    memset(out, 0, sizeof *out);
    out->device_allocs = c ? c->n_dev_allocs : n_dev_allocs.load();
    out->host_allocs = c ? c->n_host_allocs : n_host_allocs.load();
    if (c) {
        out->free_at_open = c->free_at_open;
        out->free_after_handles = c->free_after_handles;
        out->total = c->total_at_open;
        out->pinned_bytes = c->pin[0] ? 2 * c->pin_bytes : 0;
        out->graph_instantiations = c->n_graph_instantiations;
        out->graph_bytes = c->graph_bytes;
        out->gemm_plans = c->n_mm_plans;
    }
}

qa_status qa_cuda_probe_device(int device, qa_cuda_probe *out, qa_err *e) { return probe(device, out, e); }

qa_status qa_cuda_mem_query(int device, size_t *fr, size_t *tot, qa_err *e)
{
    qa_cuda_probe pr;
    QA_TRY(probe(device, &pr, e));
    QA_CUDA_CHECK(e, cudaSetDevice(device));
    QA_CUDA_CHECK(e, cudaMemGetInfo(fr, tot));
    return QA_OK;
}
