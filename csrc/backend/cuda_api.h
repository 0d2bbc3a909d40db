/* cuda_api.h — the one table libqa_cuda.so exports, and how the engine finds it (cuda_loader.c).
 *
 * Why a separate library: the extension must import and run on machines without CUDA, and
 * `import qwen3align` must not pay for loading cuBLAS. So the CUDA backend is built (when nvcc exists)
 * into qwen3align/libqa_cuda.so, next to the extension module, and dlopen()ed only when
 * load_models(device="cuda:N") asks for it. The library exports exactly one symbol,
 * QA_CUDA_ENTRY ("qa_cuda_api_get"), returning this table; the loader checks `version` against
 * QA_CUDA_API_VERSION so a stale library is reported instead of called with the wrong layout.
 *
 * Lifecycle (what load_models does):
 *     const qa_cuda_api *cu; QA_TRY(qa_cuda_load(&cu, &err));          // dlopen + version check
 *     qa_cuda_probe pr;      QA_TRY(cu->probe(device, &pr, &err));       // driver/runtime/device checks
 *     qa_cuda_ctx *ctx;      QA_TRY(cu->open(device, &ctx, &err));       // stream, cuBLAS handle
 *     ... plan; cu->mem_info(ctx, &free, &total); check plan <= free ...
 *     void *arena;           QA_TRY(cu->dev_alloc(ctx, &arena, bytes, &err));   // THE one cudaMalloc
 *     cu->set_scratch(ctx, ws, ws_bytes, stage, stage_bytes, &err);      // views into the arena
 *     cu->upload(ctx, dst, QA_BF16, mmapped_src, QA_BF16, n, &err) ...;  cu->upload_finish(ctx, &err);
 *     ... ops through the backend table ...
 *     cu->dev_free(ctx, arena); cu->close(ctx);
 * Ownership: every pointer returned by dev_alloc is freed with dev_free; the ctx with close.
 * All functions return qa_status and fill the caller's qa_err; none exits.
 */
#ifndef QA_CUDA_API_H
#define QA_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"
#include "../model/weights.h"

#define QA_CUDA_API_VERSION 1
#define QA_CUDA_ENTRY "qa_cuda_api_get"
#define QA_CUDA_LIBRARY "libqa_cuda.so"

typedef struct qa_cuda_ctx qa_cuda_ctx; /* opaque: one device, stream and cuBLAS handle */

typedef struct qa_cuda_probe {
    int driver_version;   /* cudaDriverGetVersion (e.g. 13000); 0 = no driver */
    int runtime_version;  /* cudaRuntimeGetVersion of the runtime the library was built with */
    int device_count;
    char name[256];       /* of the asked device */
    int cc_major, cc_minor;
    size_t total_mem;
} qa_cuda_probe;

typedef struct qa_cuda_mem_stats {
    uint64_t device_allocs;   /* cudaMalloc / cudaMallocAsync calls made through the counting hooks */
    uint64_t host_allocs;     /* cudaMallocHost / cudaHostAlloc calls (pinned staging) */
    size_t free_at_open;      /* cudaMemGetInfo right after the context was created */
    size_t free_after_handles;/* ... and after the stream and cuBLAS handle were created */
    size_t total;
} qa_cuda_mem_stats;

typedef struct qa_cuda_api {
    int version; /* QA_CUDA_API_VERSION */
    /* Checks that need no context: driver >= runtime, device index visible. QA_ERR_INPUT otherwise. */
    qa_status (*probe)(int device, qa_cuda_probe *out, qa_err *e);
    qa_status (*open)(int device, qa_cuda_ctx **out, qa_err *e);
    void (*close)(qa_cuda_ctx *ctx);
    /* Device memory hooks for the arena (counted). dev_alloc fails with QA_ERR_OOM + needed/available. */
    qa_status (*dev_alloc)(qa_cuda_ctx *ctx, void **out, size_t bytes, qa_err *e);
    void (*dev_free)(qa_cuda_ctx *ctx, void *p);
    qa_status (*mem_info)(qa_cuda_ctx *ctx, size_t *free_bytes, size_t *total_bytes, qa_err *e);
    void (*mem_stats)(qa_cuda_ctx *ctx, qa_cuda_mem_stats *out);
    /* Hand arena views to the backend: cuBLAS workspace and the BF16 GEMM staging buffer. */
    qa_status (*set_scratch)(qa_cuda_ctx *ctx, void *blas_ws, size_t blas_ws_bytes, void *stage,
                             size_t stage_bytes, qa_err *e);
    /* Weight streaming: n elements from host memory (e.g. the mmapped safetensors) in dtype st to the
     * device pointer dst in dtype dt, through a double-buffered pinned staging buffer (allocated on
     * first use, counted) and converted on the GPU. Asynchronous; upload_finish waits for all copies
     * and frees the pinned buffers. Conversions need set_scratch first (the staging buffer is the
     * device bounce buffer). */
    qa_status (*upload)(qa_cuda_ctx *ctx, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                        qa_err *e);
    qa_status (*upload_finish)(qa_cuda_ctx *ctx, qa_err *e);
    /* Plain copies for activations (synchronous, on the backend stream). */
    qa_status (*to_device)(qa_cuda_ctx *ctx, void *dst, const void *src, size_t bytes, qa_err *e);
    qa_status (*to_host)(qa_cuda_ctx *ctx, void *dst, const void *src, size_t bytes, qa_err *e);
    qa_status (*sync)(qa_cuda_ctx *ctx, qa_err *e);
    /* Bytes of cuBLAS workspace the plan must reserve. */
    size_t blas_workspace_bytes;
} qa_cuda_api;

typedef const qa_cuda_api *(*qa_cuda_api_get_fn)(void);

/* cuda_loader.c (in the extension): dlopen libqa_cuda.so next to the extension module once per
 * process, check the table version. QA_ERR_INPUT "CUDA backend not built" when the library is absent,
 * with dlerror() text when it cannot be loaded. *out is borrowed for the life of the process. */
qa_status qa_cuda_load(const qa_cuda_api **out, qa_err *e);

#endif
