/* resample.c — sample-rate conversion to the model rate with libsoxr.
 *
 * Contract: mono float32 in, mono float32 out at rate_out, length round(n * rate_out / rate_in);
 * the output buffer is per-request host memory (qa_malloc, caller frees with qa_free).
 * Reference: the fixtures' audio16k.npy were made by SoX's `rate` effect with its defaults
 * (quality -h: 20-bit precision, 0 dB point at 91 % of Nyquist, -3 dB at 95 %, linear phase); libsoxr
 * is the same resampler as a library, and SOXR_HQ with SOXR_LINEAR_PHASE is that recipe. The
 * official Qwen3-ASR loader resamples with librosa (soxr_hq as well), so both agree.
 * This is the only file besides audio_decode.c that calls an audio library: a build with
 * QA_NO_AUDIO_LIBS keeps the function but fails with a clear message.
 */
#include "resample.h"

#include <math.h>

#include "../core/alloc.h"

#ifndef QA_NO_AUDIO_LIBS
#include <soxr.h>

static size_t output_length(size_t n, double rate_in, double rate_out)
{
    double len = floor((double)n * rate_out / rate_in + 0.5);
    return (n > 0 && len < 1.0) ? 1 : (size_t)len;
}
#endif

qa_status qa_resample(const float *in, size_t n, double rate_in, double rate_out, const char *what,
                      float **out, size_t *n_out, qa_err *e)
{
    *out = NULL;
    *n_out = 0;
    if (!(rate_in > 0.0) || !(rate_out > 0.0))
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: cannot resample from %g Hz to %g Hz", what, rate_in, rate_out);
#ifdef QA_NO_AUDIO_LIBS
    (void)in;
    (void)n;
    return QA_FAIL(e, QA_ERR_AUDIO,
                   "%s: audio at %g Hz needs resampling to %g Hz, but resampling needs libsoxr "
                   "(built without audio libraries, QA_NO_AUDIO_LIBS); pass 16 kHz audio",
                   what, rate_in, rate_out);
#else
    size_t olen = output_length(n, rate_in, rate_out);
    float *buf = qa_malloc_n(olen ? olen : 1, sizeof(float), e);
    if (!buf)
        return QA_ERR_OOM;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, SOXR_LINEAR_PHASE);
    size_t done = 0;
    soxr_error_t err = soxr_oneshot(rate_in, rate_out, 1, in, n, NULL, buf, olen, &done, &io, &q, NULL);
    if (err) {
        qa_free(buf);
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: resampling %g Hz -> %g Hz failed (libsoxr: %s)", what,
                       rate_in, rate_out, err);
    }
    /* soxr can stop a sample short of the rounded length; the tail is silence after the flush. */
    for (size_t i = done; i < olen; i++)
        buf[i] = 0.0f;
    *out = buf;
    *n_out = olen;
    return QA_OK;
#endif
}
