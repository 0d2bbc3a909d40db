/* mel.h — log-mel features of 16 kHz audio (Whisper / Qwen3-ASR feature extractor). */
#ifndef QA_MEL_H
#define QA_MEL_H

#include <stddef.h>

#include "../core/status.h"

#define QA_MEL_BINS 128           /* mel filters (feature_size) */
#define QA_MEL_N_FFT 400          /* window and DFT length */
#define QA_MEL_HOP 160            /* samples between frames */
#define QA_MEL_MIN_SAMPLES 8000   /* shorter clips are zero-padded to this (HF min_length) */
#define QA_MEL_FRAME_MULTIPLE 100 /* the frame axis is zero-padded to a multiple of this (2 * n_window) */

/* Valid mel frames of a clip of n_samples at 16 kHz: max(n_samples, 8000) / 160 (expected.json
 * "mel_frames"). Inline: the plan (memory/) and the backends size buffers with it without linking mel.c. */
static inline size_t qa_mel_frames(size_t n_samples)
{
    return (n_samples < QA_MEL_MIN_SAMPLES ? QA_MEL_MIN_SAMPLES : n_samples) / QA_MEL_HOP;
}

/* qa_mel_frames rounded up to a multiple of 100: the column count of the feature matrix. */
size_t qa_mel_frames_padded(size_t n_samples);

/* Bytes of scratch memory qa_log_mel needs; a constant (about 150 KB), independent of the length. */
size_t qa_mel_workspace_bytes(void);

/* Log-mel features of audio[n] (mono float32, 16 kHz; borrowed).
 * out: caller-provided [QA_MEL_BINS, qa_mel_frames_padded(n)] row-major float32 (e.g. a view into
 * the arena); columns past qa_mel_frames(n) are set to 0.0.
 * workspace: caller-provided, at least qa_mel_workspace_bytes() bytes, 8-byte aligned (64 is best).
 * Allocates nothing; safe to call from several threads with separate out/workspace buffers.
 * Fails with QA_ERR_AUDIO on a NaN/inf sample, QA_ERR_INPUT on a short workspace. */
qa_status qa_log_mel(const float *audio, size_t n, float *out, void *workspace, size_t workspace_bytes,
                     qa_err *e);

/* qa_log_mel with an explicit row stride: out [QA_MEL_BINS, ld], ld >= qa_mel_frames(n); columns
 * [qa_mel_frames(n), ld) are set to 0.0 (ld == qa_mel_frames(n): the valid frames only, as the
 * engine's feature buffer holds them). Same numbers as qa_log_mel, bit for bit. */
qa_status qa_log_mel_ld(const float *audio, size_t n, float *out, size_t ld, void *workspace,
                        size_t workspace_bytes, qa_err *e);

/* The Slaney mel filters qa_log_mel uses: w [QA_MEL_BINS, QA_MEL_N_FFT / 2 + 1] float32 (caller's
 * buffer), computed in float64 and rounded once (what the CUDA backend uploads at load). */
void qa_mel_filters(float *w);

#endif
