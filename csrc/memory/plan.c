/* plan.c — sizes before bytes: weights, KV cache and the workspace peak of one request (see plan.h).
 *
 * Contract: a pure function of the model configs and the limits (no file is read, nothing is
 * allocated), in the spirit of llm.c's fill_in_parameter_sizes and ggml-alloc's reserve on the
 * worst-case graph. Weight bytes come from the same tensor table the loader uses (weights/names.c),
 * so plan and load cannot disagree (tests/test_plan.py checks it against loaded checkpoints).
 * The workspace formulas list, buffer by buffer, what the engine takes (model/encoder.c, decoder.c,
 * heads.c, pipeline/inputs.c, align.c, asr.c): every workspace buffer the engine takes must be listed
 * here, or qa_arena_take fails loudly; a request at the limits reaches the planned peak exactly.
 * Every formula is non-decreasing in the mel frames, chunks, audio tokens, prompt tokens and timestamps
 * it sees (per-clip parts such as the conv tile and the log-mel work only in one clip's), which is why a
 * packed batch whose totals stay within these limits fits this plan (pipeline/align.c, test_pack.py).
 */
#include "plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../frontend/mel.h" /* qa_mel_frames: the constants of the log-mel, header only */
#include "../weights/names.h"

static int64_t conv_len(int64_t n) { return n > 0 ? (n - 1) / 2 + 1 : 0; } /* Conv2d k3 s2 p1 */
static int64_t conv3_len(int64_t n) { return conv_len(conv_len(conv_len(n))); }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

qa_limits qa_limits_default(void)
{
    qa_limits l = {{300.0, 300.0}, 1024, 0, 0, QA_F32, 1};
    return l;
}

void qa_plan_worker_region(char out[QA_REGION_NAME], const char *base, int w)
{
    if (w == 0)
        snprintf(out, QA_REGION_NAME, "%s", base);
    else
        snprintf(out, QA_REGION_NAME, "%s/%d", base, w);
}

/* Mel frames of n samples at 16 kHz (frontend/mel.c's count; the memory layer cannot call up). */

int64_t qa_audio_tokens_of_frames(const qa_audio_config *a, int64_t frames)
{
    int64_t chunk = 2 * (int64_t)a->n_window;
    return (frames / chunk) * conv3_len(chunk) + conv3_len(frames % chunk);
}

/* One workspace buffer of n float32 (or int32) values, rounded up as qa_arena_take does. */
static size_t fb(int64_t n) { return qa_align_up((size_t)n * 4); }
static size_t max2(size_t a, size_t b) { return a > b ? a : b; }
static size_t max3(size_t a, size_t b, size_t c) { return max2(a, max2(b, c)); }

/* Encoder temporaries (model/encoder.c), above its caller's feat and emb:
 *   x [chunks·13, E] residual stream, then the largest of
 *   conv front: per tile of g = min(QA_ENC_CHUNK_TILE, chunks) chunks: mel [g,1,M,100],
 *               conv1..3 outputs [g,C,64,50] [g,C,32,25] [g,C,16,13], flattened [g·13, C·16];
 *   layer:      h [N,E], then q|k|v [N,3E] (one GEMM output; attention writes h), or the fc1 tile [min(N,2048), F];
 *   post:       ln_post [N,E], proj1 [N,E]. */
size_t qa_plan_workspace_encoder(const qa_model_config *c, int64_t mel_frames)
{
    const qa_audio_config *a = &c->audio;
    const int64_t M = a->num_mel_bins, L = 2 * (int64_t)a->n_window, C = a->down_hidden, E = a->d_model;
    const int64_t K = (mel_frames + L - 1) / L, N = qa_audio_tokens_of_frames(a, mel_frames), Tc = conv3_len(L);
    const int64_t f1 = conv_len(M), t1 = conv_len(L), f2 = conv_len(f1), t2 = conv_len(t1), f3 = conv_len(f2);
    const int64_t g = min64(QA_ENC_CHUNK_TILE, K);
    size_t front = fb(g * M * L) + fb(g * C * f1 * t1) + fb(g * C * f2 * t2) + fb(g * C * f3 * Tc) + fb(g * Tc * C * f3);
    size_t layer = fb(N * E) + max2(fb(N * 3 * E), fb(min64(N, QA_MLP_TILE) * a->ffn));
    size_t post = 2 * fb(N * E);
    return fb(K * Tc * E) + max3(front, layer, post);
}

