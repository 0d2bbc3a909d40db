/* conv.cu — the audio tower's 3x3 / stride 2 / pad 1 convolutions (a direct kernel for one input
 * channel, im2col + GEMM for the rest), and the flatten that feeds conv_out.
 *
 * Contract: ops.cuh. qa_cu_im2col3s2 writes, per image n, a [Cin*9, Ho*Wo] matrix whose row
 * ci*9 + ky*3 + kx matches the PyTorch weight layout [Cout, Cin, 3, 3] flattened to [Cout, Cin*9], so
 * conv = W[Cout, Cin*9] @ col (one GEMM per image, strided-batched), plus bias, then GELU
 * (MODEL_FACTS §4.2: mel 128 -> 64 -> 32 -> 16, time 100 -> 50 -> 25 -> 13).
 * Deferred activation (backend.h conv2d / chunk_flatten `xb`): the GEMM of conv i writes its raw
 * product, and the gather of conv i+1 (or the flatten after conv3) reads GELU(x + xb[channel]) — one
 * pass over each map less (the im2col applies it once per value, as it stages the plane).
 * qa_cu_conv1ch3s2 is conv1 (one input channel: 9 MACs per output, a bandwidth-bound direct kernel; the
 * im2col + GEMM with K = 9 ran a slow non-tensor-core cuBLAS kernel). With BF16 weights it rounds
 * the input to BF16 as the im2col did, so only the FP32 summation order differs from the GEMM.
 * qa_cu_conv1_im2col is conv1 and conv2's BF16 im2col in one kernel (backend.h conv2d_pair), bit-equal to
 * qa_cu_conv1ch3s2 then qa_cu_im2col3s2 (QA_CUDA_CONV=old keeps that pair, for A/B runs).
 * qa_cu_mel_chunks cuts the [M, frames] log-mel into N zero-padded [1, M, L] images (MODEL_FACTS
 * §4.1: the last partial chunk is padded with 0.0 before the convs). qa_cu_conv_flatten permutes
 * [N, C, Fq, Tt] to [N, Tt, C*Fq] with feature index c*Fq + f, the order of transformers'
 * `permute(0, 3, 1, 2).view(b, t, c * f)` before conv_out (MODEL_FACTS §4.3).
 */
#include "ops.cuh"

/* A map value as the next op reads it: raw, or GELU(x + bias) of its channel when deferred here. */
__device__ __forceinline__ float act_in(float v, const float *xb, float bias) { return xb ? qa_gelu_erf(v + bias) : v; }

__device__ __forceinline__ void store_one(float *d, float v) { *d = v; }
__device__ __forceinline__ void store_one(__nv_bfloat16 *d, float v) { *d = __float2bfloat16_rn(v); }

#define IM2COL_THREADS 256
#define IM2COL_MAX_PLANE 12288 /* floats of one input plane in shared memory: 48 KiB, the most without opt-in */

/* One block per input plane (n, ci): the plane is read once, coalesced, into shared memory (its
 * deferred bias + GELU applied there, once per value), then the block writes the plane's 9 im2col rows
 * r = (n*Cin + ci)*9 + ky*3 + kx, consecutive threads on consecutive positions (coalesced stores,
 * 2-way bank conflicts on the stride-2 reads). Positions advance by the block size, so (oy, ox) are
 * stepped instead of divided. The first version ran a block per im2col row, read global memory 2.25
 * times per value and divided per element: 4.8 ms of a 300 s align on an H200 (Nsight Compute). */
