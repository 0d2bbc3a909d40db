/* argmax.cu — per-row argmax with the softmax probability of the winner (aligner head, greedy ASR).
 *
 * Contract: ops.cuh. One block per row, or — for a few long rows (the ASR vocabulary of 151,936
 * logits per decode step) — SPLIT blocks per row writing partials (max, its index, sum of exp(x - max)
 * over their slice) that a second kernel folds: sum = sum_p s_p exp(m_p - M). One block alone walked
 * the 152k logits at memory latency (0.9 ms per token on an H200). Ties go to the lowest index (torch.argmax semantics, which the
 * timestamp classes and greedy decoding rely on, MODEL_FACTS §7.3). NaN is treated as the maximum,
 * as torch does, so a broken row is visible instead of silently mapping to class 0.
 * prob = 1 / sum_j exp(x_j - max): the softmax value at the argmax, accumulated in fp32.
 * Suppressed ids count as -inf in both (they get probability 0, like a -inf logit in torch).
 * With a decode-step state (backend.h argmax_at) the suppression applies only while the step index is
 * below min_new_tokens, and the winner also goes to ids[step] — decided on the device, so a recorded
 * step needs no host value that changes.
 */
#include <math.h>

#include "ops.cuh"
#include "pdl.cuh"

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

/* Block-wide (max, first index) and sum of exp(x - max) over r[lo, hi): the block's partial. */
__device__ void slice_partial(const float *r, int lo, int hi, int none, const qa_cu_suppress &sup, float *m_out,
                              int *i_out, float *s_out)
{
    __shared__ float sv[THREADS];
    __shared__ int si[THREADS];
    float bv = -INFINITY;
    int bi = none; /* sentinel: loses to any real index */
    for (int j = lo + threadIdx.x; j < hi; j += THREADS) {
        float vj = value(r, j, sup);
        if (bi == none || beats(vj, j, bv, bi)) {
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
            if (si[j] != none && (si[threadIdx.x] == none || beats(sv[j], si[j], sv[threadIdx.x], si[threadIdx.x]))) {
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
    for (int j = lo + threadIdx.x; j < hi; j += THREADS)
        s += expf(value(r, j, sup) - m);
    sv[threadIdx.x] = s;
    __syncthreads();
    for (int o = THREADS / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o)
            sv[threadIdx.x] += sv[threadIdx.x + o];
        __syncthreads();
    }
    *m_out = m;
    *i_out = best;
    *s_out = sv[0];
}

/* The decode step's EOS suppression: only while state[INDEX] < state[MIN_NEW] (state may be NULL). */
__device__ __forceinline__ void step_suppress(qa_cu_suppress &sup, const int32_t *state)
{
    if (state && state[QA_STEP_INDEX] >= state[QA_STEP_MIN_NEW])
        sup.n = 0;
}

/* The decode step's id into ids[state[INDEX]] (< cap). */
__device__ __forceinline__ void step_store(int32_t *ids, const int32_t *state, int cap, int best)
{
    if (ids && state[QA_STEP_INDEX] >= 0 && state[QA_STEP_INDEX] < cap)
        ids[state[QA_STEP_INDEX]] = best;
}

__global__ void argmax_kernel(int32_t *idx, float *prob, const float *x, int N, qa_cu_suppress sup,
                              const int32_t *state, int32_t *ids, int cap)
{
    qa_pdl_wait(); /* launched with PDL (pdl.cuh), as the two below */
    qa_pdl_trigger();
    step_suppress(sup, state);
    float m, s;
    int best;
    slice_partial(x + (size_t)blockIdx.x * N, 0, N, N, sup, &m, &best, &s);
    if (threadIdx.x == 0) {
        idx[blockIdx.x] = best;
        step_store(ids, state, cap, best);
        if (prob)
            prob[blockIdx.x] = 1.0f / s;
    }
}

/* Block (p, r) -> part[r * P + p] over its slice of row r. */
__global__ void argmax_split_kernel(qa_cu_argmax_part *part, const float *x, int N, int slice, qa_cu_suppress sup,
                                    const int32_t *state)
{
    qa_pdl_wait();
    qa_pdl_trigger();
    step_suppress(sup, state);
    const int p = blockIdx.x, r = blockIdx.y, lo = p * slice, hi = min(N, lo + slice);
    float m, s;
    int best;
    slice_partial(x + (size_t)r * N, lo, hi, N, sup, &m, &best, &s);
    if (threadIdx.x == 0)
        part[(size_t)r * gridDim.x + p] = {m, best, s};
}

/* One warp per row folds the P partials (P <= 32 * ARGMAX_FOLD), in slice order so ties keep the lowest index. */
__global__ void argmax_fold_kernel(int32_t *idx, float *prob, const qa_cu_argmax_part *part, int P, int N,
                                   const int32_t *state, int32_t *ids, int cap)
{
    qa_pdl_wait();
    qa_pdl_trigger();
    const int r = blockIdx.x, lane = threadIdx.x;
    const qa_cu_argmax_part *pr = part + (size_t)r * P;
    float bv = -INFINITY;
    int bi = N;
    for (int p = lane; p < P; p += 32)
        if (bi == N || beats(pr[p].m, pr[p].i, bv, bi)) {
            bv = pr[p].m;
            bi = pr[p].i;
        }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi != N && (bi == N || beats(ov, oi, bv, bi))) {
            bv = ov;
            bi = oi;
        }
    }
    float s = 0.f;
    for (int p = lane; p < P; p += 32) /* a slice whose max is the row's max adds its sum as is */
        s += pr[p].m == bv ? pr[p].s : pr[p].s * expf(pr[p].m - bv);
    s = qa_warp_sum(s);
    if (lane == 0) {
        idx[r] = bi;
        step_store(ids, state, cap, bi);
        if (prob)
            prob[r] = 1.0f / s;
    }
}

size_t qa_cu_argmax_split_bytes(int R, int N)
{
    int P = (N + QA_CU_ARGMAX_SLICE - 1) / QA_CU_ARGMAX_SLICE;
    return P > 1 ? (size_t)R * P * sizeof(qa_cu_argmax_part) : 0;
}

qa_status qa_cu_argmax(cudaStream_t s, int32_t *idx, float *prob, const float *x, int R, int N,
                       const qa_cu_suppress *sup, void *work, size_t work_bytes, const int32_t *state, int32_t *ids,
                       int cap, qa_err *e)
{
    if (R <= 0)
        return QA_OK;
    if (N <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "argmax: rows of %d columns", N);
    if (state && R != 1)
        return QA_FAIL(e, QA_ERR_INTERNAL, "argmax: a decode step picks one row, got %d", R);
    size_t need = qa_cu_argmax_split_bytes(R, N);
    /* split only few long rows: many rows (aligner heads) already fill the GPU one block each */
    if (need && R <= 64 && work && need <= work_bytes) {
        int P = (N + QA_CU_ARGMAX_SLICE - 1) / QA_CU_ARGMAX_SLICE;
        qa_cu_argmax_part *part = (qa_cu_argmax_part *)work;
        QA_CUDA_CHECK(e, qa_cu_launch(argmax_split_kernel, dim3(P, R), THREADS, 0, s, part, x, N, QA_CU_ARGMAX_SLICE,
                                      *sup, state));
        QA_CUDA_CHECK(e, qa_cu_launch(argmax_fold_kernel, R, 32, 0, s, idx, prob, part, P, N, state, ids, cap));
        return QA_OK;
    }
    QA_CUDA_CHECK(e, qa_cu_launch(argmax_kernel, R, THREADS, 0, s, idx, prob, x, N, *sup, state, ids, cap));
    return QA_OK;
}