/* Features from samples on the backend (pipeline/inputs.c, above the features): the samples float32
 * [n] and the log_mel op's work area (backend.h qa_mel_work_bytes), both released before the tower
 * runs. n = the most samples that still give mel_frames frames (mel_frames·160 + 159). */
size_t qa_plan_workspace_mel(int64_t mel_frames)
{
    int64_t n = mel_frames * QA_MEL_HOP + QA_MEL_HOP - 1;
    return fb(n) + qa_align_up(qa_mel_work_bytes(n));
}

/* Prompt embedding (pipeline/inputs.c): ids int32 [T], features [M, frames], then either the
 * features' computation from samples or audio embeddings [N, D] + the encoder's temporaries.
 * T = 0 for an audio-only request. */
size_t qa_plan_workspace_inputs(const qa_model_config *c, int64_t mel_frames, int64_t T)
{
    int64_t N = qa_audio_tokens_of_frames(&c->audio, mel_frames);
    return fb(T) + fb(c->audio.num_mel_bins * mel_frames) +
           max2(qa_plan_workspace_mel(mel_frames), fb(N * c->text.hidden) + qa_plan_workspace_encoder(c, mel_frames));
}

/* Text layers over T rows (model/decoder.c): q [T, H·Dh] and the q / k / v projections [T, H·Dh + 2·Hk·Dh]
 * (one GEMM output, then the attention output) (+ the stored K, V [T, Hk·Dh] of the compute dtype without a
 * cache: with one they go into the kv region), or gate | up [min(T,512), 2F]. The normalised x lives in the
 * backend scratch only (norm_gemm / norm_mlp). */
size_t qa_plan_workspace_decoder(const qa_model_config *c, int64_t T, int with_cache, qa_dtype dtype)
{
    const qa_text_config *t = &c->text;
    int64_t QD = (int64_t)t->heads * t->head_dim, KD = (int64_t)t->kv_heads * t->head_dim;
    size_t stored = with_cache ? 0 : 2 * qa_align_up((size_t)(T * KD) * qa_dtype_size(dtype));
    size_t attn = fb(T * QD) + fb(T * (QD + 2 * KD)) + stored;
    size_t mlp = fb(min64(T, QA_MLP_TILE) * 2 * t->inter);
    return max2(attn, mlp);
}

/* Aligner head stage (pipeline/align.c + model/heads.c): rows int32 [n], logits [n, classes],
 * classes int32 [n], probs [n], then the gathered hidden rows [n, D]. */
size_t qa_plan_workspace_head(const qa_model_config *c, int64_t n)
{
    return fb(n) + fb(n * c->classify_num) + fb(n) + fb(n) + fb(n * c->text.hidden);
}

/* Aligner request: x [T, D] throughout, then the inputs, decoder or head stage. */
size_t qa_plan_workspace_aligner(const qa_model_config *c, int64_t mel_frames, int64_t T, int64_t n, qa_dtype dtype)
{
    return fb(T * c->text.hidden) + max3(qa_plan_workspace_inputs(c, mel_frames, T),
                                         qa_plan_workspace_decoder(c, T, 0, dtype), qa_plan_workspace_head(c, n));
}

/* ASR request (pipeline/asr.c). First the decode loop's buffers, at fixed offsets after the scratch so a
 * recorded decode step stays valid for every request: logits [V], token int32, norm row [D], token
 * row [D], generated ids int32 [max_new], step state int32 [QA_STEP_INTS]. Then either the prefill —
 * x [T, D] with the inputs or the decoder over T rows — or, once x is released, one decode step (the
 * decoder over one row, whether its position comes from the host or the device). */
