/* attention.c — scaled dot-product attention on the CPU, tiled over query rows.
 *
 * Contract (backend.h `attention`): q[Tq, H·Dh] (row stride ldq), k/v[Tkv, Hk·Dh] (row stride ldkv: sgemm's
 * leading dimensions, so the numbers do not depend on them) (GQA: query head h reads kv head
 * h / (H/Hk), transformers repeat_kv), out[Tq, H·Dh]; scale 1/√Dh; causal and/or window masks.
 * For each head and each tile of at most QA_CPU_ATTN_BQ query rows that stays inside one window,
 * the scores of that tile against the keys it may see are computed with one sgemm into the backend
 * scratch (QA_CPU_ATTN_BQ × Tkv floats at most — never Tq × Tkv for the whole sequence), masked,
 * soft-maxed exactly per row (max-subtracted, float32 as transformers' eager softmax), and
 * multiplied by v with a second sgemm straight into out. BF16 K / V (a BF16 KV cache) are converted to
 * float32 (exactly) QA_CPU_KV_CHUNK_FLOATS at a time as the two products use them; F32 K / V are read in
 * place. Reference: transformers
 * eager_attention_forward / sdpa with the causal mask (text model) or the encoder's cu_seqlens
 * block-diagonal mask (windows of 104 tokens).
 */
#include <cblas.h>
#include <math.h>

#include "cpu.h"

/* Keys visible to query tile rows [i0, i1) (absolute positions q_pos0 + i): [*j0, *j1). */
static void key_range(int64_t i0, int64_t i1, int64_t q_pos0, int64_t Tkv, int causal, int64_t window,
                      int64_t *j0, int64_t *j1)
{
    int64_t p0 = q_pos0 + i0, p1 = q_pos0 + i1; /* positions [p0, p1) */
    *j0 = 0;
    *j1 = Tkv;
    if (window > 0) {
        *j0 = p0 / window * window;
        int64_t end = ((p1 - 1) / window + 1) * window;
        if (end < *j1)
            *j1 = end;
    }
    if (causal && p1 < *j1)
        *j1 = p1;
}

/* Softmax of one score row s[0..n) in place, keys outside [lo, hi) get probability 0. */
static void softmax_row(float *s, int64_t n, int64_t lo, int64_t hi)
{
    float mx = -INFINITY;
    for (int64_t j = lo; j < hi; j++)
        if (s[j] > mx)
            mx = s[j];
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        float p = (j >= lo && j < hi) ? expf(s[j] - mx) : 0.0f;
        s[j] = p;
        sum += p;
    }
    float inv = 1.0f / sum;
    for (int64_t j = lo; j < hi; j++)
        s[j] *= inv;
}

/* K or V rows [j0, j0 + n) of kv head g as float32 rows of stride *ld: a view into kv (F32), or the rows
 * converted into buf (BF16: exact). */
static const float *kv_rows(const void *kv, qa_dtype dt, int64_t ldk, int64_t g, int64_t Dh, int64_t j0, int64_t n,
                            float *buf, int64_t *ld)
{
    if (dt == QA_F32) {
        *ld = ldk;
        return (const float *)kv + j0 * ldk + g * Dh;
    }
    const uint16_t *src = (const uint16_t *)kv + j0 * ldk + g * Dh;
    for (int64_t j = 0; j < n; j++)
        qa_cpu_bf16_to_f32(buf + j * Dh, src + j * ldk, Dh);
    *ld = Dh;
    return buf;
}

/* Keys converted per pass: all of them for F32 (one sgemm each, as before BF16 existed), else the rows
 * that fit QA_CPU_KV_CHUNK_FLOATS. */
static int64_t kv_chunk(qa_dtype dt, int64_t n, int64_t Dh)
{
    int64_t rows = QA_CPU_KV_CHUNK_FLOATS / Dh;
    return dt == QA_F32 || rows >= n ? n : rows > 0 ? rows : 1;
}

