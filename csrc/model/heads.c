/* heads.c — the text model's final norm and output head, computed only where logits are needed.
 *
 * Contract (heads.h). Reference: Qwen3Model.norm then GenericForTokenClassification.score (aligner,
 * logits at every position of which only the `<timestamp>` rows are used, MODEL_FACTS §7.3) or
 * lm_head tied to embed_tokens (ASR, `logits_to_keep` = last position during generation, §5). The
 * norm is per row, so gathering the rows first and normalising after gives the same numbers.
 */
#include "heads.h"

int64_t qa_head_classes(const qa_model *m)
{
    return m->dec.head.ndim == 2 ? m->dec.head.shape[0] : 0;
}

qa_status qa_head_rows(qa_backend *be, const qa_model *m, qa_region *ws, const float *x, int64_t T,
                       const int32_t *rows, int64_t n, float *logits, qa_err *e)
{
    int64_t D = m->cfg.text.hidden;
    size_t mark = qa_region_mark(ws);
    float *g = qa_arena_take(ws, (size_t)(n * D) * sizeof(float), e);
    if (!g)
        return e->code;
    /* the hidden states seen as an F32 table, so the embedding gather picks the rows */
    qa_tensor hid = {.data = (void *)x, .dtype = QA_F32, .ndim = 2, .shape = {T, D}};
    QA_TRY(be->embed(be, g, &hid, rows, n, e));
    QA_TRY(be->rmsnorm(be, g, g, &m->dec.norm, n, D, (float)m->cfg.text.rms_eps, e));
    QA_TRY(be->gemm(be, logits, g, &m->dec.head, NULL, n, D, qa_head_classes(m), QA_ACT_NONE, 0, e));
    qa_region_release(ws, mark);
    return QA_OK;
}

qa_status qa_head_row(qa_backend *be, const qa_model *m, const float *row, float *g, float *logits, qa_err *e)
{
    int64_t D = m->cfg.text.hidden;
    QA_TRY(be->rmsnorm(be, g, row, &m->dec.norm, 1, D, (float)m->cfg.text.rms_eps, e));
    return be->gemm(be, logits, g, &m->dec.head, NULL, 1, D, qa_head_classes(m), QA_ACT_NONE, 0, e);
}