template <typename O>
__global__ void __launch_bounds__(IM2COL_THREADS) im2col3s2_kernel(O *col, const float *x, const float *xb, int Cin,
                                                                   int Hi, int Wi, int Ho, int Wo)
{
    extern __shared__ float pl[]; /* [Hi * Wi], sized at launch (full occupancy for the tower's 12.8 KB) */
    const unsigned plane = blockIdx.x; /* n * Cin + ci */
    const int HW = Hi * Wi, P = Ho * Wo;
    const float *xp = x + (size_t)plane * HW;
    const float bias = xb ? xb[plane % (unsigned)Cin] : 0.f;
    for (int i = threadIdx.x; i < HW; i += IM2COL_THREADS)
        pl[i] = act_in(xp[i], xb, bias);
    __syncthreads();
    const int dy = IM2COL_THREADS / Wo, dx = IM2COL_THREADS - dy * Wo; /* one step of IM2COL_THREADS positions */
    for (int kk = 0; kk < 9; kk++) {
        const int ky = kk / 3 - 1, kx = kk % 3 - 1;
        O *out = col + ((size_t)plane * 9 + kk) * P;
        int oy = (int)threadIdx.x / Wo, ox = (int)threadIdx.x - oy * Wo;
        for (int p = threadIdx.x; p < P; p += IM2COL_THREADS) {
            const int iy = 2 * oy + ky, ix = 2 * ox + kx;
            /* zero padding of the activated map: outside the image the input is 0, not GELU(bias) */
            store_one(out + p, iy >= 0 && iy < Hi && ix >= 0 && ix < Wi ? pl[iy * Wi + ix] : 0.f);
            oy += dy;
            ox += dx;
            if (ox >= Wo) {
                ox -= Wo;
                oy++;
            }
        }
    }
}

__device__ __forceinline__ unsigned short bf16_bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }

/* The BF16 im2col rows of conv planes staged in shared memory as BF16 bits with a zero border (the conv's
 * padding; plane j at planes + j*PP, PW = width + 2 per row): out[q] for q < total, row r = q / P2 = j*9 + kk,
 * column q % P2 = y2*W2 + x2, is planes[j*PP + (2*y2 + kk/3)*PW + 2*x2 + kk%3] — no bounds test per tap.
 * 16-byte stores of 8 columns (P2 % 8 == 0, out 16-byte aligned: the 8 stay in one row, maybe over rows of the
 * map); each thread steps its (row, y2, x2) by the loop's stride instead of dividing per store. */
__device__ __forceinline__ void col_rows_x8(unsigned short *out, const unsigned short *planes, int total, int PP,
                                            int PW, int H2, int W2, int nthreads)
{
    const int q0 = 8 * (int)threadIdx.x, step = 8 * nthreads, sy = step / W2, sx = step - sy * W2, P2 = H2 * W2;
    int r = q0 / P2, y2 = (q0 - r * P2) / W2, x2 = q0 - r * P2 - y2 * W2, j = r / 9, kk = r - j * 9;
    for (int q = q0; q < total; q += step) {
        const unsigned short *row = planes + j * PP + (2 * y2 + kk / 3) * PW + kk % 3;
        unsigned v[8];
        int ty = 0, tx = x2;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            v[i] = row[ty + 2 * tx];
            if (++tx == W2) {
                tx = 0;
                ty += 2 * PW;
            }
        }
        *(uint4 *)(out + q) = make_uint4(v[0] | v[1] << 16, v[2] | v[3] << 16, v[4] | v[5] << 16, v[6] | v[7] << 16);
        x2 += sx;
        y2 += sy;
        if (x2 >= W2) {
            x2 -= W2;
            y2++;
        }
        while (y2 >= H2) { /* the next row of col (H2 * W2 = P2 columns each) */
            y2 -= H2;
            if (++kk == 9) {
                kk = 0;
                j++;
            }
        }
    }
}

/* im2col3s2_kernel for BF16 rows of P % 8 == 0 columns (conv2's 800, conv3's 208): the activated plane staged
 * as its BF16 GEMM operand (the RNE rounding store_one applies, so the same bits) with a zero border, then
 * col_rows_x8's 16-byte stores instead of 9 rows of 2-byte ones. */
