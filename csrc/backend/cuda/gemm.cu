/* gemm.cu — the Linear layers and the convolutions' matrix products (cuBLASLt via matmul.cu, GEMV).
 *
 * Contract: cuda_ctx.cuh. Row-major y[T, N] = x[T, K] W[N, K]^T is, in cuBLAS' column-major terms,
 * y^T = W x^T: (OP_T, OP_N, m = N, n = T, k = K, A = W (ld K), B = x (ld ldx), C = y (ld ldy)), run by
 * matmul.cu (cuBLASLt, algorithm planned per bucket of T).
 * BF16 weights: the FP32 activation rows are rounded to BF16 into the scratch work area (in row
 * blocks when it is smaller than T*K) and multiplied with FP32 accumulation and FP32 output
 * (CUBLAS_COMPUTE_32F), what torch does for a bf16 Linear except that our output stays FP32. One to four
 * rows (decode) go to gemv.cu instead: the same BF16 products, at HBM bandwidth. qa_cuda_gemm_staged is the
 * cuBLASLt half alone, for operands norm_gemm.cu has already written as BF16 into the work area;
 * qa_cuda_gemm_bf16x multiplies BF16 rows a producer wrote elsewhere (backend.h gemm_bf16x), and
 * qa_cuda_gemm_staged_to_bf16 stores the FP32 sums rounded to BF16 (norm_mlp's gate | up, as torch's output).
 * FP32 weights (dtype="float32"): CUBLAS_COMPUTE_32F with CUBLAS_DEFAULT_MATH — no TF32 — so the GPU
 * matches the CPU reference to FP32 rounding (the parity tests rely on it).
 * cuBLASLt runs on the context's stream with its workspace in the arena scratch (qa_cuda_bind_scratch),
 * so it allocates nothing after load (DESIGN.md §5).
 */
#include "cuda_ctx.cuh"
#include "ops.cuh"

