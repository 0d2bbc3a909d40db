/* cuda_api.h — what libqa_cuda.so exports, and how the engine finds it (cuda_loader.c).
 *
 * Why a separate library: the extension must import and run on machines without CUDA, and
 * `import qwen3align` must not pay for loading cuBLAS. So the CUDA backend is built (when nvcc exists)
 * into qwen3align/libqa_cuda.so, next to the extension module, and dlopen()ed only when
 * load_models(device="cuda:N") asks for it. The library exports one table, through the symbol
 * QA_CUDA_ENTRY ("qa_cuda_api_get"); the loader checks `version` against QA_CUDA_API_VERSION so a
 * stale library is reported instead of called with the wrong layout. (It also exports
 * qa_backend_cuda_init, the same function as the table's `init`, under backend.h's documented name.)
 *
 * Lifecycle (what load_models does):
 *     qa_backend be; qa_device dev;
 *     QA_TRY(qa_cuda_open("cuda:0", &be, &dev, &err)); // dlopen, probe (driver >= runtime, device
 *                                                       // visible), context, op table, arena hooks
 *     dev.mem_info(...) vs plan  ->  qa_arena_create(&arena, &dev, ...)   // THE one cudaMalloc
 *     be.scratch = view of the workspace; be.scratch_bytes = be.scratch_need(&be, &dims);
 *     ... weights: dev.copy_h2d (pinned double-buffered staging, async) ...; ops through be ...
 *     qa_arena_free(&arena); be.destroy(&be);
 * All functions return qa_status and fill the caller's qa_err; none exits.
 */
#ifndef QA_CUDA_API_H
#define QA_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"
#include "../memory/device.h"
#include "backend.h"

#define QA_CUDA_API_VERSION 9 /* 4: host_alloc, host_free, upload_rows, upload_convert; 5: mem_stats graph
                               * fields; 6: mem_stats gemm_plans; 7: backend.h API 7 (ln_gemm, conv2d /
                               * chunk_flatten xb); 8: backend.h API 8 (norm_gemm ldy, norm_mlp gu,
                               * qkv_prep qo / ldq / ldkv, ln_mlp, attention ldq / ldkv / out_dtype, gemm_in_dtype,
                               * gemm_bf16x, conv2d_pair); 9: backend.h API 9 (graph_begin_loop) */
#define QA_CUDA_ENTRY "qa_cuda_api_get"
#define QA_CUDA_LIBRARY "libqa_cuda.so"

typedef struct qa_cuda_probe {
    int driver_version;   /* cudaDriverGetVersion (e.g. 13000); 0 = no driver */
    int runtime_version;  /* cudaRuntimeGetVersion of the runtime the library was built with */
    int device_count;
    char name[256];       /* of the asked device */
    int cc_major, cc_minor;
    size_t total_mem;
} qa_cuda_probe;

typedef struct qa_cuda_mem_stats {
    uint64_t device_allocs;    /* cudaMalloc calls of this backend (its context) through the counting wrapper */
    uint64_t host_allocs;      /* cudaMallocHost calls (pinned staging) of this backend */
    size_t free_at_open;       /* cudaMemGetInfo free right after the CUDA context was created */
    size_t free_after_handles; /* ... and after the stream and cuBLASLt handle were created */
    size_t total;              /* device memory */
    size_t pinned_bytes;       /* pinned staging held by this backend */
    uint64_t graph_instantiations; /* cudaGraphInstantiate calls (recorded decode steps, graph.cu) */
    size_t graph_bytes;        /* device memory the driver took for them (cudaMemGetInfo drop, 2 MiB pages) */
    uint64_t gemm_plans;       /* planned matrix-product keys (matmul.cu); a new one loads a cuBLASLt kernel */
} qa_cuda_mem_stats;