__global__ void __launch_bounds__(IM2COL_THREADS)
    im2col3s2_x8_kernel(__nv_bfloat16 *col, const float *x, const float *xb, int Cin, int Hi, int Wi, int Ho, int Wo)
{
    extern __shared__ unsigned pl_words[]; /* [Hi + 2][Wi + 2] BF16 bits, zero border, rounded up to words */
    unsigned short *pl = (unsigned short *)pl_words;
    const unsigned plane = blockIdx.x; /* n * Cin + ci */
    const int HW = Hi * Wi, PW = Wi + 2, PP = (Hi + 2) * PW;
    const float *xp = x + (size_t)plane * HW;
    const float bias = xb ? xb[plane % (unsigned)Cin] : 0.f;
    for (int i = threadIdx.x; i < (PP + 1) / 2; i += IM2COL_THREADS)
        pl_words[i] = 0u;
    __syncthreads(); /* the zeros before the interior's values */
    const int dy = IM2COL_THREADS / Wi, dx = IM2COL_THREADS - dy * Wi;
    int iy = (int)threadIdx.x / Wi, ix = (int)threadIdx.x - iy * Wi;
    for (int i = threadIdx.x; i < HW; i += IM2COL_THREADS) {
        pl[(iy + 1) * PW + ix + 1] = bf16_bits(act_in(xp[i], xb, bias));
        iy += dy;
        ix += dx;
        if (ix >= Wi) {
            ix -= Wi;
            iy++;
        }
    }
    __syncthreads();
    col_rows_x8((unsigned short *)col + (size_t)plane * 9 * Ho * Wo, pl, 9 * Ho * Wo, PP, PW, Ho, Wo, IM2COL_THREADS);
}

#define CONV1_CO 8 /* output channels per thread of the one-channel conv: its 9 inputs are read once */

__device__ __forceinline__ float weight_f32(const float *w, int i) { return __ldg(w + i); }
__device__ __forceinline__ float weight_f32(const __nv_bfloat16 *w, int i) { return __bfloat162float(w[i]); }

__device__ __forceinline__ float input_as(const float *, float v) { return v; }
__device__ __forceinline__ float input_as(const __nv_bfloat16 *, float v)
{
    return __bfloat162float(__float2bfloat16_rn(v)); /* the BF16 im2col operand of the GEMM it replaces */
}

/* y[n, co, oy, ox] = act(b[co] + Σ_k w[co, k] x[n, 0, 2oy+ky-1, 2ox+kx-1]), k = ky*3 + kx, zero padding.
 * Grid: x = output positions (coalesced stores per channel), y = groups of CONV1_CO channels, z = n. */
template <typename W>
__global__ void conv1ch3s2_kernel(float *y, const float *x, const W *w, const float *b, int Cout, int Hi, int Wi,
                                  int Ho, int Wo, int gelu)
{
    const int p = blockIdx.x * blockDim.x + threadIdx.x, P = Ho * Wo, n = blockIdx.z;
    if (p >= P)
        return;
    const int oy = p / Wo, ox = p - oy * Wo;
    const float *xn = x + (size_t)n * Hi * Wi;
    float in[9];
#pragma unroll
    for (int k = 0; k < 9; k++) {
        const int iy = 2 * oy + k / 3 - 1, ix = 2 * ox + k % 3 - 1;
        in[k] = iy >= 0 && iy < Hi && ix >= 0 && ix < Wi ? input_as(w, __ldg(xn + iy * Wi + ix)) : 0.f;
    }
    const int co0 = blockIdx.y * CONV1_CO;
#pragma unroll
    for (int j = 0; j < CONV1_CO; j++) {
        const int co = co0 + j;
        if (co >= Cout)
            break;
        float acc = 0.f;
#pragma unroll
        for (int k = 0; k < 9; k++)
            acc = fmaf(weight_f32(w, co * 9 + k), in[k], acc);
        const float v = acc + (b ? __ldg(b + co) : 0.f);
        y[((size_t)n * Cout + co) * P + p] = gelu ? qa_gelu_erf(v) : v;
    }
}

/* 128 threads: at ~80 registers 6 blocks fit an SM, so a tile's 4 chunks x 120 channel groups run in one wave on
 * 132 SMs (256-thread blocks fit 3 per SM: two rounds, the second a sixth full) */
#define PAIR_THREADS 128
#define PAIR_CH 4 /* conv1 channels per block of the fused conv1 + im2col: 4 BF16 planes of 66 x 52, 27.5 KB */
#define PAIR_MAX_SMEM 49152 /* the most dynamic shared memory without opt-in */

