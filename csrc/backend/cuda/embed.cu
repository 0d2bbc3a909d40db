/* embed.cu — token embedding gather and the audio-embedding scatter into <|audio_pad|> rows.
 *
 * Contract: ops.cuh. qa_cu_embed reads one table row per token (BF16 or FP32 table, FP32 out);
 * ids outside [0, V) produce a zero row and raise a device flag the caller checks, instead of reading
 * out of bounds. qa_cu_scatter_rows copies the N_audio encoder rows to the prompt rows that hold
 * <|audio_pad|>, in order (transformers masked_scatter, MODEL_FACTS §5); the caller computed those
 * row numbers on the host from the prompt ids and checked that the counts match.
 */
#include "ops.cuh"

template <typename W>
__global__ void embed_kernel(float *out, const W *table, const int32_t *ids, int T, int D, int V, int *bad)
{
    int t = blockIdx.x;
    int id = ids[t];
    float *o = out + (size_t)t * D;
    if (id < 0 || id >= V) {
        for (int i = threadIdx.x; i < D; i += blockDim.x)
            o[i] = 0.0f;
        if (bad && threadIdx.x == 0)
            *bad = 1;
        return;
    }
    const W *row = table + (size_t)id * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        o[i] = qa_ld(row, i);
}

__global__ void scatter_rows_kernel(float *out, const float *src, const int32_t *rows, int D)
{
    int i = blockIdx.x;
    float *o = out + (size_t)rows[i] * D;
    const float *r = src + (size_t)i * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x)
        o[c] = r[c];
}

qa_status qa_cu_embed(cudaStream_t s, float *out, const void *table, qa_dtype wt, const int32_t *ids, int T,
                      int D, int V, int *bad, qa_err *e)
{
    QA_TRY(qa_cu_check_wdtype(wt, "embed", e));
    if (T <= 0)
        return QA_OK;
    if (wt == QA_BF16)
        embed_kernel<<<T, 256, 0, s>>>(out, (const __nv_bfloat16 *)table, ids, T, D, V, bad);
    else
        embed_kernel<<<T, 256, 0, s>>>(out, (const float *)table, ids, T, D, V, bad);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

qa_status qa_cu_scatter_rows(cudaStream_t s, float *out, const float *src, const int32_t *rows, int n, int D,
                             qa_err *e)
{
    if (n <= 0)
        return QA_OK;
    scatter_rows_kernel<<<n, 256, 0, s>>>(out, src, rows, D);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}
