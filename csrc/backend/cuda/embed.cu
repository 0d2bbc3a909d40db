/* embed.cu — row gather: token embeddings, and rows of an activation buffer (backend.h embed).
 *
 * Contract: ops.cuh. One block per output row reads table[ids[t]] (BF16 or FP32 table, FP32 out).
 * The engine validates ids on the host; an id outside [0, V) still cannot read out of bounds here:
 * it produces a zero row and raises the optional device flag.
 * Reference: nn.Embedding; the audio rows replacing <|audio_pad|> (masked_scatter, MODEL_FACTS §5)
 * are gathered the same way by the engine.
 */
#include "ops.cuh"
#include "pdl.cuh"

template <typename W>
__global__ void embed_kernel(float *out, const W *table, const int32_t *ids, int T, int D, int V, int *bad)
{
    qa_pdl_wait(); /* launched with PDL (pdl.cuh): ids (and a gathered activation "table") come from earlier kernels */
    qa_pdl_trigger();
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

qa_status qa_cu_embed(cudaStream_t s, float *out, const void *table, qa_dtype wt, const int32_t *ids, int T,
                      int D, int V, int *bad, qa_err *e)
{
    QA_TRY(qa_cu_check_wdtype(wt, "embed", e));
    if (T <= 0)
        return QA_OK;
    if (wt == QA_BF16)
        QA_CUDA_CHECK(e, qa_cu_launch(embed_kernel<__nv_bfloat16>, T, 256, 0, s, out,
                                      (const __nv_bfloat16 *)table, ids, T, D, V, bad));
    else
        QA_CUDA_CHECK(e, qa_cu_launch(embed_kernel<float>, T, 256, 0, s, out, (const float *)table, ids, T, D, V,
                                      bad));
    return QA_OK;
}
