/* audio_decode.h — decode an audio file or in-memory file bytes to interleaved float32 (libsndfile). */
#ifndef QA_AUDIO_DECODE_H
#define QA_AUDIO_DECODE_H

#include <stddef.h>

#include "../core/status.h"

/* Decoded samples: frames x channels interleaved, integers scaled to [-1, 1) by libsndfile,
 * float files as stored. data: caller frees with qa_free (qa_pcm_free). */
typedef struct qa_pcm {
    float *data;
    size_t frames;
    int channels;
    int sample_rate;
} qa_pcm;

/* Decode the file at path (WAV incl. WAVE_FORMAT_EXTENSIBLE, FLAC, OGG/Vorbis/Opus, MP3, … whatever
 * the installed libsndfile reads). Fails with QA_ERR_AUDIO naming the file: missing, not audio,
 * no samples, read error. Rates and channel counts are returned as found (audio.c validates them). */
qa_status qa_audio_decode_file(const char *path, qa_pcm *out, qa_err *e);

/* Same for the bytes of a file held in memory. buf: borrowed for the duration of the call.
 * name: used in messages (e.g. "<bytes>"). */
qa_status qa_audio_decode_memory(const void *buf, size_t len, const char *name, qa_pcm *out, qa_err *e);

/* Frees out->data and zeroes *out. */
void qa_pcm_free(qa_pcm *pcm);

/* The libsndfile version string ("libsndfile-1.2.0"), for error messages and reports. */
const char *qa_audio_decoder_version(void);

#endif
