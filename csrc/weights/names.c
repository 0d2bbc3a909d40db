/* names.c — the tensor table of a Qwen3-ASR / ForcedAligner checkpoint (see names.h).
 *
 * Shapes follow MODEL_FACTS.md §2.1 (PyTorch (out, in) for Linear; Conv2d (out, in, 3, 3)):
 * audio tower conv2d1..3 + conv_out (no bias) + L_enc layers of 16 tensors + ln_post + proj1/proj2,
 * text model embed + 11 tensors per layer + norm, head (aligner [classify_num, D], ASR [V, D] or tied).
 * Layout mapping (§2.3, HF convert_qwen3_asr_to_hf): proj1/proj2 -> model.multi_modal_projector.linear_1/2
 * (checked before the generic audio_tower rule), thinker.audio_tower -> model.audio_tower,
 * thinker.model -> model.language_model, thinker.lm_head -> score (aligner) / lm_head (ASR).
 */
#include "names.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../memory/arena.h"

typedef struct emitter {
    const qa_model_config *cfg;
    qa_slot_fn fn;
    void *ctx;
    qa_err *e;
} emitter;

/* Emit one slot: name is printf-formatted; shape given as ndim values. */
static qa_status emit(emitter *em, qa_tensor *t, int ndim, const int64_t *shape, const char *fmt, ...)
{
    qa_weight_slot s = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s.name, sizeof s.name, fmt, ap);
    va_end(ap);
    s.t = t;
    s.ndim = ndim;
    memcpy(s.shape, shape, (size_t)ndim * sizeof *shape);
    return em->fn(em->ctx, &s, em->e);
}

#define SLOT(m, field) ((m) ? &(m)->field : NULL)
#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static qa_status encoder_layer(emitter *em, qa_encoder_layer *l, int i)
{
    const int64_t E = em->cfg->audio.d_model, F = em->cfg->audio.ffn;
    const char *p = "thinker.audio_tower.layers";
    static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    qa_tensor *w[4] = {SLOT(l, q_w), SLOT(l, k_w), SLOT(l, v_w), SLOT(l, o_w)};
    qa_tensor *b[4] = {SLOT(l, q_b), SLOT(l, k_b), SLOT(l, v_b), SLOT(l, o_b)};
    /* q, k, v weights, then their biases: the loader takes slots from the arena in this order, so each group lies
     * in one piece and the encoder runs q/k/v as one GEMM with one bias (backend.h ln_gemm) */
    for (int k = 0; k < 3; k++)
        QA_TRY(emit(em, w[k], SHAPE(E, E), "%s.%d.self_attn.%s.weight", p, i, proj[k]));
    for (int k = 0; k < 3; k++)
        QA_TRY(emit(em, b[k], SHAPE(E), "%s.%d.self_attn.%s.bias", p, i, proj[k]));
    QA_TRY(emit(em, w[3], SHAPE(E, E), "%s.%d.self_attn.%s.weight", p, i, proj[3]));
    QA_TRY(emit(em, b[3], SHAPE(E), "%s.%d.self_attn.%s.bias", p, i, proj[3]));
    QA_TRY(emit(em, SLOT(l, ln1_w), SHAPE(E), "%s.%d.self_attn_layer_norm.weight", p, i));
    QA_TRY(emit(em, SLOT(l, ln1_b), SHAPE(E), "%s.%d.self_attn_layer_norm.bias", p, i));
    QA_TRY(emit(em, SLOT(l, fc1_w), SHAPE(F, E), "%s.%d.fc1.weight", p, i));
    QA_TRY(emit(em, SLOT(l, fc1_b), SHAPE(F), "%s.%d.fc1.bias", p, i));
    QA_TRY(emit(em, SLOT(l, fc2_w), SHAPE(E, F), "%s.%d.fc2.weight", p, i));
    QA_TRY(emit(em, SLOT(l, fc2_b), SHAPE(E), "%s.%d.fc2.bias", p, i));
    QA_TRY(emit(em, SLOT(l, ln2_w), SHAPE(E), "%s.%d.final_layer_norm.weight", p, i));
    return emit(em, SLOT(l, ln2_b), SHAPE(E), "%s.%d.final_layer_norm.bias", p, i);
}

