/* plan.c — sizes before bytes: weights, KV cache and the workspace peak of one request (see plan.h).
 *
 * Contract: a pure function of the model configs and the limits (no file is read, nothing is
 * allocated), in the spirit of llm.c's fill_in_parameter_sizes and ggml-alloc's reserve on the
 * worst-case graph. Weight bytes come from the same tensor table the loader uses (weights/names.c),
 * so plan and load cannot disagree (tests/test_plan.py checks it against loaded checkpoints).
 * The workspace formulas are an upper bound written buffer by buffer, one function per model, so
 * the engine (model/encoder.c, decoder.c) can keep them in step with what it actually takes:
 * every workspace buffer the engine takes must be listed here, or qa_arena_take fails loudly.
 */
#include "plan.h"

#include <math.h>
#include <string.h>

#include "../frontend/mel.h"
#include "../weights/names.h"

#define ACT 4              /* activations are float32 on every backend (weights may be bf16) */
#define CONV_TILE_CHUNKS 8 /* encoder conv stage runs on up to 8 chunks of 100 frames at once */
#define ATT_QUERY_TILE 64  /* decoder attention: scores of 64 queries x S keys per head at a time */

qa_limits qa_limits_default(void)
{
    qa_limits l = {{300.0, 300.0}, 1024, 0, 0, QA_F32};
    return l;
}

static int64_t conv_len(int64_t n) { return n > 0 ? (n - 1) / 2 + 1 : 0; } /* Conv2d k3 s2 p1 */
static int64_t conv3_len(int64_t n) { return conv_len(conv_len(conv_len(n))); }

/* Tokens of T mel frames for a config's chunk size (13 per full 100-frame chunk, ceil(r/8) after). */
static int64_t tokens_of_frames(const qa_audio_config *a, int64_t t)
{
    int64_t chunk = 2 * a->n_window;
    return (t / chunk) * conv3_len(chunk) + conv3_len(t % chunk);
}

/* Workspace accumulator: each buffer rounded up to the arena alignment, as qa_arena_take does. */
static size_t buf(int64_t elems, size_t elem_bytes) { return qa_align_up((size_t)elems * elem_bytes); }
static size_t max2(size_t a, size_t b) { return a > b ? a : b; }
static size_t max3(size_t a, size_t b, size_t c) { return max2(a, max2(b, c)); }

/* Encoder (audio tower + projector) at T mel frames, excluding its output [N, O] (callers keep that):
 *   persistent:   mel [M, K*chunk] (zero-padded chunks), x [N, E] (residual stream)
 *   conv stage:   per tile of CONV_TILE_CHUNKS chunks: im2col + output of conv1..3
 *                 (9 x f1*t1, C x f1*t1, 9C x f2*t2, C x f2*t2, 9C x f3*t3, C x f3*t3)
 *   layer stage:  h [N, E] (LayerNorm out), q/k/v [N, E] x 3, attn [N, E], ffn [N, F],
 *                 scores [H, W, W] for one window of W = 13 x n_window_infer/100 tokens
 *   post stage:   ln_post [N, E], proj1 [N, E] (proj2 writes the output) */
size_t qa_plan_workspace_encoder(const qa_model_config *c, int mel_frames)
{
    const qa_audio_config *a = &c->audio;
    const int64_t M = a->num_mel_bins, C = a->down_hidden, E = a->d_model, F = a->ffn, H = a->heads;
    const int64_t chunk = 2 * a->n_window, T = mel_frames, K = (T + chunk - 1) / chunk;
    const int64_t N = tokens_of_frames(a, T), W = conv3_len(chunk) * (a->n_window_infer / chunk);
    const int64_t f1 = conv_len(M), t1 = conv_len(chunk), f2 = conv_len(f1), t2 = conv_len(t1);
    const int64_t f3 = conv_len(f2), t3 = conv_len(t2), tile = K < CONV_TILE_CHUNKS ? K : CONV_TILE_CHUNKS;
    size_t persistent = buf(M * K * chunk, ACT) + buf(N * E, ACT);
    size_t conv = buf(tile * 9 * f1 * t1, ACT) + buf(tile * C * f1 * t1, ACT) + buf(tile * 9 * C * f2 * t2, ACT) +
                  buf(tile * C * f2 * t2, ACT) + buf(tile * 9 * C * f3 * t3, ACT) + buf(tile * C * f3 * t3, ACT);
    size_t layer = buf(N * E, ACT) * 5 + buf(N * F, ACT) + buf(H * W * W, ACT);
    size_t post = buf(N * E, ACT) * 2;
    return persistent + max3(conv, layer, post);
}

