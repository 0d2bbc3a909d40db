/* plan.h — every byte of the arena, computed from the configs and the limits before allocating.
 *
 *     const qa_model_config *cfgs[2] = {&aligner_cfg, &asr_cfg};      // either may be NULL
 *     qa_limits lim = qa_limits_default();  lim.max_audio_seconds[QA_MODEL_ASR] = 600;
 *     qa_plan p;
 *     QA_TRY(qa_plan_compute(cfgs, &lim, &p, e));                       // pure: no files, no memory
 *     QA_TRY(qa_arena_create(&arena, &dev, p.regions, p.n_regions, e)); // p.arena_bytes in one block
 *
 * Regions, in order: `weights/aligner`, `weights/asr` (bytes of names.c's tensor table at the compute
 * dtype, each tensor rounded to 256 B — equal to what checkpoint.c loads), `kv/asr`
 * (layers x 2 x Hk x Dh x (max prompt + max_new_tokens) x 4 or 2 bytes: the cache has the compute
 * dtype, BF16 for dtype="bfloat16" on every backend), `mel/tables` (backend.h QA_MEL_TABLE_BYTES: the log-mel DFT matrix and filters, filled at
 * load), `workspace` (the peak of one request at the limits: the backend scratch + the max of
 * qa_plan_workspace_aligner / _asr, reset per request).
 * With limits.workers = W > 1 (CPU: W requests at once, weights shared) the KV cache and the
 * workspace are repeated per worker: `kv/asr`, `kv/asr/1` .. `kv/asr/W-1`, then `workspace`,
 * `workspace/1` .. `workspace/W-1` (worker 0 keeps the plain names, so a one-worker plan is unchanged).
 * The workspace formulas mirror, buffer by buffer and in the same order, the qa_arena_take calls of
 * the engine (model/encoder.c, decoder.c, heads.c, pipeline/inputs.c, align.c, asr.c); a request at
 * the limits reaches exactly the planned peak (tests/test_no_alloc.py).
 */
#ifndef QA_PLAN_H
#define QA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "../backend/backend.h"
#include "../model/weights.h"
#include "arena.h"

/* Engine tiling that the workspace formulas depend on. */
#define QA_ENC_CHUNK_TILE 16 /* mel chunks per conv tile (16 × 13 = 208 tokens per conv_out GEMM): fewer, fuller
                             * launches; free under the decoder's workspace peak in long plans (300 s), +87 MiB of
                             * workspace in a 60 s plan, where the conv front is the peak */
#define QA_MLP_TILE 2048    /* token rows per MLP tile (encoder fc1, decoder gate/up) */

/* ASR prompt allowances (MODEL_FACTS.md §8.1): 9 tokens before the audio pads, 6 after, a forced
 * `language X<asr_text>` (generous), and the system context when max_text_tokens is not given. */
#define QA_ASR_PROMPT_FIXED 15
#define QA_ASR_LANGUAGE_TOKENS 16
#define QA_ASR_DEFAULT_CONTEXT_TOKENS 256
/* Aligner text cap when max_positions allows more (fixture configs say 65536): 20 tokens per second
 * of audio (5 CJK characters/s x (1 BPE + 2 <timestamp>) with margin) + 64. */
#define QA_ALIGNER_TEXT_TOKENS_PER_SECOND 20
#define QA_MAX_AUDIO_SECONDS_CAP 14400.0

typedef struct qa_limits {
    double max_audio_seconds[2]; /* [QA_MODEL_ALIGNER], [QA_MODEL_ASR] */
    int max_new_tokens;          /* ASR greedy tokens per request */
    int max_text_tokens;         /* aligner words + timestamps (and ASR context); <= 0: derived */
    size_t max_device_bytes;     /* cap on the arena; 0: none */
    qa_dtype dtype;              /* compute dtype of matrices: QA_F32 or QA_BF16 */
    int workers;                 /* requests that may run at once: one workspace (+ KV cache) each,
                                  * 1..QA_MAX_WORKERS; > 1 on the CPU only (models.c) */
} qa_limits;

typedef struct qa_plan_model {
    int present;
    char name[128];          /* preset name or folder basename (config name) */
    size_t weight_bytes;     /* in the arena (weights/<model>) */
    size_t host_bytes;       /* weights kept in pinned host memory instead (qa_plan_embed_to_host), else 0 */
    size_t kv_bytes;         /* ASR only */
    size_t workspace_bytes;  /* this model's request peak */
    int mel_frames;          /* T at max_audio_seconds */
    int audio_tokens;        /* N at max_audio_seconds */
    int text_tokens;         /* aligner: words + timestamps; ASR: context allowance */
    int seq_tokens;          /* aligner: 2 + N + text; ASR: prompt (without new tokens) */
} qa_plan_model;

