/* fft.c — mixed-radix (4, 2, 5) Stockham FFT in double precision, plus the real-input wrapper.
 *
 * Why here: the log-mel frontend needs a 400-point real DFT per 10 ms frame (torch.stft with
 * n_fft 400 in the reference). A 400-point real DFT is one 200-point complex FFT (200 = 4*2*5*5)
 * plus a split step, ~60x fewer operations than a DFT matrix product; in double precision the
 * result is far more accurate than the float32 reference itself, so the log-mel error stays at
 * the reference's own rounding level.
 * Algorithm: Stockham autosort decimation in frequency (no bit reversal): each stage of radix P
 * reads x[q + s*(p + r*m)] and writes y[q + s*(P*p + k)] = DFT_P(...)[k] * w_n^(p*k), then
 * n /= P, s *= P. Contract: plans are plain data (qa_fft); transforms allocate nothing.
 */
#include "fft.h"

#include <math.h>
#include <string.h>

qa_status qa_fft_plan(qa_fft *plan, int n, qa_err *e)
{
    if (n < 2 || n > QA_FFT_MAX)
        return QA_FAIL(e, QA_ERR_INPUT, "fft: length %d, expected 2..%d", n, QA_FFT_MAX);
    memset(plan, 0, sizeof *plan);
    plan->n = n;
    int rest = n;
    while (rest % 4 == 0 && plan->n_stages < 16)
        rest /= 4, plan->radix[plan->n_stages++] = 4;
    while (rest % 2 == 0 && plan->n_stages < 16)
        rest /= 2, plan->radix[plan->n_stages++] = 2;
    while (rest % 5 == 0 && plan->n_stages < 16)
        rest /= 5, plan->radix[plan->n_stages++] = 5;
    if (rest != 1)
        return QA_FAIL(e, QA_ERR_INPUT, "fft: length %d has a prime factor other than 2 and 5", n);
    for (int j = 0; j < n; j++) {
        plan->wr[j] = cos(2.0 * M_PI * j / n);
        plan->wi[j] = -sin(2.0 * M_PI * j / n);
        plan->hr[j] = cos(M_PI * j / n);
        plan->hi[j] = -sin(M_PI * j / n);
    }
    return QA_OK;
}

/* One stage of radix P on length-n sub-transforms with stride s (N = n * s). Always inlined with a
 * constant P (see run_stage), so the radix branches and the small loops disappear. */
static inline __attribute__((always_inline)) void stage(const qa_fft *f, const int P, int n, int s,
                                                        const double *xr, const double *xi, double *yr,
                                                        double *yi)
{
    const int m = n / P, step = f->n / n;
    const double c1 = cos(2 * M_PI / 5), c2 = cos(4 * M_PI / 5);
    const double s1 = sin(2 * M_PI / 5), s2 = sin(4 * M_PI / 5);
    for (int p = 0; p < m; p++) {
        for (int q = 0; q < s; q++) {
            double ar[5], ai[5], br[5], bi[5];
            for (int r = 0; r < P; r++) {
                ar[r] = xr[q + s * (p + r * m)];
                ai[r] = xi[q + s * (p + r * m)];
            }
            if (P == 2) {
                br[0] = ar[0] + ar[1], bi[0] = ai[0] + ai[1];
                br[1] = ar[0] - ar[1], bi[1] = ai[0] - ai[1];
            } else if (P == 4) {
                double t0r = ar[0] + ar[2], t0i = ai[0] + ai[2], t1r = ar[0] - ar[2], t1i = ai[0] - ai[2];
                double t2r = ar[1] + ar[3], t2i = ai[1] + ai[3], t3r = ar[1] - ar[3], t3i = ai[1] - ai[3];
                br[0] = t0r + t2r, bi[0] = t0i + t2i;
                br[2] = t0r - t2r, bi[2] = t0i - t2i;
                br[1] = t1r + t3i, bi[1] = t1i - t3r; /* t1 - i t3 */
                br[3] = t1r - t3i, bi[3] = t1i + t3r; /* t1 + i t3 */
            } else { /* P == 5 */
                double b1r = ar[1] + ar[4], b1i = ai[1] + ai[4], d1r = ar[1] - ar[4], d1i = ai[1] - ai[4];
                double b2r = ar[2] + ar[3], b2i = ai[2] + ai[3], d2r = ar[2] - ar[3], d2i = ai[2] - ai[3];
                double t1r = ar[0] + c1 * b1r + c2 * b2r, t1i = ai[0] + c1 * b1i + c2 * b2i;
                double t2r = ar[0] + c2 * b1r + c1 * b2r, t2i = ai[0] + c2 * b1i + c1 * b2i;
                double u1r = s1 * d1r + s2 * d2r, u1i = s1 * d1i + s2 * d2i;
                double u2r = s2 * d1r - s1 * d2r, u2i = s2 * d1i - s1 * d2i;
                br[0] = ar[0] + b1r + b2r, bi[0] = ai[0] + b1i + b2i;
                br[1] = t1r + u1i, bi[1] = t1i - u1r; /* t1 - i u1 */
                br[4] = t1r - u1i, bi[4] = t1i + u1r;
                br[2] = t2r + u2i, bi[2] = t2i - u2r; /* t2 - i u2 */
                br[3] = t2r - u2i, bi[3] = t2i + u2r;
            }
            for (int k = 0; k < P; k++) {
                int j = p * k * step; /* < N: p < n/P, k < P */
                double wr = f->wr[j], wi = f->wi[j];
                yr[q + s * (P * p + k)] = br[k] * wr - bi[k] * wi;
                yi[q + s * (P * p + k)] = br[k] * wi + bi[k] * wr;
            }
        }
    }
}

