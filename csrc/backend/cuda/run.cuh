/* run.cuh — how the CUDA backend's entry points run (backend.cu's op table, api.cu's cuda_api.h table):
 * RUN / RUN_AS wrap every op, and the argument checks they share.
 * Every op first refuses to run on a broken context, makes the context's device current for the calling
 * thread, brackets itself for QA_CUDA_PROFILE / QA_CUDA_MEMWATCH (profile.cu), and records a new CUDA
 * error as the breaking one (cuda_ctx.cuh). Internal to libqa_cuda.so; static helpers only.
 */
#ifndef QA_CUDA_RUN_CUH
#define QA_CUDA_RUN_CUH

#include <limits.h>

#include "cuda_ctx.cuh"
#include "ops.cuh"

static inline qa_cuda_ctx *ctx_of(const qa_backend *be) { return (qa_cuda_ctx *)be->ctx; }

/* Run an op implementation on a usable context and note a CUDA failure as the breaking one. */
#define RUN_AS(be, e, name, expr)                                                                \
    do {                                                                                         \
        qa_cuda_ctx *run_c_ = ctx_of(be);                                                        \
        if (!run_c_)                                                                             \
            return QA_FAIL(e, QA_ERR_INTERNAL, "CUDA backend used after destroy");               \
        QA_TRY(qa_cuda_ctx_enter(run_c_, e));                                                    \
        int prof_ = run_c_->prof && !run_c_->capturing; /* no event waits inside a recording */  \
        if (prof_)                                                                               \
            qa_cuda_prof_begin(run_c_->prof, run_c_->stream);                                    \
        qa_status run_s_ = (expr);                                                               \
        if (prof_)                                                                               \
            qa_cuda_prof_end(run_c_->prof, run_c_->stream, (name));                              \
        if (run_c_->memwatch)                                                                    \
            qa_cuda_memwatch(run_c_, (name));                                                    \
        return qa_cuda_ctx_note(run_c_, run_s_, e);                                              \
    } while (0)
#define RUN(be, e, expr) RUN_AS(be, e, __func__, expr)

/* Dimensions passed to cuBLAS / grids as int. */
static inline qa_status int_dims(qa_err *e, const char *op, int n, const int64_t *v)
{
    for (int i = 0; i < n; i++)
        if (v[i] < 0 || v[i] > INT_MAX)
            return QA_FAIL(e, QA_ERR_INTERNAL, "%s: dimension #%d = %lld outside [0, %d]", op, i, (long long)v[i],
                           INT_MAX);
    return QA_OK;
}
#define INT_DIMS(e, op, ...)                                                                     \
    do {                                                                                         \
        const int64_t dims_[] = {__VA_ARGS__};                                                   \
        QA_TRY(int_dims(e, op, (int)(sizeof dims_ / sizeof dims_[0]), dims_));                   \
    } while (0)

/* A 1-D float32 tensor of n elements (biases, norm weights: backend.h says always QA_F32). */
static inline qa_status vec_ok(qa_err *e, const char *op, const char *what, const qa_tensor *t, int64_t n)
{
    if (!t || !t->data)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: %s missing", op, what);
    if (t->dtype != QA_F32 || t->ndim != 1 || t->shape[0] != n)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: %s has dtype %d, %d dims, %lld elements; expected f32 [%lld]", op,
                       what, (int)t->dtype, t->ndim, (long long)(t->ndim ? t->shape[0] : 0), (long long)n);
    return QA_OK;
}

/* A GEMM weight (N, K) or conv weight (N, K/9, 3, 3) in BF16 or F32. */
static inline qa_status weight_ok(qa_err *e, const char *op, const qa_tensor *W, int64_t N, int64_t K)
{
    if (!W || !W->data)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: weight missing", op);
    QA_TRY(qa_cu_check_wdtype(W->dtype, op, e));
    int64_t k = W->ndim == 2 ? W->shape[1] : W->ndim == 4 ? W->shape[1] * W->shape[2] * W->shape[3] : -1;
    if (W->shape[0] != N || k != K)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: weight of %d dims is (%lld, %lld as K), expected (%lld, %lld)", op,
                       W->ndim, (long long)W->shape[0], (long long)k, (long long)N, (long long)K);
    return QA_OK;
}

#endif