typedef struct qa_cuda_api {
    int version; /* QA_CUDA_API_VERSION */
    /* Fill *be for CUDA device `device` (probe first). Release with be->destroy(be). */
    qa_backend_cuda_init_fn init;
    /* Checks that need no context: a driver, driver >= runtime, device index visible, cc >= 8.0.
     * QA_ERR_INPUT with the reason otherwise. */
    qa_status (*probe)(int device, qa_cuda_probe *out, qa_err *e);
    /* Counters and context overhead for memory_report(). be may be NULL (process counters only). */
    void (*mem_stats)(const qa_backend *be, qa_cuda_mem_stats *out);
    /* Host -> device copy through the two pinned staging buffers, asynchronous on the backend stream
     * (returns once src may be reused). Used for weight upload (the arena's copy_h2d hook). */
    qa_status (*upload)(qa_backend *be, void *dst, const void *src, size_t bytes, qa_err *e);
    /* cudaMemGetInfo of a device without opening a backend (creates the primary context). */
    qa_status (*mem_query)(int device, size_t *free_bytes, size_t *total_bytes, qa_err *e);
    /* Pinned host memory through the counted cudaMallocHost (at load only: it counts as an allocation);
     * holds weights that are only gathered (the aligner's embedding table). Free with host_free. */
    qa_status (*host_alloc)(qa_backend *be, void **out, size_t bytes, qa_err *e);
    void (*host_free)(qa_backend *be, void *p);
    /* dst[T, D] (device, float32) = table[ids[t], :] for a HOST table (R, D) of dtype dt (QA_F32 or
     * QA_BF16; BF16 -> F32 is exact, so this equals the device `embed` op bit for bit). The rows are
     * gathered and converted by the CPU straight into the pinned staging buffers and copied
     * asynchronously (a later op on the stream sees them); ids are host int32, each in [0, R). */
    qa_status (*upload_rows)(qa_backend *be, float *dst, const void *table, int dt, int64_t R, int64_t D,
                             const int32_t *ids, int64_t T, qa_err *e);
    /* n elements of host src in dtype st (qa_dtype: the file's F32/F16/BF16) -> dst (device) in dtype dt
     * (QA_F32 or QA_BF16): the raw bytes travel through the pinned staging into `scratch` (device, at
     * least QA_CUDA_LOAD_CHUNK_BYTES or the whole tensor is chunked to scratch_bytes) and a kernel
     * converts them into dst, bit-equal to weights/convert.c (round to nearest even, NaN kept quiet
     * with its sign and payload). Asynchronous like upload. */
    qa_status (*upload_convert)(qa_backend *be, void *dst, int dt, const void *src, int st, size_t n, void *scratch,
                                size_t scratch_bytes, qa_err *e);
} qa_cuda_api;

typedef const qa_cuda_api *(*qa_cuda_api_get_fn)(void);

/* cuda_loader.c (in the extension): dlopen libqa_cuda.so next to the extension module once per
 * process, check the table version. QA_ERR_INPUT "CUDA backend not built" when the library is absent,
 * with dlerror() text when it cannot be loaded. *out is borrowed for the life of the process. */
qa_status qa_cuda_load(const qa_cuda_api **out, qa_err *e);

/* cuda_loader.c: load, probe, then api->init(be, device). Release with be->destroy(be). */
qa_status qa_backend_cuda_open(qa_backend *be, int device, qa_err *e);

/* cuda_loader.c: open device spec "cuda" / "cuda:N": the backend in *be (as qa_backend_cuda_open) and
 * the arena's hooks in *dev, forwarding to it (dev->ctx = be: be must stay at that address while dev
 * is used). alloc/free = the counted cudaMalloc / cudaFree, mem_info = cudaMemGetInfo, copy_h2d = the
 * pinned double-buffered upload (asynchronous: a later op or copy_d2h on the stream sees the data),
 * copy_d2h synchronous, host_alloc/host_free = the counted cudaMallocHost / cudaFreeHost, upload_convert =
 * the table's on-device weight conversion (NULL when QA_CUDA_CONVERT=host is set at open: the loader then
 * converts on the host as before, the reference the GPU tests compare with). Teardown order:
 * qa_arena_free (dev->free) and dev->host_free BEFORE be->destroy(be). */
qa_status qa_cuda_open(const char *spec, qa_backend *be, qa_device *dev, qa_err *e);

/* cuda_loader.c: a memory-info-only qa_device for "cuda" / "cuda:N" (memory/device.c's CUDA branch, used
 * by _device_info): name, kind, index and mem_info; its alloc/copy hooks refuse (load through
 * qa_cuda_open). Errors as qa_cuda_load / probe (QA_ERR_INPUT with the reason). */
qa_status qa_cuda_device_info(const char *spec, qa_device *dev, qa_err *e);

/* cuda_loader.c: allocation counters and context overhead for memory_report (be may be NULL). */
qa_status qa_cuda_stats(const qa_backend *be, qa_cuda_mem_stats *out, qa_err *e);

/* cuda_loader.c: the table's upload_rows for the engine (pipeline/inputs.c): the prompt's embedding rows
 * of a host-resident table into dst[T, D] on the device. table->data is host memory. */
qa_status qa_cuda_embed_rows(qa_backend *be, float *dst, const qa_tensor *table, const int32_t *ids, int64_t T,
                             qa_err *e);

#endif
