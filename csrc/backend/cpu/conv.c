/* conv.c — the audio encoder's convolutional front on the CPU: mel chunks, Conv2d 3×3/s2/p1, flatten.
 *
 * Contract (backend.h `mel_chunks`, `conv2d`, `conv2d_pair`, `chunk_flatten`), all NCHW float32:
 * - mel_chunks cuts the [M, frames] log-mel into zero-padded chunks of L frames (HF
 *   Qwen3ASREncoder.forward: split by chunk lengths, pad_sequence with 0.0).
 * - conv2d is nn.Conv2d(k=3, stride=2, padding=1) done as im2col + GEMM per chunk: the im2col matrix
 *   col[Cin·9, Ho·Wo] (row index ci·9 + kh·3 + kw, the order of the (Cout, Cin, 3, 3) weight) lives in
 *   the backend scratch, then y[Cout, Ho·Wo] = W[Cout, Cin·9] · col (+ bias, + GELU). With xb the input
 *   channel is first activated, GELU(x + xb[ci]), into a plane that sits where the BF16 weight tile
 *   goes after the im2col (so a plane holds at most QA_CPU_TILE_FLOATS values; the tower's are 3200).
 * - conv2d_pair is conv2d (one input channel, bias + GELU) into tmp, then conv2d of that (raw).
 * - chunk_flatten is HF's `padded_embed.permute(0, 3, 1, 2).contiguous().view(b, t, c * f)`:
 *   feature index channel·Fq + freq (of GELU(x + xb[c]) with xb).
 */
#include <string.h>

#include "cpu.h"

qa_status qa_cpu_mel_chunks(qa_backend *be, float *y, const float *feat, int64_t M, int64_t ld,
                            int64_t frame0, int64_t valid_frames, int64_t N, int64_t L, qa_err *e)
{
    if (valid_frames > ld)
        return QA_FAIL(e, QA_ERR_INTERNAL, "mel_chunks: %lld valid frames > row length %lld",
                       (long long)valid_frames, (long long)ld);
    for (int64_t n = 0; n < N; n++) {
        int64_t f0 = frame0 + n * L, cnt = valid_frames - f0;
        cnt = cnt < 0 ? 0 : (cnt > L ? L : cnt);
        for (int64_t m = 0; m < M; m++) {
            float *row = y + (n * M + m) * L;
            if (cnt > 0)
                memcpy(row, feat + m * ld + f0, (size_t)cnt * sizeof *row);
            memset(row + cnt, 0, (size_t)(L - cnt) * sizeof *row);
        }
    }
    return QA_OK;
}

/* The 9 im2col rows of one input channel: col[(kh·3 + kw), (oh·Wo + ow)] = src[2·oh + kh − 1, 2·ow + kw − 1]
 * (0 outside). */
static void im2col_channel(float *col, const float *src, int64_t Hi, int64_t Wi, int64_t Ho, int64_t Wo)
{
    for (int64_t kh = 0; kh < 3; kh++)
        for (int64_t kw = 0; kw < 3; kw++) {
            float *dst = col + (kh * 3 + kw) * Ho * Wo;
            for (int64_t oh = 0; oh < Ho; oh++) {
                int64_t ih = 2 * oh + kh - 1;
                float *d = dst + oh * Wo;
                if (ih < 0 || ih >= Hi) {
                    memset(d, 0, (size_t)Wo * sizeof *d);
                    continue;
                }
                const float *row = src + ih * Wi;
                for (int64_t ow = 0; ow < Wo; ow++) {
                    int64_t iw = 2 * ow + kw - 1;
                    d[ow] = (iw >= 0 && iw < Wi) ? row[iw] : 0.0f;
                }
            }
        }
}

/* col[(ci·9 + kh·3 + kw), (oh·Wo + ow)] = x'[ci, 2·oh + kh − 1, 2·ow + kw − 1] (0 outside), x' = x or, with
 * xb, GELU(x + xb[ci]) written to `plane` first (each input value activated once, not once per use). */
