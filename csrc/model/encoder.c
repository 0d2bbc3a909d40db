/* encoder.c — the Qwen3-ASR audio tower (shared by the aligner and the ASR models) over backend ops.
 *
 * Contract (encoder.h): log-mel features [M, ld] (valid frames first) -> embeddings [N_audio, D].
 * Reference: transformers 5.17 Qwen3ASREncoder.forward + Qwen3ASRMultiModalProjector (MODEL_FACTS §4):
 *   1. cut the valid frames into chunks of 2·n_window = 100 frames, last one zero-padded;
 *   2. per chunk conv2d1/2/3 (3×3, s2, p1) + GELU -> [C=480, 16, 13] -> flatten (c·16 + f) ->
 *      conv_out (no bias) -> + sinusoid rows 0..12 (restart per chunk);
 *   3. keep the valid tokens — 13 per full chunk and the partial chunk's length, i.e. a prefix of the
 *      concatenated chunk rows, since only the last chunk is partial;
 *   4. pre-LN transformer layers, bidirectional attention inside windows of 104 tokens (cu_seqlens);
 *   5. ln_post -> proj1 (linear_1) -> GELU -> proj2 (linear_2).
 * Memory: chunks go through the convs QA_ENC_CHUNK_TILE at a time and the MLP QA_MLP_TILE rows at a
 * time, so the workspace grows with the token count, not with chunks × conv maps. The takes below
 * are mirrored by qa_plan_workspace_encoder() (memory/plan.c) — change both together.
 * Packed clips (several requests in one forward): each clip's chunks go through the conv front on
 * their own, its valid tokens land right after the previous clip's (the partial chunk's padding rows
 * are overwritten by the next clip), the layers run once over all tokens, and attention stays inside
 * each clip's windows. Every take is at most that of one clip with the clips' summed frames, chunks
 * and tokens, which is how a pack fits the plan of the longest single request.
 */
#include "encoder.h"

#define ENC_LN_EPS 1e-5f /* nn.LayerNorm default (self_attn_layer_norm, final_layer_norm, ln_post) */

static int64_t conv_len(int64_t n) { return (n - 1) / 2 + 1; } /* k3 s2 p1, n >= 1 */

static int64_t conv3_len(int64_t n) { return conv_len(conv_len(conv_len(n))); }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t chunk_tokens(const qa_audio_config *a) { return conv3_len(2 * (int64_t)a->n_window); }

int64_t qa_encoder_window(const qa_audio_config *a, int64_t frames)
{
    int64_t L = 2 * (int64_t)a->n_window;
    /* HF: window_aftercnn = tokens of the longest chunk × (n_window_infer / (2·n_window)); with no full
     * chunk that is >= the whole clip, i.e. one window. */
    if (frames < L)
        return 0;
    return chunk_tokens(a) * (a->n_window_infer / L);
}

#define TAKE(ptr, n)                                                   \
    do {                                                               \
        if (!((ptr) = qa_arena_take(ws, (size_t)(n) * sizeof(float), e))) \
            return e->code;                                            \
    } while (0)

