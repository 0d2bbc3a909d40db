/* mel.cu — log-mel features on the GPU (backend.h mel_tables / log_mel): frontend/mel.c's numbers
 * from samples already in device memory, so a request uploads audio instead of features.
 *
 * Reference: frontend/mel.c (transformers Qwen3ASRFeatureExtractor, MODEL_FACTS §3.2). How:
 *  1. tables, once at load (the arena's "mel/tables" region): D [402, 400] FP64 with row k =
 *     w·cos(2πkj/400) and row 201 + k = −w·sin(2πkj/400), w the periodic Hann window (the window is
 *     folded into the DFT, so frames need no separate windowing), built on the device from the
 *     formula with an exact integer reduction of k·j mod 400; the Slaney filters F [128, 201] FP32
 *     uploaded from frontend/mel.c's qa_mel_filters (float64 then rounded, as the CPU uses them).
 *  2. per tile of QA_MEL_TILE_FRAMES frames: the reflect-padded samples of the tile in FP64
 *     P [(Ft + 2)·160]; the spectrum S [Ft, 402] = frames · Dᵀ as THREE accumulating GEMMs, because
 *     frame t = P[160t .. 160t+400) = rows t, t+1 and the first 80 samples of row t+2 of P seen as a
 *     [Ft+2, 160] matrix — no [Ft, 400] frames matrix is materialised; power (float)(re² + im²);
 *     mel = power · Fᵀ (FP32 GEMM, TF32 off) written straight into feat [128, T] (ld T).
 *  3. in place log10(max(x, 1e-10)) with the clip's maximum reduced on the device (atomicMax on an
 *     order-preserving int key), then max(x, max − 8) and (x + 4) / 4: no host synchronisation.
 * Why FP64 for the DFT: with FP32 GEMMs the features differ from the CPU's by up to 3e-5 (speech
 * fixtures; the rounding of 400-term sums is large next to the quiet bins); FP64 keeps them within
 * ~1e-6 (float rounding). The DFT is ~1.6 GFLOP per minute of audio: well under a millisecond on an
 * H100, a few ms even on cards with 1/64-rate FP64. The filterbank sums positive terms: FP32 is exact
 * enough there.
 * Memory: tables and work come from the arena (backend.h formulas); nothing is allocated.
 */
#include <limits.h>

#include "cuda_ctx.cuh"
#include "ops.cuh"

#define FREQS QA_MEL_FREQS        /* 201 */
#define NFFT QA_MEL_N_FFT         /* 400 */
#define HOP QA_MEL_HOP            /* 160 */
#define ROWS (2 * FREQS)          /* 402: cos rows, then sin rows */

static_assert(NFFT == 2 * HOP + HOP / 2, "the three-GEMM framing assumes n_fft = 2.5 hops");

/* D[r, j], r < 402, j < 400 (see the file comment). cospi/sinpi of an exactly reduced argument. */
__global__ void k_mel_dft(double *D)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= ROWS * NFFT)
        return;
    int r = i / NFFT, j = i % NFFT, k = r < FREQS ? r : r - FREQS;
    double w = 0.5 - 0.5 * cospi((double)j / (NFFT / 2)); /* torch.hann_window(400), periodic */
    double a = (double)((k * j) % NFFT) / (NFFT / 2);      /* 2πkj/400 = π·a */
    D[i] = r < FREQS ? w * cospi(a) : -w * sinpi(a);
}

/* P[r] = sample 160·t0 − 200 + r of the clip zero-extended to n_pad and reflect-padded by 200
 * (frontend/mel.c padded_sample), r < count. Block 0's thread 0 also resets the max key when the
 * first tile is prepared (the key must be INT_MIN before k_mel_log runs; same stream, so ordered). */
__global__ void k_mel_pad(double *P, const float *x, long long n, long long n_pad, long long start, int count,
                          int *max_key)
{
    if (max_key && blockIdx.x == 0 && threadIdx.x == 0)
        *max_key = INT_MIN;
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < count; r += gridDim.x * blockDim.x) {
        long long j = start + r;
        if (j < 0)
            j = -j;
        if (j >= n_pad)
            j = 2 * (n_pad - 1) - j;
        P[r] = j < n ? (double)x[j] : 0.0;
    }
}

