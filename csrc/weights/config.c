/* config.c — config.json of either layout -> qa_model_config; presets of the released models.
 *
 * Contract (config.h): reads <dir>/config.json, tells the layout (original: nested `thinker_config`;
 * "-hf": flat `audio_config`/`text_config`) and the kind (original: thinker_config.model_type
 * `qwen3_forced_aligner` / `qwen3_asr`; -hf: architectures `Qwen3ASRForTokenClassification` /
 * `Qwen3ASRForConditionalGeneration`), MODEL_FACTS.md §1. Every model dimension must be present and
 * sane: a missing or absurd key is QA_ERR_MODEL naming the file and the dotted key. Only values that
 * the -hf layout moved out of config.json get documented defaults: audio start/end token ids
 * (151669/151670, tokenizer constants), timestamp_segment_time (80 ms, on the -hf processor),
 * eos ids {151643, 151645} (generation_config), the language lists of MODEL_FACTS §10.
 * Presets carry the numbers of the released config.json files (../shared/models/ * /config.json).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"

#define CONFIG_MAX_BYTES (16u * 1024u * 1024u)

static const char *const ALIGNER_LANGUAGES[] = {"Chinese", "Cantonese", "English", "German", "Spanish", "French",
                                                 "Italian", "Portuguese", "Russian", "Korean", "Japanese"};
static const char *const ASR_LANGUAGES[] = {
    "Chinese", "English", "Cantonese", "Arabic", "German", "French", "Spanish", "Portuguese", "Indonesian",
    "Italian", "Korean", "Russian", "Thai", "Vietnamese", "Japanese", "Turkish", "Hindi", "Malay",
    "Dutch", "Swedish", "Danish", "Finnish", "Polish", "Czech", "Filipino", "Persian", "Greek",
    "Romanian", "Hungarian", "Macedonian"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *qa_model_kind_name(qa_model_kind k) { return k == QA_MODEL_ALIGNER ? "aligner" : "asr"; }

static int conv_len(int n) { return (n - 1) / 2 + 1; } /* Conv2d k3 s2 p1 output length */

int qa_config_conv_out_in(const qa_audio_config *a)
{
    return a->down_hidden * conv_len(conv_len(conv_len(a->num_mel_bins)));
}

/* A JSON object plus its dotted name, for messages. */
typedef struct scope {
    const qa_json *obj;
    const char *name; /* "thinker_config.text_config" ("" at top level) */
} scope;

typedef struct reader {
    const char *path;
    qa_err *e;
} reader;

static qa_status missing(reader *r, scope s, const char *key, const char *why)
{
    return QA_FAIL(r->e, QA_ERR_MODEL, "%s: key '%s%s%s' %s", r->path, s.name, *s.name ? "." : "", key, why);
}

static qa_status get_int(reader *r, scope s, const char *key, int64_t lo, int64_t hi, int *out)
{
    const qa_json *v = qa_json_get(s.obj, key);
    int64_t x;
    if (!v)
        return missing(r, s, key, "is missing");
    if (!qa_json_as_int(v, &x))
        return missing(r, s, key, "is not an integer");
    if (x < lo || x > hi)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: key '%s%s%s' = %lld is out of range [%lld, %lld]", r->path, s.name,
                       *s.name ? "." : "", key, (long long)x, (long long)lo, (long long)hi);
    *out = (int)x;
    return QA_OK;
}

/* Optional integer: keeps *out (the default) when absent. */
static qa_status opt_int(reader *r, scope s, const char *key, int *out)
{
    return qa_json_get(s.obj, key) ? get_int(r, s, key, 0, 1 << 30, out) : QA_OK;
}

static qa_status get_double(reader *r, scope s, const char *key, double *out)
{
    const qa_json *v = qa_json_get(s.obj, key);
    if (!v)
        return missing(r, s, key, "is missing");
    if (v->type != QA_JSON_NUMBER || !(v->num > 0))
        return missing(r, s, key, "is not a positive number");
    *out = v->num;
    return QA_OK;
}