/* Steps 1–2: features -> x[n_chunks·Tc, E] (conv_out output, before the position embedding). */
static qa_status conv_front(qa_backend *be, const qa_encoder_weights *w, const qa_audio_config *a,
                            qa_region *ws, const float *feat, int64_t ld, int64_t frames, float *x, qa_err *e)
{
    int64_t M = a->num_mel_bins, L = 2 * (int64_t)a->n_window, C = a->down_hidden, E = a->d_model;
    int64_t H1 = conv_len(M), W1 = conv_len(L), H2 = conv_len(H1), W2 = conv_len(W1);
    int64_t H3 = conv_len(H2), W3 = conv_len(W2), n_chunks = (frames + L - 1) / L;
    int64_t G = min64(QA_ENC_CHUNK_TILE, n_chunks);
    size_t mark = qa_region_mark(ws);
    float *c0, *c1, *c2, *c3, *fl;
    TAKE(c0, G * M * L);
    TAKE(c1, G * C * H1 * W1);
    TAKE(c2, G * C * H2 * W2);
    TAKE(c3, G * C * H3 * W3);
    TAKE(fl, G * W3 * C * H3);
    for (int64_t c = 0; c < n_chunks; c += G) {
        int64_t g = min64(G, n_chunks - c);
        QA_TRY(qa_cancel_poll(&be->cancel, "the encoder's conv stage", e));
        QA_TRY(be->mel_chunks(be, c0, feat, M, ld, c * L, frames, g, L, e));
        /* conv2 and conv3 write their raw products; the next op applies their bias + GELU as it reads the
         * map (backend.h xb), which saves a pass over each map. conv1 + conv2 as one op: CUDA then feeds
         * conv2's GEMM from conv1 without the conv1 map (c1 is only its room where a backend needs it). */
        QA_TRY(be->conv2d_pair(be, c2, c1, c0, &w->conv1_w, &w->conv1_b, &w->conv2_w, g, M, L, C, C, e));
        QA_TRY(be->conv2d(be, c3, c2, &w->conv2_b, &w->conv3_w, NULL, g, C, H2, W2, C, QA_ACT_NONE, e));
        QA_TRY(be->chunk_flatten(be, fl, c3, &w->conv3_b, g, C, H3, W3, e));
        QA_TRY(be->gemm(be, x + c * W3 * E, fl, &w->conv_out_w, NULL, g * W3, C * H3, E, QA_ACT_NONE, 0, e));
    }
    qa_region_release(ws, mark);
    return QA_OK;
}

/* Bidirectional attention of every clip inside its own windows; rows of clip i follow clip i−1's. q, k, v are the
 * column blocks of qkv [T, 3E] (one GEMM's output, read at row stride 3E); out: [T, E] of dtype od (BF16: the
 * o-proj's operand, backend.h gemm_in_dtype). */
static qa_status clip_attention(qa_backend *be, const qa_audio_config *a, void *out, qa_dtype od, const float *qkv,
                                const qa_enc_clip *clips, int64_t n, qa_err *e)
{
    int64_t E = a->d_model, H = a->heads;
    size_t row = (size_t)E * qa_dtype_size(od);
    for (int64_t i = 0, r = 0; i < n; i++) {
        int64_t Ti = qa_audio_tokens_of_frames(a, clips[i].frames), window = qa_encoder_window(a, clips[i].frames);
        const float *q = qkv + r * 3 * E;
        QA_TRY(be->attention(be, (char *)out + (size_t)r * row, q, q + E, q + 2 * E, QA_F32, 3 * E, 3 * E, Ti, Ti,
                             H, H, E / H, 0, 0, window, od, e));
        r += Ti;
    }
    return QA_OK;
}

