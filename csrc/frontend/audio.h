/* audio.h — the audio contract of the engine: any supported source -> float32 mono 16 kHz in [-1, 1].
 *
 * Every entry point ends in the same steps (the reference loader, Qwen3-ASR
 * `normalize_audio_input`): channel mean -> resample to 16 kHz -> if the peak exceeds 1, divide by
 * the peak -> clip to [-1, 1]. Output buffers are per-request host memory: *out is a new buffer of
 * *n_out floats, the caller frees it with qa_free. Failures are QA_ERR_AUDIO with a message that
 * names the source (the file, "<bytes>" or "array"); QA_ERR_OOM when memory runs out.
 */
#ifndef QA_AUDIO_H
#define QA_AUDIO_H

#include <stddef.h>

#include "../core/status.h"

#define QA_SAMPLE_RATE 16000     /* the models' rate */
#define QA_AUDIO_MAX_CHANNELS 8  /* more is almost surely a transposed (channels x frames) array */
#define QA_AUDIO_MIN_RATE 1000   /* accepted input rates, Hz (inclusive) */
#define QA_AUDIO_MAX_RATE 768000

/* Element type of caller-provided samples. Integers are scaled by their full range: signed
 * x / 2^(bits-1) (int16 / 32768), unsigned (x - 2^(bits-1)) / 2^(bits-1) (uint8 centred at 128). */
typedef enum qa_sample_type {
    QA_SAMPLES_F32,
    QA_SAMPLES_F64,
    QA_SAMPLES_I8,
    QA_SAMPLES_I16,
    QA_SAMPLES_I32,
    QA_SAMPLES_I64,
    QA_SAMPLES_U8,
    QA_SAMPLES_U16,
    QA_SAMPLES_U32,
    QA_SAMPLES_U64
} qa_sample_type;

/* Samples in memory: data (borrowed) holds frames x channels interleaved values of `type` at
 * sample_rate Hz. name: used in messages (borrowed). Rejects 0 frames, 0 or > 8 channels, rates
 * outside [QA_AUDIO_MIN_RATE, QA_AUDIO_MAX_RATE] and NaN/inf samples. A 16 kHz input needs no
 * resampling and works in a build without audio libraries (QA_NO_AUDIO_LIBS). */
qa_status qa_audio_from_samples(const void *data, qa_sample_type type, size_t frames, size_t channels,
                                double sample_rate, const char *name, float **out, size_t *n_out,
                                qa_err *e);

/* 1 when x[n] (mono 16 kHz) is already what qa_audio_from_samples would return: n > 0, every sample
 * finite, peak <= 1 — the caller may then use it as is, without a copy (the request path on arrays). */
int qa_audio_ready16k(const float *x, size_t n);

/* 1 when none of x[0, n) is NaN or infinite (one vectorised pass). */
int qa_all_finite(const float *x, size_t n);

/* The index of the first NaN or infinite value of x[0, n), n when there is none: the vectorised pass, then a
 * plain loop only when it found one (to name the culprit in an error). */
size_t qa_first_nonfinite(const float *x, size_t n);

/* An audio file (decoded by libsndfile), then the steps above. */
qa_status qa_audio_from_file(const char *path, float **out, size_t *n_out, qa_err *e);

/* The bytes of an audio file held in memory (borrowed). name: for messages, e.g. "<bytes>". */
qa_status qa_audio_from_memory(const void *buf, size_t len, const char *name, float **out,
                               size_t *n_out, qa_err *e);

#endif