static scope sub(reader *r, scope s, const char *key, const char *dotted, qa_status *st)
{
    scope out = {qa_json_get(s.obj, key), dotted};
    if (!out.obj || out.obj->type != QA_JSON_OBJECT)
        *st = missing(r, s, key, "is missing or not an object");
    return out;
}

#define BIG (1 << 24)

static qa_status read_audio(reader *r, scope a, qa_audio_config *c)
{
    QA_TRY(get_int(r, a, "num_mel_bins", 128, 128, &c->num_mel_bins));
    QA_TRY(get_int(r, a, "encoder_layers", 1, 1024, &c->layers));
    QA_TRY(get_int(r, a, "encoder_attention_heads", 1, 1024, &c->heads));
    QA_TRY(get_int(r, a, "encoder_ffn_dim", 1, BIG, &c->ffn));
    QA_TRY(get_int(r, a, "d_model", 1, BIG, &c->d_model));
    QA_TRY(get_int(r, a, "output_dim", 1, BIG, &c->output_dim));
    QA_TRY(get_int(r, a, "n_window", 1, 1 << 16, &c->n_window));
    QA_TRY(get_int(r, a, "n_window_infer", 1, 1 << 20, &c->n_window_infer));
    QA_TRY(get_int(r, a, "downsample_hidden_size", 1, BIG, &c->down_hidden));
    if (c->d_model % c->heads)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: %s.d_model %d is not a multiple of encoder_attention_heads %d", r->path,
                       a.name, c->d_model, c->heads);
    if (c->n_window_infer % (2 * c->n_window))
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: %s.n_window_infer %d is not a multiple of 2 * n_window (%d)", r->path,
                       a.name, c->n_window_infer, 2 * c->n_window);
    return QA_OK;
}

static qa_status read_text(reader *r, scope t, qa_text_config *c)
{
    const char *mt = qa_json_string(qa_json_get(t.obj, "model_type"));
    if (mt && strcmp(mt, "qwen3") != 0)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: unknown model_type '%s' in %s (expected qwen3)", r->path, mt, t.name);
    QA_TRY(get_int(r, t, "vocab_size", 1, BIG, &c->vocab));
    QA_TRY(get_int(r, t, "hidden_size", 1, BIG, &c->hidden));
    QA_TRY(get_int(r, t, "intermediate_size", 1, BIG, &c->inter));
    QA_TRY(get_int(r, t, "num_hidden_layers", 1, 1024, &c->layers));
    QA_TRY(get_int(r, t, "num_attention_heads", 1, 1024, &c->heads));
    QA_TRY(get_int(r, t, "num_key_value_heads", 1, 1024, &c->kv_heads));
    QA_TRY(get_int(r, t, "head_dim", 1, 4096, &c->head_dim));
    QA_TRY(get_int(r, t, "max_position_embeddings", 16, 1 << 24, &c->max_positions));
    QA_TRY(get_double(r, t, "rms_norm_eps", &c->rms_eps));
    const qa_json *rp = qa_json_get(t.obj, "rope_parameters"); /* -hf spelling */
    if (!qa_json_get(t.obj, "rope_theta") && rp)
        QA_TRY(get_double(r, (scope){rp, "text_config.rope_parameters"}, "rope_theta", &c->rope_theta));
    else
        QA_TRY(get_double(r, t, "rope_theta", &c->rope_theta));
    if (c->heads % c->kv_heads)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: %s.num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       r->path, t.name, c->heads, c->kv_heads);
    if (c->head_dim % 2)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: %s.head_dim %d must be even (RoPE)", r->path, t.name, c->head_dim);
    return QA_OK;
}

