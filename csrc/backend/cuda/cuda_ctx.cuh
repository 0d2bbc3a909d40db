/* cuda_ctx.cuh — the state of one opened CUDA backend (one device, one stream, one cuBLASLt handle).
 *
 * Contract: created by qa_cuda_ctx_open (device.cu), freed by qa_cuda_ctx_close; it is the `ctx` of
 * the qa_backend that backend.cu fills. It owns no device memory: the cuBLASLt workspace and the work
 * area of the ops (BF16 GEMM operands, im2col matrices) are carved from be->scratch, a view into the
 * arena workspace that the engine sets (DESIGN.md §5: every device byte comes from the one
 * allocation), as are the split kernels' arrival counters at its end.
 * qa_cuda_bind_scratch re-partitions whenever be->scratch changes.
 * It owns two pinned host staging buffers (weight upload and the per-request upload of gathered
 * embedding rows; allocated once at load, counted).
 * After the first CUDA error the context is "broken": every later call fails with the first error's
 * message (a sticky CUDA error poisons the process's context; we say so instead of crashing).
 */
#ifndef QA_CUDA_CTX_CUH
#define QA_CUDA_CTX_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "ops.cuh" /* qa_cu_tc_dev */

extern "C" {
#include "../../model/weights.h"
#include "../cuda_api.h"
#include "../cuda_mm_buckets.h"
#include "../cuda_scratch.h"
}

typedef struct qa_cuda_prof qa_cuda_prof; /* profile.cu */

/* One matrix product for matmul.cu, in cuBLAS' column-major terms: C[m, n] = alpha op(A)[m, k] op(B)[k, n]
 * + beta C (C is also the output), `batch` of them at element strides sa / sb / sc (0: shared). `var` is
 * the dimension that changes from request to request (the token count); var_max > 0 puts all its values
 * 1 .. var_max in one bucket (one kernel), 0 uses matmul.cu's standard buckets. Enums are stored as int. */
enum { QA_MM_VAR_M = 0, QA_MM_VAR_N = 1, QA_MM_VAR_BATCH = 2 };
typedef struct qa_mm {
    int opA, opB;         /* cublasOperation_t */
    int ta, tb, tc;       /* cudaDataType_t of A, B and C */
    int compute;          /* cublasComputeType_t: CUBLAS_COMPUTE_32F (never TF32) or CUBLAS_COMPUTE_64F */
    int m, n, k, batch;
    long long lda, ldb, ldc, sa, sb, sc;
    int var, var_max;
    const float *bias;    /* NULL, or FP32 [m] added to every column in cuBLASLt's epilogue (a Linear's bias) */
} qa_mm;
typedef struct qa_mm_plan qa_mm_plan; /* matmul.cu */
#define QA_CUDA_STACK_BYTES 64 /* per-thread stack our kernels need at most (device.cu lower_stack_limit) */
#define QA_MM_PLANS 2048 /* planned (shape, bucket) keys: ~45 shapes x <= 16 buckets (cuda_mm_buckets.h) for both
                           * models, the op tests' one context more; ~330 KB of host memory */

