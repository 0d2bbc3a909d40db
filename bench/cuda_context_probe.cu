/* cuda_context_probe.cu — what a CUDA context costs in device memory before any model byte (issue 6's
 * 6600 MiB budget): the context itself, its limits (per-thread stack reserved for every resident thread,
 * device malloc heap, printf FIFO), the cuBLAS / cuBLASLt handles, and a kernel that needs local memory.
 * Each step prints the device's used memory (cudaMemGetInfo) and this process's nvidia-smi figure.
 *
 *   nvcc -O2 -o /tmp/ctxprobe bench/cuda_context_probe.cu -lcublas -lcublasLt && /tmp/ctxprobe
 * (bench/gpu_run.sh runs it with QA_PROFILE=1.)
 */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static double used_mib(void)
{
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    return (double)(tot - fr) / (1 << 20);
}

static long smi_mib(void)
{
    char cmd[160], line[256];
    snprintf(cmd, sizeof cmd, "nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits");
    FILE *f = popen(cmd, "r");
    long mib = -1;
    while (f && fgets(line, sizeof line, f)) {
        long pid = 0, m = 0;
        if (sscanf(line, "%ld, %ld", &pid, &m) == 2 && pid == (long)getpid())
            mib = m;
    }
    if (f)
        pclose(f);
    return mib;
}

static void report(const char *step)
{
    printf("CTXPROBE %-44s device used %9.1f MiB   nvidia-smi (this process) %6ld MiB\n", step, used_mib(),
           smi_mib());
}

__global__ void big_frame(float *out, int n)
{
    float a[2048]; /* 8 KiB of local memory per thread, indexed at run time so it stays in local memory */
    for (int i = 0; i < 2048; i++)
        a[i] = (float)(i * n);
    out[threadIdx.x] = a[(threadIdx.x * 7 + n) & 2047];
}

int main(void)
{
    report("before the context");
    cudaFree(0);
    report("context (cudaFree(0))");
    size_t v;
    cudaDeviceGetLimit(&v, cudaLimitStackSize);
    printf("CTXPROBE limit stack %zu B/thread, ", v);
    cudaDeviceGetLimit(&v, cudaLimitMallocHeapSize);
    printf("malloc heap %zu B, ", v);
    cudaDeviceGetLimit(&v, cudaLimitPrintfFifoSize);
    printf("printf fifo %zu B\n", v);
    const char *lazy = getenv("CUDA_MODULE_LOADING");
    printf("CTXPROBE CUDA_MODULE_LOADING=%s\n", lazy ? lazy : "(unset: lazy by default since CUDA 12.2)");
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    report("+ cublasLtCreate (what qwen3align uses)");
    cublasHandle_t h;
    cublasCreate(&h);
    report("+ cublasCreate (what it no longer creates)");
    cudaDeviceSetLimit(cudaLimitStackSize, 256);
    report("stack limit 256 B/thread");
    cudaDeviceSetLimit(cudaLimitMallocHeapSize, 1 << 20);
    report("malloc heap 1 MiB");
    float *d = NULL;
    cudaMalloc(&d, 4096);
    report("+ cudaMalloc 4 KiB");
    big_frame<<<1, 32>>>(d, 3);
    cudaDeviceSynchronize();
    report("after a kernel with 8 KiB local memory");
    cudaDeviceSetLimit(cudaLimitStackSize, 256);
    report("stack limit 256 B/thread again");
    printf("CTXPROBE last error: %s\n", cudaGetErrorString(cudaGetLastError()));
    cublasLtDestroy(lt);
    cublasDestroy(h);
    cudaFree(d);
    return 0;
}
