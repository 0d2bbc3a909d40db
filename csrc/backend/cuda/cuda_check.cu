/* cuda_check.cu — the failure reports behind QA_CUDA_CHECK / QA_CUBLAS_CHECK (cuda_check.h).
 *
 * Contract: fill the caller's qa_err with QA_ERR_CUDA, a message naming the error, the failing
 * statement and the function, and the file:line of the check (ggml's CUDA_CHECK_GEN reports the same
 * four facts). Out-of-memory from the runtime becomes QA_ERR_OOM with the device's free bytes, so the
 * Python side raises OutOfMemoryError with numbers (DESIGN.md §7).
 */
#include "cuda_check.h"

qa_status qa_cuda_fail(qa_err *e, cudaError_t err, const char *stmt, const char *func, const char *file, int line)
{
    if (err == cudaErrorMemoryAllocation) {
        size_t fr = 0, tot = 0;
        cudaGetLastError(); /* clear the (non-sticky) allocation error before asking */
        cudaMemGetInfo(&fr, &tot);
        qa_err_set(e, QA_ERR_OOM, file, line, "CUDA out of memory in %s: `%s` (device has %zu of %zu bytes free)",
                   func, stmt, fr, tot);
        if (e)
            e->available = fr;
        return QA_ERR_OOM;
    }
    return qa_err_set(e, QA_ERR_CUDA, file, line, "CUDA error %s (%s) in %s: `%s`", cudaGetErrorName(err),
                      cudaGetErrorString(err), func, stmt);
}

qa_status qa_cublas_fail(qa_err *e, cublasStatus_t st, const char *stmt, const char *func, const char *file,
                         int line)
{
    return qa_err_set(e, QA_ERR_CUDA, file, line, "cuBLASLt error %s (%s) in %s: `%s`",
                      cublasLtGetStatusName(st), cublasLtGetStatusString(st), func, stmt);
}
