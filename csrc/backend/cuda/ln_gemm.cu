/* ln_gemm.cu — the audio encoder's LayerNorm-then-Linear pairs (backend.h ln_gemm: q/k/v after
 * self_attn_layer_norm, fc1 after final_layer_norm) with the normalised rows written once.
 *
 * Contract: backend.h and cuda_ctx.cuh. Why: per encoder layer the separate ops wrote the LayerNorm rows
 * in FP32 and then rounded the same rows to BF16 once per GEMM (three times for q/k/v) — 24 layers x
 * five extra passes and launches (Nsight Compute, H200). Here, for BF16 weights, LayerNorm writes BF16
 * straight into the work area (the staging gemm.cu fills), the GEMMs read it with the bias in cuBLASLt's
 * epilogue, and fc1's GELU follows in place: the numbers of layernorm + gemm to the bit, up to the GEMM's
 * summation order. One to four rows (a clip of < 0.3 s) and FP32 weights take the separate ops' exact
 * path (FP32 rows in the work area, gemm.cu's GEMV or FP32 GEMM), so they need no plan of their own.
 */
#include "cuda_ctx.cuh"
#include "ops.cuh"

/* y[i] rows [t0, t0 + nr) from the staged rows h (BF16 or FP32, ld K). */
static qa_status gemms(qa_cuda_ctx *c, float *const y[], const void *h, int bf16, const void *const W[],
                       qa_dtype wt, const float *const b[], const int N[], int n, int t0, int nr, int K, int gelu,
                       qa_err *e)
{
    for (int i = 0; i < n; i++) {
        float *yr = y[i] + (size_t)t0 * N[i];
        if (bf16)
            QA_TRY(qa_cuda_gemm_staged_bias(c, yr, N[i], (const __nv_bfloat16 *)h, W[i], nr, N[i], K, 0.f, b[i], e));
        else
            QA_TRY(qa_cuda_gemm_bias(c, yr, N[i], (const float *)h, K, W[i], wt, nr, N[i], K, 0.f, b[i], e));
        if (gelu)
            QA_TRY(qa_cu_gelu(c->stream, yr, yr, (size_t)nr * N[i], e));
    }
    return QA_OK;
}

qa_status qa_cuda_ln_gemm(qa_cuda_ctx *c, float *const y[], const float *x, const float *ln_w, const float *ln_b,
                          float eps, const void *const W[], qa_dtype wt, const float *const b[], const int N[], int n,
                          int T, int K, int gelu, qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    /* BF16 weights are staged wherever gemm.cu itself would stage, i.e. unless every weight takes its GEMV
     * (which reads FP32 rows and stages nothing, so the FP32 rows in the work area stay intact) */
    int gemv = wt == QA_BF16, rows = 0;
    for (int i = 0; i < n; i++)
        gemv = gemv && qa_cu_gemv_bf16_fits((const float *)c->work, K, W[i], T, K);
    const int bf16 = wt == QA_BF16 && !gemv;
    QA_TRY(qa_cuda_work_rows(c, (size_t)K * (bf16 ? sizeof(__nv_bfloat16) : sizeof(float)), T, "ln_gemm", &rows, e));
    for (int t0 = 0; t0 < T; t0 += rows) {
        int nr = T - t0 < rows ? T - t0 : rows;
        const float *xr = x + (size_t)t0 * K;
        if (bf16)
            QA_TRY(qa_cu_layernorm_bf16(c->stream, (__nv_bfloat16 *)c->work, xr, ln_w, ln_b, nr, K, eps, e));
        else
            QA_TRY(qa_cu_layernorm(c->stream, (float *)c->work, xr, ln_w, ln_b, QA_F32, nr, K, eps, e));
        QA_TRY(gemms(c, y, c->work, bf16, W, wt, b, N, n, t0, nr, K, gelu, e));
    }
    return QA_OK;
}