/* One head, query rows [i0, i1), all inside one window; buf: BF16 K / V rows as float32. */
static void head_tile(float *out, const float *q, int64_t ldq, const void *k, const void *v, int64_t ldk, qa_dtype dt,
                      float *S, float *buf, int64_t i0, int64_t i1, int64_t h, int64_t g, int64_t H, int64_t Dh,
                      int64_t Tkv, int64_t q_pos0, int causal, int64_t window)
{
    int64_t j0, j1;
    key_range(i0, i1, q_pos0, Tkv, causal, window, &j0, &j1);
    int64_t rows = i1 - i0, n = j1 - j0, ldo = H * Dh, chunk = kv_chunk(dt, n, Dh), ld;
    float scale = 1.0f / sqrtf((float)Dh);
    /* S[rows, n] = scale · q_h[i0:i1] · k_g[j0:j1]ᵀ, a chunk of keys (columns of S) at a time */
    for (int64_t c = 0; c < n; c += chunk) {
        int64_t m = n - c < chunk ? n - c : chunk;
        const float *kr = kv_rows(k, dt, ldk, g, Dh, j0 + c, m, buf, &ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)m, (int)Dh, scale,
                    q + i0 * ldq + h * Dh, (int)ldq, kr, (int)ld, 0.0f, S + c, (int)n);
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t pos = q_pos0 + i0 + r, hi = n;
        if (causal && pos + 1 - j0 < hi)
            hi = pos + 1 - j0; /* keys j <= pos */
        softmax_row(S + r * n, n, 0, hi);
    }
    /* out_h[i0:i1] = S · v_g[j0:j1], summed over the chunks of keys */
    for (int64_t c = 0; c < n; c += chunk) {
        int64_t m = n - c < chunk ? n - c : chunk;
        const float *vr = kv_rows(v, dt, ldk, g, Dh, j0 + c, m, buf, &ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)Dh, (int)m, 1.0f, S + c, (int)n,
                    vr, (int)ld, c ? 1.0f : 0.0f, out + i0 * ldo + h * Dh, (int)ldo);
    }
}

qa_status qa_cpu_attention(qa_backend *be, float *out, const float *q, const void *k, const void *v,
                           qa_dtype kv_dtype, int64_t ldq, int64_t ldkv, int64_t Tq, int64_t Tkv, int64_t H,
                           int64_t Hk, int64_t Dh, int64_t q_pos0, int causal, int64_t window, qa_err *e)
{
    ldq = ldq ? ldq : H * Dh;
    ldkv = ldkv ? ldkv : Hk * Dh;
    if (ldq < H * Dh || ldkv < Hk * Dh)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: row strides q %lld, k / v %lld below the rows %lld / %lld",
                       (long long)ldq, (long long)ldkv, (long long)(H * Dh), (long long)(Hk * Dh));
    if (H <= 0 || Hk <= 0 || H % Hk || Dh <= 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: heads %lld not a multiple of kv heads %lld (Dh %lld)",
                       (long long)H, (long long)Hk, (long long)Dh);
    if (kv_dtype != QA_F32 && kv_dtype != QA_BF16)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: K / V dtype %d is neither f32 nor bf16", (int)kv_dtype);
    if (Tq <= 0)
        return QA_OK;
    if (causal && q_pos0 + Tq > Tkv)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: query positions up to %lld but only %lld keys",
                       (long long)(q_pos0 + Tq), (long long)Tkv);
    int64_t bq = QA_CPU_ATTN_BQ;
    float *S = qa_cpu_scratch(be, 0, bq * Tkv, "attention scores", e), *buf = NULL;
    if (!S)
        return e->code;
    if (kv_dtype == QA_BF16 && !(buf = qa_cpu_scratch(be, bq * Tkv, QA_CPU_KV_CHUNK_FLOATS, "attention bf16 rows", e)))
        return e->code;
    int64_t group = H / Hk;
    for (int64_t i0 = 0; i0 < Tq; ) {
        int64_t i1 = i0 + bq < Tq ? i0 + bq : Tq;
        if (window > 0) { /* a tile never crosses a window boundary */
            int64_t wend = ((q_pos0 + i0) / window + 1) * window - q_pos0;
            if (wend < i1)
                i1 = wend;
        }
        for (int64_t h = 0; h < H; h++)
            head_tile(out, q, ldq, k, v, ldkv, kv_dtype, S, buf, i0, i1, h, h / group, H, Dh, Tkv, q_pos0, causal,
                      window);
        i0 = i1;
    }
    return QA_OK;
}

qa_status qa_cpu_attention_op(qa_backend *be, void *out, const float *q, const void *k, const void *v,
                              qa_dtype kv_dtype, int64_t ldq, int64_t ldkv, int64_t Tq, int64_t Tkv, int64_t H,
                              int64_t Hk, int64_t Dh, int64_t q_pos0, int causal, int64_t window, qa_dtype out_dtype,
                              qa_err *e)
{
    if (out_dtype != QA_F32)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention: out dtype %d, the CPU writes f32 only (gemm_in_dtype)",
                       (int)out_dtype);
    return qa_cpu_attention(be, (float *)out, q, k, v, kv_dtype, ldq, ldkv, Tq, Tkv, H, Hk, Dh, q_pos0, causal, window,
                            e);
}
