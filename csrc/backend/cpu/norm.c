/* norm.c — LayerNorm (audio encoder) and RMSNorm (Qwen3 text model, incl. per-head q/k norm), CPU.
 *
 * Contract (backend.h `layernorm`, `rmsnorm`): rows of width D, y may alias x, weights 1-D F32.
 * LayerNorm matches torch.nn.LayerNorm (biased variance, eps inside the sqrt, eps 1e-5 for the
 * encoder); RMSNorm matches transformers Qwen3RMSNorm: x · rsqrt(mean(x²) + eps) in float32, then
 * × weight (eps 1e-6). Row statistics are accumulated in double: the reference ran in float64 for
 * the LayerNorm, and a double sum only brings the float32 RMSNorm closer to its exact value.
 * The per-head q_norm/k_norm is the same RMSNorm row by row (qkv.c calls qa_cpu_rmsnorm_row per head).
 */
#include <math.h>

#include "cpu.h"

qa_status qa_cpu_layernorm(qa_backend *be, float *y, const float *x, const qa_tensor *w,
                           const qa_tensor *b, int64_t T, int64_t D, float eps, qa_err *e)
{
    const float *wv, *bv;
    QA_TRY(qa_cpu_vec(w, D, "layernorm weight", &wv, e));
    QA_TRY(qa_cpu_vec(b, D, "layernorm bias", &bv, e));
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < D; i++)
            mean += xr[i];
        mean /= (double)D;
        for (int64_t i = 0; i < D; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        double inv = 1.0 / sqrt(var / (double)D + (double)eps);
        for (int64_t i = 0; i < D; i++) {
            double v = (xr[i] - mean) * inv;
            if (wv)
                v *= wv[i];
            if (bv)
                v += bv[i];
            yr[i] = (float)v;
        }
    }
    return QA_OK;
}

void qa_cpu_rmsnorm_row(float *y, const float *x, const float *w, int64_t D, float eps)
{
    double ss = 0.0;
    for (int64_t i = 0; i < D; i++)
        ss += (double)x[i] * x[i];
    /* Qwen3RMSNorm: hidden * rsqrt(variance + eps), cast to the input dtype, then weight * that */
    float inv = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
    for (int64_t i = 0; i < D; i++) {
        float v = x[i] * inv;
        y[i] = w ? w[i] * v : v;
    }
}

qa_status qa_cpu_rmsnorm(qa_backend *be, float *y, const float *x, const qa_tensor *w, int64_t T,
                         int64_t D, float eps, qa_err *e)
{
    const float *wv;
    QA_TRY(qa_cpu_vec(w, D, "rmsnorm weight", &wv, e));
    for (int64_t t = 0; t < T; t++)
        qa_cpu_rmsnorm_row(y + t * D, x + t * D, wv, D, eps);
    return QA_OK;
}