static void run_stage(const qa_fft *f, int P, int n, int s, const double *xr, const double *xi, double *yr,
                      double *yi)
{
    if (P == 2)
        stage(f, 2, n, s, xr, xi, yr, yi);
    else if (P == 4)
        stage(f, 4, n, s, xr, xi, yr, yi);
    else
        stage(f, 5, n, s, xr, xi, yr, yi);
}

void qa_fft_forward(const qa_fft *plan, double *re, double *im, double *tr, double *ti)
{
    double *xr = re, *xi = im, *yr = tr, *yi = ti;
    int n = plan->n, s = 1;
    for (int st = 0; st < plan->n_stages; st++) {
        int P = plan->radix[st];
        run_stage(plan, P, n, s, xr, xi, yr, yi);
        double *t = xr;
        xr = yr, yr = t;
        t = xi, xi = yi, yi = t;
        n /= P;
        s *= P;
    }
    if (xr != re) {
        memcpy(re, xr, sizeof(double) * (size_t)plan->n);
        memcpy(im, xi, sizeof(double) * (size_t)plan->n);
    }
}

void qa_fft_real(const qa_fft *plan, const double *x, double *out_re, double *out_im, double *scratch)
{
    const int n = plan->n;
    double *zr = scratch, *zi = scratch + n, *tr = scratch + 2 * n, *ti = scratch + 3 * n;
    for (int j = 0; j < n; j++) /* z[j] = x[2j] + i x[2j+1] */
        zr[j] = x[2 * j], zi[j] = x[2 * j + 1];
    qa_fft_forward(plan, zr, zi, tr, ti);
    out_re[0] = zr[0] + zi[0], out_im[0] = 0.0;
    out_re[n] = zr[0] - zi[0], out_im[n] = 0.0;
    /* X[k] = E[k] + w_2n^k O[k], E = (Z[k] + conj Z[n-k]) / 2, O = (Z[k] - conj Z[n-k]) / 2i;
     * w_2n^k = the plan's half-step root h[k]. */
    for (int k = 1; k < n; k++) {
        double er = 0.5 * (zr[k] + zr[n - k]), ei = 0.5 * (zi[k] - zi[n - k]);
        double or_ = 0.5 * (zi[k] + zi[n - k]), oi = -0.5 * (zr[k] - zr[n - k]);
        double wr = plan->hr[k], wi = plan->hi[k];
        out_re[k] = er + or_ * wr - oi * wi;
        out_im[k] = ei + or_ * wi + oi * wr;
    }
}
