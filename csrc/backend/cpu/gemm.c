/* gemm.c — y = x·Wᵀ (+ bias, + activation, + residual) on the CPU: OpenBLAS sgemm in float32.
 *
 * Contract (backend.h `gemm`): x[T,K], W (N,K) QA_F32 or QA_BF16, b (N) QA_F32 or NULL, y[T,N].
 * FP32 weights go straight to cblas_sgemm (the exact path used by the parity tests). BF16 weights
 * (dtype="bfloat16" on the CPU, half the RAM) are widened to float32 one tile of rows at a time in
 * the backend scratch and multiplied tile by tile, so no full float32 copy of a matrix ever exists.
 * bf16 -> f32 is exact (the top 16 bits of the float), so both paths compute the same product of the
 * same numbers. Reference: torch.nn.functional.linear; accumulation in float32 (OpenBLAS).
 * Threads: OpenBLAS's own (openblas_set_num_threads in backend_cpu.c).
 */
#include <cblas.h>
#include <string.h>

#include "cpu.h"

int64_t qa_cpu_tile_rows(const qa_tensor *W, int64_t K)
{
    (void)W;
    int64_t r = QA_CPU_TILE_FLOATS / (K > 0 ? K : 1);
    return r > 0 ? r : 1;
}

void qa_cpu_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
}

const float *qa_cpu_weight_rows(const qa_tensor *W, int64_t K, int64_t r0, int64_t rows, float *tile)
{
    if (W->dtype == QA_F32)
        return (const float *)W->data + r0 * K;
    qa_cpu_bf16_to_f32(tile, (const uint16_t *)W->data + r0 * K, rows * K);
    return tile;
}

void qa_cpu_matmul(float *y, int64_t ldy, const float *x, const qa_tensor *W, int64_t P, int64_t K,
                   int64_t N, float beta, int w_left, float *tile)
{
    int64_t step = W->dtype == QA_F32 ? N : qa_cpu_tile_rows(W, K);
    for (int64_t n0 = 0; n0 < N; n0 += step) {
        int64_t nr = N - n0 < step ? N - n0 : step;
        const float *w = qa_cpu_weight_rows(W, K, n0, nr, tile);
        if (w_left) /* y[n0:n0+nr, :P] = w[nr,K] · x[K,P] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)P, (int)K, 1.0f, w,
                        (int)K, x, (int)P, beta, y + n0 * ldy, (int)ldy);
        else /* y[:P, n0:n0+nr] = x[P,K] · w[nr,K]ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, (int)nr, (int)K, 1.0f, x,
                        (int)K, w, (int)K, beta, y + n0, (int)ldy);
    }
}

qa_status qa_cpu_check_weight(const qa_tensor *W, int64_t N, int64_t K, const char *op, qa_err *e)
{
    if (!W || !W->data)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: weight is missing", op);
    if (W->dtype != QA_F32 && W->dtype != QA_BF16)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: weight dtype %d, expected F32 or BF16", op, (int)W->dtype);
    int64_t n = W->ndim >= 1 ? W->shape[0] : 0, k = 1;
    for (int i = 1; i < W->ndim; i++)
        k *= W->shape[i];
    if (W->ndim < 2 || n != N || k != K)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: weight has %d dims, shape (%lld, %lld), expected (%lld, %lld)",
                       op, W->ndim, (long long)n, (long long)k, (long long)N, (long long)K);
    return QA_OK;
}

qa_status qa_cpu_vec(const qa_tensor *t, int64_t n, const char *what, const float **out, qa_err *e)
{
    *out = NULL;
    if (!t || !t->data)
        return QA_OK;
    if (t->dtype != QA_F32 || t->ndim != 1 || t->shape[0] != n)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: 1-D F32 tensor of %lld expected, got dtype %d ndim %d shape[0] %lld",
                       what, (long long)n, (int)t->dtype, t->ndim, (long long)(t->ndim ? t->shape[0] : 0));
    *out = (const float *)t->data;
    return QA_OK;
}

qa_status qa_cpu_gemm(qa_backend *be, float *y, const float *x, const qa_tensor *W, const qa_tensor *b,
                      int64_t T, int64_t K, int64_t N, qa_act act, int accumulate, qa_err *e)
{
    return qa_cpu_gemm_ld(be, y, N, x, W, b, T, K, N, act, accumulate, e);
}

qa_status qa_cpu_gemm_ld(qa_backend *be, float *y, int64_t ldy, const float *x, const qa_tensor *W, const qa_tensor *b,
                         int64_t T, int64_t K, int64_t N, qa_act act, int accumulate, qa_err *e)
{
    const float *bias;
    QA_TRY(qa_cpu_check_weight(W, N, K, "gemm", e));
    QA_TRY(qa_cpu_vec(b, N, "gemm bias", &bias, e));
    if (accumulate && act != QA_ACT_NONE)
        return QA_FAIL(e, QA_ERR_INTERNAL, "gemm: accumulate with an activation is not defined");
    if (ldy < N)
        return QA_FAIL(e, QA_ERR_INTERNAL, "gemm: output row stride %lld < %lld columns", (long long)ldy, (long long)N);
    if (T <= 0 || N <= 0)
        return QA_OK;
    float *tile = NULL;
    if (W->dtype != QA_F32 && !(tile = qa_cpu_scratch(be, 0, QA_CPU_TILE_FLOATS, "gemm bf16 tile", e)))
        return e->code;
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) { /* the bias goes in first so the sgemm adds onto it (beta = 1) */
        for (int64_t t = 0; t < T; t++) {
            float *row = y + t * ldy;
            if (accumulate)
                for (int64_t n = 0; n < N; n++)
                    row[n] += bias[n];
            else
                memcpy(row, bias, (size_t)N * sizeof *row);
        }
        beta = 1.0f;
    }
    qa_cpu_matmul(y, ldy, x, W, T, K, N, beta, 0, tile);
    if (act == QA_ACT_GELU && ldy == N)
        qa_cpu_gelu_inplace(y, T * N);
    else if (act == QA_ACT_GELU)
        for (int64_t t = 0; t < T; t++)
            qa_cpu_gelu_inplace(y + t * ldy, N);
    return QA_OK;
}

/* The CPU keeps activations FP32 even with BF16 weights, so it never asks producers for BF16 rows. */
qa_dtype qa_cpu_gemm_in_dtype(const qa_backend *be, const qa_tensor *W, int64_t T)
{
    (void)be;
    (void)W;
    (void)T;
    return QA_F32;
}

qa_status qa_cpu_gemm_bf16x(qa_backend *be, float *y, const void *x, const qa_tensor *W, const qa_tensor *b, int64_t T,
                            int64_t K, int64_t N, int accumulate, qa_err *e)
{
    (void)be;
    (void)y;
    (void)x;
    (void)W;
    (void)b;
    (void)accumulate;
    return QA_FAIL(e, QA_ERR_INTERNAL, "gemm_bf16x: [%lld, %lld] x %lld: the CPU takes FP32 rows only "
                   "(gemm_in_dtype)", (long long)T, (long long)K, (long long)N);
}