static qa_status encoder(emitter *em, qa_model *m)
{
    const qa_audio_config *a = &em->cfg->audio;
    const int64_t C = a->down_hidden, E = a->d_model, D = a->output_dim;
    const char *p = "thinker.audio_tower";
    QA_TRY(emit(em, SLOT(m, enc.conv1_w), SHAPE(C, 1, 3, 3), "%s.conv2d1.weight", p));
    QA_TRY(emit(em, SLOT(m, enc.conv1_b), SHAPE(C), "%s.conv2d1.bias", p));
    QA_TRY(emit(em, SLOT(m, enc.conv2_w), SHAPE(C, C, 3, 3), "%s.conv2d2.weight", p));
    QA_TRY(emit(em, SLOT(m, enc.conv2_b), SHAPE(C), "%s.conv2d2.bias", p));
    QA_TRY(emit(em, SLOT(m, enc.conv3_w), SHAPE(C, C, 3, 3), "%s.conv2d3.weight", p));
    QA_TRY(emit(em, SLOT(m, enc.conv3_b), SHAPE(C), "%s.conv2d3.bias", p));
    QA_TRY(emit(em, SLOT(m, enc.conv_out_w), SHAPE(E, qa_config_conv_out_in(a)), "%s.conv_out.weight", p));
    for (int i = 0; i < a->layers; i++)
        QA_TRY(encoder_layer(em, m ? &m->enc.layers[i] : NULL, i));
    QA_TRY(emit(em, SLOT(m, enc.ln_post_w), SHAPE(E), "%s.ln_post.weight", p));
    QA_TRY(emit(em, SLOT(m, enc.ln_post_b), SHAPE(E), "%s.ln_post.bias", p));
    QA_TRY(emit(em, SLOT(m, enc.proj1_w), SHAPE(E, E), "%s.proj1.weight", p));
    QA_TRY(emit(em, SLOT(m, enc.proj1_b), SHAPE(E), "%s.proj1.bias", p));
    QA_TRY(emit(em, SLOT(m, enc.proj2_w), SHAPE(D, E), "%s.proj2.weight", p));
    return emit(em, SLOT(m, enc.proj2_b), SHAPE(D), "%s.proj2.bias", p);
}

static qa_status decoder_layer(emitter *em, qa_decoder_layer *l, int i)
{
    const qa_text_config *t = &em->cfg->text;
    const int64_t D = t->hidden, F = t->inter, Q = (int64_t)t->heads * t->head_dim,
                  KV = (int64_t)t->kv_heads * t->head_dim, Dh = t->head_dim;
    const char *p = "thinker.model.layers";
    QA_TRY(emit(em, SLOT(l, in_norm), SHAPE(D), "%s.%d.input_layernorm.weight", p, i));
    QA_TRY(emit(em, SLOT(l, q_w), SHAPE(Q, D), "%s.%d.self_attn.q_proj.weight", p, i));
    QA_TRY(emit(em, SLOT(l, k_w), SHAPE(KV, D), "%s.%d.self_attn.k_proj.weight", p, i));
    QA_TRY(emit(em, SLOT(l, v_w), SHAPE(KV, D), "%s.%d.self_attn.v_proj.weight", p, i));
    QA_TRY(emit(em, SLOT(l, o_w), SHAPE(D, Q), "%s.%d.self_attn.o_proj.weight", p, i));
    QA_TRY(emit(em, SLOT(l, q_norm), SHAPE(Dh), "%s.%d.self_attn.q_norm.weight", p, i));
    QA_TRY(emit(em, SLOT(l, k_norm), SHAPE(Dh), "%s.%d.self_attn.k_norm.weight", p, i));
    QA_TRY(emit(em, SLOT(l, post_norm), SHAPE(D), "%s.%d.post_attention_layernorm.weight", p, i));
    QA_TRY(emit(em, SLOT(l, gate_w), SHAPE(F, D), "%s.%d.mlp.gate_proj.weight", p, i));
    QA_TRY(emit(em, SLOT(l, up_w), SHAPE(F, D), "%s.%d.mlp.up_proj.weight", p, i));
    return emit(em, SLOT(l, down_w), SHAPE(D, F), "%s.%d.mlp.down_proj.weight", p, i);
}