/* pw[t, k] = (float)(re² + im²) of S [Ft, 402] (frontend/mel.c: power in double, then float). */
__global__ void k_mel_power(float *pw, const double *S, int Ft)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= Ft * FREQS)
        return;
    int t = i / FREQS, k = i % FREQS;
    double re = S[(size_t)t * ROWS + k], im = S[(size_t)t * ROWS + FREQS + k];
    pw[i] = (float)(re * re + im * im);
}

/* Order-preserving map float -> int (signed compare): negative floats get their magnitude bits
 * flipped. It is its own inverse. */
__device__ __forceinline__ int key_of(float v)
{
    int i = __float_as_int(v);
    return i >= 0 ? i : i ^ 0x7fffffff;
}
__device__ __forceinline__ float float_of(int k) { return __int_as_float(k >= 0 ? k : k ^ 0x7fffffff); }

/* In place x = log10(max(x, 1e-10)) (in double, then float: glibc's log10f is within an ulp of it),
 * and atomicMax of the block's maximum into *max_key. */
__global__ void k_mel_log(float *x, size_t n, int *max_key)
{
    __shared__ float warp_max[32];
    float mx = -INFINITY;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        v = (float)log10((double)(v > 1e-10f ? v : 1e-10f));
        x[i] = v;
        mx = fmaxf(mx, v);
    }
    for (int o = 16; o > 0; o >>= 1)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0)
        warp_max[threadIdx.x >> 5] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            mx = fmaxf(mx, warp_max[w]);
        atomicMax(max_key, key_of(mx));
    }
}

/* x = (max(x, max − 8) + 4) / 4 with max read from the device (frontend/mel.c's float arithmetic). */
__global__ void k_mel_floor(float *x, size_t n, const int *max_key)
{
    float floor_v = float_of(*max_key) - 8.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        x[i] = ((v > floor_v ? v : floor_v) + 4.0f) / 4.0f;
    }
}

qa_status qa_cuda_mel_tables(qa_cuda_ctx *c, void *tables, const float *filters_host, qa_err *e)
{
    double *D = (double *)tables;
    k_mel_dft<<<qa_cuda_blocks((size_t)ROWS * NFFT, 256), 256, 0, c->stream>>>(D);
    QA_LAUNCH_CHECK(e);
    /* the host array is the caller's stack/heap buffer: a synchronous copy, once at load */
    QA_CUDA_CHECK(e, cudaMemcpyAsync((char *)tables + QA_MEL_DFT_BYTES, filters_host,
                                     (size_t)QA_MEL_BINS * FREQS * sizeof(float), cudaMemcpyHostToDevice, c->stream));
    QA_CUDA_CHECK(e, cudaStreamSynchronize(c->stream));
    return QA_OK;
}

/* The work area's parts (backend.h qa_mel_work_bytes lists the same, in this order). */
typedef struct mel_work {
    double *P;    /* padded samples of a tile [(F + 2)·HOP] */
    double *S;    /* its spectrum [F, ROWS] */
    float *pw;    /* its power [F, FREQS] */
    int *max_key; /* the clip's maximum log value, as key_of */
} mel_work;

static mel_work carve(void *work, int64_t F)
{
    char *p = (char *)work;
    mel_work w;
    w.P = (double *)p;
    p += qa_mel_align256((size_t)(F + 2) * HOP * sizeof(double));
    w.S = (double *)p;
    p += qa_mel_align256((size_t)F * ROWS * sizeof(double));
    w.pw = (float *)p;
    p += qa_mel_align256((size_t)F * FREQS * sizeof(float));
    w.max_key = (int *)p;
    return w;
}

/* S[Ft, 402] = frames of the tile · Dᵀ in three K-slices of the frame (see the file comment).
 * Column-major: Sᵀ (402 × Ft, ld 402) += D[:, 160q : 160q + Kq] (op T of a Kq × 402 view, ld 400)
 * · P rows q.. (Kq × Ft, ld 160). */