typedef struct qa_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *scratch;              /* be->scratch last bound (arena view) */
    size_t scratch_bytes;
    void *work;                 /* scratch after the cuBLAS workspace: GEMM staging / im2col */
    size_t work_bytes;
    unsigned *sync;             /* QA_CUDA_SYNC_BYTES of arrival counters at the scratch's end, zero between kernels */
    int dec_merge;              /* split decode attention merges in its last block (QA_CUDA_DEC_MERGE=two: off, a
                                 * second kernel merges as before) */
    int broken;                 /* set after the first CUDA error */
    qa_err first_err;           /* that error, repeated to every later caller */
    void *pin[2];               /* pinned upload staging (double buffer) */
    cudaEvent_t pin_done[2];    /* recorded after the copy out of pin[i] was enqueued */
    size_t pin_bytes;
    int pin_next;
    size_t free_at_open, free_after_handles, total_at_open;
    unsigned long long n_dev_allocs, n_host_allocs; /* counted cudaMalloc / cudaMallocHost of this context */
    char name[256];             /* device name, for reports */
    int cc_major, cc_minor;
    qa_cuda_prof *prof;         /* QA_CUDA_PROFILE=1 at open: per-op timing table (profile.cu), else NULL */
    int memwatch;               /* QA_CUDA_MEMWATCH=1 at open: report ops after which free device memory fell */
    size_t memwatch_free;       /* free bytes after the last op (memwatch) */
    int conv_old;               /* QA_CUDA_CONV=old at open: conv2d_pair as conv1 then conv2, im2col's 2-byte stores */
    int attn_fp32;              /* QA_CUDA_ATTN=fp32 at open: FP32 attention kernel even for dtype=bfloat16 */
    int attn_enc;               /* the encoder's windowed calls on attention_enc.cu (QA_CUDA_ENC_ATTN=old: off) */
    int fused_gemm;             /* adjacent weights of one norm_gemm / norm_mlp as one GEMM (QA_CUDA_FUSED_GEMM=0: off) */
    int bf16_handoff;           /* BF16 GEMM operands written by their producers (gemm_in_dtype, ln_mlp); 0 with
                                 * QA_CUDA_BF16_HANDOFF=0 at open: FP32 rows staged by gemm.cu as before */
    int gu_bf16;                /* norm_mlp's gate | up GEMM writes BF16 (torch's bf16 Linear), silu·mul reads it; 0
                                 * with QA_CUDA_GU_BF16=0 at open: FP32 gate | up as before (norm_gemm.cu) */
    qa_cu_tc_dev attn_tc;       /* the tensor-core attention kernel (QA_CUDA_ATTN) and the device's limits */
    cudaGraphExec_t graph_exec[QA_GRAPH_SLOTS]; /* recorded steps (graph.cu), destroyed at close */
    const void *graph_key[QA_GRAPH_SLOTS];      /* the key each was recorded under */
    int capturing;              /* the stream is being recorded */
    cudaGraph_t loop_graph;     /* while capturing a loop's body (graph_begin_loop): the graph of its while node */
    cudaGraphConditionalHandle loop_handle; /* ... the node's condition */
    qa_cu_loop loop;            /* ... and what decides it (step.cu step_continue) */
    size_t graph_bytes;         /* device memory the driver took for instantiated graphs (measured) */
    unsigned long long n_graph_instantiations;
    qa_mm_plan *mm_plans;       /* [QA_MM_PLANS] open-addressed table of planned products (matmul.cu) */
    const qa_mm_buckets *mm_buckets; /* their size buckets: QA_CUDA_MM_BUCKETS=old at open gives the old five */
    float rope_inv[128];        /* qkv_prep's RoPE frequencies for (rope_theta, rope_dh), computed on first use */
    float rope_theta;
    int rope_dh;
    unsigned long long n_mm_plans;
} qa_cuda_ctx;

/* QA_CUDA_BLAS_WS_BYTES, QA_CUDA_STAGE_ROWS and the scratch formula: ../cuda_scratch.h */

/* device.cu */
qa_status qa_cuda_ctx_open(qa_cuda_ctx **out, int device, qa_err *e); /* caller frees with ctx_close */
void qa_cuda_ctx_close(qa_cuda_ctx *c);
/* QA_OK, or the first error again (QA_ERR_CUDA) when the context is broken. */
qa_status qa_cuda_ctx_usable(qa_cuda_ctx *c, qa_err *e);
/* Usable, and the context's device made current for this host thread. Every op starts here. */
qa_status qa_cuda_ctx_enter(qa_cuda_ctx *c, qa_err *e);
/* Record a failed status: CUDA errors break the context. Returns s. */
qa_status qa_cuda_ctx_note(qa_cuda_ctx *c, qa_status s, const qa_err *e);
/* Partition scratch (borrowed arena view) into the cuBLAS workspace, the work area and the arrival counters
 * (zeroed on the stream when the scratch changes). */
qa_status qa_cuda_bind_scratch(qa_cuda_ctx *c, void *scratch, size_t bytes, qa_err *e);
/* Counted device allocation (the arena block) and the pinned-staging host -> device copy. */
qa_status qa_cuda_dev_alloc(qa_cuda_ctx *c, void **out, size_t bytes, qa_err *e);
qa_status qa_cuda_upload(qa_cuda_ctx *c, void *dst, const void *src, size_t bytes, qa_err *e);
/* cuda_api.h upload_rows / upload_convert / host_alloc / host_free of this context. */
qa_status qa_cuda_upload_rows(qa_cuda_ctx *c, float *dst, const void *table, qa_dtype dt, int64_t R, int64_t D,
                              const int32_t *ids, int64_t T, qa_err *e);
qa_status qa_cuda_upload_convert(qa_cuda_ctx *c, void *dst, qa_dtype dt, const void *src, qa_dtype st, size_t n,
                                 void *scratch, size_t scratch_bytes, qa_err *e);