/* conv1 (one input channel, BF16 weights, bias + GELU) and conv2's BF16 im2col in one pass (backend.h
 * conv2d_pair): block (channel group, n) computes PAIR_CH conv1 planes into shared memory, rounded to BF16
 * (conv1ch3s2_kernel's FMAs in its order, then the RNE rounding im2col3s2_kernel applies as it stages
 * the plane: bit-equal to that pair), then writes their 9 * PAIR_CH consecutive im2col rows — 16-byte
 * stores of 8 columns when a row's length P2 is a multiple of 8 (the tower's 800), else one value at a
 * time. The FP32 conv1 map (1.84 GB written and read again for 300 chunks) is never formed. Each plane has
 * a zero border (PW = W1 + 2 columns, H1 + 2 rows), conv2's padding, so a tap needs no bounds test. */
__global__ void __launch_bounds__(PAIR_THREADS)
    conv1_im2col_kernel(__nv_bfloat16 *col, const float *x, const __nv_bfloat16 *w, const float *b, int C1, int Hi,
                        int Wi, int H1, int W1, int H2, int W2)
{
    extern __shared__ unsigned planes_u[]; /* [PAIR_CH][H1 + 2][W1 + 2] BF16 bits, zero border */
    unsigned short *planes = (unsigned short *)planes_u;
    const int ci0 = blockIdx.x * PAIR_CH, n = blockIdx.y, P1 = H1 * W1, P2 = H2 * W2;
    const int PW = W1 + 2, PP = (H1 + 2) * PW, nch = min(PAIR_CH, C1 - ci0);
    const float *xn = x + (size_t)n * Hi * Wi;
    for (int i = threadIdx.x; i < PAIR_CH * PP / 2; i += PAIR_THREADS) /* PAIR_CH even: whole words */
        planes_u[i] = 0u;
    float wr[PAIR_CH][9], br[PAIR_CH];
#pragma unroll
    for (int j = 0; j < PAIR_CH; j++) {
#pragma unroll
        for (int k = 0; k < 9; k++)
            wr[j][k] = j < nch ? __bfloat162float(w[(ci0 + j) * 9 + k]) : 0.f;
        br[j] = j < nch && b ? __ldg(b + ci0 + j) : 0.f;
    }
    __syncthreads(); /* the zeros before the interior's values */
    const int dy = PAIR_THREADS / W1, dx = PAIR_THREADS - dy * W1;
    int oy = (int)threadIdx.x / W1, ox = (int)threadIdx.x - oy * W1;
    for (int p = threadIdx.x; p < P1; p += PAIR_THREADS) {
        float in[9];
#pragma unroll
        for (int k = 0; k < 9; k++) {
            const int iy = 2 * oy + k / 3 - 1, ix = 2 * ox + k % 3 - 1;
            in[k] = iy >= 0 && iy < Hi && ix >= 0 && ix < Wi ? input_as(w, __ldg(xn + iy * Wi + ix)) : 0.f;
        }
        const int at = (oy + 1) * PW + ox + 1;
#pragma unroll
        for (int j = 0; j < PAIR_CH; j++) {
            float acc = 0.f;
#pragma unroll
            for (int k = 0; k < 9; k++)
                acc = fmaf(wr[j][k], in[k], acc);
            planes[j * PP + at] = bf16_bits(qa_gelu_erf(acc + br[j]));
        }
        oy += dy;
        ox += dx;
        if (ox >= W1) {
            ox -= W1;
            oy++;
        }
    }
    __syncthreads();
    /* the block's 9 * nch rows are consecutive in col (col_rows_x8's layout) */
    unsigned short *out = (unsigned short *)col + ((size_t)n * C1 + ci0) * 9 * P2;
    const int total = nch * 9 * P2;
    if (P2 % 8 == 0) {
        col_rows_x8(out, planes, total, PP, PW, H2, W2, PAIR_THREADS);
    } else {
        for (int q = threadIdx.x; q < total; q += PAIR_THREADS) {
            const int r = q / P2, p = q - r * P2, j = r / 9, kk = r - j * 9, y2 = p / W2, x2 = p - y2 * W2;
            out[q] = planes[j * PP + (2 * y2 + kk / 3) * PW + 2 * x2 + kk % 3];
        }
    }
}

/* One block per output row (n, m): its threads copy the row's L frames, the valid ones from feat and zeros
 * after (the first version decoded every element with 64-bit divisions). */