static qa_status decoder(emitter *em, qa_model *m)
{
    const qa_model_config *c = em->cfg;
    const int64_t V = c->text.vocab, D = c->text.hidden;
    QA_TRY(emit(em, SLOT(m, dec.embed), SHAPE(V, D), "thinker.model.embed_tokens.weight"));
    for (int i = 0; i < c->text.layers; i++)
        QA_TRY(decoder_layer(em, m ? &m->dec.layers[i] : NULL, i));
    return emit(em, SLOT(m, dec.norm), SHAPE(D), "thinker.model.norm.weight");
}

/* The output head: aligner [classify_num, D] (own tensor); ASR [V, D], a view of embed when tied. */
static qa_status head(emitter *em, qa_model *m)
{
    const qa_model_config *c = em->cfg;
    qa_weight_slot s = {.name = "thinker.lm_head.weight", .t = SLOT(m, dec.head), .ndim = 2};
    s.shape[0] = c->kind == QA_MODEL_ALIGNER ? c->classify_num : c->text.vocab;
    s.shape[1] = c->text.hidden;
    s.tied = c->kind == QA_MODEL_ASR && c->text.tie_word_embeddings;
    return em->fn(em->ctx, &s, em->e);
}

qa_status qa_names_foreach(const qa_model_config *cfg, qa_model *m, qa_slot_fn fn, void *ctx, qa_err *e)
{
    emitter em = {cfg, fn, ctx, e};
    QA_TRY(encoder(&em, m));
    QA_TRY(decoder(&em, m));
    return head(&em, m);
}

void qa_names_file_name(const qa_model_config *cfg, const char *canon, char *out, size_t out_size)
{
    static const struct { const char *from, *to; } hf[] = {
        {"thinker.audio_tower.proj1.", "model.multi_modal_projector.linear_1."},
        {"thinker.audio_tower.proj2.", "model.multi_modal_projector.linear_2."},
        {"thinker.audio_tower.", "model.audio_tower."},
        {"thinker.model.", "model.language_model."},
    };
    if (cfg->layout == QA_LAYOUT_HF) {
        if (strcmp(canon, "thinker.lm_head.weight") == 0) {
            snprintf(out, out_size, "%s", cfg->kind == QA_MODEL_ALIGNER ? "score.weight" : "lm_head.weight");
            return;
        }
        for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
            size_t n = strlen(hf[i].from);
            if (strncmp(canon, hf[i].from, n) == 0) {
                snprintf(out, out_size, "%s%s", hf[i].to, canon + n);
                return;
            }
        }
    }
    snprintf(out, out_size, "%s", canon);
}

size_t qa_slot_numel(const qa_weight_slot *s)
{
    size_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= (size_t)s->shape[i];
    return n;
}

qa_dtype qa_slot_dtype(const qa_weight_slot *s, qa_dtype compute) { return s->ndim >= 2 ? compute : QA_F32; }

size_t qa_slot_bytes(const qa_weight_slot *s, qa_dtype compute)
{
    return s->tied ? 0 : qa_align_up(qa_slot_numel(s) * qa_dtype_size(qa_slot_dtype(s, compute)));
}

typedef struct sum_ctx {
    qa_dtype compute;
    size_t bytes;
} sum_ctx;

static qa_status add_bytes(void *ctx, const qa_weight_slot *s, qa_err *e)
{
    sum_ctx *c = ctx;
    c->bytes += qa_slot_bytes(s, c->compute);
    return QA_OK;
}

size_t qa_names_weight_bytes(const qa_model_config *cfg, qa_dtype compute)
{
    sum_ctx c = {compute, 0};
    qa_names_foreach(cfg, NULL, add_bytes, &c, NULL);
    return c.bytes;
}