qa_status qa_cuda_host_alloc(qa_cuda_ctx *c, void **out, size_t bytes, qa_err *e); /* free: qa_cuda_host_free */
void qa_cuda_host_free(qa_cuda_ctx *c, void *p);
/* cuda_api.h probe and mem_stats (c may be NULL: process counters only). */
qa_status qa_cuda_probe_device(int device, qa_cuda_probe *out, qa_err *e);
void qa_cuda_mem_stats_of(const qa_cuda_ctx *c, qa_cuda_mem_stats *out);
qa_status qa_cuda_mem_query(int device, size_t *free_bytes, size_t *total_bytes, qa_err *e);

/* profile.cu: NULL unless QA_CUDA_PROFILE is set; begin/end bracket one op on stream s. */
qa_cuda_prof *qa_cuda_prof_open(void);
void qa_cuda_prof_begin(qa_cuda_prof *p, cudaStream_t s);
void qa_cuda_prof_end(qa_cuda_prof *p, cudaStream_t s, const char *name);
void qa_cuda_prof_close(qa_cuda_prof *p);
/* profile.cu: QA_CUDA_MEMWATCH=1 — after op `name`, a drop of cudaMemGetInfo's free bytes goes to stderr. */
void qa_cuda_memwatch_open(qa_cuda_ctx *c);
void qa_cuda_memwatch(qa_cuda_ctx *c, const char *name);

/* graph.cu: backend.h graph_begin / graph_begin_loop / graph_end / graph_launch / graph_ready; graphs_free at close. */
qa_status qa_cuda_graph_begin(qa_cuda_ctx *c, qa_err *e);
qa_status qa_cuda_graph_begin_loop(qa_cuda_ctx *c, const qa_cu_loop *loop, qa_err *e);
qa_status qa_cuda_graph_end(qa_cuda_ctx *c, int slot, const void *key, qa_err *e);
qa_status qa_cuda_graph_launch(qa_cuda_ctx *c, int slot, qa_err *e);
int qa_cuda_graph_ready(const qa_cuda_ctx *c, int slot, const void *key);
void qa_cuda_graphs_free(qa_cuda_ctx *c);

/* matmul.cu: C = alpha op(A) op(B) + beta C with the key's planned cuBLASLt algorithm (planned now if new). */
qa_status qa_cuda_matmul(qa_cuda_ctx *c, const qa_mm *g, const void *alpha, const void *A, const void *B,
                         const void *beta, void *C, qa_err *e);
size_t qa_cuda_mm_plans_bytes(void);

/* gemm.cu */
/* y[T, N] (row stride ldy) = x[T, K] (row stride ldx) @ W[N, K]^T + beta * y. W is BF16 (x is
 * rounded to BF16 in the work area, products accumulate in FP32: cuBLAS GemmEx, COMPUTE_32F)
 * or FP32 (true FP32, TF32 off: CUBLAS_COMPUTE_32F with the default math mode). */
qa_status qa_cuda_gemm(qa_cuda_ctx *c, float *y, int ldy, const float *x, int ldx, const void *w, qa_dtype wt,
                       int T, int N, int K, float beta, qa_err *e);
/* qa_cuda_gemm_staged + bias[N] (FP32) on every row, in cuBLASLt's epilogue. */
qa_status qa_cuda_gemm_staged_bias(qa_cuda_ctx *c, float *y, int ldy, const __nv_bfloat16 *xb, const void *w, int T,
                                   int N, int K, float beta, const float *bias, qa_err *e);
/* ln_gemm.cu: backend.h ln_gemm with checked arguments (W one dtype wt, b[i] FP32 or NULL, y[i] row stride ldy or
 * N[i] when 0). */
qa_status qa_cuda_ln_gemm(qa_cuda_ctx *c, float *const y[], int ldy, const float *x, const float *ln_w,
                          const float *ln_b, float eps, const void *const W[], qa_dtype wt, const float *const b[],
                          const int N[], int n, int T, int K, int gelu, qa_err *e);
/* norm_gemm.cu: the n weights of a norm_gemm / ln_gemm (biases b, or NULL for none) as ONE GEMM of N = ldy: outputs
 * y[i] side by side in rows of ldy, weights (and biases) one after another in memory, QA_CUDA_FUSED_GEMM not 0. */
