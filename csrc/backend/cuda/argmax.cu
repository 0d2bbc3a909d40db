/* argmax.cu — per-row argmax with the softmax probability of the winner (aligner head, greedy ASR).
 *
 * Contract: ops.cuh. One block per row. Ties go to the lowest index (torch.argmax semantics, which the
 * timestamp classes and greedy decoding rely on, MODEL_FACTS §7.3). NaN is treated as the maximum,
 * as torch does, so a broken row is visible instead of silently mapping to class 0.
 * prob = 1 / sum_j exp(x_j - max): the softmax value at the argmax, accumulated in fp32.
 * Suppressed ids count as -inf in both (they get probability 0, like a -inf logit in torch).
 */
#include <math.h>

#include "ops.cuh"

#define THREADS 256

/* (value, index) a beats b: larger value, NaN largest, lower index on ties. */
__device__ __forceinline__ bool beats(float va, int ia, float vb, int ib)
{
    bool na = isnan(va), nb = isnan(vb);
    if (na != nb)
        return na;
    if (va != vb && !na)
        return va > vb;
    return ia < ib;
}

/* x[j], or -inf when j is a suppressed id (MinNewTokensLength-style EOS suppression). */
__device__ __forceinline__ float value(const float *r, int j, const qa_cu_suppress &sup)
{
    for (int k = 0; k < sup.n; k++)
        if (sup.ids[k] == j)
            return -INFINITY;
    return r[j];
}

__global__ void argmax_kernel(int32_t *idx, float *prob, const float *x, int N, qa_cu_suppress sup)
{
    __shared__ float sv[THREADS];
    __shared__ int si[THREADS];
    const float *r = x + (size_t)blockIdx.x * N;
    float bv = -INFINITY;
    int bi = N; /* sentinel: loses to any real index */
    for (int j = threadIdx.x; j < N; j += THREADS) {
        float vj = value(r, j, sup);
        if (bi == N || beats(vj, j, bv, bi)) {
            bv = vj;
            bi = j;
        }
    }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int o = THREADS / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) {
            int j = threadIdx.x + o;
            if (si[j] != N && (si[threadIdx.x] == N || beats(sv[j], si[j], sv[threadIdx.x], si[threadIdx.x]))) {
                sv[threadIdx.x] = sv[j];
                si[threadIdx.x] = si[j];
            }
        }
        __syncthreads();
    }
    float m = sv[0];
    int best = si[0];
    __syncthreads();
    float s = 0.f;
    for (int j = threadIdx.x; j < N; j += THREADS)
        s += expf(value(r, j, sup) - m);
    sv[threadIdx.x] = s;
    __syncthreads();
    for (int o = THREADS / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o)
            sv[threadIdx.x] += sv[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        idx[blockIdx.x] = best;
        if (prob)
            prob[blockIdx.x] = 1.0f / sv[0];
    }
}

qa_status qa_cu_argmax(cudaStream_t s, int32_t *idx, float *prob, const float *x, int R, int N,
                       const qa_cu_suppress *sup, qa_err *e)
{
    if (R <= 0)
        return QA_OK;
    if (N <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "argmax: rows of %d columns", N);
    argmax_kernel<<<R, THREADS, 0, s>>>(idx, prob, x, N, *sup);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