typedef struct qa_plan {
    qa_limits limits;        /* as resolved (max_text_tokens: the aligner's derived value, else the ASR's) */
    qa_plan_model model[2];  /* [QA_MODEL_ALIGNER], [QA_MODEL_ASR] */
    qa_region_spec regions[QA_MAX_REGIONS];
    int n_regions;
    size_t arena_bytes;      /* sum of the aligned regions */
    size_t host_bytes;       /* pinned host memory outside the arena (sum of the models' host_bytes) */
    qa_scratch_dims scratch_dims; /* largest op dimensions of any request at the limits */
    size_t scratch_bytes;    /* backend scratch (CPU formula), taken first from the workspace per request */
} qa_plan;

qa_limits qa_limits_default(void); /* 300 s both, 1024 new tokens, derived text, no cap, F32, 1 worker */

/* Region names of worker w: "workspace" / "kv/asr" for w = 0, "workspace/<w>" / "kv/asr/<w>" after. */
void qa_plan_worker_region(char out[QA_REGION_NAME], const char *base, int w);

/* Compute the plan. cfgs[k] may be NULL (model not loaded; at least one must be given).
 * QA_ERR_INPUT for limits a model cannot serve (audio beyond max_position_embeddings or the
 * aligner's classify_num x timestamp_segment_time, non-positive values). */
qa_status qa_plan_compute(const qa_model_config *const cfgs[2], const qa_limits *lim, qa_plan *out, qa_err *e);


/* Audio tokens of `frames` valid mel frames for a config's chunk size (13 per full 100-frame chunk,
 * then the partial chunk's three stride-2 lengths). */
int64_t qa_audio_tokens_of_frames(const qa_audio_config *a, int64_t frames);

#define QA_MEL_REGION "mel/tables"

/* Workspace bytes of the pieces of a request, excluding the backend scratch (see plan.c for the
 * buffer-by-buffer layout). T = prompt tokens, n = <timestamp> rows, max_new = ASR new tokens, dtype =
 * the compute dtype (of the K / V rows the decoder stores). */
size_t qa_plan_workspace_encoder(const qa_model_config *c, int64_t mel_frames); /* tower temporaries */
size_t qa_plan_workspace_mel(int64_t mel_frames); /* samples + log_mel work, above the features */
size_t qa_plan_workspace_inputs(const qa_model_config *c, int64_t mel_frames, int64_t T);
size_t qa_plan_workspace_decoder(const qa_model_config *c, int64_t T, int with_cache, qa_dtype dtype);
size_t qa_plan_workspace_head(const qa_model_config *c, int64_t n);
size_t qa_plan_workspace_aligner(const qa_model_config *c, int64_t mel_frames, int64_t T, int64_t n, qa_dtype dtype);
size_t qa_plan_workspace_asr(const qa_model_config *c, int64_t mel_frames, int64_t T, int64_t max_new, qa_dtype dtype);

/* Grow *d to cover the op dimensions of an aligner / ASR request at these sizes. */
void qa_plan_scratch_dims(const qa_model_config *c, int64_t mel_frames, int64_t T, int64_t max_kv,
                          qa_scratch_dims *d);

/* KV cache bytes for max_ctx positions of the compute dtype (QA_F32: 4 bytes an element, QA_BF16: 2). */
size_t qa_plan_kv_bytes(const qa_text_config *t, int64_t max_ctx, qa_dtype dtype);

/* Replace the backend scratch size (the CPU formula by default) by another backend's, e.g. the CUDA
 * formula of backend/cuda_scratch.h, growing or shrinking every workspace region and the arena total. */
void qa_plan_set_scratch(qa_plan *p, size_t scratch_bytes);

/* Move model k's text embedding table (vocab x hidden at the compute dtype, the bytes names.c counts for
 * it) from its weights region to host memory: weights/<model> and the arena shrink by it, host_bytes
 * grows by it. For a CUDA aligner, whose table is only gathered (a few thousand rows per request) and is
 * not its head; the loader keeps the table in pinned host memory then (pipeline/models.c). */
void qa_plan_embed_to_host(qa_plan *p, int k, const qa_model_config *c);

#endif