/* Text decoder over S positions at once (prefill / the aligner's single forward):
 *   x, h [S, D]; q [S, H*Dh]; k, v [S, Hk*Dh]; attn [S, H*Dh]; gate, up [S, F];
 *   scores [H, ATT_QUERY_TILE, S]; RoPE cos/sin [S, Dh]. */
static size_t workspace_decoder(const qa_text_config *t, int64_t S)
{
    const int64_t D = t->hidden, Q = (int64_t)t->heads * t->head_dim, KV = (int64_t)t->kv_heads * t->head_dim;
    return buf(S * D, ACT) * 2 + buf(S * Q, ACT) * 2 + buf(S * KV, ACT) * 2 + buf(S * t->inter, ACT) * 2 +
           buf((int64_t)t->heads * ATT_QUERY_TILE * S, ACT) + buf(S * t->head_dim, ACT);
}

/* Aligner request: audio embeddings [N, D] and ids [S] live across both stages; then the encoder, or
 * the decoder over S = 2 + N + text tokens plus the head at <timestamp> rows only (R <= text):
 * hidden rows [R, D] and logits [R, classify_num]. */
size_t qa_plan_workspace_aligner(const qa_model_config *c, int mel_frames, int seq_tokens, int text_tokens)
{
    const int64_t N = tokens_of_frames(&c->audio, mel_frames), D = c->text.hidden, R = text_tokens;
    size_t shared = buf(N * D, ACT) + buf(seq_tokens, 4);
    size_t dec = workspace_decoder(&c->text, seq_tokens) + buf(R * D, ACT) + buf(R * c->classify_num, ACT);
    return shared + max2(qa_plan_workspace_encoder(c, mel_frames), dec);
}

/* ASR request: audio embeddings [N, D] and ids [prompt + new] live throughout; then the encoder, or
 * the prefill over the prompt (decode steps are the same buffers at S = 1) plus the last position's
 * hidden [D] and vocabulary logits [V]. K/V go to the kv/asr region, not here. */
size_t qa_plan_workspace_asr(const qa_model_config *c, int mel_frames, int prompt_tokens, int max_new_tokens)
{
    const int64_t N = tokens_of_frames(&c->audio, mel_frames), D = c->text.hidden;
    size_t shared = buf(N * D, ACT) + buf((int64_t)prompt_tokens + max_new_tokens, 4);
    size_t dec = workspace_decoder(&c->text, prompt_tokens) + buf(D, ACT) + buf(c->text.vocab, ACT);
    return shared + max2(qa_plan_workspace_encoder(c, mel_frames), dec);
}

static qa_status plan_aligner(const qa_model_config *c, const qa_limits *lim, double sec, qa_plan_model *pm,
                              qa_err *e)
{
    double ceiling = (double)c->classify_num * c->timestamp_segment_ms / 1000.0;
    if (sec > ceiling)
        return QA_FAIL(e, QA_ERR_INPUT,
                       "max_audio_seconds %.1f for the aligner exceeds what its head can timestamp "
                       "(%d classes x %d ms = %.1f s)", sec, c->classify_num, c->timestamp_segment_ms, ceiling);
    int64_t avail = (int64_t)c->text.max_positions - 2 - pm->audio_tokens;
    if (avail < 2)
        return QA_FAIL(e, QA_ERR_INPUT,
                       "max_audio_seconds %.1f needs %d audio tokens; the aligner allows %d positions in all", sec,
                       pm->audio_tokens, c->text.max_positions);
    int64_t cap = QA_ALIGNER_TEXT_TOKENS_PER_SECOND * (int64_t)ceil(sec) + 64;
    int64_t text = lim->max_text_tokens > 0 ? lim->max_text_tokens : (avail < cap ? avail : cap);
    if (text > avail)
        return QA_FAIL(e, QA_ERR_INPUT,
                       "max_text_tokens %lld does not fit the aligner at max_audio_seconds %.1f: %d positions "
                       "- 2 - %d audio tokens leave %lld", (long long)text, sec, c->text.max_positions,
                       pm->audio_tokens, (long long)avail);
    pm->text_tokens = (int)text;
    pm->seq_tokens = 2 + pm->audio_tokens + (int)text;
    pm->workspace_bytes = qa_plan_workspace_aligner(c, pm->mel_frames, pm->seq_tokens, pm->text_tokens);
    return QA_OK;
}

