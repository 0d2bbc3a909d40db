/* profile.cu — QA_CUDA_PROFILE=1: where a request's time goes, per op, without external profilers.
 *
 * The GPU machines here have no Nsight Systems, and ncu times kernels one at a time; what the speed
 * work needs is each backend op's share of a whole request (GPU time) next to what the host spends
 * issuing it. With the variable set at open, every op of backend.cu is bracketed by two events and
 * waited for (so GPU times are exact and host overhead shows as host - gpu); the table goes to stderr
 * when the context closes. Off (the default) it costs one branch per op. Never enabled inside stream
 * capture (waiting is illegal there). Rows are keyed by the op's static name string.
 * QA_CUDA_MEMWATCH=1 (independent of the profile, no waits, graphs stay on): after every op the free
 * device memory is read, and an op after which it fell is printed — memory the driver or a library
 * took outside the arena (a lazily loaded module, a local-memory resize, a graph upload), which is
 * how issue 5's "same memory after load and after work" is traced to its op.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_ctx.cuh"

#define PROF_ROWS 48

typedef struct prof_row {
    const char *name;
    double gpu_ms, host_ms;
    unsigned long long n;
} prof_row;

struct qa_cuda_prof {
    cudaEvent_t a, b;
    double t0;
    int active; /* begin() recorded its event */
    prof_row rows[PROF_ROWS];
    int n_rows;
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

qa_cuda_prof *qa_cuda_prof_open(void)
{
    const char *v = getenv("QA_CUDA_PROFILE");
    if (!v || !*v || strcmp(v, "0") == 0)
        return NULL;
    qa_cuda_prof *p = (qa_cuda_prof *)calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (cudaEventCreate(&p->a) != cudaSuccess || cudaEventCreate(&p->b) != cudaSuccess) {
        cudaGetLastError();
        free(p);
        return NULL;
    }
    return p;
}

void qa_cuda_prof_begin(qa_cuda_prof *p, cudaStream_t s)
{
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    p->active = 0;
    if (cudaStreamIsCapturing(s, &st) != cudaSuccess || st != cudaStreamCaptureStatusNone)
        return;
    p->t0 = now_ms();
    p->active = cudaEventRecord(p->a, s) == cudaSuccess;
}

static prof_row *row_of(qa_cuda_prof *p, const char *name)
{
    for (int i = 0; i < p->n_rows; i++)
        if (p->rows[i].name == name || strcmp(p->rows[i].name, name) == 0)
            return &p->rows[i];
    if (p->n_rows == PROF_ROWS)
        return NULL;
    p->rows[p->n_rows].name = name;
    return &p->rows[p->n_rows++];
}

void qa_cuda_prof_end(qa_cuda_prof *p, cudaStream_t s, const char *name)
{
    if (!p->active)
        return;
    float ms = 0.f;
    if (cudaEventRecord(p->b, s) != cudaSuccess || cudaEventSynchronize(p->b) != cudaSuccess ||
        cudaEventElapsedTime(&ms, p->a, p->b) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    prof_row *r = row_of(p, name);
    if (!r)
        return;
    r->gpu_ms += ms;
    r->host_ms += now_ms() - p->t0;
    r->n++;
}

static int by_gpu(const void *x, const void *y)
{
    double a = ((const prof_row *)x)->gpu_ms, b = ((const prof_row *)y)->gpu_ms;
    return (a < b) - (a > b);
}

void qa_cuda_prof_close(qa_cuda_prof *p)
{
    if (!p)
        return;
    qsort(p->rows, (size_t)p->n_rows, sizeof p->rows[0], by_gpu);
    double g = 0, h = 0;
    for (int i = 0; i < p->n_rows; i++)
        g += p->rows[i].gpu_ms, h += p->rows[i].host_ms;
    fprintf(stderr, "QA_CUDA_PROFILE %-22s %10s %10s %9s %10s\n", "op", "gpu_ms", "host_ms", "calls", "us/call");
    for (int i = 0; i < p->n_rows; i++) {
        const prof_row *r = &p->rows[i];
        fprintf(stderr, "QA_CUDA_PROFILE %-22s %10.3f %10.3f %9llu %10.2f\n", r->name, r->gpu_ms, r->host_ms, r->n,
                r->n ? 1e3 * r->gpu_ms / (double)r->n : 0.0);
    }
    fprintf(stderr, "QA_CUDA_PROFILE %-22s %10.3f %10.3f\n", "total", g, h);
    cudaEventDestroy(p->a);
    cudaEventDestroy(p->b);
    free(p);
}

void qa_cuda_memwatch_open(qa_cuda_ctx *c)
{
    const char *v = getenv("QA_CUDA_MEMWATCH");
    size_t fr = 0, tot = 0;
    c->memwatch = v && *v && strcmp(v, "0") != 0 && cudaMemGetInfo(&fr, &tot) == cudaSuccess;
    c->memwatch_free = fr;
}

void qa_cuda_memwatch(qa_cuda_ctx *c, const char *name)
{
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    if (fr < c->memwatch_free)
        fprintf(stderr, "QA_CUDA_MEMWATCH %s: free device memory fell by %zu KiB (%zu MiB free)\n", name,
                (c->memwatch_free - fr) >> 10, fr >> 20);
    c->memwatch_free = fr;
}