static void im2col(float *col, const float *x, const float *xb, float *plane, int64_t Cin, int64_t Hi, int64_t Wi,
                   int64_t Ho, int64_t Wo)
{
    for (int64_t ci = 0; ci < Cin; ci++) {
        const float *src = x + ci * Hi * Wi;
        if (xb) {
            for (int64_t i = 0; i < Hi * Wi; i++)
                plane[i] = qa_cpu_gelu1(src[i] + xb[ci]);
            src = plane;
        }
        im2col_channel(col + ci * 9 * Ho * Wo, src, Hi, Wi, Ho, Wo);
    }
}

qa_status qa_cpu_conv2d(qa_backend *be, float *y, const float *x, const qa_tensor *xb, const qa_tensor *w,
                        const qa_tensor *b, int64_t N, int64_t Cin, int64_t Hi, int64_t Wi, int64_t Cout, qa_act act,
                        qa_err *e)
{
    const float *bias, *in_bias;
    int64_t K = Cin * 9, Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1, P = Ho * Wo;
    QA_TRY(qa_cpu_check_weight(w, Cout, K, "conv2d", e));
    QA_TRY(qa_cpu_vec(b, Cout, "conv2d bias", &bias, e));
    QA_TRY(qa_cpu_vec(xb, Cin, "conv2d input bias", &in_bias, e));
    if (in_bias && Hi * Wi > QA_CPU_TILE_FLOATS)
        return QA_FAIL(e, QA_ERR_INTERNAL, "conv2d: an activated input plane of %lld values exceeds the %lld of the "
                       "tile area", (long long)(Hi * Wi), (long long)QA_CPU_TILE_FLOATS);
    float *col = qa_cpu_scratch(be, 0, K * P, "conv2d im2col", e);
    if (!col)
        return e->code;
    /* the tile area (after the im2col) serves first as the activated plane, then as the BF16 weight tile */
    float *tile = NULL;
    if ((w->dtype != QA_F32 || in_bias) && !(tile = qa_cpu_scratch(be, K * P, QA_CPU_TILE_FLOATS, "conv2d tile", e)))
        return e->code;
    for (int64_t n = 0; n < N; n++) {
        float *yn = y + n * Cout * P;
        im2col(col, x + n * Cin * Hi * Wi, in_bias, tile, Cin, Hi, Wi, Ho, Wo);
        for (int64_t c = 0; c < Cout; c++) /* bias first, the sgemm adds onto it */
            for (int64_t p = 0; p < P; p++)
                yn[c * P + p] = bias ? bias[c] : 0.0f;
        qa_cpu_matmul(yn, P, col, w, P, K, Cout, 1.0f, 1, tile);
    }
    if (act == QA_ACT_GELU)
        qa_cpu_gelu_inplace(y, N * Cout * P);
    return QA_OK;
}

/* The CPU has no fused form: the two convs through tmp, as the encoder ran them before conv2d_pair. */
qa_status qa_cpu_conv2d_pair(qa_backend *be, float *y, float *tmp, const float *x, const qa_tensor *w1,
                             const qa_tensor *b1, const qa_tensor *w2, int64_t N, int64_t Hi, int64_t Wi, int64_t C1,
                             int64_t C2, qa_err *e)
{
    QA_TRY(qa_cpu_conv2d(be, tmp, x, NULL, w1, b1, N, 1, Hi, Wi, C1, QA_ACT_GELU, e));
    return qa_cpu_conv2d(be, y, tmp, NULL, w2, NULL, N, C1, (Hi - 1) / 2 + 1, (Wi - 1) / 2 + 1, C2, QA_ACT_NONE, e);
}

qa_status qa_cpu_chunk_flatten(qa_backend *be, float *y, const float *x, const qa_tensor *xb, int64_t N, int64_t C,
                               int64_t Fq, int64_t Tc, qa_err *e)
{
    const float *in_bias;
    QA_TRY(qa_cpu_vec(xb, C, "chunk_flatten input bias", &in_bias, e));
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t f = 0; f < Fq; f++) {
                const float *src = x + ((n * C + c) * Fq + f) * Tc;
                for (int64_t t = 0; t < Tc; t++)
                    y[(n * Tc + t) * C * Fq + c * Fq + f] = in_bias ? qa_cpu_gelu1(src[t] + in_bias[c]) : src[t];
            }
    return QA_OK;
}
