/* fft.h — small mixed-radix FFT (sizes 2^a * 5^b) in double precision, for the log-mel frontend. */
#ifndef QA_FFT_H
#define QA_FFT_H

#include "../core/status.h"

#define QA_FFT_MAX 1024 /* largest complex FFT length a plan holds */

/* A plan: the radices, the N roots of unity exp(-2 pi i j / N) and the half-step roots
 * exp(-pi i j / N) of the real-input split. Plain data, no pointers:
 * it can live on the stack or in a caller's workspace; read-only after qa_fft_plan. */
typedef struct qa_fft {
    int n;
    int n_stages;
    int radix[16];
    double wr[QA_FFT_MAX], wi[QA_FFT_MAX]; /* exp(-2 pi i j / n) */
    double hr[QA_FFT_MAX], hi[QA_FFT_MAX]; /* exp(-pi i j / n) */
} qa_fft;

/* Plan a forward complex FFT of length n (n = 2^a * 5^b, 1 < n <= QA_FFT_MAX). QA_ERR_INPUT otherwise. */
qa_status qa_fft_plan(qa_fft *plan, int n, qa_err *e);

/* In-place forward DFT X[k] = sum_j x[j] exp(-2 pi i j k / n) of (re, im)[n], unnormalised.
 * tr, ti: scratch of n doubles each (caller-owned). */
void qa_fft_forward(const qa_fft *plan, double *re, double *im, double *tr, double *ti);

/* Real DFT of x[2n] (n = plan->n) through one complex FFT of length n: writes the onesided
 * spectrum (out_re, out_im)[n + 1]. scratch: 4 * n doubles (caller-owned). */
void qa_fft_real(const qa_fft *plan, const double *x, double *out_re, double *out_im, double *scratch);

#endif
