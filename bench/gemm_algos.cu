/* gemm_algos.cu — issue 6: how good matmul.cu's cuBLASLt algorithm choice is for the models' GEMM shapes.
 *
 * For each Linear of the aligner, Qwen3-ASR-1.7B and their audio encoder (BF16 weight and rows, FP32 output and
 * compute, beta and bias epilogue as the model issues them; shapes in tests/test_cuda_gemm_algos.py) at the
 * row counts of the benchmark requests, it times with CUDA events: the algorithm matmul.cu plans for the row
 * count's bucket under the old and the new bucket table (its own plan(), this file includes matmul.cu), the
 * heuristic's first candidate at the exact row count, and every candidate of the heuristic (up to 32) to
 * find the best. The weights cycle through copies larger than L2 together, as a model's layers do.
 *
 *   nvcc -O2 -std=c++17 -o /tmp/gemm_algos bench/gemm_algos.cu csrc/backend/cuda/cuda_check.cu \
 *        csrc/core/status.c -lcublasLt
 *   /tmp/gemm_algos NAME M K BETA BIAS ROWS [ROWS ...] [-- NAME ...]
 *
 * One line per (shape, rows): "case NAME m M k K rows T beta B bias 0|1 | old US CFG | new US CFG | first US
 * CFG | best US CFG | candidates N", CFG = a<algo id>,t<tile>,s<stages>,k<split-k>,w<swizzle>,c<cluster>,
 * o<custom option> (cublasLt.h enum values; the test names them).
 */
#include <stdlib.h>

#include "../csrc/backend/cuda/matmul.cu"

#define MAX_CAND 32
#define WEIGHT_SPAN ((size_t)256 << 20) /* bytes of weight copies cycled through: > L2 (50-60 MB) */

/* A failed CUDA or cuBLASLt call ends the tool with the call, its line and the library's message. */
static void check(cudaError_t st, const char *what, int line)
{
    if (st != cudaSuccess) {
        fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, line, what, cudaGetErrorString(st));
        exit(1);
    }
}
static void check(cublasStatus_t st, const char *what, int line)
{
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, line, what, cublasLtGetStatusString(st));
        exit(1);
    }
}
#define CK(x) check((x), #x, __LINE__)

__global__ void fill_bf16(__nv_bfloat16 *p, size_t n, unsigned seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        p[i] = __float2bfloat16(((float)(h & 0xffff) / 65536.f - 0.5f) * 0.1f);
    }
}

typedef struct bench {
    qa_cuda_ctx c; /* only lt, stream, scratch and mm_buckets are used (plan()) */
    __nv_bfloat16 *w, *x;
    float *y, *bias;
    size_t w_elems;
    cudaEvent_t ev[2];
} bench;

static void cfg_of(const cublasLtMatmulAlgo_t *a, char *out, size_t n)
{
    const cublasLtMatmulAlgoConfigAttributes_t at[] = {
        CUBLASLT_ALGO_CONFIG_ID, CUBLASLT_ALGO_CONFIG_TILE_ID, CUBLASLT_ALGO_CONFIG_STAGES_ID,
        CUBLASLT_ALGO_CONFIG_SPLITK_NUM, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID,
        CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION};
    const char tag[] = "atskwco";
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < 7; i++) {
        uint64_t v = 0; /* 16- or 32-bit values (cublasLt.h): asked for their size first, read little-endian */
        size_t need = 0;
        long long shown = -1;
        cublasStatus_t st = cublasLtMatmulAlgoConfigGetAttribute(a, at[i], NULL, 0, &need);
        if (st == CUBLAS_STATUS_SUCCESS && need <= sizeof v)
            st = cublasLtMatmulAlgoConfigGetAttribute(a, at[i], &v, need, &need);
        if (st == CUBLAS_STATUS_SUCCESS && need <= sizeof v)
            shown = need == 2 ? (long long)(int16_t)v : (long long)(int32_t)v;
        used += (size_t)snprintf(out + used, n - used, "%s%c%lld", i ? "," : "", tag[i], shown);
    }
}

