/* step.cu — the small kernels of a decode step whose position lives in device memory (backend.h API 4).
 *
 * Contract: ops.cuh. store_rows_at copies the new K / V rows of a step into the cache rows of the
 * position the step state holds (the cuBLAS projections of a recorded step cannot write to a row that
 * changes per step, so they write a fixed temporary and this kernel moves it). step_advance moves the
 * state to the next step at the end of a step, on the device, so replaying the recording needs no
 * host value. Both read the state when they run, not when they are enqueued.
 */
#include "ops.cuh"

__global__ void store_rows_kernel(float *dst, const float *src, int T, int W, const int32_t *pos,
                                  long long max_rows)
{
    long long p = *pos;
    size_t n = (size_t)T * W;
    for (size_t x = (size_t)blockIdx.x * blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        long long row = p + (long long)(x / W);
        if (row >= 0 && row < max_rows) /* a position past the cache is a bug upstream: never write there */
            dst[(size_t)row * W + x % W] = src[x];
    }
}

__global__ void step_advance_kernel(int32_t *state)
{
    state[QA_STEP_POS] += 1;
    state[QA_STEP_INDEX] += 1;
}

qa_status qa_cu_store_rows_at(cudaStream_t s, float *dst, const float *src, int T, int W, const int32_t *pos,
                              long long max_rows, qa_err *e)
{
    size_t n = (size_t)(T > 0 ? T : 0) * (size_t)(W > 0 ? W : 0);
    if (!n)
        return QA_OK;
    store_rows_kernel<<<qa_cuda_grid(n), 256, 0, s>>>(dst, src, T, W, pos, max_rows);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_step_advance(cudaStream_t s, int32_t *state, qa_err *e)
{
    step_advance_kernel<<<1, 1, 0, s>>>(state);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
