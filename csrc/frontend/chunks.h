/* chunks.h — where to cut long audio: boundaries at quiet points (MODEL_FACTS §9).
 *
 * The official Qwen3-ASR long-audio path (qwen_asr/inference/utils.py split_audio_into_chunks) cuts
 * a recording into chunks of about `max_len` samples, each cut moved to the quietest 100 ms window
 * within ±`search` samples of the target. qa_chunk_bounds computes the same boundaries.
 */
#ifndef QA_CHUNKS_H
#define QA_CHUNKS_H

#include <stddef.h>

#include "../core/status.h"

/* An upper bound on the number of boundaries qa_chunk_bounds writes for these arguments (the
 * first 0 and the final n included), so the caller can size `bounds`. */
size_t qa_chunk_bounds_cap(size_t n, size_t max_len, size_t search);

/* Boundaries of the chunks of x[0..n): bounds[0] = 0 < bounds[1] < ... < bounds[k] = n, so chunk i
 * is x[bounds[i] .. bounds[i+1]) and the chunks tile x exactly. n <= max_len gives one chunk.
 * Each later cut: target = start + max_len; search [target - search, target + search] ∩ [start, n);
 * the `win`-sample window with the smallest sum of |x| (first one on ties), the cut at the
 * smallest |x| inside it; clamped to [start + 1, n]. When the search range holds no more than `win`
 * samples, the cut is the target.
 * x: borrowed, n samples. bounds: caller-owned, room for `cap` entries (qa_chunk_bounds_cap()).
 * *n_bounds receives k + 1. O(n) time (running window sum), no allocation.
 * Errors: QA_ERR_INPUT for max_len == 0, win == 0, or cap too small. */
qa_status qa_chunk_bounds(const float *x, size_t n, size_t max_len, size_t search, size_t win, size_t *bounds,
                          size_t cap, size_t *n_bounds, qa_err *e);

#endif