/* Step 4, one layer in place on x[T, E] (Qwen3ASREncoderLayer: pre-LN, residual adds). */
static qa_status enc_layer(qa_backend *be, const qa_encoder_layer *l, const qa_audio_config *a, qa_region *ws,
                           float *x, int64_t T, const qa_enc_clip *clips, int64_t n, qa_err *e)
{
    int64_t E = a->d_model, F = a->ffn;
    size_t mark = qa_region_mark(ws);
    float *h, *qkv, *f;
    TAKE(h, T * E);
    size_t mark_h = qa_region_mark(ws);
    TAKE(qkv, T * 3 * E);
    /* q | k | v per row: with the weights and biases adjacent (names.c order) the backend runs one GEMM */
    float *const y[3] = {qkv, qkv + E, qkv + 2 * E};
    const qa_tensor *const Wqkv[3] = {&l->q_w, &l->k_w, &l->v_w}, *const bqkv[3] = {&l->q_b, &l->k_b, &l->v_b};
    const int64_t Nqkv[3] = {E, E, E};
    QA_TRY(be->ln_gemm(be, y, 3 * E, x, &l->ln1_w, &l->ln1_b, ENC_LN_EPS, Wqkv, bqkv, Nqkv, 3, T, E, QA_ACT_NONE,
                       e));
    /* the attention writes the o-proj's operand in the dtype the GEMM multiplies (h holds BF16 rows too) */
    qa_dtype od = be->gemm_in_dtype(be, &l->o_w, T);
    QA_TRY(clip_attention(be, a, h, od, qkv, clips, n, e));
    if (od == QA_BF16)
        QA_TRY(be->gemm_bf16x(be, x, h, &l->o_w, &l->o_b, T, E, E, 1, e));
    else
        QA_TRY(be->gemm(be, x, h, &l->o_w, &l->o_b, T, E, E, QA_ACT_NONE, 1, e));
    qa_region_release(ws, mark_h);
    int64_t tile = min64(T, QA_MLP_TILE);
    TAKE(f, tile * F);
    /* LayerNorm per tile: fc2 only changes this tile's rows of x, and the norm is per row */
    for (int64_t r0 = 0; r0 < T; r0 += tile)
        QA_TRY(be->ln_mlp(be, x + r0 * E, &l->ln2_w, &l->ln2_b, ENC_LN_EPS, &l->fc1_w, &l->fc1_b, &l->fc2_w,
                          &l->fc2_b, f, min64(tile, T - r0), E, F, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

/* Steps 1–3 for every clip: x[T, E] = valid conv tokens + sinusoid, the clips one after another. */
static qa_status front_all(qa_backend *be, const qa_encoder_weights *w, const qa_audio_config *a, qa_region *ws,
                           const qa_enc_clip *clips, int64_t n, float *x, qa_err *e)
{
    int64_t E = a->d_model, Tc = chunk_tokens(a);
    for (int64_t i = 0, r = 0; i < n; i++) {
        int64_t Ti = qa_audio_tokens_of_frames(a, clips[i].frames);
        /* writes whole chunks from row r; rows past r + Ti are the next clip's (written after) */
        QA_TRY(conv_front(be, w, a, ws, clips[i].feat, clips[i].ld, clips[i].frames, x + r * E, e));
        /* positions restart every chunk; the valid tokens are a prefix (only the last chunk is short) */
        QA_TRY(be->add_sinusoid(be, x + r * E, Ti, E, Tc, e));
        r += Ti;
    }
    return QA_OK;
}

qa_status qa_encoder_forward(qa_backend *be, const qa_model *m, qa_region *ws, const qa_enc_clip *clips, int64_t n,
                             float *emb, qa_err *e)
{
    const qa_audio_config *a = &m->cfg.audio;
    const qa_encoder_weights *w = &m->enc;
    int64_t L = 2 * (int64_t)a->n_window, n_chunks = 0, T = 0, Tc = chunk_tokens(a), E = a->d_model;
    int64_t D = a->output_dim;
    if (n < 1)
        return QA_FAIL(e, QA_ERR_INPUT, "audio encoder: no clips");
    for (int64_t i = 0; i < n; i++) {
        if (clips[i].frames <= 0 || clips[i].frames > clips[i].ld)
            return QA_FAIL(e, QA_ERR_INPUT, "audio encoder: clip %lld has %lld valid mel frames, expected 1 to %lld",
                           (long long)i, (long long)clips[i].frames, (long long)clips[i].ld);
        n_chunks += (clips[i].frames + L - 1) / L;
        T += qa_audio_tokens_of_frames(a, clips[i].frames);
    }
    size_t mark = qa_region_mark(ws);
    float *x, *h, *p;
    TAKE(x, n_chunks * Tc * E);
    QA_TRY(front_all(be, w, a, ws, clips, n, x, e));
    for (int i = 0; i < a->layers; i++) {
        QA_TRY(qa_cancel_poll(&be->cancel, "an encoder layer", e));
        QA_TRY(enc_layer(be, &w->layers[i], a, ws, x, T, clips, n, e));
    }
    TAKE(h, T * E);
    TAKE(p, T * E);
    QA_TRY(be->layernorm(be, h, x, &w->ln_post_w, &w->ln_post_b, T, E, ENC_LN_EPS, e));
    QA_TRY(be->gemm(be, p, h, &w->proj1_w, &w->proj1_b, T, E, E, QA_ACT_GELU, 0, e));
    QA_TRY(be->gemm(be, emb, p, &w->proj2_w, &w->proj2_b, T, E, D, QA_ACT_NONE, 0, e));
    qa_region_release(ws, mark);
    return QA_OK;
}