static int cuda_type(qa_dtype t) { return t == QA_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

/* y[T, N] (ld ldy, type yt) = x[T, K] (ld ldx, type xt) W[N, K]^T (type wt) + beta y (+ bias[N] in the epilogue
 * when given), FP32 compute; the output FP32, or BF16 rounded once at the store (norm_mlp's gate | up). */
static qa_status linear_to(qa_cuda_ctx *c, void *y, int yt, int ldy, const void *x, int xt, int ldx, const void *w,
                           int wt, int T, int N, int K, float beta, const float *bias, qa_err *e)
{
    const float alpha = 1.0f;
    qa_mm g = {CUBLAS_OP_T, CUBLAS_OP_N, wt, xt, yt, CUBLAS_COMPUTE_32F, N, T, K, 1, K, ldx, ldy, 0, 0, 0,
               QA_MM_VAR_N, 0, bias};
    return qa_cuda_matmul(c, &g, &alpha, w, x, &beta, y, e);
}

static qa_status linear(qa_cuda_ctx *c, float *y, int ldy, const void *x, int xt, int ldx, const void *w, int wt,
                        int T, int N, int K, float beta, const float *bias, qa_err *e)
{
    return linear_to(c, y, CUDA_R_32F, ldy, x, xt, ldx, w, wt, T, N, K, beta, bias, e);
}

qa_status qa_cuda_work_rows(const qa_cuda_ctx *c, size_t row_bytes, int want, const char *what, int *rows,
                            qa_err *e)
{
    size_t r = row_bytes > 0 ? c->work_bytes / row_bytes : 0;
    if (r == 0)
        return QA_FAIL(e, QA_ERR_INTERNAL,
                       "%s: scratch work area of %zu bytes cannot hold one row of %zu bytes (scratch not set or "
                       "smaller than scratch_need)", what, c->work_bytes, row_bytes);
    *rows = r < (size_t)want ? (int)r : want;
    return QA_OK;
}

qa_status qa_cuda_gemm_staged_bias(qa_cuda_ctx *c, float *y, int ldy, const __nv_bfloat16 *xb, const void *w, int T,
                                   int N, int K, float beta, const float *bias, qa_err *e)
{
    return linear(c, y, ldy, xb, CUDA_R_16BF, K, w, CUDA_R_16BF, T, N, K, beta, bias, e);
}

qa_status qa_cuda_gemm_staged(qa_cuda_ctx *c, float *y, int ldy, const __nv_bfloat16 *xb, const void *w, int T,
                              int N, int K, float beta, qa_err *e)
{
    return qa_cuda_gemm_staged_bias(c, y, ldy, xb, w, T, N, K, beta, NULL, e);
}

qa_status qa_cuda_gemm_staged_to_bf16(qa_cuda_ctx *c, __nv_bfloat16 *y, int ldy, const __nv_bfloat16 *xb, const void *w,
                                     int T, int N, int K, qa_err *e)
{
    return linear_to(c, y, CUDA_R_16BF, ldy, xb, CUDA_R_16BF, K, w, CUDA_R_16BF, T, N, K, 0.f, NULL, e);
}

qa_status qa_cuda_gemm_bias(qa_cuda_ctx *c, float *y, int ldy, const float *x, int ldx, const void *w, qa_dtype wt,
                            int T, int N, int K, float beta, const float *bias, qa_err *e)
{
    QA_TRY(qa_cu_check_wdtype(wt, "gemm", e));
    if (T <= 0 || N <= 0)
        return QA_OK;
    if (wt == QA_F32)
        return linear(c, y, ldy, x, CUDA_R_32F, ldx, w, CUDA_R_32F, T, N, K, beta, bias, e);
    if (qa_cu_gemv_bf16_fits(x, ldx, w, T, K)) { /* decode rows: a bandwidth-bound pass over W */
        QA_TRY(qa_cu_gemv_bf16(c->stream, y, ldy, x, ldx, w, T, N, K, beta, e));
        if (!bias)
            return QA_OK;
        if (ldy == N) /* the bias pass walks whole rows: one per row otherwise (<= QA_CU_GEMV_MAX_ROWS) */
            return qa_cu_bias_act(c->stream, y, bias, (size_t)T * N, N, 1, 0, e);
        for (int t = 0; t < T; t++)
            QA_TRY(qa_cu_bias_act(c->stream, y + (size_t)t * ldy, bias, (size_t)N, N, 1, 0, e));
        return QA_OK;
    }
    int rows = 0;
    QA_TRY(qa_cuda_work_rows(c, sizeof(__nv_bfloat16) * (size_t)K, T, "gemm", &rows, e));
    __nv_bfloat16 *stage = (__nv_bfloat16 *)c->work;
    for (int t0 = 0; t0 < T; t0 += rows) {
        int n = T - t0 < rows ? T - t0 : rows;
        QA_TRY(qa_cu_f32_to_bf16_rows(c->stream, stage, x + (size_t)t0 * ldx, n, K, ldx, e));
        QA_TRY(linear(c, y + (size_t)t0 * ldy, ldy, stage, CUDA_R_16BF, K, w, CUDA_R_16BF, n, N, K, beta, bias, e));
    }
    return QA_OK;
}

/* The row blocks are qa_cuda_gemm_bias's staging blocks (the work area is not used, only measured), so each
 * cuBLASLt call has the shape, bucket and plan it had on the staged copy: the same bits. */
qa_status qa_cuda_gemm_bf16x(qa_cuda_ctx *c, float *y, int ldy, const __nv_bfloat16 *xb, const void *w, int T, int N,
                             int K, float beta, const float *bias, qa_err *e)
{
    if (T <= 0 || N <= 0)
        return QA_OK;
    int rows = 0;
    QA_TRY(qa_cuda_work_rows(c, sizeof(__nv_bfloat16) * (size_t)K, T, "gemm_bf16x", &rows, e));
    for (int t0 = 0; t0 < T; t0 += rows) {
        int n = T - t0 < rows ? T - t0 : rows;
        QA_TRY(qa_cuda_gemm_staged_bias(c, y + (size_t)t0 * ldy, ldy, xb + (size_t)t0 * K, w, n, N, K, beta, bias, e));
    }
    return QA_OK;
}

qa_status qa_cuda_gemm(qa_cuda_ctx *c, float *y, int ldy, const float *x, int ldx, const void *w, qa_dtype wt,
                       int T, int N, int K, float beta, qa_err *e)
{
    return qa_cuda_gemm_bias(c, y, ldy, x, ldx, w, wt, T, N, K, beta, NULL, e);
}

qa_status qa_cuda_gemm_wx_batched(qa_cuda_ctx *c, float *C, const void *A, qa_dtype at, const void *B, int M,
                                  int N, int K, int batch, qa_err *e)
{
    QA_TRY(qa_cu_check_wdtype(at, "gemm_wx_batched", e));
    if (batch <= 0 || M <= 0 || N <= 0)
        return QA_OK;
    const float alpha = 1.0f, beta = 0.0f;
    /* Column-major view: C_b^T[N, M] = B_b^T[N, K] A^T[K, M]; A is shared (stride 0); the chunk count
     * (batch) is what varies */
    qa_mm g = {CUBLAS_OP_N, CUBLAS_OP_N, cuda_type(at), cuda_type(at), CUDA_R_32F, CUBLAS_COMPUTE_32F, N, M, K,
               batch, N, K, N, (long long)K * N, 0, (long long)M * N, QA_MM_VAR_BATCH, 0, NULL};
    return qa_cuda_matmul(c, &g, &alpha, B, A, &beta, C, e);
}
