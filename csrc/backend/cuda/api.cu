/* api.cu — the cuda_api.h table: what the engine calls besides the backend.h op table (memory stats,
 * weight upload through pinned staging, pinned host tables, on-device conversion), and the library's
 * one exported lookup, qa_cuda_api_get (cuda_loader.c finds it with dlsym).
 */
#include "cuda_ctx.cuh"
#include "run.cuh"

/* backend.cu: fills the op table (the entry cuda_api.h hands out as `init`) */
extern "C" qa_status qa_backend_cuda_init(qa_backend *be, int device, qa_err *e);

static void api_mem_stats(const qa_backend *be, qa_cuda_mem_stats *out)
{
    qa_cuda_mem_stats_of(be ? ctx_of(be) : NULL, out);
}

static qa_status api_upload(qa_backend *be, void *dst, const void *src, size_t bytes, qa_err *e)
{
    RUN(be, e, qa_cuda_upload(ctx_of(be), dst, src, bytes, e));
}

static qa_status api_host_alloc(qa_backend *be, void **out, size_t bytes, qa_err *e)
{
    RUN(be, e, qa_cuda_host_alloc(ctx_of(be), out, bytes, e));
}

static void api_host_free(qa_backend *be, void *p) { qa_cuda_host_free(be ? ctx_of(be) : NULL, p); }

static qa_status api_upload_rows(qa_backend *be, float *dst, const void *table, int dt, int64_t R, int64_t D,
                                 const int32_t *ids, int64_t T, qa_err *e)
{
    RUN_AS(be, e, "embed_host_rows", qa_cuda_upload_rows(ctx_of(be), dst, table, (qa_dtype)dt, R, D, ids, T, e));
}

static qa_status api_upload_convert(qa_backend *be, void *dst, int dt, const void *src, int st, size_t n,
                                    void *scratch, size_t scratch_bytes, qa_err *e)
{
    RUN_AS(be, e, "upload_convert",
           qa_cuda_upload_convert(ctx_of(be), dst, (qa_dtype)dt, src, (qa_dtype)st, n, scratch, scratch_bytes, e));
}

static const qa_cuda_api api = {
    QA_CUDA_API_VERSION, qa_backend_cuda_init, qa_cuda_probe_device, api_mem_stats, api_upload, qa_cuda_mem_query,
    api_host_alloc,      api_host_free,        api_upload_rows,      api_upload_convert,
};

extern "C" __attribute__((visibility("default"))) const qa_cuda_api *qa_cuda_api_get(void) { return &api; }
