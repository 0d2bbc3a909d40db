/* config.h — the numbers of one checkpoint, read from its config.json (both layouts).
 *
 * Contract: qa_config_load(dir) reads <dir>/config.json in the original (`thinker_config`) or the
 * transformers-native "-hf" layout (MODEL_FACTS.md §1) and fills a qa_model_config, telling the
 * aligner from the ASR model by the config (original: thinker_config.model_type contains
 * "forced_aligner" / classify_num present; -hf: architectures Qwen3ASRForTokenClassification /
 * id2label size). Every key the engine needs must be present and sane; a missing or absurd key is
 * QA_ERR_MODEL naming the file and the key. No defaults are invented for model dimensions.
 * qa_config_preset() fills the same struct for the three released models by name, without files.
 */
#ifndef QA_CONFIG_H
#define QA_CONFIG_H

#include "../core/status.h"

typedef enum qa_model_kind { QA_MODEL_ALIGNER = 0, QA_MODEL_ASR = 1 } qa_model_kind;
typedef enum qa_layout { QA_LAYOUT_ORIGINAL = 0, QA_LAYOUT_HF = 1 } qa_layout;

#define QA_MAX_LANGUAGES 64

typedef struct qa_audio_config {
    int num_mel_bins;   /* M = 128 */
    int layers;         /* encoder_layers */
    int heads;          /* encoder_attention_heads */
    int ffn;            /* encoder_ffn_dim */
    int d_model;        /* encoder width */
    int output_dim;     /* projector output = text hidden */
    int n_window;       /* half chunk: chunk = 2 * n_window mel frames */
    int n_window_infer; /* attention window in mel frames (800 -> 104 tokens) */
    int down_hidden;    /* conv channels (480) */
} qa_audio_config;

typedef struct qa_text_config {
    int vocab;          /* V */
    int hidden;         /* D */
    int inter;          /* F */
    int layers;
    int heads;          /* H */
    int kv_heads;       /* Hk */
    int head_dim;       /* Dh */
    int max_positions;  /* max_position_embeddings */
    double rms_eps;
    double rope_theta;
    int tie_word_embeddings;
} qa_text_config;

typedef struct qa_model_config {
    qa_model_kind kind;
    qa_layout layout;
    qa_audio_config audio;
    qa_text_config text;
    int classify_num;          /* aligner head rows (5000); 0 for ASR */
    int audio_token_id;        /* <|audio_pad|> 151676 */
    int audio_start_token_id;  /* 151669 */
    int audio_end_token_id;    /* 151670 */
    int timestamp_token_id;    /* 151705 (aligner) */
    int timestamp_segment_ms;  /* 80 (aligner) */
    int eos_token_ids[2];      /* 151643, 151645 */
    int n_languages;
    char languages[QA_MAX_LANGUAGES][32]; /* support_languages, if the config lists them */
    char name[128];            /* preset name or folder basename, for reports */
} qa_model_config;

/* Read <dir>/config.json. Fills *cfg on success. */
qa_status qa_config_load(const char *dir, qa_model_config *cfg, qa_err *e);

/* A folder if `name_or_dir` is a directory, else a preset name; QA_ERR_MODEL naming both otherwise. */
qa_status qa_config_resolve(const char *name_or_dir, qa_model_config *cfg, qa_err *e);

/* "aligner" / "asr". */
const char *qa_model_kind_name(qa_model_kind k);

/* Rows of the conv_out input: down_hidden x mel bins after the three stride-2 convs (480 x 16). */
int qa_config_conv_out_in(const qa_audio_config *a);

/* Fill *cfg for a released model ("Qwen3-ForcedAligner-0.6B", "Qwen3-ASR-1.7B", "Qwen3-ASR-0.6B").
 * QA_ERR_INPUT if the name is unknown. */
qa_status qa_config_preset(const char *name, qa_model_config *cfg, qa_err *e);

#endif