static void set_languages(qa_model_config *cfg, const char *const *list, size_t n)
{
    cfg->n_languages = 0;
    for (size_t i = 0; i < n && i < QA_MAX_LANGUAGES; i++)
        snprintf(cfg->languages[cfg->n_languages++], sizeof cfg->languages[0], "%s", list[i]);
}

static qa_status read_languages(reader *r, const qa_json *root, qa_model_config *cfg)
{
    const qa_json *l = qa_json_get(root, "support_languages");
    if (!l) {
        if (cfg->kind == QA_MODEL_ALIGNER)
            set_languages(cfg, ALIGNER_LANGUAGES, COUNT(ALIGNER_LANGUAGES));
        else
            set_languages(cfg, ASR_LANGUAGES, COUNT(ASR_LANGUAGES));
        return QA_OK;
    }
    if (l->type != QA_JSON_ARRAY || l->n > QA_MAX_LANGUAGES)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: support_languages must be a list of at most %d names", r->path,
                       QA_MAX_LANGUAGES);
    cfg->n_languages = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *s = qa_json_string(&l->items[i]);
        if (!s || l->items[i].str_len >= sizeof cfg->languages[0])
            return QA_FAIL(r->e, QA_ERR_MODEL, "%s: support_languages[%zu] is not a short string", r->path, i);
        snprintf(cfg->languages[cfg->n_languages++], sizeof cfg->languages[0], "%s", s);
    }
    return QA_OK;
}

static int has_string(const qa_json *arr, const char *s)
{
    if (!arr || arr->type != QA_JSON_ARRAY)
        return 0;
    for (size_t i = 0; i < arr->n; i++)
        if (qa_json_string(&arr->items[i]) && strcmp(arr->items[i].str, s) == 0)
            return 1;
    return 0;
}

/* Layout and kind; fills the audio/text scopes and the kind-specific head size. */
static qa_status detect(reader *r, scope root, qa_model_config *cfg, scope *thinker, scope *audio, scope *text)
{
    qa_status st = QA_OK;
    const char *mt = qa_json_string(qa_json_get(root.obj, "model_type"));
    if (!mt)
        return missing(r, root, "model_type", "is missing");
    if (strcmp(mt, "qwen3_asr") != 0)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: unknown model_type '%s' (expected qwen3_asr)", r->path, mt);
    if (qa_json_get(root.obj, "thinker_config")) {
        cfg->layout = QA_LAYOUT_ORIGINAL;
        *thinker = sub(r, root, "thinker_config", "thinker_config", &st);
        QA_TRY(st);
        const char *tmt = qa_json_string(qa_json_get(thinker->obj, "model_type"));
        if (!tmt)
            return missing(r, *thinker, "model_type", "is missing");
        /* qwen3_forced_aligner, or qwen3_asr with classify_num (how the -hf converter tells them) */
        if (strstr(tmt, "forced_aligner"))
            cfg->kind = QA_MODEL_ALIGNER;
        else if (strcmp(tmt, "qwen3_asr") == 0)
            cfg->kind = qa_json_get(thinker->obj, "classify_num") ? QA_MODEL_ALIGNER : QA_MODEL_ASR;
        else
            return QA_FAIL(r->e, QA_ERR_MODEL, "%s: unknown model_type '%s' in thinker_config", r->path, tmt);
        if (cfg->kind == QA_MODEL_ALIGNER)
            QA_TRY(get_int(r, *thinker, "classify_num", 1, BIG, &cfg->classify_num));
        *audio = sub(r, *thinker, "audio_config", "thinker_config.audio_config", &st);
        *text = sub(r, *thinker, "text_config", "thinker_config.text_config", &st);
        return st;
    }
    cfg->layout = QA_LAYOUT_HF;
    *thinker = root;
    const qa_json *arch = qa_json_get(root.obj, "architectures");
    if (has_string(arch, "Qwen3ASRForTokenClassification")) {
        cfg->kind = QA_MODEL_ALIGNER;
        const qa_json *labels = qa_json_get(root.obj, "id2label");
        if (qa_json_get(root.obj, "num_labels"))
            QA_TRY(get_int(r, root, "num_labels", 1, BIG, &cfg->classify_num));
        else if (labels && labels->type == QA_JSON_OBJECT && labels->n > 0)
            cfg->classify_num = (int)labels->n;
        else
            return missing(r, root, "id2label", "is missing (the aligner's class count)");
    } else if (has_string(arch, "Qwen3ASRForConditionalGeneration")) {
        cfg->kind = QA_MODEL_ASR;
    } else {
        return QA_FAIL(r->e, QA_ERR_MODEL,
                       "%s: architectures names neither Qwen3ASRForTokenClassification nor "
                       "Qwen3ASRForConditionalGeneration (unknown model)", r->path);
    }
    *audio = sub(r, root, "audio_config", "audio_config", &st);
    *text = sub(r, root, "text_config", "text_config", &st);
    return st;
}

