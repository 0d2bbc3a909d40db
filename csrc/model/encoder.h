/* encoder.h — the audio tower: log-mel features -> audio embeddings (text hidden size).
 *
 *     float *emb = qa_arena_take(ws, qa_audio_tokens_of_frames(&cfg->audio, frames) * D * 4, e);
 *     qa_enc_clip clip = {feat, ld, frames};
 *     QA_TRY(qa_encoder_forward(be, model, ws, &clip, 1, emb, e));
 *
 * Shapes: feat [M, ld] float32 in backend memory (M = 128 mel bins, ld >= valid frames), emb
 * [N_audio, D]. The encoder takes its temporaries from the workspace region `ws` and gives them back
 * before returning (stack discipline); its peak is qa_plan_workspace_encoder() (memory/plan.c).
 */
#ifndef QA_ENCODER_H
#define QA_ENCODER_H

#include "../backend/backend.h"
#include "../memory/plan.h" /* QA_ENC_CHUNK_TILE, QA_MLP_TILE, qa_audio_tokens_of_frames */
#include "weights.h"

/* Attention window in tokens for `frames` valid frames (0 = one window over everything). */
int64_t qa_encoder_window(const qa_audio_config *a, int64_t frames);

/* One clip's features: feat [M, ld] in backend memory, the first `frames` columns valid. */
typedef struct qa_enc_clip {
    const float *feat;
    int64_t ld;
    int64_t frames;
} qa_enc_clip;

/* Run the audio tower over n clips packed into one forward (n = 1: one request). emb [sum of
 * qa_audio_tokens_of_frames(clips[i].frames), D] is written, clip i's rows right after clip i−1's;
 * each clip's rows equal its own forward's (attention never crosses clips). Borrowed: everything. */
qa_status qa_encoder_forward(qa_backend *be, const qa_model *m, qa_region *ws, const qa_enc_clip *clips, int64_t n,
                             float *emb, qa_err *e);

#endif
