/* act.c — elementwise ops on the CPU: GELU (exact erf), SiLU·mul (SwiGLU, inside norm_mlp), add.
 *
 * Contract (backend.h `gelu`, `add`; norm_mlp's silu): n floats, outputs may alias inputs.
 * GELU matches nn.GELU() / ACT2FN["gelu"] (0.5·x·(1+erf(x/√2)), not the tanh approximation) used by
 * the audio encoder's convs, MLP and projector; qa_cpu_silu_mul matches Qwen3MLP act_fn(gate)·up with
 * silu(g) = g / (1 + exp(−g)).
 */
#include <math.h>

#include "cpu.h"

static void gelu_rows(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = qa_cpu_gelu1(x[i]);
}

void qa_cpu_gelu_inplace(float *x, int64_t n)
{
    gelu_rows(x, x, n);
}

qa_status qa_cpu_gelu(qa_backend *be, float *y, const float *x, int64_t n, qa_err *e)
{
    gelu_rows(y, x, n);
    return QA_OK;
}

void qa_cpu_silu_mul(float *y, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        y[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

qa_status qa_cpu_add(qa_backend *be, float *y, const float *a, const float *b, int64_t n, qa_err *e)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
    return QA_OK;
}