static qa_status read_ids(reader *r, scope root, scope thinker, qa_model_config *cfg)
{
    cfg->audio_start_token_id = 151669; /* -hf configs omit these (tokenizer constants, MODEL_FACTS §6) */
    cfg->audio_end_token_id = 151670;
    cfg->timestamp_segment_ms = 80;     /* -hf: on the processor (MODEL_FACTS §1.6) */
    cfg->eos_token_ids[0] = 151643;
    cfg->eos_token_ids[1] = 151645;
    cfg->timestamp_token_id = 151705;
    QA_TRY(get_int(r, thinker, "audio_token_id", 0, BIG, &cfg->audio_token_id));
    QA_TRY(opt_int(r, thinker, "audio_start_token_id", &cfg->audio_start_token_id));
    QA_TRY(opt_int(r, thinker, "audio_end_token_id", &cfg->audio_end_token_id));
    if (cfg->kind == QA_MODEL_ALIGNER) {
        QA_TRY(get_int(r, root, "timestamp_token_id", 0, BIG, &cfg->timestamp_token_id));
        QA_TRY(opt_int(r, root, "timestamp_segment_time", &cfg->timestamp_segment_ms));
        if (cfg->timestamp_segment_ms <= 0)
            return missing(r, root, "timestamp_segment_time", "must be positive");
    }
    const qa_json *eos = qa_json_get(root.obj, "eos_token_id");
    int64_t a, b;
    if (eos && eos->type == QA_JSON_ARRAY && eos->n == 2 && qa_json_as_int(&eos->items[0], &a) &&
        qa_json_as_int(&eos->items[1], &b)) {
        cfg->eos_token_ids[0] = (int)a;
        cfg->eos_token_ids[1] = (int)b;
    }
    return QA_OK;
}

static void set_name(qa_model_config *cfg, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    snprintf(cfg->name, sizeof cfg->name, "%.*s", (int)(n - b), dir + b);
}

static qa_status read_config(reader *r, const qa_json *rootj, qa_model_config *cfg)
{
    scope root = {rootj, ""}, thinker = root, audio = root, text = root;
    if (rootj->type != QA_JSON_OBJECT)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: not a JSON object", r->path);
    QA_TRY(detect(r, root, cfg, &thinker, &audio, &text));
    QA_TRY(read_audio(r, audio, &cfg->audio));
    QA_TRY(read_text(r, text, &cfg->text));
    const qa_json *tie = qa_json_get(text.obj, "tie_word_embeddings");
    if (!tie)
        tie = qa_json_get(root.obj, "tie_word_embeddings");
    cfg->text.tie_word_embeddings = tie && tie->type == QA_JSON_BOOL && tie->boolean;
    if (cfg->audio.output_dim != cfg->text.hidden)
        return QA_FAIL(r->e, QA_ERR_MODEL, "%s: audio output_dim %d differs from text hidden_size %d", r->path,
                       cfg->audio.output_dim, cfg->text.hidden);
    QA_TRY(read_ids(r, root, thinker, cfg));
    return read_languages(r, rootj, cfg);
}

