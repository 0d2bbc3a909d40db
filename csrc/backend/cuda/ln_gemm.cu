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
 * q/k/v with their weights and biases adjacent (API 8) run as one GEMM with one [3E] bias epilogue.
 * ln_mlp (backend.h, API 8) is ln_gemm into fc1 then fc2 onto x; with BF16 weights fc1's GELU writes fc2's BF16
 * operand into the work area (act.cu gelu_bf16) instead of FP32 in place that gemm.cu then reads and rounds into
 * the same work area: one pass over [rows, F] instead of three and one launch less per tile, the same bits.
 */
#include "cuda_ctx.cuh"
#include "ops.cuh"

/* y[i] rows [t0, t0 + nr) (row stride ld[i]) from the staged rows h (BF16 or FP32, ld K); joined: the n weights as
 * one of N = ld[0] (qa_cuda_one_gemm), the biases as one of ld[0] too. */
static qa_status gemms(qa_cuda_ctx *c, float *const y[], const int ld[], int joined, const void *h, int bf16,
                       const void *const W[], qa_dtype wt, const float *const b[], const int N[], int n, int t0, int nr,
                       int K, int gelu, qa_err *e)
{
    for (int i = 0; i < (joined ? 1 : n); i++) {
        float *yr = y[i] + (size_t)t0 * ld[i];
        int Ni = joined ? ld[0] : N[i];
        if (bf16)
            QA_TRY(qa_cuda_gemm_staged_bias(c, yr, ld[i], (const __nv_bfloat16 *)h, W[i], nr, Ni, K, 0.f, b[i], e));
        else
            QA_TRY(qa_cuda_gemm_bias(c, yr, ld[i], (const float *)h, K, W[i], wt, nr, Ni, K, 0.f, b[i], e));
        if (gelu) /* backend.cu: GELU outputs are contiguous */
            QA_TRY(qa_cu_gelu(c->stream, yr, yr, (size_t)nr * Ni, e));
    }
    return QA_OK;
}

qa_status qa_cuda_ln_gemm(qa_cuda_ctx *c, float *const y[], int ldy, const float *x, const float *ln_w,
                          const float *ln_b, float eps, const void *const W[], qa_dtype wt, const float *const b[],
                          const int N[], int n, int T, int K, int gelu, qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    const int joined = qa_cuda_one_gemm(c, y, ldy, W, wt, b, N, n, K);
    int ld[QA_NORM_GEMM_MAX];
    for (int i = 0; i < n; i++)
        ld[i] = ldy ? ldy : N[i];
    /* BF16 weights are staged wherever gemm.cu itself would stage, i.e. unless every GEMM takes its GEMV
     * (which reads FP32 rows and stages nothing, so the FP32 rows in the work area stay intact) */
    int gemv = wt == QA_BF16, rows = 0;
    for (int i = 0; i < (joined ? 1 : n); i++)
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
        QA_TRY(gemms(c, y, ld, joined, c->work, bf16, W, wt, b, N, n, t0, nr, K, gelu, e));
    }
    return QA_OK;
}

/* fc2's operand written by the GELU: fc1 (ln_gemm without act) into f, then per staging block of gemm.cu's size
 * (rows of F BF16 values) GELU -> BF16 work area -> fc2 with the bias, accumulated onto x. Both GEMMs keep the
 * row blocks, hence the cuBLASLt plans and the bits, of the two-op path. */
static qa_status mlp_handoff(qa_cuda_ctx *c, float *x, const float *ln_w, const float *ln_b, float eps,
                             const void *W1, const float *b1, const void *W2, const float *b2, float *f, int T, int E,
                             int F, qa_err *e)
{
    float *const y[1] = {f};
    const void *const W[1] = {W1};
    const float *const b[1] = {b1};
    const int N[1] = {F};
    QA_TRY(qa_cuda_ln_gemm(c, y, 0, x, ln_w, ln_b, eps, W, QA_BF16, b, N, 1, T, E, 0, e));
    int rows = 0;
    QA_TRY(qa_cuda_work_rows(c, sizeof(__nv_bfloat16) * (size_t)F, T, "ln_mlp", &rows, e));
    __nv_bfloat16 *stage = (__nv_bfloat16 *)c->work;
    for (int t0 = 0; t0 < T; t0 += rows) {
        int nr = T - t0 < rows ? T - t0 : rows;
        QA_TRY(qa_cu_gelu_bf16(c->stream, stage, f + (size_t)t0 * F, (size_t)nr * F, e));
        QA_TRY(qa_cuda_gemm_staged_bias(c, x + (size_t)t0 * E, E, stage, W2, nr, E, F, 1.f, b2, e));
    }
    return QA_OK;
}

qa_status qa_cuda_ln_mlp(qa_cuda_ctx *c, float *x, const float *ln_w, const float *ln_b, float eps, const void *W1,
                         const float *b1, const void *W2, const float *b2, qa_dtype wt, float *f, int T, int E, int F,
                         qa_err *e)
{
    if (T <= 0)
        return QA_OK;
    /* where either GEMM takes gemm.cu's GEMV (FP32 rows, 1..4 of them) or the weights are FP32, the two ops */
    int handoff = c->bf16_handoff && wt == QA_BF16 && !qa_cu_gemv_bf16_fits((const float *)c->work, E, W1, T, E) &&
                  !qa_cu_gemv_bf16_fits(f, F, W2, T, F);
    if (handoff)
        return mlp_handoff(c, x, ln_w, ln_b, eps, W1, b1, W2, b2, f, T, E, F, e);
    float *const y[1] = {f};
    const void *const W[1] = {W1};
    const float *const b[1] = {b1};
    const int N[1] = {F};
    QA_TRY(qa_cuda_ln_gemm(c, y, 0, x, ln_w, ln_b, eps, W, wt, b, N, 1, T, E, 1, e));
    return qa_cuda_gemm_bias(c, x, E, f, F, W2, wt, T, E, F, 1.f, b2, e);
}
