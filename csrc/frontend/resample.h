/* resample.h — band-limited sample-rate conversion of mono float32 audio (libsoxr). */
#ifndef QA_RESAMPLE_H
#define QA_RESAMPLE_H

#include <stddef.h>

#include "../core/status.h"

/* Resample in[n] (mono, rate_in Hz) to rate_out Hz with libsoxr "high quality" (20-bit, linear
 * phase: the recipe of SoX's default `rate` effect). Output length is round(n * rate_out / rate_in)
 * (at least 1 when n >= 1), as sox writes it.
 * in: borrowed. *out: new buffer of *n_out floats, caller frees with qa_free.
 * `what` names the source in messages (a file name or "array"). Fails with QA_ERR_AUDIO when the
 * library is missing (built with QA_NO_AUDIO_LIBS) or soxr reports an error. */
qa_status qa_resample(const float *in, size_t n, double rate_in, double rate_out, const char *what,
                      float **out, size_t *n_out, qa_err *e);

#endif
