/* cuda_scratch.h — the CUDA backend's scratch formula as a plain function, so that memory/plan.c
 * can size the workspace for a CUDA device without loading libqa_cuda.so (the backend's
 * scratch_need returns the same number).
 *
 * Layout of be->scratch on CUDA: [cuBLASLt workspace, 32 MiB (cuBLAS' Hopper recommendation; passed to
 * every cublasLtMatmul, so it never allocates after load) | work area]. The work area holds either
 * the BF16 copy of a GEMM's activation rows (at most QA_CUDA_STAGE_ROWS rows of max_gemm_k at once; the
 * normalised rows of norm_gemm / norm_mlp, BF16, or FP32 for FP32 weights: at least one row)
 * or the im2col matrices of two conv chunks (max_im2col elements each, FP32 at most), or the partial
 * results of a split decode attention (attention_decode.cu: heads x QA_CUDA_DEC_SPLITS slices x
 * (head dim <= 128, + max and sum) floats). Ops run in stream order, so they share the area.
 * After the work area: QA_CUDA_SYNC_BYTES of arrival counters that no other op writes (the split kernel of
 * attention_decode.cu counts its finished blocks there so that the last one merges; zeroed when the
 * scratch is bound, device.cu, and left at zero by every kernel that uses them).
 */
#ifndef QA_CUDA_SCRATCH_H
#define QA_CUDA_SCRATCH_H

#include <stddef.h>

#include "backend.h"

#define QA_CUDA_BLAS_WS_BYTES ((size_t)32 << 20)
#define QA_CUDA_STAGE_ROWS 1024
#define QA_CUDA_DEC_SPLITS 64  /* most key slices of one decode attention */
#define QA_CUDA_DEC_MAX_DH 128 /* largest head dim of the split decode kernel */
#define QA_CUDA_SYNC_BYTES 1024 /* the arrival counters: 256 uint32 */

/* Weight load (models.c): the workspace is idle until the first request, so the on-device conversion of
 * F32/F16 checkpoint tensors (cuda_api.h upload_convert) stages each chunk of raw file bytes there. One
 * chunk is one pinned staging buffer (device.cu); the workspace on CUDA always holds the cuBLAS
 * workspace alone, so the plan covers the chunk without a term of its own (checked here). */
#define QA_CUDA_LOAD_CHUNK_BYTES ((size_t)8 << 20)
#ifdef __cplusplus
static_assert(QA_CUDA_BLAS_WS_BYTES >= QA_CUDA_LOAD_CHUNK_BYTES, "the CUDA workspace must hold one load chunk");
#else
_Static_assert(QA_CUDA_BLAS_WS_BYTES >= QA_CUDA_LOAD_CHUNK_BYTES, "the CUDA workspace must hold one load chunk");
#endif

static inline size_t qa_backend_cuda_scratch_need(const qa_scratch_dims *d)
{
    size_t rows = d->max_q > 0 && d->max_q < QA_CUDA_STAGE_ROWS ? (size_t)d->max_q : QA_CUDA_STAGE_ROWS;
    size_t k = d->max_gemm_k > 0 ? (size_t)d->max_gemm_k : 1;
    size_t stage = rows * k * 2;                                          /* BF16 rows */
    /* two chunks' FP32 im2col, i.e. four chunks' BF16: conv2's batched GEMM runs four chunks at a time (two
     * filled 52 of an H200's 132 SMs); a tile of the encoder's QA_ENC_CHUNK_TILE chunks goes in such batches */
    size_t im2col = (d->max_im2col > 0 ? (size_t)d->max_im2col : 0) * 4 * 2;
    size_t heads = d->max_heads > 0 ? (size_t)d->max_heads : 1;
    size_t partials = heads * QA_CUDA_DEC_SPLITS * (QA_CUDA_DEC_MAX_DH + 2) * 4;
    size_t norm_f32 = k * 4; /* one FP32 row of norm_gemm / norm_mlp with FP32 weights (norm_gemm.cu) */
    size_t work = stage > im2col ? stage : im2col;
    work = work > norm_f32 ? work : norm_f32;
    work = work > partials ? work : partials;
    return QA_CUDA_BLAS_WS_BYTES + ((work + 255) & ~(size_t)255) + QA_CUDA_SYNC_BYTES;
}

#endif
