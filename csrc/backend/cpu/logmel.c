/* logmel.c — the CPU backend's mel_tables / log_mel ops (backend.h): frontend/mel.c, unchanged.
 *
 * Contract (backend.h log_mel): feat [M, T] with row stride T = the valid frames of n samples.
 * Why call up into the frontend: the CPU reference IS frontend/mel.c (double-precision FFT, sparse
 * filters; tests/test_mel.py against transformers), and the CPU backend's memory is host memory, so
 * the op runs that code on the work area instead of keeping a second copy of the math: the features
 * are bit for bit those of qwen3align.log_mel (tests/test_device_mel.py). The constant tables of the
 * arena are a CUDA need; mel.c rebuilds its small tables per call (well under 1 ms).
 */
#include "cpu.h"

qa_status qa_cpu_mel_tables(qa_backend *be, void *tables, const float *filters_host, qa_err *e)
{
    return QA_OK; /* nothing to precompute: see the file comment */
}

qa_status qa_cpu_log_mel(qa_backend *be, float *feat, const float *samples, int64_t n, const void *tables,
                         void *work, size_t work_bytes, qa_err *e)
{
    if (n < 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "log_mel: %lld samples", (long long)n);
    if (work_bytes < qa_mel_workspace_bytes()) /* QA_MEL_CPU_WORK_BYTES in backend.h is too small */
        return QA_FAIL(e, QA_ERR_INTERNAL, "log_mel: work area of %zu bytes, frontend/mel.c needs %zu",
                       work_bytes, qa_mel_workspace_bytes());
    size_t T = qa_mel_frames(n > 0 ? (size_t)n : 0);
    return qa_log_mel_ld(samples, (size_t)n, feat, T, work, work_bytes, e);
}
