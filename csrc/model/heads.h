/* heads.h — final RMSNorm + output head, only on the rows that are read.
 *
 * Aligner: Linear(D -> classify_num) (`score` / thinker.lm_head) at the `<timestamp>` rows;
 * ASR: tied embeddings (D -> V) at the last row. m->dec.head is the right matrix for both (the loader
 * makes the tied head a view of the embedding).
 */
#ifndef QA_HEADS_H
#define QA_HEADS_H

#include "../backend/backend.h"
#include "../memory/arena.h"
#include "weights.h"

/* Rows of the head: classify_num (aligner) or vocab (ASR). */
int64_t qa_head_classes(const qa_model *m);

/* logits[n, classes] = head(RMSNorm(x[rows[i]])) for i < n. x [T, D]; rows int32 [n] in backend
 * memory, each in [0, T). Borrowed: all; temporaries from ws, released. */
qa_status qa_head_rows(qa_backend *be, const qa_model *m, qa_region *ws, const float *x, int64_t T,
                       const int32_t *rows, int64_t n, float *logits, qa_err *e);

/* logits[classes] = head(RMSNorm(row)) for one row [D] (ASR last position). g [D] is a caller buffer. */
qa_status qa_head_row(qa_backend *be, const qa_model *m, const float *row, float *g, float *logits, qa_err *e);

#endif