int qa_cuda_one_gemm(const qa_cuda_ctx *c, float *const y[], int ldy, const void *const W[], qa_dtype wt,
                     const float *const b[], const int N[], int n, int K);
/* backend.h gemm_bf16x: qa_cuda_gemm_bias on rows already BF16 (xb [T, K]), in gemm.cu's row blocks. */
qa_status qa_cuda_gemm_bf16x(qa_cuda_ctx *c, float *y, int ldy, const __nv_bfloat16 *xb, const void *w, int T, int N,
                             int K, float beta, const float *bias, qa_err *e);
/* ln_gemm.cu: backend.h ln_mlp with checked arguments (W1 (F, E), W2 (E, F) of dtype wt, biases FP32 or NULL). */
qa_status qa_cuda_ln_mlp(qa_cuda_ctx *c, float *x, const float *ln_w, const float *ln_b, float eps, const void *W1,
                         const float *b1, const void *W2, const float *b2, qa_dtype wt, float *f, int T, int E, int F,
                         qa_err *e);
/* qa_cuda_gemm + bias[N] (FP32) on every row: in cuBLASLt's epilogue, or a bias pass after a GEMV. */
qa_status qa_cuda_gemm_bias(qa_cuda_ctx *c, float *y, int ldy, const float *x, int ldx, const void *w, qa_dtype wt,
                            int T, int N, int K, float beta, const float *bias, qa_err *e);
/* y[T, N] (row stride ldy) = xb[T, K] @ W[N, K]^T + beta * y for a BF16 operand already staged in the work
 * area (ld K) and BF16 W: the cuBLAS half of qa_cuda_gemm, for norm_gemm.cu's RMSNorm written as BF16. */
qa_status qa_cuda_gemm_staged(qa_cuda_ctx *c, float *y, int ldy, const __nv_bfloat16 *xb, const void *w, int T,
                              int N, int K, float beta, qa_err *e);
/* qa_cuda_gemm_staged (beta 0) with y BF16: the FP32 sums rounded to nearest even as cuBLASLt stores them, what
 * torch's bf16 Linear returns (norm_gemm.cu's gate | up, QA_CUDA_GU_BF16). ldy in BF16 elements. */
qa_status qa_cuda_gemm_staged_to_bf16(qa_cuda_ctx *c, __nv_bfloat16 *y, int ldy, const __nv_bfloat16 *xb, const void *w,
                                     int T, int N, int K, qa_err *e);
/* Rows of row_bytes the work area holds at once, at most want (>= 1, else QA_ERR_INTERNAL naming what). */
qa_status qa_cuda_work_rows(const qa_cuda_ctx *c, size_t row_bytes, int want, const char *what, int *rows,
                            qa_err *e);
/* For b < batch: C_b[M, N] = A[M, K] @ B_b[K, N] (row-major; B_b = B + b*K*N elements of B's dtype,
 * C_b = C + b*M*N). A is a weight (BF16 or FP32), B already in A's dtype (the conv's im2col). */
qa_status qa_cuda_gemm_wx_batched(qa_cuda_ctx *c, float *C, const void *A, qa_dtype at, const void *B, int M,
                                  int N, int K, int batch, qa_err *e);

/* norm_gemm.cu (backend.h norm_gemm / norm_mlp; arguments checked by backend.cu, scratch bound): W of one
 * dtype wt, y[i][T, N[i]] (row stride ldy, 0: N[i]) = RMSNorm(x)·W[i]^T + beta·y[i]; nw the FP32 norm weight [K];
 * gu [T, 2F] the gate | up rows. */
qa_status qa_cuda_norm_gemm(qa_cuda_ctx *c, float *const y[], int ldy, const float *x, const float *nw, float eps,
                            const void *const W[], qa_dtype wt, const int N[], int n, int T, int K, float beta,
                            qa_err *e);
qa_status qa_cuda_norm_mlp(qa_cuda_ctx *c, float *x, const float *nw, float eps, const void *Wg, const void *Wu,
                           const void *Wd, qa_dtype wt, float *gu, int T, int D, int F, qa_err *e);

/* mel.cu (backend.h mel_tables / log_mel; the cuBLAS workspace must be bound first) */
qa_status qa_cuda_mel_tables(qa_cuda_ctx *c, void *tables, const float *filters_host, qa_err *e);
qa_status qa_cuda_log_mel(qa_cuda_ctx *c, float *feat, const float *x, int64_t n, const void *tables, void *work,
                          size_t work_bytes, qa_err *e);

#endif
