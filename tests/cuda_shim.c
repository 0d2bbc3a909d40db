/* cuda_shim.c — test only: the libqa_cuda.so table over the CPU backend, so tests/test_cuda.py's op tests
 * and their float64 references can be dry-run on a machine without a GPU (test_cuda_build.py builds it
 * and points QA_CUDA_LIB at it). Not part of the package. */
#include <stdlib.h>
#include <string.h>
#include "backend/cuda_api.h"
#include "weights/convert.h"
static qa_status probe(int d, qa_cuda_probe *o, qa_err *e) { memset(o, 0, sizeof *o); o->device_count = 1; return QA_OK; }
static void stats(const qa_backend *be, qa_cuda_mem_stats *o) { memset(o, 0, sizeof *o); o->free_at_open = 2; o->free_after_handles = 1; }
static qa_status upload(qa_backend *be, void *d, const void *s, size_t n, qa_err *e) { memcpy(d, s, n); return QA_OK; }
static qa_status mq(int d, size_t *f, size_t *t, qa_err *e) { *f = *t = 1; return QA_OK; }
static qa_status init(qa_backend *be, int dev, qa_err *e) { return qa_backend_cpu_init(be, 1, e); }
static qa_status halloc(qa_backend *be, void **p, size_t n, qa_err *e) { *p = malloc(n); return *p ? QA_OK : QA_ERR_OOM; }
static void hfree(qa_backend *be, void *p) { free(p); }
/* the CPU's rows: BF16 -> F32 is bits << 16 (device.cu gather_rows) */
static qa_status rows(qa_backend *be, float *dst, const void *table, int dt, int64_t R, int64_t D, const int32_t *ids,
                      int64_t T, qa_err *e)
{
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= R)
            return QA_FAIL(e, QA_ERR_INTERNAL, "upload_rows: id %d outside [0, %lld)", (int)ids[t], (long long)R);
        for (int64_t j = 0; j < D; j++)
            dst[t * D + j] = dt == QA_F32 ? ((const float *)table)[ids[t] * D + j]
                                          : qa_bf16_to_f32(((const uint16_t *)table)[ids[t] * D + j]);
    }
    return QA_OK;
}
/* weights/convert.c itself: on the shim the GPU tests' bit-level references are checked against it */
static qa_status conv(qa_backend *be, void *dst, int dt, const void *src, int st, size_t n, void *scr, size_t sb,
                      qa_err *e)
{
    qa_convert(dst, (qa_dtype)dt, src, st == QA_F32 ? QA_ST_F32 : st == QA_BF16 ? QA_ST_BF16 : QA_ST_F16, n);
    return QA_OK;
}
static const qa_cuda_api api = {QA_CUDA_API_VERSION, init, probe, stats, upload, mq, halloc, hfree, rows, conv};
__attribute__((visibility("default"))) const qa_cuda_api *qa_cuda_api_get(void) { return &api; }
