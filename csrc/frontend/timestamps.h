/* timestamps.h — monotonic repair of the aligner's raw timestamps (MODEL_FACTS §7.4).
 *
 *     int64_t fixed[n];
 *     QA_TRY(qa_repair_timestamps(raw_ms, n, fixed, e));   // raw_ms[k] = class * 80.0
 *
 * The result is what transformers 5.17 `_fix_timestamps` (= the original `fix_timestamp`) returns:
 * the longest non-decreasing subsequence is kept (earliest predecessor on ties), runs of up to
 * two other values snap to the nearer kept neighbour by index, longer runs are interpolated
 * linearly in float64, and every value is truncated toward zero to integer milliseconds.
 */
#ifndef QA_TIMESTAMPS_H
#define QA_TIMESTAMPS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"

/* Repair raw[0..n) into out[0..n) (caller-owned). Values must be finite with |v| <= 2^53
 * (QA_ERR_INPUT naming the index otherwise). n == 0 is fine. Uses O(n) scratch (QA_ERR_OOM). */
qa_status qa_repair_timestamps(const double *raw, size_t n, int64_t *out, qa_err *e);

#endif
