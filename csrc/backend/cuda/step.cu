/* step.cu — the small kernels of a decode step whose position lives in device memory (backend.h API 4).
 *
 * Contract: ops.cuh. step_advance moves the state to the next step at the end of a step, on the device,
 * so replaying the recording needs no host value; it reads the state when it runs, not when it is
 * enqueued. (The new K / V rows reach the cache row of the step's position through qkv.cu.)
 */
#include "ops.cuh"
#include "pdl.cuh"

/* Launched with PDL (pdl.cuh): it waits for the step's last kernel, so every kernel that read the state is done. */
__global__ void step_advance_kernel(int32_t *state)
{
    qa_pdl_wait();
    qa_pdl_trigger();
    state[QA_STEP_POS] += 1;
    state[QA_STEP_INDEX] += 1;
}

qa_status qa_cu_step_advance(cudaStream_t s, int32_t *state, qa_err *e)
{
    QA_CUDA_CHECK(e, qa_cu_launch(step_advance_kernel, 1, 1, 0, s, state));
    return QA_OK;
}
