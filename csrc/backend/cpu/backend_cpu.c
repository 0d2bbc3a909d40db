/* backend_cpu.c — the CPU backend's op table, memory and scratch accounting.
 *
 * Contract (backend.h): qa_backend_cpu_init fills a caller-owned qa_backend whose ops run
 * synchronously on the calling thread (+ OpenBLAS's threads). Backend memory is host memory:
 * copy() is memcpy in every direction, sync() is a no-op. mem_alloc is the one aligned host
 * allocation of the arena (memory/arena.c), through the counting allocator. The ops never allocate:
 * temporaries come from be->scratch, sized by scratch_need (the max over the ops, see cpu.h).
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/alloc.h"
#include "cpu.h"

float *qa_cpu_scratch(qa_backend *be, int64_t offset, int64_t floats, const char *what, qa_err *e)
{
    size_t need = (size_t)(offset + floats) * sizeof(float);
    if (!be->scratch || need > be->scratch_bytes) {
        QA_FAIL(e, QA_ERR_INTERNAL, "%s: needs %zu bytes of backend scratch, the plan gave %zu", what, need,
                be->scratch_bytes);
        return NULL;
    }
    return (float *)be->scratch + offset;
}

size_t qa_cpu_scratch_need(const qa_backend *be, const qa_scratch_dims *d)
{
    return qa_backend_cpu_scratch_need(d);
}

size_t qa_backend_cpu_scratch_need(const qa_scratch_dims *d)
{
    int64_t attn = QA_CPU_ATTN_BQ * d->max_kv + QA_CPU_KV_CHUNK_FLOATS;
    int64_t conv = d->max_im2col + QA_CPU_TILE_FLOATS;
    int64_t norm = QA_CPU_TILE_FLOATS + QA_CPU_NORM_ROWS * d->max_gemm_k;
    int64_t n = attn > conv ? attn : conv;
    n = n > norm ? n : norm;
    return (size_t)n * sizeof(float);
}

static void cpu_destroy(qa_backend *be)
{
    be->ctx = NULL;
}

static qa_status cpu_mem_alloc(qa_backend *be, void **out, size_t bytes, qa_err *e)
{
    *out = qa_malloc_aligned(bytes, 256, e);
    return *out ? QA_OK : e->code;
}

static void cpu_mem_free(qa_backend *be, void *p)
{
    qa_free_aligned(p);
}

static qa_status cpu_mem_info(qa_backend *be, size_t *free_bytes, size_t *total_bytes, qa_err *e)
{
    long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES), total = sysconf(_SC_PHYS_PAGES);
    if (page <= 0 || avail < 0 || total <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "cannot read the machine's memory size (sysconf)");
    *free_bytes = (size_t)avail * (size_t)page;
    *total_bytes = (size_t)total * (size_t)page;
    return QA_OK;
}

static qa_status cpu_copy(qa_backend *be, void *dst, const void *src, size_t bytes, qa_copy_kind kind,
                          qa_err *e)
{
    if (bytes && dst != src)
        memmove(dst, src, bytes);
    return QA_OK;
}

static qa_status cpu_memset0(qa_backend *be, void *dst, size_t bytes, qa_err *e)
{
    memset(dst, 0, bytes);
    return QA_OK;
}

static qa_status cpu_sync(qa_backend *be, qa_err *e)
{
    return QA_OK;
}

int qa_backend_cpu_threads(void) { return openblas_get_num_threads(); }

void qa_backend_cpu_set_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

qa_status qa_backend_cpu_init(qa_backend *be, int n_threads, qa_err *e)
{
    memset(be, 0, sizeof *be);
    be->api_version = QA_BACKEND_API_VERSION;
    be->name = "cpu";
    if (n_threads > 0)
        openblas_set_num_threads(n_threads);
    be->destroy = cpu_destroy;
    be->mem_alloc = cpu_mem_alloc;
    be->mem_free = cpu_mem_free;
    be->mem_info = cpu_mem_info;
    be->scratch_need = qa_cpu_scratch_need;
    be->copy = cpu_copy;
    be->memset0 = cpu_memset0;
    be->sync = cpu_sync;
    be->gemm = qa_cpu_gemm;
    be->norm_gemm = qa_cpu_norm_gemm;
    be->norm_mlp = qa_cpu_norm_mlp;
    be->ln_gemm = qa_cpu_ln_gemm;
    be->ln_mlp = qa_cpu_ln_mlp;
    be->layernorm = qa_cpu_layernorm;
    be->rmsnorm = qa_cpu_rmsnorm;
    be->qkv_prep = qa_cpu_qkv_prep;
    be->add_sinusoid = qa_cpu_add_sinusoid;
    be->attention = qa_cpu_attention_op;
    be->gemm_in_dtype = qa_cpu_gemm_in_dtype;
    be->gemm_bf16x = qa_cpu_gemm_bf16x;
    be->gelu = qa_cpu_gelu;
    be->add = qa_cpu_add;
    be->mel_chunks = qa_cpu_mel_chunks;
    be->conv2d = qa_cpu_conv2d;
    be->conv2d_pair = qa_cpu_conv2d_pair;
    be->chunk_flatten = qa_cpu_chunk_flatten;
    be->embed = qa_cpu_embed;
    be->argmax = qa_cpu_argmax;
    be->mel_tables = qa_cpu_mel_tables;
    be->log_mel = qa_cpu_log_mel;
    be->attention_at = qa_cpu_attention_at;
    be->argmax_at = qa_cpu_argmax_at;
    be->step_advance = qa_cpu_step_advance;
    be->graph_begin = qa_cpu_graph_begin;
    be->graph_end = qa_cpu_graph_end;
    be->graph_launch = qa_cpu_graph_launch;
    be->graph_ready = qa_cpu_graph_ready;
    be->graph_begin_loop = qa_cpu_graph_begin_loop;
    /* QA_CPU_DECODE=steps: run the device-state decode loop here too, so tests compare it with the
     * plain loop without a GPU (read once, at init, like the CUDA backend's QA_CUDA_GRAPH). */
    const char *mode = getenv("QA_CPU_DECODE");
    be->decode_mode = mode && strcmp(mode, "steps") == 0 ? QA_DECODE_STEPS : QA_DECODE_PLAIN;
    return QA_OK;
}
