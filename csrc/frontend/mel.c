/* mel.c — log-mel spectrogram of 16 kHz audio, exactly as the reference feature extractor.
 *
 * Reference: transformers 5.17 Qwen3ASRFeatureExtractor._torch_extract_fbank_features (MODEL_FACTS
 * §3.2): zero-pad clips to 8000 samples; periodic Hann(400); torch.stft center=True with reflect
 * padding of 200, hop 160, onesided 201 bins; drop the last frame (T = N // 160); power |X|^2;
 * Slaney mel filters (128, 0-8 kHz, slaney norm) computed in float64 and cast to float32;
 * log10(max(mel, 1e-10)); floor at (global max - 8); (x + 4) / 4; frame axis zero-padded with 0.0
 * to a multiple of 100.
 * How: each frame is windowed in double precision and transformed with a 200-point complex FFT
 * (fft.c: the 400-point real DFT by the even/odd split); power and the sparse mel filters (each
 * covers a few bins) follow in double, the log in float32 like the reference.
 * Memory: the caller gives the output and a fixed-size workspace (qa_mel_workspace_bytes) holding
 * the FFT plan, the filters and one frame; nothing is allocated, so the engine can point both into
 * its arena. Tables are rebuilt per call (well under 1 ms), which keeps the file free of global state.
 */
#include "mel.h"

#include "fft.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define N_BINS (QA_MEL_N_FFT / 2 + 1) /* 201 onesided frequency bins */
#define PAD (QA_MEL_N_FFT / 2)        /* reflect padding of torch.stft(center=True) */
#define SAMPLE_RATE 16000.0

/* Workspace layout: every part 64-byte aligned. */
#define ROUND64(x) (((x) + 63) / 64 * 64)
typedef struct mel_work {
    qa_fft plan;                             /* 200-point complex FFT */
    double window[QA_MEL_N_FFT];             /* torch.hann_window(400), periodic */
    double frame[QA_MEL_N_FFT];              /* one windowed frame */
    double spec_re[N_BINS], spec_im[N_BINS]; /* its onesided spectrum */
    double scratch[2 * QA_MEL_N_FFT];        /* qa_fft_real scratch: 4 * 200 */
} mel_work;
#define WS_FILTERS ROUND64(sizeof(mel_work))
#define WS_BYTES (WS_FILTERS + ROUND64(sizeof(float) * QA_MEL_BINS * N_BINS))

typedef struct mel_filters {
    const float *w;      /* [QA_MEL_BINS, N_BINS] */
    int lo[QA_MEL_BINS]; /* nonzero extent of filter m: bins [lo, hi) */
    int hi[QA_MEL_BINS];
} mel_filters;

size_t qa_mel_frames_padded(size_t n_samples)
{
    size_t t = qa_mel_frames(n_samples);
    return (t + QA_MEL_FRAME_MULTIPLE - 1) / QA_MEL_FRAME_MULTIPLE * QA_MEL_FRAME_MULTIPLE;
}

size_t qa_mel_workspace_bytes(void)
{
    return WS_BYTES;
}

/* Slaney mel scale (librosa htk=False; transformers audio_utils hertz_to_mel / mel_to_hertz). */
static double hz_to_mel(double hz)
{
    const double logstep = 27.0 / log(6.4);
    return hz < 1000.0 ? 3.0 * hz / 200.0 : 15.0 + log(hz / 1000.0) * logstep;
}

static double mel_to_hz(double mel)
{
    const double logstep = log(6.4) / 27.0;
    return mel < 15.0 ? 200.0 * mel / 3.0 : 1000.0 * exp(logstep * (mel - 15.0));
}

/* transformers mel_filter_bank(201, 128, 0, 8000, 16000, norm="slaney", mel_scale="slaney") in
 * float64, stored as float32 [mel, bin] with each filter's nonzero extent. */
static void build_filters(float *w, mel_filters *f)
{
    double edges[QA_MEL_BINS + 2];
    double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(SAMPLE_RATE / 2);
    for (int i = 0; i < QA_MEL_BINS + 2; i++) /* numpy linspace: start + i * step, exact end */
        edges[i] = mel_to_hz(i == QA_MEL_BINS + 1 ? mel_hi
                                                   : mel_lo + i * ((mel_hi - mel_lo) / (QA_MEL_BINS + 1)));
    for (int m = 0; m < QA_MEL_BINS; m++) {
        double enorm = 2.0 / (edges[m + 2] - edges[m]);
        f->lo[m] = N_BINS;
        f->hi[m] = 0;
        for (int k = 0; k < N_BINS; k++) {
            double hz = k * (SAMPLE_RATE / 2) / (N_BINS - 1);
            double down = (hz - edges[m]) / (edges[m + 1] - edges[m]);
            double up = (edges[m + 2] - hz) / (edges[m + 2] - edges[m + 1]);
            double v = fmax(0.0, fmin(down, up)) * enorm;
            w[m * N_BINS + k] = (float)v;
            if (v > 0.0) {
                if (k < f->lo[m])
                    f->lo[m] = k;
                f->hi[m] = k + 1;
            }
        }
    }
    f->w = w;
}