__global__ void mel_chunks_kernel(float *y, const float *feat, int M, long long ld, long long frame0,
                                  long long valid, int L)
{
    const unsigned row = blockIdx.x, n = row / (unsigned)M, m = row - n * (unsigned)M;
    const long long f0 = frame0 + (long long)n * L;
    const float *src = feat + (size_t)m * ld;
    float *dst = y + (size_t)row * L;
    for (int t = threadIdx.x; t < L; t += blockDim.x)
        dst[t] = f0 + t < valid ? src[f0 + t] : 0.0f;
}

#define FLAT_TILE 32 /* the flatten's square tile (threads FLAT_TILE x FLAT_ROWS) */
#define FLAT_ROWS 8

/* Per chunk n the flatten is a transpose of x_n viewed as [C*Fq rows, Tt columns] to [Tt, C*Fq]; each block
 * moves one FLAT_TILE x FLAT_TILE tile through shared memory (padded a column against bank conflicts), so
 * reads follow x's rows and writes follow out's (the first version read with a stride of Tt floats). */
__global__ void __launch_bounds__(FLAT_TILE *FLAT_ROWS)
    conv_flatten_kernel(float *out, const float *x, const float *xb, int C, int Fq, int Tt)
{
    __shared__ float tile[FLAT_TILE][FLAT_TILE + 1];
    const int R = C * Fq, r0 = blockIdx.x * FLAT_TILE, t0 = blockIdx.y * FLAT_TILE;
    const float *xn = x + (size_t)blockIdx.z * R * Tt;
    float *on = out + (size_t)blockIdx.z * Tt * R;
    for (int j = threadIdx.y; j < FLAT_TILE; j += FLAT_ROWS) {
        const int r = r0 + j, t = t0 + threadIdx.x;
        if (r < R && t < Tt)
            tile[j][threadIdx.x] = act_in(xn[(size_t)r * Tt + t], xb, xb ? xb[r / Fq] : 0.f);
    }
    __syncthreads();
    for (int j = threadIdx.y; j < FLAT_TILE; j += FLAT_ROWS) {
        const int t = t0 + j, r = r0 + threadIdx.x;
        if (t < Tt && r < R)
            on[(size_t)t * R + r] = tile[threadIdx.x][j];
    }
}

