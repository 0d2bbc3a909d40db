/* encoder.h — the audio tower: log-mel features -> audio embeddings (text hidden size).
 *
 *     float *emb = qa_arena_take(ws, qa_encoder_tokens(&cfg->audio, frames) * D * 4, e);
 *     QA_TRY(qa_encoder_forward(be, model, ws, feat, ld, frames, emb, e));
 *
 * Shapes: feat [M, ld] float32 in backend memory (M = 128 mel bins, ld >= valid frames), emb
 * [N_audio, D]. The encoder takes its temporaries from the workspace region `ws` and gives them back
 * before returning (stack discipline); its peak is qa_encoder_ws_bytes().
 */
#ifndef QA_ENCODER_H
#define QA_ENCODER_H

#include "../backend/backend.h"
#include "../memory/arena.h"
#include "weights.h"

/* Mel chunks per conv tile (4 chunks = 400 frames = 52 tokens per conv_out GEMM). */
#define QA_ENC_CHUNK_TILE 4
/* Token rows per MLP tile: the fc1 output is at most this many rows × F. */
#define QA_MLP_TILE 512

/* Audio tokens for `frames` valid mel frames: 13 per full 100-frame chunk + the partial chunk's
 * three stride-2 lengths (HF _get_feat_extract_output_lengths). */
int64_t qa_encoder_tokens(const qa_audio_config *a, int64_t frames);

/* Rows per chunk after the three convs (13 for 100 frames) and mel bins after them (16 for 128). */
int64_t qa_encoder_chunk_tokens(const qa_audio_config *a);
int64_t qa_encoder_conv_freq(const qa_audio_config *a);

/* Attention window in tokens for `frames` valid frames (0 = one window over everything). */
int64_t qa_encoder_window(const qa_audio_config *a, int64_t frames);

/* Workspace bytes the encoder takes (its own temporaries, not feat / emb) for up to `frames`. */
size_t qa_encoder_ws_bytes(const qa_model_config *c, int64_t frames);

/* Largest dims of the encoder's op calls (for the backend scratch). */
void qa_encoder_scratch_dims(const qa_model_config *c, int64_t frames, qa_scratch_dims *d);

/* Run the audio tower. Borrowed: be, m, ws, feat; emb [qa_encoder_tokens(frames), D] written. */
qa_status qa_encoder_forward(qa_backend *be, const qa_model *m, qa_region *ws, const float *feat, int64_t ld,
                             int64_t frames, float *emb, qa_err *e);

#endif
