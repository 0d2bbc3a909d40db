/* cuda_ctx.cuh — the state of one opened CUDA backend (one device, one stream, one cuBLAS handle).
 *
 * Contract: created by qa_cuda_ctx_open (device.cu), freed by qa_cuda_ctx_close. It owns no device
 * memory of its own: the cuBLAS workspace and the BF16 staging buffer for GEMM operands are views
 * into the arena, handed over by qa_cuda_ctx_set_scratch after load_models() allocated the arena
 * (DESIGN.md §5: every device byte comes from the one allocation). After the first CUDA error the
 * context is "broken": every later call fails with the first error's message (a sticky CUDA error
 * poisons the process's context; we say so instead of crashing, STYLE.md §2.4).
 */
#ifndef QA_CUDA_CTX_CUH
#define QA_CUDA_CTX_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda_check.h"

extern "C" {
#include "../../model/weights.h"
}

typedef struct qa_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;              /* cuBLAS workspace: view into the arena (NULL until set) */
    size_t blas_ws_bytes;
    __nv_bfloat16 *stage;       /* BF16 copy of a GEMM's activation operand: view into the arena */
    size_t stage_elems;
    int broken;                 /* set after the first CUDA error */
    qa_err first_err;           /* that error, repeated to every later caller */
    void *pin[2];               /* pinned upload staging (double buffer), only during load */
    cudaEvent_t pin_done[2];    /* recorded after the copy out of pin[i] was enqueued */
    size_t pin_bytes;
    int pin_next;
    size_t free_at_open, free_after_handles, total_at_open;
    char name[256];             /* device name, for reports */
    int cc_major, cc_minor;
    size_t total_mem;
} qa_cuda_ctx;

/* Bytes of cuBLAS workspace the backend wants (cuBLAS' Hopper recommendation: 32 MiB). */
#define QA_CUDA_BLAS_WS_BYTES ((size_t)32 << 20)

/* device.cu */
qa_status qa_cuda_ctx_open(qa_cuda_ctx **out, int device, qa_err *e); /* caller frees with ctx_close */
void qa_cuda_ctx_close(qa_cuda_ctx *c);
/* Hand the arena views over (borrowed until close); stage_bytes / 2 BF16 elements of staging. */
qa_status qa_cuda_ctx_set_scratch(qa_cuda_ctx *c, void *blas_ws, size_t blas_ws_bytes, void *stage,
                                  size_t stage_bytes, qa_err *e);
/* QA_OK, or the first error again (QA_ERR_CUDA) when the context is broken. */
qa_status qa_cuda_ctx_usable(qa_cuda_ctx *c, qa_err *e);
/* Record a failed status: CUDA errors break the context. Returns s. */
qa_status qa_cuda_ctx_note(qa_cuda_ctx *c, qa_status s, const qa_err *e);

/* gemm.cu */
/* y[T, N] (row stride ldy) = x[T, K] (row stride ldx) @ W[N, K]^T + beta * y. W is BF16 (x is
 * rounded to BF16 in the staging buffer, products accumulate in FP32: cuBLAS GemmEx, COMPUTE_32F)
 * or FP32 (true FP32, TF32 off: CUBLAS_COMPUTE_32F with the default math mode). */
qa_status qa_cuda_gemm(qa_cuda_ctx *c, float *y, int ldy, const float *x, int ldx, const void *w, qa_dtype wt,
                       int T, int N, int K, float beta, qa_err *e);
/* For b < batch: C_b[M, N] = A[M, K] @ B_b[K, N] (row-major; B_b = B + b*K*N, C_b = C + b*M*N); A is a
 * weight (BF16 or FP32). The convolutions: A = conv weight [Cout, Cin*9], B_b = im2col of image b. */
qa_status qa_cuda_gemm_wx_batched(qa_cuda_ctx *c, float *C, const void *A, qa_dtype at, const float *B, int M,
                                  int N, int K, int batch, qa_err *e);

#endif
