/* audio.c — every audio source to the models' input: float32 mono 16 kHz in [-1, 1].
 *
 * Contract (audio.h): samples, a file or file bytes -> channel mean -> resample to 16 kHz (soxr HQ,
 * linear phase) -> if peak > 1 divide by the peak -> clip to [-1, 1]; the result is a new qa_malloc
 * buffer the caller frees. Reference: Qwen3-ASR `normalize_audio_input` (qwen_asr/inference/utils.py):
 * float32 conversion, mean over channels, librosa resample to 16 kHz, peak normalisation, clip.
 * Integer samples are scaled by their type's full range (int16 / 32768, uint8 (x - 128) / 128),
 * which is what soundfile / libsndfile do for integer PCM files.
 * Validation happens here once for every source: frames, channels, rate, finiteness.
 * Without audio libraries (QA_NO_AUDIO_LIBS) files and bytes fail with a clear message and 16 kHz
 * samples still work; resample.c reports the missing libsoxr for other rates.
 */
#include "audio.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../core/alloc.h"
#include "resample.h"
#ifndef QA_NO_AUDIO_LIBS
#include "audio_decode.h"
#endif

/* Channel mean of interleaved samples of C type T, mapped to [-1, 1) by (x - offset) * scale. */
#define MIX_CHANNELS(T, offset, scale)                                        \
    do {                                                                      \
        const T *p = (const T *)data;                                         \
        for (size_t i = 0; i < frames; i++) {                                 \
            double sum = 0.0;                                                 \
            for (size_t c = 0; c < channels; c++)                             \
                sum += (double)p[i * channels + c] - (offset);                \
            mono[i] = (float)(sum * (scale) / (double)channels);              \
        }                                                                     \
    } while (0)

static void mix_to_mono(const void *data, qa_sample_type type, size_t frames, size_t channels, float *mono)
{
    if (type == QA_SAMPLES_F32 && channels == 1) { /* the common case: (double)x * 1.0 / 1 is x */
        memcpy(mono, data, frames * sizeof(float));
        return;
    }
    const double two7 = 128.0, two15 = 32768.0, two31 = 2147483648.0, two63 = 9223372036854775808.0;
    switch (type) {
    case QA_SAMPLES_F32: MIX_CHANNELS(float, 0.0, 1.0); break;
    case QA_SAMPLES_F64: MIX_CHANNELS(double, 0.0, 1.0); break;
    case QA_SAMPLES_I8: MIX_CHANNELS(int8_t, 0.0, 1.0 / two7); break;
    case QA_SAMPLES_I16: MIX_CHANNELS(int16_t, 0.0, 1.0 / two15); break;
    case QA_SAMPLES_I32: MIX_CHANNELS(int32_t, 0.0, 1.0 / two31); break;
    case QA_SAMPLES_I64: MIX_CHANNELS(int64_t, 0.0, 1.0 / two63); break;
    case QA_SAMPLES_U8: MIX_CHANNELS(uint8_t, two7, 1.0 / two7); break;
    case QA_SAMPLES_U16: MIX_CHANNELS(uint16_t, two15, 1.0 / two15); break;
    case QA_SAMPLES_U32: MIX_CHANNELS(uint32_t, two31, 1.0 / two31); break;
    case QA_SAMPLES_U64: MIX_CHANNELS(uint64_t, two63, 1.0 / two63); break;
    }
}

static qa_status validate(qa_sample_type type, size_t frames, size_t channels, double rate,
                          const char *name, qa_err *e)
{
    if ((unsigned)type > (unsigned)QA_SAMPLES_U64)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: unknown sample type %d", name, (int)type);
    if (channels == 0 || channels > QA_AUDIO_MAX_CHANNELS)
        return QA_FAIL(e, QA_ERR_AUDIO,
                       "%s: %zu channels, expected 1 to %d (arrays are (frames, channels))",
                       name, channels, QA_AUDIO_MAX_CHANNELS);
    if (frames == 0)
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: no audio samples (0 frames)", name);
    if (!(rate >= QA_AUDIO_MIN_RATE && rate <= QA_AUDIO_MAX_RATE))
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: sample rate %g Hz, expected %d to %d Hz", name, rate,
                       QA_AUDIO_MIN_RATE, QA_AUDIO_MAX_RATE);
    return QA_OK;
}

/* max over i of |x[i]|'s bits (sign cleared). With the sign cleared, IEEE floats order as integers below
 * 2^31: Inf is 0x7f800000, every NaN lies above it, 1.0f is 0x3f800000 — so one integer maximum says both
 * whether all samples are finite and whether all lie within [-1, 1]. Sixteen independent maxima in signed
 * arithmetic: SSE2 has a signed 32-bit compare (pcmpgtd) but no unsigned one, and one accumulator would
 * chain every step on the previous; this runs at memory speed (~0.8 ms for 300 s of audio, against 4+ ms
 * for the two-maxima loop with the NaN select, which the compiler did not vectorise). */
static uint32_t abs_bits_max(const float *x, size_t n)
{
    enum { LANES = 16 };
    int32_t m[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            int32_t u;
            memcpy(&u, x + i + k, sizeof u);
            u &= 0x7fffffff;
            m[k] = u > m[k] ? u : m[k];
        }
    int32_t top = 0;
    for (int k = 0; k < LANES; k++)
        top = m[k] > top ? m[k] : top;
    for (; i < n; i++) {
        int32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7fffffff;
        top = u > top ? u : top;
    }
    return (uint32_t)top;
}