/* Microseconds of one product with algo (the median of three timed batches), weights cycling. */
static double time_algo(bench *b, const qa_mm *g, const cublasLtMatmulAlgo_t *algo, float beta)
{
    mm_desc d;
    CK(describe(g, &d));
    const float alpha = 1.0f;
    size_t per = (size_t)g->m * g->k;
    int copies = (int)(b->w_elems / per);
    double flop = 2.0 * g->m * g->n * g->k;
    int reps = (int)(1e-3 / (flop / 5e14)); /* ~1 ms a batch at 500 TFLOP/s */
    reps = reps < 5 ? 5 : reps > 200 ? 200 : reps;
    for (int i = 0; i < 2; i++)
        CK(cublasLtMatmul(b->c.lt, &d.op, &alpha, b->w, &d.a, b->x, &d.b, &beta, b->y, &d.c, b->y, &d.c, algo,
                           b->c.scratch, QA_CUDA_BLAS_WS_BYTES, b->c.stream));
    double t[3];
    for (int r = 0; r < 3; r++) {
        CK(cudaEventRecord(b->ev[0], b->c.stream));
        for (int i = 0; i < reps; i++)
            CK(cublasLtMatmul(b->c.lt, &d.op, &alpha, b->w + (size_t)(i % copies) * per, &d.a, b->x, &d.b, &beta,
                               b->y, &d.c, b->y, &d.c, algo, b->c.scratch, QA_CUDA_BLAS_WS_BYTES, b->c.stream));
        CK(cudaEventRecord(b->ev[1], b->c.stream));
        CK(cudaEventSynchronize(b->ev[1]));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, b->ev[0], b->ev[1]));
        t[r] = 1e3 * ms / reps;
    }
    double lo = t[0] < t[1] ? t[0] : t[1], hi = t[0] < t[1] ? t[1] : t[0];
    return t[2] < lo ? lo : t[2] > hi ? hi : t[2];
}

/* The algorithm matmul.cu plans for g under bucket table bk. */
static cublasLtMatmulAlgo_t rule_algo(bench *b, const qa_mm *g, const qa_mm_buckets *bk)
{
    b->c.mm_buckets = bk;
    int bu = bucket_of(bk, g, var_of(g));
    mm_key k = key_of(bk, g, bu, b->w, b->x, b->y);
    cublasLtMatmulAlgo_t a;
    qa_err e = {};
    if (plan(&b->c, g, bu, k.al, &a, &e) != QA_OK) {
        fprintf(stderr, "plan: %s\n", e.msg);
        exit(1);
    }
    return a;
}

