/* embed.c — token rows on the CPU: embedding gather (F32 or BF16 table) and argmax with probability.
 *
 * Contract (backend.h `embed`, `argmax`). embed is nn.Embedding (and, with an F32 activation buffer
 * wrapped as a table, the gather of the hidden rows at `<timestamp>` positions before the aligner
 * head). argmax returns torch.argmax's first maximal index and the softmax probability of that
 * class, exp(0) / Σ exp(x − max), with the suppressed ids (EOS while min_new_tokens is not reached,
 * MinNewTokensLengthLogitsProcessor) treated as −inf.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"

qa_status qa_cpu_embed(qa_backend *be, float *y, const qa_tensor *table, const int32_t *ids, int64_t T,
                       qa_err *e)
{
    if (!table || !table->data || table->ndim != 2)
        return QA_FAIL(e, QA_ERR_INTERNAL, "embed: table must be a 2-D tensor");
    int64_t R = table->shape[0], D = table->shape[1];
    for (int64_t t = 0; t < T; t++) {
        int64_t id = ids[t];
        if (id < 0 || id >= R)
            return QA_FAIL(e, QA_ERR_INPUT, "embed: id %lld at position %lld outside [0, %lld)", (long long)id,
                           (long long)t, (long long)R);
        float *dst = y + t * D;
        if (table->dtype == QA_F32) {
            memcpy(dst, (const float *)table->data + id * D, (size_t)D * sizeof *dst);
        } else if (table->dtype == QA_BF16) {
            qa_cpu_bf16_to_f32(dst, (const uint16_t *)table->data + id * D, D);
        } else {
            return QA_FAIL(e, QA_ERR_INTERNAL, "embed: table dtype %d not F32/BF16", (int)table->dtype);
        }
    }
    return QA_OK;
}

static int suppressed(int64_t j, const int32_t *sup, int n)
{
    for (int i = 0; i < n; i++)
        if (sup[i] == j)
            return 1;
    return 0;
}

qa_status qa_cpu_argmax(qa_backend *be, int32_t *idx, float *prob, const float *x, int64_t R, int64_t V,
                        const int32_t *suppress, int n_suppress, qa_err *e)
{
    for (int64_t r = 0; r < R; r++) {
        const float *row = x + r * V;
        int64_t best = -1;
        float mx = -INFINITY;
        for (int64_t j = 0; j < V; j++)
            if ((best < 0 || row[j] > mx) && !suppressed(j, suppress, n_suppress)) {
                mx = row[j];
                best = j;
            }
        if (best < 0)
            return QA_FAIL(e, QA_ERR_INTERNAL, "argmax: every one of %lld classes is suppressed", (long long)V);
        idx[r] = (int32_t)best;
        if (prob) {
            double sum = 0.0;
            for (int64_t j = 0; j < V; j++)
                if (!suppressed(j, suppress, n_suppress))
                    sum += exp((double)row[j] - (double)mx);
            prob[r] = (float)(1.0 / sum);
        }
    }
    return QA_OK;
}