static qa_status plan_asr(const qa_model_config *c, const qa_limits *lim, double sec, qa_plan_model *pm, qa_err *e)
{
    const qa_text_config *t = &c->text;
    int ctx = lim->max_text_tokens > 0 ? lim->max_text_tokens : QA_ASR_DEFAULT_CONTEXT_TOKENS;
    int64_t prompt = QA_ASR_PROMPT_FIXED + QA_ASR_LANGUAGE_TOKENS + (int64_t)pm->audio_tokens + ctx;
    int64_t total = prompt + lim->max_new_tokens;
    if (total > t->max_positions)
        return QA_FAIL(e, QA_ERR_INPUT,
                       "max_audio_seconds %.1f (%d audio tokens) + max_new_tokens %d + prompt need %lld positions; "
                       "the ASR model allows %d", sec, pm->audio_tokens, lim->max_new_tokens, (long long)total,
                       t->max_positions);
    pm->text_tokens = ctx;
    pm->seq_tokens = (int)prompt;
    pm->kv_bytes = qa_align_up((size_t)t->layers * 2 * (size_t)t->kv_heads * (size_t)t->head_dim * (size_t)total *
                               qa_dtype_size(lim->dtype));
    pm->workspace_bytes = qa_plan_workspace_asr(c, pm->mel_frames, (int)prompt, lim->max_new_tokens);
    return QA_OK;
}

static void add_region(qa_plan *p, const char *name, size_t bytes)
{
    qa_region_spec *r = &p->regions[p->n_regions++];
    memset(r, 0, sizeof *r);
    strncpy(r->name, name, sizeof r->name - 1);
    r->bytes = qa_align_up(bytes);
    p->arena_bytes += r->bytes;
}

static qa_status check_limits(const qa_limits *lim, qa_err *e)
{
    for (int k = 0; k < 2; k++)
        if (!(lim->max_audio_seconds[k] > 0) || lim->max_audio_seconds[k] > QA_MAX_AUDIO_SECONDS_CAP)
            return QA_FAIL(e, QA_ERR_INPUT, "max_audio_seconds for the %s must be in (0, %.0f], got %g",
                           qa_model_kind_name((qa_model_kind)k), QA_MAX_AUDIO_SECONDS_CAP, lim->max_audio_seconds[k]);
    if (lim->max_new_tokens < 1 || lim->max_new_tokens > (1 << 20))
        return QA_FAIL(e, QA_ERR_INPUT, "max_new_tokens must be in [1, 1048576], got %d", lim->max_new_tokens);
    if (lim->max_text_tokens > (1 << 22))
        return QA_FAIL(e, QA_ERR_INPUT, "max_text_tokens %d is absurd", lim->max_text_tokens);
    if (lim->dtype != QA_F32 && lim->dtype != QA_BF16)
        return QA_FAIL(e, QA_ERR_INPUT, "compute dtype must be float32 or bfloat16");
    return QA_OK;
}

qa_status qa_plan_compute(const qa_model_config *const cfgs[2], const qa_limits *lim, qa_plan *out, qa_err *e)
{
    memset(out, 0, sizeof *out);
    QA_TRY(check_limits(lim, e));
    if (!cfgs[0] && !cfgs[1])
        return QA_FAIL(e, QA_ERR_INPUT, "give at least one of aligner= and asr=");
    out->limits = *lim;
    size_t ws = 0;
    for (int k = 0; k < 2; k++) {
        const qa_model_config *c = cfgs[k];
        qa_plan_model *pm = &out->model[k];
        if (!c)
            continue;
        double sec = lim->max_audio_seconds[k];
        int64_t samples = (int64_t)ceil(sec * 16000.0);
        pm->present = 1;
        memcpy(pm->name, c->name, sizeof pm->name);
        pm->mel_frames = (int)qa_mel_frames((size_t)samples);
        pm->audio_tokens = (int)tokens_of_frames(&c->audio, pm->mel_frames);
        pm->weight_bytes = qa_names_weight_bytes(c, lim->dtype);
        QA_TRY(k == QA_MODEL_ALIGNER ? plan_aligner(c, lim, sec, pm, e) : plan_asr(c, lim, sec, pm, e));
        ws = max2(ws, pm->workspace_bytes);
    }
    out->limits.max_text_tokens = out->model[cfgs[QA_MODEL_ALIGNER] ? QA_MODEL_ALIGNER : QA_MODEL_ASR].text_tokens;
    if (cfgs[QA_MODEL_ALIGNER])
        add_region(out, "weights/aligner", out->model[QA_MODEL_ALIGNER].weight_bytes);
    if (cfgs[QA_MODEL_ASR]) {
        add_region(out, "weights/asr", out->model[QA_MODEL_ASR].weight_bytes);
        add_region(out, "kv/asr", out->model[QA_MODEL_ASR].kv_bytes);
    }
    add_region(out, "workspace", ws);
    return QA_OK;
}
