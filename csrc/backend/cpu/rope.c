/* rope.c — positions on the CPU: rotary embedding for the text model, sinusoids for the encoder.
 *
 * RoPE (backend.h qkv_prep, cpu/qkv.c): NeoX split-half RoPE as transformers' Qwen3
 * apply_rotary_pos_emb/rotate_half, in three helpers (frequencies, angles of one position, one head).
 * The reference computes inv_freq = 1 / theta^(arange(0, Dh, 2)/Dh) and the angles pos·inv_freq in
 * float32 (Qwen3RotaryEmbedding, autocast disabled), then cos/sin in float32; we round the same
 * intermediates to float32 so the angles agree bit for bit with the reference's before cos/sin.
 * The checkpoints' M-RoPE sections collapse to this plain RoPE (all three position rows equal,
 * MODEL_FACTS §5).
 * add_sinusoid: SinusoidsPositionEmbedding of the Qwen3-ASR audio encoder (float32 table), rows
 * restarting every `period` tokens (per 100-frame chunk).
 */
#include <math.h>

#include "cpu.h"

qa_status qa_cpu_rope_freqs(float *inv, int64_t Dh, float theta, const char *who, qa_err *e)
{
    if (Dh <= 0 || Dh % 2 || Dh / 2 > QA_CPU_ROPE_MAX_HALF)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: head dim %lld must be even and <= %d", who, (long long)Dh,
                       2 * QA_CPU_ROPE_MAX_HALF);
    for (int64_t i = 0; i < Dh / 2; i++) {
        float expo = (float)(2 * i) / (float)Dh;              /* arange(...).float() / dim */
        inv[i] = 1.0f / (float)pow((double)theta, (double)expo); /* base ** expo, then 1.0 / . */
    }
    return QA_OK;
}

void qa_cpu_rope_angles(float *c, float *s, const float *inv, int64_t half, int64_t pos)
{
    float p = (float)pos;
    for (int64_t i = 0; i < half; i++) {
        float ang = inv[i] * p; /* inv_freq @ position_ids in float32 */
        c[i] = cosf(ang);
        s[i] = sinf(ang);
    }
}

void qa_cpu_rope_head(float *v, const float *c, const float *s, int64_t half)
{
    for (int64_t i = 0; i < half; i++) {
        float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - x2 * s[i];
        v[i + half] = x2 * c[i] + x1 * s[i];
    }
}

qa_status qa_cpu_add_sinusoid(qa_backend *be, float *x, int64_t T, int64_t E, int64_t period, qa_err *e)
{
    int64_t half = E / 2;
    if (E % 2 || half < 2 || period <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "add_sinusoid: width %lld must be even and >= 4, period %lld > 0",
                       (long long)E, (long long)period);
    /* log_timescale_increment = log(10000) / (half - 1); inv = exp(-inc * arange(half)) (float32) */
    float inc = (float)(log(10000.0) / (double)(half - 1));
    for (int64_t t = 0; t < T; t++) {
        float p = (float)(t % period);
        float *row = x + t * E;
        for (int64_t i = 0; i < half; i++) {
            float inv = expf(-inc * (float)i);
            float ang = p * inv;
            row[i] += sinf(ang);
            row[i + half] += cosf(ang);
        }
    }
    return QA_OK;
}
