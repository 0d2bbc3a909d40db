/* step.cu — the small kernels of a decode step whose position lives in device memory (backend.h API 4).
 *
 * Contract: ops.cuh. step_advance moves the state to the next step at the end of a step, on the device,
 * so replaying the recording needs no host value; it reads the state when it runs, not when it is
 * enqueued. (The new K / V rows reach the cache row of the step's position through qkv.cu.)
 * step_continue closes the body of a device loop over steps (graph.cu, backend.h graph_begin_loop, API 9):
 * it only reads what the step wrote, so the loop computes what the same steps launched one by one do.
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

/* After step_advance (PDL: it may launch while step_advance runs, and waits for it): run the body again unless
 * the step picked a stop id, the request's last step with a forward is done, or the block is full. */
__global__ void step_continue_kernel(cudaGraphConditionalHandle handle, qa_cu_loop loop)
{
    qa_pdl_wait();
    int32_t i = loop.state[QA_STEP_INDEX], tok = loop.tok[0];
    unsigned go = i < loop.state[QA_STEP_LIMIT] && i % loop.block != 0;
#pragma unroll /* constant indices: the ids stay in the parameter bank (a loop to n copies them to the stack) */
    for (int k = 0; k < QA_CU_MAX_SUPPRESS; k++)
        go &= k >= loop.stop.n || tok != loop.stop.ids[k];
    cudaGraphSetConditional(handle, go);
}

qa_status qa_cu_step_continue(cudaStream_t s, cudaGraphConditionalHandle handle, const qa_cu_loop *loop, qa_err *e)
{
    QA_CUDA_CHECK(e, qa_cu_launch(step_continue_kernel, 1, 1, 0, s, handle, *loop));
    return QA_OK;
}