static int heuristic(bench *b, const qa_mm *g, cublasLtMatmulHeuristicResult_t *cand)
{
    mm_desc d;
    CK(describe(g, &d));
    cublasLtMatmulPreferenceOpaque_t pref;
    CK(cublasLtMatmulPreferenceInit(&pref));
    uint64_t ws = QA_CUDA_BLAS_WS_BYTES;
    CK(cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    int n = 0;
    CK(cublasLtMatmulAlgoGetHeuristic(b->c.lt, &d.op, &d.a, &d.b, &d.c, &d.c, &pref, MAX_CAND, cand, &n));
    return n;
}

static void run_case(bench *b, const char *name, int M, int K, float beta, int bias, int T)
{
    const float *bp = bias ? b->bias : NULL;
    qa_mm g = {CUBLAS_OP_T, CUBLAS_OP_N, CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F, M, T, K, 1, K, K, M,
               0, 0, 0, QA_MM_VAR_N, 0, bp};
    char cfg[4][160];
    double us[4];
    cublasLtMatmulAlgo_t old_a = rule_algo(b, &g, &QA_MM_BUCKETS_OLD), new_a = rule_algo(b, &g, &QA_MM_BUCKETS_NEW);
    us[0] = time_algo(b, &g, &old_a, beta);
    cfg_of(&old_a, cfg[0], sizeof cfg[0]);
    us[1] = time_algo(b, &g, &new_a, beta);
    cfg_of(&new_a, cfg[1], sizeof cfg[1]);
    cublasLtMatmulHeuristicResult_t cand[MAX_CAND];
    int n = heuristic(b, &g, cand), first = -1, best = -1, valid = 0;
    double best_us = 1e30;
    for (int i = 0; i < n; i++) {
        if (cand[i].state != CUBLAS_STATUS_SUCCESS)
            continue;
        valid++;
        double t = time_algo(b, &g, &cand[i].algo, beta);
        if (first < 0) {
            first = i;
            us[2] = t;
        }
        if (t < best_us) {
            best_us = t;
            best = i;
        }
    }
    if (first < 0) {
        printf("case %s m %d k %d rows %d: no candidate\n", name, M, K, T);
        return;
    }
    us[3] = best_us;
    cfg_of(&cand[first].algo, cfg[2], sizeof cfg[2]);
    cfg_of(&cand[best].algo, cfg[3], sizeof cfg[3]);
    printf("case %s m %d k %d rows %d beta %g bias %d | old %.2f %s | new %.2f %s | first %.2f %s | best %.2f %s | "
           "candidates %d\n", name, M, K, T, beta, bias, us[0], cfg[0], us[1], cfg[1], us[2], cfg[2], us[3], cfg[3],
           valid);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static bench b; /* zeroed */
    int maxM = 1, maxK = 1, maxT = 1;
    for (int i = 1; i + 5 < argc;) { /* first pass: buffer sizes */
        int M = atoi(argv[i + 1]), K = atoi(argv[i + 2]);
        maxM = M > maxM ? M : maxM;
        maxK = K > maxK ? K : maxK;
        for (i += 5; i < argc && strcmp(argv[i], "--") != 0; i++)
            maxT = atoi(argv[i]) > maxT ? atoi(argv[i]) : maxT;
        i++;
    }
    CK(cudaStreamCreateWithFlags(&b.c.stream, cudaStreamNonBlocking));
    CK(cublasLtCreate(&b.c.lt));
    CK(cudaMalloc(&b.c.scratch, QA_CUDA_BLAS_WS_BYTES));
    size_t one = (size_t)maxM * maxK;
    b.w_elems = (WEIGHT_SPAN / 2 / one > 2 ? WEIGHT_SPAN / 2 / one : 2) * one;
    CK(cudaMalloc(&b.w, b.w_elems * 2));
    CK(cudaMalloc(&b.x, (size_t)maxT * maxK * 2));
    CK(cudaMalloc(&b.y, (size_t)maxT * maxM * 4));
    CK(cudaMalloc(&b.bias, (size_t)maxM * 4));
    fill_bf16<<<1024, 256, 0, b.c.stream>>>(b.w, b.w_elems, 1u);
    fill_bf16<<<1024, 256, 0, b.c.stream>>>(b.x, (size_t)maxT * maxK, 2u);
    CK(cudaGetLastError());
    CK(cudaMemsetAsync(b.y, 0, (size_t)maxT * maxM * 4, b.c.stream));
    CK(cudaMemsetAsync(b.bias, 0, (size_t)maxM * 4, b.c.stream));
    CK(cudaEventCreate(&b.ev[0]));
    CK(cudaEventCreate(&b.ev[1]));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, %d SMs, cuBLASLt %zu\n", prop.name, prop.multiProcessorCount, cublasLtGetVersion());
    for (int i = 1; i + 5 < argc;) {
        const char *name = argv[i];
        int M = atoi(argv[i + 1]), K = atoi(argv[i + 2]), bias = atoi(argv[i + 4]);
        float beta = (float)atof(argv[i + 3]);
        for (i += 5; i < argc && strcmp(argv[i], "--") != 0; i++)
            run_case(&b, name, M, K, beta, bias, atoi(argv[i]));
        i++;
    }
    return 0;
}
