/* cuda_check.h — one check macro for every CUDA runtime / cuBLAS call and kernel launch.
 *
 * Contract: QA_CUDA_CHECK(e, stmt) evaluates stmt; when it is not cudaSuccess it fills the caller's
 * qa_err with QA_ERR_CUDA, the statement text, the enclosing function, file and line, and RETURNS
 * that status from the enclosing function (which must return qa_status). It never exits or aborts
 * (llm.c's cudaCheck and ggml's CUDA_CHECK_GEN record the same facts but exit; we return, STYLE.md
 * §2.4). QA_LAUNCH_CHECK(e) follows each kernel launch with cudaGetLastError(), so a bad launch
 * configuration is reported at its launch site instead of at the next synchronisation.
 * The backend glue (backend.cu) marks the whole backend unusable after the first CUDA error
 * (sticky errors such as an illegal address poison the context).
 * Only included by the .cu files of csrc/backend/cuda (C++ compiled by nvcc).
 */
#ifndef QA_CUDA_CHECK_H
#define QA_CUDA_CHECK_H

#include <cublasLt.h>
#include <cuda_runtime.h>

extern "C" {
#include "../../core/status.h"
}

/* Fill e with a CUDA failure report and return QA_ERR_CUDA (cuda_check.cu). */
qa_status qa_cuda_fail(qa_err *e, cudaError_t err, const char *stmt, const char *func, const char *file,
                       int line);
qa_status qa_cublas_fail(qa_err *e, cublasStatus_t st, const char *stmt, const char *func, const char *file,
                         int line);

#define QA_CUDA_CHECK(e, stmt)                                                        \
    do {                                                                              \
        cudaError_t qa_ce_ = (stmt);                                                  \
        if (qa_ce_ != cudaSuccess)                                                    \
            return qa_cuda_fail((e), qa_ce_, #stmt, __func__, __FILE__, __LINE__);    \
    } while (0)

#define QA_CUBLAS_CHECK(e, stmt)                                                      \
    do {                                                                              \
        cublasStatus_t qa_cb_ = (stmt);                                               \
        if (qa_cb_ != CUBLAS_STATUS_SUCCESS)                                          \
            return qa_cublas_fail((e), qa_cb_, #stmt, __func__, __FILE__, __LINE__);  \
    } while (0)

/* After every <<<...>>> launch: launch-configuration errors surface here, with this line. */
#define QA_LAUNCH_CHECK(e) QA_CUDA_CHECK((e), cudaGetLastError())

/* Grid size for n items at `per` items per block, checked against the 2^31-1 limit by callers. */
static inline unsigned qa_cuda_blocks(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

/* Blocks of 256 threads for a grid-stride loop over n elements (capped: the loop covers the rest). */
static inline unsigned qa_cuda_grid(size_t n)
{
    size_t b = (n + 255) / 256;
    return (unsigned)(b > 65535u * 16u ? 65535u * 16u : b);
}

#endif