size_t qa_plan_workspace_asr(const qa_model_config *c, int64_t mel_frames, int64_t T, int64_t max_new, qa_dtype dtype)
{
    size_t fixed = fb(c->text.vocab) + fb(1) + 2 * fb(c->text.hidden) + fb(max_new) + fb(QA_STEP_INTS);
    size_t prefill = fb(T * c->text.hidden) + max2(qa_plan_workspace_inputs(c, mel_frames, T),
                                                   qa_plan_workspace_decoder(c, T, 1, dtype));
    return fixed + max2(prefill, qa_plan_workspace_decoder(c, 1, 1, dtype)); /* a decode step: one row */
}

void qa_plan_scratch_dims(const qa_model_config *c, int64_t mel_frames, int64_t T, int64_t max_kv,
                          qa_scratch_dims *d)
{
    const qa_audio_config *a = &c->audio;
    const qa_text_config *t = &c->text;
    int64_t M = a->num_mel_bins, L = 2 * (int64_t)a->n_window, C = a->down_hidden;
    int64_t f1 = conv_len(M), t1 = conv_len(L), f2 = conv_len(f1), t2 = conv_len(t1);
    int64_t N = qa_audio_tokens_of_frames(a, mel_frames);
    int64_t window = conv3_len(L) * (a->n_window_infer / L); /* encoder keys per query: one window */
    d->max_kv = max64(d->max_kv, max64(max_kv, min64(window, N)));
    d->max_q = max64(d->max_q, max64(T, N));
    d->max_heads = max64(d->max_heads, max64(a->heads, t->heads));
    /* t->hidden: the rows norm_gemm / norm_mlp normalise into the scratch (never above t->inter in Qwen3) */
    d->max_gemm_k = max64(d->max_gemm_k, max64(max64(C * conv3_len(M), a->ffn), max64(t->inter, t->hidden)));
    d->max_gemm_n = max64(d->max_gemm_n, max64(max64(a->ffn, t->inter), max64(t->vocab, c->classify_num)));
    d->max_im2col = max64(d->max_im2col, max64(9 * f1 * t1, 9 * C * f2 * t2)); /* conv1, conv2 (largest) */
}

size_t qa_plan_kv_bytes(const qa_text_config *t, int64_t max_ctx, qa_dtype dtype)
{
    return (size_t)t->layers * 2 * (size_t)max_ctx * (size_t)t->kv_heads * (size_t)t->head_dim * qa_dtype_size(dtype);
}

static qa_status plan_aligner(const qa_model_config *c, const qa_limits *lim, double sec, qa_plan_model *pm,
                              qa_scratch_dims *dims, qa_err *e)
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
    pm->workspace_bytes = qa_plan_workspace_aligner(c, pm->mel_frames, pm->seq_tokens, pm->text_tokens, lim->dtype);
    qa_plan_scratch_dims(c, pm->mel_frames, pm->seq_tokens, pm->seq_tokens, dims);
    return QA_OK;
}

static qa_status plan_asr(const qa_model_config *c, const qa_limits *lim, double sec, qa_plan_model *pm,
                          qa_scratch_dims *dims, qa_err *e)
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
    pm->kv_bytes = qa_align_up(qa_plan_kv_bytes(t, total, lim->dtype));
    pm->workspace_bytes = qa_plan_workspace_asr(c, pm->mel_frames, prompt, lim->max_new_tokens, lim->dtype);
    qa_plan_scratch_dims(c, pm->mel_frames, prompt, total, dims);
    return QA_OK;
}

