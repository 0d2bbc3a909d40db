/* pdl.cuh — programmatic dependent launch (PDL, compute capability 9.0) for the decode-step kernels.
 *
 * Why (issue #6): a decode step is ~200 kernels in a row, each reading what the one before wrote. In stream
 * (and graph) order a kernel starts only after the previous one has drained, so every boundary costs the
 * previous kernel's tail plus the next one's launch and ramp, with HBM idle meanwhile. A kernel launched
 * with qa_cu_launch may start while its predecessor still runs, once every block of the predecessor has
 * passed qa_pdl_trigger (or exited): it loads what does not depend on the predecessor (weights), then
 * blocks in qa_pdl_wait until the predecessor has completed and its writes are visible.
 * Rules every kernel launched through qa_cu_launch follows (the contract that makes it safe):
 *   1. before qa_pdl_wait it reads only model weights (written once at load, which ends synchronised) and
 *      its own arguments, and writes nothing; only weights go through the read-only path (__ldg,
 *      ld.global.nc), whose data must not change while the kernel runs — what an earlier kernel writes
 *      is read with ordinary loads, after the wait;
 *   2. every thread of every block calls qa_pdl_wait before it exits, so the kernel's completion implies its
 *      predecessor's (a later normally launched kernel then waits for both);
 *   3. qa_pdl_trigger right after qa_pdl_wait: the successor's blocks launch once this kernel's predecessor
 *      is done (one kernel of look-ahead, so waiting blocks never pile up over several kernels).
 * Kernels launched the ordinary way may contain the two calls too: without a programmatic dependency the
 * wait returns at once and the trigger does nothing. QA_CUDA_PDL=0 (read once) launches everything the
 * ordinary way, to compare timings or to rule PDL out when hunting a race.
 */
#ifndef QA_CUDA_PDL_CUH
#define QA_CUDA_PDL_CUH

#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

#include <utility>

/* Wait until the predecessor grid has completed and its memory is visible (griddepcontrol.wait). */
__device__ __forceinline__ void qa_pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* Let the successor grid launch once every block of this grid has called this or exited. */
__device__ __forceinline__ void qa_pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

/* Whether launches ask for PDL: not when QA_CUDA_PDL is "0" (read once per process). */
static inline int qa_cu_pdl_enabled(void)
{
    static const int on = [] {
        const char *v = getenv("QA_CUDA_PDL");
        return !(v && strcmp(v, "0") == 0);
    }();
    return on;
}

/* kernel<<<grid, block, smem, s>>>(args...) with the PDL attribute (unless disabled); the launch's status
 * is returned (check it with QA_CUDA_CHECK). The kernel must follow the rules above. */
template <typename... P, typename... A>
static inline cudaError_t qa_cu_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                       A &&...args)
{
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = qa_cu_pdl_enabled() ? attr : NULL;
    cfg.numAttrs = cfg.attrs ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
}

#endif