qa_status qa_config_load(const char *dir, qa_model_config *cfg, qa_err *e)
{
    char path[4200];
    struct stat sb;
    memset(cfg, 0, sizeof *cfg);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return QA_FAIL(e, QA_ERR_MODEL, "model folder %s does not exist or is not a folder", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (stat(path, &sb) != 0)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: missing config.json (not a checkpoint folder)", dir);
    qa_json_doc *doc;
    QA_TRY(qa_json_parse_file(path, CONFIG_MAX_BYTES, &doc, e));
    reader r = {path, e};
    qa_status s = read_config(&r, qa_json_root(doc), cfg);
    qa_json_free(doc);
    if (s == QA_OK)
        set_name(cfg, dir);
    return s;
}

/* ---- presets: the released config.json numbers (../shared/models/<name>/config.json) ---- */

static void preset_common(qa_model_config *c)
{
    c->layout = QA_LAYOUT_ORIGINAL;
    c->audio = (qa_audio_config){128, 24, 16, 4096, 1024, 1024, 50, 800, 480};
    c->text = (qa_text_config){151936, 1024, 3072, 28, 16, 8, 128, 65536, 1e-6, 1e6, 1};
    c->audio_token_id = 151676;
    c->audio_start_token_id = 151669;
    c->audio_end_token_id = 151670;
    c->timestamp_token_id = 151705;
    c->timestamp_segment_ms = 80;
    c->eos_token_ids[0] = 151643;
    c->eos_token_ids[1] = 151645;
}

qa_status qa_config_preset(const char *name, qa_model_config *c, qa_err *e)
{
    memset(c, 0, sizeof *c);
    preset_common(c);
    if (strcmp(name, "Qwen3-ForcedAligner-0.6B") == 0) {
        c->kind = QA_MODEL_ALIGNER;
        c->classify_num = 5000;
        c->text.vocab = 152064;
        c->text.max_positions = 8192;
        c->text.tie_word_embeddings = 0;
        set_languages(c, ALIGNER_LANGUAGES, COUNT(ALIGNER_LANGUAGES));
    } else if (strcmp(name, "Qwen3-ASR-1.7B") == 0) {
        c->kind = QA_MODEL_ASR;
        c->audio.output_dim = 2048;
        c->text.hidden = 2048;
        c->text.inter = 6144;
        set_languages(c, ASR_LANGUAGES, COUNT(ASR_LANGUAGES));
    } else if (strcmp(name, "Qwen3-ASR-0.6B") == 0) {
        c->kind = QA_MODEL_ASR;
        c->audio = (qa_audio_config){128, 18, 14, 3584, 896, 1024, 50, 800, 480};
        set_languages(c, ASR_LANGUAGES, COUNT(ASR_LANGUAGES));
    } else {
        return QA_FAIL(e, QA_ERR_INPUT,
                       "unknown model preset '%s' (known: Qwen3-ForcedAligner-0.6B, Qwen3-ASR-1.7B, Qwen3-ASR-0.6B)",
                       name);
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    return QA_OK;
}

qa_status qa_config_resolve(const char *name_or_dir, qa_model_config *cfg, qa_err *e)
{
    struct stat sb;
    if (stat(name_or_dir, &sb) == 0 || strchr(name_or_dir, '/'))
        return qa_config_load(name_or_dir, cfg, e);
    if (qa_config_preset(name_or_dir, cfg, e) == QA_OK)
        return QA_OK;
    return QA_FAIL(e, QA_ERR_MODEL,
                   "model folder %s does not exist and is not a preset name (Qwen3-ForcedAligner-0.6B, "
                   "Qwen3-ASR-1.7B, Qwen3-ASR-0.6B)", name_or_dir);
}