#define FINITE_BITS_END 0x7f800000u /* |x|'s bits below it: finite */
#define ONE_BITS 0x3f800000u        /* 1.0f */

/* The peak |x| over the non-NaN samples (Inf included) and whether all are finite. All finite (the
 * usual case): the peak is the one maximum above. Otherwise a second pass that skips the NaNs. */
static float scan(const float *x, size_t n, int *all_finite)
{
    uint32_t top = abs_bits_max(x, n);
    *all_finite = top < FINITE_BITS_END;
    if (!*all_finite) {
        top = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, x + i, sizeof u);
            u &= 0x7fffffffu;
            u = u <= FINITE_BITS_END ? u : 0u;
            top = u > top ? u : top;
        }
    }
    float peak;
    memcpy(&peak, &top, sizeof peak);
    return peak;
}

static qa_status check_finite(const float *x, size_t n, const char *name, qa_err *e)
{
    size_t i = qa_first_nonfinite(x, n);
    if (i < n)
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: sample %zu is %s; audio must be finite", name, i,
                       isnan(x[i]) ? "NaN" : "infinite (or beyond float32 range)");
    return QA_OK;
}

/* Peak > 1 -> divide by the peak, then clip to [-1, 1] (the reference's order). For finite samples the
 * clip changes nothing (|x| <= peak), so the pass runs only when it can matter: a peak above 1, or
 * non-finite values (the resampler can overflow float32 near its limit; the clip turns NaN into -1). */
static void normalize_peak(float *x, size_t n)
{
    int finite;
    float peak = scan(x, n, &finite);
    if (peak <= 1.0f && finite)
        return;
    for (size_t i = 0; i < n; i++) {
        float v = peak > 1.0f ? x[i] / peak : x[i];
        x[i] = fminf(1.0f, fmaxf(-1.0f, v));
    }
}

int qa_all_finite(const float *x, size_t n) { return abs_bits_max(x, n) < FINITE_BITS_END; }

size_t qa_first_nonfinite(const float *x, size_t n)
{
    if (qa_all_finite(x, n))
        return n;
    size_t i = 0;
    while (isfinite(x[i])) /* the pass above found one */
        i++;
    return i;
}

/* Finite and peak <= 1 is every |x| <= 1 (a NaN or Inf is above 1 too): one maximum. */
int qa_audio_ready16k(const float *x, size_t n) { return n > 0 && abs_bits_max(x, n) <= ONE_BITS; }

qa_status qa_audio_from_samples(const void *data, qa_sample_type type, size_t frames, size_t channels,
                                double sample_rate, const char *name, float **out, size_t *n_out,
                                qa_err *e)
{
    *out = NULL;
    *n_out = 0;
    QA_TRY(validate(type, frames, channels, sample_rate, name, e));
    float *mono = qa_malloc_n(frames, sizeof(float), e);
    if (!mono)
        return QA_ERR_OOM;
    mix_to_mono(data, type, frames, channels, mono);
    qa_status s = check_finite(mono, frames, name, e);
    size_t n = frames;
    if (s == QA_OK && sample_rate != QA_SAMPLE_RATE) {
        float *res = NULL;
        s = qa_resample(mono, frames, sample_rate, QA_SAMPLE_RATE, name, &res, &n, e);
        qa_free(mono);
        mono = res;
    }
    if (s != QA_OK) {
        qa_free(mono);
        return s;
    }
    normalize_peak(mono, n);
    *out = mono;
    *n_out = n;
    return QA_OK;
}

#ifdef QA_NO_AUDIO_LIBS

qa_status qa_audio_from_file(const char *path, float **out, size_t *n_out, qa_err *e)
{
    *out = NULL;
    *n_out = 0;
    return QA_FAIL(e, QA_ERR_AUDIO,
                   "%s: decoding audio files needs libsndfile (built without audio libraries, "
                   "QA_NO_AUDIO_LIBS); pass a 16 kHz NumPy array instead", path);
}

qa_status qa_audio_from_memory(const void *buf, size_t len, const char *name, float **out,
                               size_t *n_out, qa_err *e)
{
    (void)buf, (void)len;
    return qa_audio_from_file(name, out, n_out, e);
}

#else

static qa_status from_pcm(qa_pcm *pcm, const char *name, float **out, size_t *n_out, qa_err *e)
{
    qa_status s = qa_audio_from_samples(pcm->data, QA_SAMPLES_F32, pcm->frames, (size_t)pcm->channels,
                                        (double)pcm->sample_rate, name, out, n_out, e);
    qa_pcm_free(pcm);
    return s;
}

qa_status qa_audio_from_file(const char *path, float **out, size_t *n_out, qa_err *e)
{
    *out = NULL;
    *n_out = 0;
    qa_pcm pcm;
    QA_TRY(qa_audio_decode_file(path, &pcm, e));
    return from_pcm(&pcm, path, out, n_out, e);
}

qa_status qa_audio_from_memory(const void *buf, size_t len, const char *name, float **out,
                               size_t *n_out, qa_err *e)
{
    *out = NULL;
    *n_out = 0;
    qa_pcm pcm;
    QA_TRY(qa_audio_decode_memory(buf, len, name, &pcm, e));
    return from_pcm(&pcm, name, out, n_out, e);
}

#endif