static qa_status dft_tile(qa_cuda_ctx *c, const double *D, const mel_work *w, int Ft, qa_err *e)
{
    const double one = 1.0, zero = 0.0;
    for (int q = 0; q < 3; q++) {
        int Kq = q < 2 ? HOP : NFFT - 2 * HOP;
        qa_mm g = {CUBLAS_OP_T, CUBLAS_OP_N, CUDA_R_64F, CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F, ROWS, Ft, Kq, 1,
                   NFFT, HOP, ROWS, 0, 0, 0, QA_MM_VAR_N, QA_MEL_TILE_FRAMES};
        QA_TRY(qa_cuda_matmul(c, &g, &one, D + q * HOP, w->P + q * HOP, q ? &one : &zero, w->S, e));
    }
    return QA_OK;
}

/* feat[:, t0 : t0 + Ft] (ld T) = power · Fᵀ: column-major C (Ft × 128, ld T) = Aᵀ (A = power,
 * 201 × Ft, ld 201) · B (filters, 201 × 128, ld 201). FP32, COMPUTE_32F, default math (no TF32). */
static qa_status filter_tile(qa_cuda_ctx *c, float *feat, int64_t T, int64_t t0, const float *filters,
                             const mel_work *w, int Ft, qa_err *e)
{
    const float one = 1.0f, zero = 0.0f;
    qa_mm g = {CUBLAS_OP_T, CUBLAS_OP_N, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, Ft, QA_MEL_BINS,
               FREQS, 1, FREQS, FREQS, T, 0, 0, 0, QA_MM_VAR_M, QA_MEL_TILE_FRAMES};
    return qa_cuda_matmul(c, &g, &one, w->pw, filters, &zero, feat + t0, e);
}

qa_status qa_cuda_log_mel(qa_cuda_ctx *c, float *feat, const float *x, int64_t n, const void *tables, void *work,
                          size_t work_bytes, qa_err *e)
{
    int64_t T = (int64_t)qa_mel_frames(n > 0 ? (size_t)n : 0), F = T < QA_MEL_TILE_FRAMES ? T : QA_MEL_TILE_FRAMES;
    int64_t n_pad = n < QA_MEL_MIN_SAMPLES ? QA_MEL_MIN_SAMPLES : n;
    if (n < 0 || (size_t)T * QA_MEL_BINS > (size_t)INT_MAX)
        return QA_FAIL(e, QA_ERR_INTERNAL, "log_mel: %lld samples outside what the kernels index", (long long)n);
    if (work_bytes < qa_mel_work_bytes(n))
        return QA_FAIL(e, QA_ERR_INTERNAL, "log_mel: work area of %zu bytes, %lld samples need %zu", work_bytes,
                       (long long)n, qa_mel_work_bytes(n));
    const double *D = (const double *)tables;
    const float *filters = (const float *)((const char *)tables + QA_MEL_DFT_BYTES);
    mel_work w = carve(work, F);
    for (int64_t t0 = 0; t0 < T; t0 += F) {
        int Ft = (int)(T - t0 < F ? T - t0 : F), count = (Ft + 2) * HOP;
        k_mel_pad<<<qa_cuda_grid((size_t)count), 256, 0, c->stream>>>(w.P, x, n, n_pad, t0 * HOP - NFFT / 2, count,
                                                                      t0 == 0 ? w.max_key : NULL);
        QA_LAUNCH_CHECK(e);
        QA_TRY(dft_tile(c, D, &w, Ft, e));
        k_mel_power<<<qa_cuda_blocks((size_t)Ft * FREQS, 256), 256, 0, c->stream>>>(w.pw, w.S, Ft);
        QA_LAUNCH_CHECK(e);
        QA_TRY(filter_tile(c, feat, T, t0, filters, &w, Ft, e));
    }
    size_t total = (size_t)T * QA_MEL_BINS;
    k_mel_log<<<qa_cuda_grid(total), 256, 0, c->stream>>>(feat, total, w.max_key);
    QA_LAUNCH_CHECK(e);
    k_mel_floor<<<qa_cuda_grid(total), 256, 0, c->stream>>>(feat, total, w.max_key);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
