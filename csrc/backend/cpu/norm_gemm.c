/* norm_gemm.c — the Norm-then-Linear pairs on the CPU: the decoder's norm_gemm (q/k/v) and norm_mlp
 * (Qwen3MLP with its post_attention_layernorm and the residual add), the encoder's ln_gemm (LayerNorm, then
 * q/k/v or fc1 with their biases) and ln_mlp (ln_gemm into fc1, then fc2 onto x).
 *
 * Contract (backend.h `norm_gemm`, `norm_mlp`): the plain composition of the separate ops — rmsnorm
 * into a temporary, then gemm per weight (and silu·up, then the down gemm accumulating into x) — so
 * the numbers are exactly those of the unfused sequence the decoder ran before API 6. The temporary
 * is the scratch after the BF16 weight tile (cpu.h layout), filled a block of rows at a time; the
 * workspace no longer holds a normalised copy of x. (The fusion pays on the GPU, where it saves
 * kernels per decode step; here it only keeps one contract for both backends.)
 */
#include "cpu.h"

/* Rows of K floats the scratch holds after the weight tile (at most T), and where they start. */
static qa_status norm_rows(qa_backend *be, int64_t T, int64_t K, const char *op, int64_t *rows, float **h,
                           qa_err *e)
{
    int64_t floats = (int64_t)(be->scratch_bytes / sizeof(float)) - QA_CPU_TILE_FLOATS;
    int64_t r = floats > 0 && K > 0 ? floats / K : 0;
    if (r == 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: scratch of %zu bytes holds no normalised row of %lld after the "
                       "weight tile (scratch smaller than scratch_need)", op, be->scratch_bytes, (long long)K);
    *rows = r < T ? r : T;
    *h = qa_cpu_scratch(be, QA_CPU_TILE_FLOATS, *rows * K, op, e);
    return *h ? QA_OK : e->code;
}

/* y[i] = act(norm(x) · W[i]ᵀ + b[i]) (+ y[i] when accumulate), a block of normalised rows at a time: LayerNorm
 * when ln_b is given (the encoder), else RMSNorm (the decoder); b may be NULL (no biases). */
static qa_status norm_then_gemms(qa_backend *be, const char *op, float *const y[], int64_t ldy, const float *x,
                                 const qa_tensor *norm_w, const qa_tensor *ln_b, float eps, const qa_tensor *const W[],
                                 const qa_tensor *const b[], const int64_t N[], int n, int64_t T, int64_t K,
                                 qa_act act, int accumulate, qa_err *e)
{
    if (n < 1 || n > QA_NORM_GEMM_MAX)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: %d weights, expected 1 to %d", op, n, QA_NORM_GEMM_MAX);
    for (int i = 0; i < n; i++)
        QA_TRY(qa_cpu_check_weight(W[i], N[i], K, op, e));
    if (T <= 0)
        return QA_OK;
    int64_t rows = 0;
    float *h = NULL;
    QA_TRY(norm_rows(be, T, K, op, &rows, &h, e));
    for (int64_t r0 = 0; r0 < T; r0 += rows) {
        int64_t nr = T - r0 < rows ? T - r0 : rows;
        if (ln_b)
            QA_TRY(qa_cpu_layernorm(be, h, x + r0 * K, norm_w, ln_b, nr, K, eps, e));
        else
            QA_TRY(qa_cpu_rmsnorm(be, h, x + r0 * K, norm_w, nr, K, eps, e));
        for (int i = 0; i < n; i++)
            QA_TRY(qa_cpu_gemm_ld(be, y[i] + r0 * (ldy ? ldy : N[i]), ldy ? ldy : N[i], h, W[i], b ? b[i] : NULL, nr,
                                  K, N[i], act, accumulate, e));
    }
    return QA_OK;
}

qa_status qa_cpu_norm_gemm(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *norm_w,
                           float eps, const qa_tensor *const W[], const int64_t N[], int n, int64_t T, int64_t K,
                           int accumulate, qa_err *e)
{
    return norm_then_gemms(be, "norm_gemm", y, ldy, x, norm_w, NULL, eps, W, NULL, N, n, T, K, QA_ACT_NONE,
                           accumulate, e);
}

qa_status qa_cpu_norm_mlp(qa_backend *be, float *x, const qa_tensor *norm_w, float eps, const qa_tensor *Wg,
                          const qa_tensor *Wu, const qa_tensor *Wd, float *gu_buf, int64_t T, int64_t D, int64_t F,
                          qa_err *e)
{
    /* every row is normalised (into g, u) before the down GEMM changes x: a row's norm reads that row only.
     * g and u are the two halves of gu_buf (no single GEMM to gain here: OpenBLAS runs one per weight anyway) */
    float *g = gu_buf, *u = gu_buf + T * F;
    float *const gu[2] = {g, u};
    const qa_tensor *const W[2] = {Wg, Wu};
    const int64_t N[2] = {F, F};
    QA_TRY(qa_cpu_check_weight(Wd, D, F, "norm_mlp down", e));
    QA_TRY(qa_cpu_norm_gemm(be, gu, 0, x, norm_w, eps, W, N, 2, T, D, 0, e));
    qa_cpu_silu_mul(g, g, u, T * F);
    return qa_cpu_gemm(be, x, g, Wd, NULL, T, F, D, QA_ACT_NONE, 1, e);
}

qa_status qa_cpu_ln_gemm(qa_backend *be, float *const y[], int64_t ldy, const float *x, const qa_tensor *ln_w, const qa_tensor *ln_b,
                         float eps, const qa_tensor *const W[], const qa_tensor *const b[], const int64_t N[], int n,
                         int64_t T, int64_t K, qa_act act, qa_err *e)
{
    if (!ln_b)
        return QA_FAIL(e, QA_ERR_INTERNAL, "ln_gemm: the LayerNorm bias is missing");
    return norm_then_gemms(be, "ln_gemm", y, ldy, x, ln_w, ln_b, eps, W, b, N, n, T, K, act, 0, e);
}

qa_status qa_cpu_ln_mlp(qa_backend *be, float *x, const qa_tensor *ln_w, const qa_tensor *ln_b, float eps,
                        const qa_tensor *W1, const qa_tensor *b1, const qa_tensor *W2, const qa_tensor *b2, float *f,
                        int64_t T, int64_t E, int64_t F, qa_err *e)
{
    /* every row is normalised (into f) before fc2 changes x: a row's LayerNorm reads that row only */
    float *const y[1] = {f};
    const qa_tensor *const W[1] = {W1}, *const b[1] = {b1};
    const int64_t N[1] = {F};
    QA_TRY(qa_cpu_check_weight(W2, E, F, "ln_mlp fc2", e));
    QA_TRY(qa_cpu_ln_gemm(be, y, 0, x, ln_w, ln_b, eps, W, b, N, 1, T, E, QA_ACT_GELU, e));
    return qa_cpu_gemm(be, x, f, W2, b2, T, F, E, QA_ACT_NONE, 1, e);
}