static void build_window(double *w)
{
    for (int i = 0; i < QA_MEL_N_FFT; i++)
        w[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / QA_MEL_N_FFT);
}

/* Sample j of the clip zero-padded to n_pad and reflect-padded by 200 on both sides (j may be < 0). */
static float padded_sample(const float *x, size_t n, size_t n_pad, long j)
{
    if (j < 0)
        j = -j;
    if (j >= (long)n_pad)
        j = 2 * ((long)n_pad - 1) - j;
    return (size_t)j < n ? x[j] : 0.0f;
}

/* Frame t of the padded clip, times the window (frames wholly inside the clip are the fast path). */
static void fill_frame(const float *x, size_t n, size_t n_pad, size_t t, const double *window, double *frame)
{
    long start = (long)(t * QA_MEL_HOP) - PAD;
    if (start >= 0 && (size_t)start + QA_MEL_N_FFT <= n) {
        for (int k = 0; k < QA_MEL_N_FFT; k++)
            frame[k] = window[k] * x[start + k];
    } else {
        for (int k = 0; k < QA_MEL_N_FFT; k++)
            frame[k] = window[k] * padded_sample(x, n, n_pad, start + k);
    }
}

/* |X|^2 -> mel -> log10 of one frame, written to column t of out; returns the frame's maximum. */
static float frame_log_mel(const mel_work *w, const mel_filters *f, float *out, size_t stride, size_t t)
{
    double power[N_BINS];
    for (int k = 0; k < N_BINS; k++)
        power[k] = w->spec_re[k] * w->spec_re[k] + w->spec_im[k] * w->spec_im[k];
    float mx = -INFINITY;
    for (int m = 0; m < QA_MEL_BINS; m++) {
        const float *wm = f->w + m * N_BINS;
        double acc = 0.0;
        for (int k = f->lo[m]; k < f->hi[m]; k++)
            acc += wm[k] * power[k];
        float v = log10f((float)acc > 1e-10f ? (float)acc : 1e-10f);
        out[(size_t)m * stride + t] = v;
        mx = v > mx ? v : mx;
    }
    return mx;
}

void qa_mel_filters(float *w)
{
    mel_filters f;
    build_filters(w, &f);
}

qa_status qa_log_mel(const float *audio, size_t n, float *out, void *workspace, size_t workspace_bytes,
                     qa_err *e)
{
    return qa_log_mel_ld(audio, n, out, qa_mel_frames_padded(n), workspace, workspace_bytes, e);
}

qa_status qa_log_mel_ld(const float *audio, size_t n, float *out, size_t ld, void *workspace,
                        size_t workspace_bytes, qa_err *e)
{
    if (workspace_bytes < qa_mel_workspace_bytes() || (uintptr_t)workspace % sizeof(double) != 0)
        return QA_FAIL(e, QA_ERR_INPUT, "log_mel: workspace of %zu bytes at %p, needs %zu bytes, 8-byte aligned",
                       workspace_bytes, workspace, qa_mel_workspace_bytes());
    for (size_t i = 0; i < n; i++)
        if (!isfinite(audio[i]))
            return QA_FAIL(e, QA_ERR_AUDIO, "log_mel: sample %zu is %s; audio must be finite", i,
                           isnan(audio[i]) ? "NaN" : "infinite");
    mel_work *w = workspace;
    mel_filters f;
    QA_TRY(qa_fft_plan(&w->plan, QA_MEL_N_FFT / 2, e));
    build_window(w->window);
    build_filters((float *)((char *)workspace + WS_FILTERS), &f);
    size_t n_pad = n < QA_MEL_MIN_SAMPLES ? QA_MEL_MIN_SAMPLES : n;
    size_t T = qa_mel_frames(n);
    if (ld < T)
        return QA_FAIL(e, QA_ERR_INPUT, "log_mel: row stride %zu is shorter than the %zu frames", ld, T);
    float mx = -INFINITY;
    for (size_t t = 0; t < T; t++) {
        fill_frame(audio, n, n_pad, t, w->window, w->frame);
        qa_fft_real(&w->plan, w->frame, w->spec_re, w->spec_im, w->scratch);
        float v = frame_log_mel(w, &f, out, ld, t);
        mx = v > mx ? v : mx;
    }
    /* Whisper's dynamic-range floor over the whole clip, then the (x + 4) / 4 scaling. */
    float floor_v = mx - 8.0f;
    for (size_t m = 0; m < QA_MEL_BINS; m++) {
        float *row = out + m * ld;
        for (size_t t = 0; t < T; t++)
            row[t] = ((row[t] > floor_v ? row[t] : floor_v) + 4.0f) / 4.0f;
        for (size_t t = T; t < ld; t++)
            row[t] = 0.0f;
    }
    return QA_OK;
}
