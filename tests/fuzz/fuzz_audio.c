/* fuzz_audio.c — libFuzzer target for the audio frontend: file bytes and raw sample arrays.
 *
 * Each input runs two paths:
 *   1. the bytes as an audio file held in memory (qa_audio_from_memory: libsndfile decode of
 *      WAV/FLAC/OGG/MP3/..., channel mix, libsoxr resample, peak normalisation), then log-mel
 *      (qa_log_mel) of at most MEL_MAX_SAMPLES of the result;
 *   2. the bytes as a caller's sample array (qa_audio_from_samples): byte 0 picks the element type,
 *      byte 1 the channel count (0..9, so 0 and 9 test the rejection), bytes 2..5 the sample rate
 *      (little-endian u32 modulo 800 kHz, so rates outside [1 kHz, 768 kHz] occur), the rest is the
 *      samples (frames = rest / (channels * element size)).
 * Invariants: success gives n > 0 finite samples in [-1, 1] and finite mel features; failure gives
 * a status with a message and no buffer. Build: `make fuzz-build` (clang, ASan+UBSan+libFuzzer);
 * replay without libFuzzer: tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "frontend/audio.h"
#include "frontend/mel.h"
#include "fuzz_common.h"

#define MEL_MAX_SAMPLES (3 * QA_SAMPLE_RATE) /* keeps one execution in the millisecond range */

static void check_samples(const float *x, size_t n)
{
    FUZZ_CHECK(x != NULL && n > 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(isfinite(x[i]) && x[i] >= -1.0f && x[i] <= 1.0f);
}

static void run_mel(const float *x, size_t n)
{
    if (n > MEL_MAX_SAMPLES)
        n = MEL_MAX_SAMPLES;
    size_t cols = qa_mel_frames_padded(n), valid = qa_mel_frames(n);
    FUZZ_CHECK(valid > 0 && valid <= cols && cols % QA_MEL_FRAME_MULTIPLE == 0);
    size_t ws_bytes = qa_mel_workspace_bytes();
    float *out = malloc(sizeof(float) * QA_MEL_BINS * cols);
    void *ws = aligned_alloc(64, (ws_bytes + 63) / 64 * 64);
    FUZZ_CHECK(out && ws);
    qa_err e;
    qa_err_clear(&e);
    qa_status s = qa_log_mel(x, n, out, ws, ws_bytes, &e);
    FUZZ_CHECK(s == QA_OK); /* finite samples and a full workspace: must succeed */
    for (size_t m = 0; m < QA_MEL_BINS; m++)
        for (size_t t = 0; t < cols; t++) {
            float v = out[m * cols + t];
            FUZZ_CHECK(isfinite(v));
            if (t >= valid)
                FUZZ_CHECK(v == 0.0f);
        }
    free(out);
    free(ws);
}

static void fuzz_file_bytes(const uint8_t *data, size_t size)
{
    float *x = NULL;
    size_t n = 0;
    qa_err e;
    qa_err_clear(&e);
    qa_status s = qa_audio_from_memory(data, size, "<fuzz>", &x, &n, &e);
    if (s != QA_OK) {
        fuzz_check_error(s, &e);
        FUZZ_CHECK(x == NULL && n == 0);
        return;
    }
    check_samples(x, n);
    run_mel(x, n);
    qa_free(x);
}

static size_t elem_size(qa_sample_type t)
{
    static const size_t sizes[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
    return sizes[t];
}

static void fuzz_samples(const uint8_t *data, size_t size)
{
    if (size < 6)
        return;
    qa_sample_type type = (qa_sample_type)(data[0] % 10);
    size_t channels = data[1] % 10;
    uint32_t rate = (uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 |
                    (uint32_t)data[5] << 24;
    rate %= 800000;
    size_t rest = size - 6, frames = rest / ((channels ? channels : 1) * elem_size(type));
    /* An exact-size aligned copy: the engine reads typed elements, and ASan sees any overrun. */
    size_t bytes = frames * (channels ? channels : 1) * elem_size(type);
    void *buf = malloc(bytes ? bytes : 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data + 6, bytes);
    float *x = NULL;
    size_t n = 0;
    qa_err e;
    qa_err_clear(&e);
    qa_status s = qa_audio_from_samples(buf, type, frames, channels, (double)rate, "array", &x, &n, &e);
    if (s == QA_OK)
        check_samples(x, n);
    else {
        fuzz_check_error(s, &e);
        FUZZ_CHECK(x == NULL && n == 0);
    }
    qa_free(x);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file_bytes(data, size);
    fuzz_samples(data, size);
    return 0;
}