qa_status qa_cu_im2col3s2(cudaStream_t s, void *col, int bf16, int x8, const float *x, const float *xb, int N,
                          int Cin, int Hi, int Wi, qa_err *e)
{
    int Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1;
    size_t planes = (size_t)N * Cin;
    if (!planes || !Hi || !Wi)
        return QA_OK;
    if (planes > 0x7fffffffu || (size_t)Hi * Wi > IM2COL_MAX_PLANE)
        return QA_FAIL(e, QA_ERR_INTERNAL, "im2col: %zu planes of %d x %d (at most 2^31 planes of %d values)", planes,
                       Hi, Wi, IM2COL_MAX_PLANE);
    size_t smem = (size_t)Hi * Wi * sizeof(float), bordered = ((size_t)(Hi + 2) * (Wi + 2) + 1) / 2 * sizeof(unsigned);
    if (bf16 && x8 && Ho * Wo % 8 == 0 && bordered <= IM2COL_MAX_PLANE * sizeof(float))
        im2col3s2_x8_kernel<<<(unsigned)planes, IM2COL_THREADS, bordered, s>>>((__nv_bfloat16 *)col, x, xb, Cin, Hi,
                                                                              Wi, Ho, Wo);
    else if (bf16)
        im2col3s2_kernel<<<(unsigned)planes, IM2COL_THREADS, smem, s>>>((__nv_bfloat16 *)col, x, xb, Cin, Hi, Wi, Ho,
                                                                        Wo);
    else
        im2col3s2_kernel<<<(unsigned)planes, IM2COL_THREADS, smem, s>>>((float *)col, x, xb, Cin, Hi, Wi, Ho, Wo);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_conv1ch3s2(cudaStream_t s, float *y, const float *x, const void *w, int bf16, const float *b, int N,
                           int Hi, int Wi, int Cout, int gelu, qa_err *e)
{
    int Ho = (Hi - 1) / 2 + 1, Wo = (Wi - 1) / 2 + 1, P = Ho * Wo;
    if (!N || !Cout || !P)
        return QA_OK;
    if (N > 65535 || (Cout + CONV1_CO - 1) / CONV1_CO > 65535 || (size_t)Hi * Wi > 0x7fffffffu)
        return QA_FAIL(e, QA_ERR_INTERNAL, "conv1ch: %d images of %d channels (%d x %d) exceed the grid", N, Cout, Hi,
                       Wi);
    dim3 grid((unsigned)((P + 127) / 128), (unsigned)((Cout + CONV1_CO - 1) / CONV1_CO), (unsigned)N);
    if (bf16)
        conv1ch3s2_kernel<<<grid, 128, 0, s>>>(y, x, (const __nv_bfloat16 *)w, b, Cout, Hi, Wi, Ho, Wo, gelu);
    else
        conv1ch3s2_kernel<<<grid, 128, 0, s>>>(y, x, (const float *)w, b, Cout, Hi, Wi, Ho, Wo, gelu);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

int qa_cu_conv1_im2col_fits(int Hi, int Wi)
{
    const size_t PP = (size_t)((Hi - 1) / 2 + 3) * ((Wi - 1) / 2 + 3); /* a conv1 plane with its zero border */
    return Hi > 0 && Wi > 0 && PAIR_CH * PP * sizeof(unsigned short) <= PAIR_MAX_SMEM;
}

qa_status qa_cu_conv1_im2col(cudaStream_t s, void *col, const float *x, const void *w, const float *b, int N, int C1,
                             int Hi, int Wi, qa_err *e)
{
    const int H1 = (Hi - 1) / 2 + 1, W1 = (Wi - 1) / 2 + 1, H2 = (H1 - 1) / 2 + 1, W2 = (W1 - 1) / 2 + 1;
    if (!N || !C1)
        return QA_OK;
    if (!qa_cu_conv1_im2col_fits(Hi, Wi) || N > 65535 || (size_t)C1 * 9 * H2 * W2 > 0x7fffffffu)
        return QA_FAIL(e, QA_ERR_INTERNAL, "conv1_im2col: %d images of %d x %d, %d channels exceed the grid or the "
                       "shared memory (%d bordered planes of at most %d values)", N, Hi, Wi, C1, PAIR_CH,
                       PAIR_MAX_SMEM / (int)(PAIR_CH * sizeof(unsigned short)));
    dim3 grid((unsigned)((C1 + PAIR_CH - 1) / PAIR_CH), (unsigned)N);
    size_t smem = (size_t)PAIR_CH * (H1 + 2) * (W1 + 2) * sizeof(unsigned short);
    conv1_im2col_kernel<<<grid, PAIR_THREADS, smem, s>>>((__nv_bfloat16 *)col, x, (const __nv_bfloat16 *)w, b, C1, Hi,
                                                          Wi, H1, W1, H2, W2);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_mel_chunks(cudaStream_t s, float *y, const float *feat, int M, long long ld, long long frame0,
                           long long valid, int N, int L, qa_err *e)
{
    size_t rows = (size_t)N * M;
    if (!rows || !L)
        return QA_OK;
    if (rows > 0x7fffffffu)
        return QA_FAIL(e, QA_ERR_INTERNAL, "mel_chunks: %d chunks of %d mel rows exceed the grid", N, M);
    mel_chunks_kernel<<<(unsigned)rows, 128, 0, s>>>(y, feat, M, ld, frame0, valid, L);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_conv_flatten(cudaStream_t s, float *out, const float *x, const float *xb, int N, int C, int Fq,
                             int Tt, qa_err *e)
{
    size_t R = (size_t)C * Fq;
    if (!N || !R || !Tt)
        return QA_OK;
    if (R > 0x7fffffffu || N > 65535 || (Tt + FLAT_TILE - 1) / FLAT_TILE > 65535)
        return QA_FAIL(e, QA_ERR_INTERNAL, "conv_flatten: %d chunks of %zu features x %d steps exceed the grid", N, R,
                       Tt);
    dim3 grid((unsigned)((R + FLAT_TILE - 1) / FLAT_TILE), (unsigned)((Tt + FLAT_TILE - 1) / FLAT_TILE), (unsigned)N);
    conv_flatten_kernel<<<grid, dim3(FLAT_TILE, FLAT_ROWS), 0, s>>>(out, x, xb, C, Fq, Tt);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
