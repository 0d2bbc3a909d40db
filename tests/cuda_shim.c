/* cuda_shim.c — test only: the libqa_cuda.so table over the CPU backend, so tests/test_cuda.py's op tests
 * and their float64 references can be dry-run on a machine without a GPU (test_cuda_build.py builds it
 * and points QA_CUDA_LIB at it). Not part of the package. */
#include <string.h>
#include "backend/cuda_api.h"
static qa_status probe(int d, qa_cuda_probe *o, qa_err *e) { memset(o, 0, sizeof *o); o->device_count = 1; return QA_OK; }
static void stats(const qa_backend *be, qa_cuda_mem_stats *o) { memset(o, 0, sizeof *o); o->free_at_open = 2; o->free_after_handles = 1; }
static qa_status upload(qa_backend *be, void *d, const void *s, size_t n, qa_err *e) { memcpy(d, s, n); return QA_OK; }
static qa_status mq(int d, size_t *f, size_t *t, qa_err *e) { *f = *t = 1; return QA_OK; }
static qa_status init(qa_backend *be, int dev, qa_err *e) { return qa_backend_cpu_init(be, 1, e); }
static const qa_cuda_api api = {QA_CUDA_API_VERSION, init, probe, stats, upload, mq};
__attribute__((visibility("default"))) const qa_cuda_api *qa_cuda_api_get(void) { return &api; }