static void add_region(qa_plan *p, const char *name, size_t bytes)
{
    qa_region_spec *r = &p->regions[p->n_regions++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
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
    if (lim->workers < 1 || lim->workers > QA_MAX_WORKERS)
        return QA_FAIL(e, QA_ERR_INPUT, "workers must be in [1, %d], got %d", QA_MAX_WORKERS, lim->workers);
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
        pm->mel_frames = (int)qa_mel_frames(samples > 0 ? (size_t)samples : 0);
        pm->audio_tokens = (int)qa_audio_tokens_of_frames(&c->audio, pm->mel_frames);
        pm->weight_bytes = qa_names_weight_bytes(c, lim->dtype);
        QA_TRY(k == QA_MODEL_ALIGNER ? plan_aligner(c, lim, sec, pm, &out->scratch_dims, e)
                                     : plan_asr(c, lim, sec, pm, &out->scratch_dims, e));
    }
    /* Every request first takes the backend scratch (sized with the CPU backend's formula for the
     * largest op dimensions of either model) from the workspace; each model's peak includes it. */
    out->scratch_bytes = qa_align_up(qa_backend_cpu_scratch_need(&out->scratch_dims));
    for (int k = 0; k < 2; k++)
        if (out->model[k].present) {
            out->model[k].workspace_bytes += out->scratch_bytes;
            ws = max2(ws, out->model[k].workspace_bytes);
        }
    out->limits.max_text_tokens = out->model[cfgs[QA_MODEL_ALIGNER] ? QA_MODEL_ALIGNER : QA_MODEL_ASR].text_tokens;
    if (cfgs[QA_MODEL_ALIGNER])
        add_region(out, "weights/aligner", out->model[QA_MODEL_ALIGNER].weight_bytes);
    if (cfgs[QA_MODEL_ASR])
        add_region(out, "weights/asr", out->model[QA_MODEL_ASR].weight_bytes);
    /* One KV cache and one workspace per worker: a request owns both for its whole run, so W
     * requests at once need W of each (the weights are read-only and shared). */
    char name[QA_REGION_NAME];
    for (int w = 0; cfgs[QA_MODEL_ASR] && w < lim->workers; w++) {
        qa_plan_worker_region(name, "kv/asr", w);
        add_region(out, name, out->model[QA_MODEL_ASR].kv_bytes);
    }
    /* The log-mel constants (DFT matrix, filters) the backend's log_mel reads; filled at load. */
    add_region(out, QA_MEL_REGION, QA_MEL_TABLE_BYTES);
    for (int w = 0; w < lim->workers; w++) {
        qa_plan_worker_region(name, "workspace", w);
        add_region(out, name, ws);
    }
    return QA_OK;
}

void qa_plan_set_scratch(qa_plan *p, size_t scratch_bytes)
{
    scratch_bytes = qa_align_up(scratch_bytes);
    for (int i = 0; i < p->n_regions; i++) {
        qa_region_spec *r = &p->regions[i];
        if (strncmp(r->name, "workspace", 9) != 0) /* "workspace" and "workspace/<w>" */
            continue;
        size_t rest = r->bytes - p->scratch_bytes; /* the pipelines' part of the workspace */
        p->arena_bytes -= r->bytes;
        r->bytes = qa_align_up(scratch_bytes + rest);
        p->arena_bytes += r->bytes;
    }
    p->scratch_bytes = scratch_bytes;
}

void qa_plan_embed_to_host(qa_plan *p, int k, const qa_model_config *c)
{
    static const char *const region[2] = {"weights/aligner", "weights/asr"};
    size_t table = qa_align_up((size_t)c->text.vocab * (size_t)c->text.hidden * qa_dtype_size(p->limits.dtype));
    qa_plan_model *pm = &p->model[k];
    if (!pm->present || pm->host_bytes || table > pm->weight_bytes)
        return;
    pm->weight_bytes -= table;
    pm->host_bytes = table;
    p->host_bytes += table;
    for (int i = 0; i < p->n_regions; i++)
        if (strcmp(p->regions[i].name, region[k]) == 0) {
            p->regions[i].bytes -= table; /* both multiples of QA_ARENA_ALIGN: stays aligned */
            p->arena_bytes -= table;
        }
}
