/* qkv.c — the decoder's q / k / v preparation on the CPU: per-head RMSNorm + RoPE, K / V rows stored.
 *
 * Contract (backend.h `qkv_prep`): row t at position p = (pos ? pos[0] : pos0) + t; q heads normalised
 * (q_norm) and rotated into qo (q read at row stride ldq; qo may be q); k heads normalised (k_norm), rotated and written to kdst row p, v rows
 * copied to vdst row p, both as kv_dtype (F32, or BF16 rounded to nearest even like torch's
 * .to(torch.bfloat16)); rows p outside [0, max_rows) of kdst / vdst are skipped.
 * Reference: transformers Qwen3Attention (MODEL_FACTS §5): q_norm / k_norm over each head BEFORE RoPE.
 * The arithmetic is norm.c's qa_cpu_rmsnorm_row then rope.c's angles and rotation, the same calls
 * the rmsnorm and rope ops make, so the float32 numbers equal the separate ops' bit for bit.
 * A k head is normalised and rotated in a stack row before it is stored, so kdst == k (F32, pos0 = 0:
 * each row back onto itself) is safe; v elements are copied one by one, likewise.
 */
#include <string.h>

#include "../../weights/convert.h"
#include "cpu.h"

#define QKV_MAX_DH (2 * QA_CPU_ROPE_MAX_HALF)

/* dst[i] = kv_dtype(src[i]) for i < n, dst an element offset into a F32 or BF16 array. */
static void store_row(void *dst, qa_dtype dt, int64_t off, const float *src, int64_t n)
{
    if (dt == QA_F32) {
        memmove((float *)dst + off, src, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *d = (uint16_t *)dst + off;
    for (int64_t i = 0; i < n; i++)
        d[i] = qa_f32_to_bf16(src[i]);
}

qa_status qa_cpu_qkv_prep(qa_backend *be, float *qo, const float *q, int64_t ldq, void *kdst, void *vdst,
                          qa_dtype kv_dtype, const float *k, const float *v, int64_t ldkv, const qa_tensor *q_norm,
                          const qa_tensor *k_norm, int64_t T, int64_t H, int64_t Hk, int64_t Dh, int64_t pos0,
                          const int32_t *pos, int64_t max_rows, float theta, float eps, qa_err *e)
{
    float inv[QA_CPU_ROPE_MAX_HALF], c[QA_CPU_ROPE_MAX_HALF], s[QA_CPU_ROPE_MAX_HALF], row[QKV_MAX_DH];
    const float *qw, *kw;
    int64_t half = Dh / 2, KD = Hk * Dh;
    if (ldq < H * Dh || ldkv < KD)
        return QA_FAIL(e, QA_ERR_INTERNAL, "qkv_prep: row strides q %lld, k / v %lld below the rows %lld / %lld",
                       (long long)ldq, (long long)ldkv, (long long)(H * Dh), (long long)KD);
    if (kv_dtype != QA_F32 && kv_dtype != QA_BF16)
        return QA_FAIL(e, QA_ERR_INTERNAL, "qkv_prep: K / V dtype %d is neither f32 nor bf16", (int)kv_dtype);
    QA_TRY(qa_cpu_rope_freqs(inv, Dh, theta, "qkv_prep", e));
    QA_TRY(qa_cpu_vec(q_norm, Dh, "qkv_prep q_norm", &qw, e));
    QA_TRY(qa_cpu_vec(k_norm, Dh, "qkv_prep k_norm", &kw, e));
    int64_t p0 = pos ? (int64_t)pos[0] : pos0;
    for (int64_t t = 0; t < T; t++) {
        int64_t p = p0 + t;
        qa_cpu_rope_angles(c, s, inv, half, p);
        for (int64_t h = 0; h < H; h++) {
            float *qh = qo + (t * H + h) * Dh;
            qa_cpu_rmsnorm_row(qh, q + t * ldq + h * Dh, qw, Dh, eps);
            qa_cpu_rope_head(qh, c, s, half);
        }
        if (p < 0 || p >= max_rows) /* past the cache: an engine bug upstream, never write there */
            continue;
        for (int64_t g = 0; g < Hk; g++) {
            qa_cpu_rmsnorm_row(row, k + t * ldkv + g * Dh, kw, Dh, eps);
            qa_cpu_rope_head(row, c, s, half);
            store_row(kdst, kv_dtype, p * KD + g * Dh, row, Dh);
        }
        store_row(vdst, kv_dtype, p * KD, v + t * ldkv, KD);
    }
    return QA_OK;
}
