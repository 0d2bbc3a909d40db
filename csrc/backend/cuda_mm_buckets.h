/* cuda_mm_buckets.h — the size buckets of matmul.cu's planned matrix products, as plain C, so that the
 * extension (qwen3align/models.py's warm-up, through _qwen3align._cuda_gemm_buckets) visits exactly the buckets
 * libqa_cuda.so plans without loading it.
 *
 * A product's token-count dimension v is reduced to the first bucket b with v <= hi[b] (the last is open); its
 * cuBLASLt algorithm is the heuristic's first candidate at at[b] that runs both ends of the bucket (matmul.cu).
 * "new" (the default, issue 6): ~x1.5 steps from 64 rows up, most asked at their geometric middle, so a product
 * runs a tile shape chosen for a size near its own (with the old table the 795-row ASR prefill ran the
 * 2048-row choice, a quarter of its tile rows padding). QA_CUDA_MM_BUCKETS=old restores the five buckets
 * planned before, to compare on the GPU; a context reads it once at open (device.cu), the warm-up at load.
 */
#ifndef QA_CUDA_MM_BUCKETS_H
#define QA_CUDA_MM_BUCKETS_H

#include <stdlib.h>
#include <string.h>

#define QA_MM_BUCKETS_MAX 16
#define QA_MM_BUCKET_OPEN (1 << 20) /* the last bucket's top: more rows than any plan allows */

typedef struct qa_mm_buckets {
    int n;
    int hi[QA_MM_BUCKETS_MAX]; /* upper bounds, increasing; hi[n - 1] = QA_MM_BUCKET_OPEN */
    int at[QA_MM_BUCKETS_MAX]; /* the size the heuristic is asked at */
} qa_mm_buckets;

static const qa_mm_buckets QA_MM_BUCKETS_OLD = {5, {4, 64, 512, 2048, QA_MM_BUCKET_OPEN}, {4, 64, 512, 2048, 8192}};

/* at = round(sqrt(lo * hi)) of lo = previous hi + 1 (1-4 and 5-64 as before; the open bucket at 12288, the
 * middle of 8193..18432, beyond which only user-raised ASR limits go), except 1537-6144, asked at their top:
 * measured on the H200 (tests/test_cuda_gemm_algos.py, bench/RESULTS.md), the middle's choice ran the rows
 * that matter there (the 2048-row MLP tiles and their 1852-row rest, a 300 s clip's 3900 encoder rows) up
 * to 1.6x slower than the top's, which is also the choice the heuristic makes at those exact sizes */
static const qa_mm_buckets QA_MM_BUCKETS_NEW = {
    16,
    {4, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, QA_MM_BUCKET_OPEN},
    {4, 64, 91, 157, 222, 314, 444, 628, 887, 1255, 2048, 3072, 4096, 6144, 7095, 12288}};

/* 1: QA_CUDA_MM_BUCKETS is "old". */
static inline int qa_mm_buckets_old_env(void)
{
    const char *v = getenv("QA_CUDA_MM_BUCKETS");
    return v && strcmp(v, "old") == 0;
}

static inline const qa_mm_buckets *qa_mm_buckets_of(int old) { return old ? &QA_MM_BUCKETS_OLD : &QA_MM_BUCKETS_NEW; }

#endif
