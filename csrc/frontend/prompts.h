/* prompts.h — the token sequences fed to the aligner and the ASR model (MODEL_FACTS §4, §7.2, §8.1).
 *
 *     size_t n_audio = qa_audio_token_count(mel_frames);
 *     qa_ids ids = {0};
 *     QA_TRY(qa_aligner_prompt_ids(tok, words, lens, n_words, n_audio, &ids, e));
 *     size_t n_ts = qa_timestamp_positions(ids.v, ids.n, ts_id, NULL);   // 2 * n_words
 *     ... qa_ids_free(&ids);
 *
 * Aligner: <|audio_start|> + n_audio × <|audio_pad|> + <|audio_end|> + Σ (BPE(word) + 2 × <timestamp>).
 * ASR: "<|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>" + n_audio pads +
 * "<|audio_end|><|im_end|>\n<|im_start|>assistant\n" [+ "language {Name}<asr_text>" when forced].
 * Both equal the reference ids of fixtures/cases/<case>/{aligner_input_ids,asr_prompt_ids}.npy.
 */
#ifndef QA_PROMPTS_H
#define QA_PROMPTS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"
#include "tokenizer.h"

/* Audio tokens for valid_frames mel frames: 13 per full 100-frame chunk + ceil(rest / 8)
 * (three stride-2 convolutions; HF _get_audio_token_length). valid_frames = max(samples, 8000) / 160. */
size_t qa_audio_token_count(size_t valid_frames);

/* Append the aligner prompt to *out. words[i] has lens[i] bytes of UTF-8. At least one word, none
 * empty, none containing <|audio_start|>/<|audio_pad|>/<|audio_end|>/<timestamp> (QA_ERR_INPUT). */
qa_status qa_aligner_prompt_ids(const qa_tokenizer *t, const char *const *words, const size_t *lens, size_t n_words,
                                size_t n_audio, qa_ids *out, qa_err *e);

/* Append the ASR chat prompt to *out. language: NULL for detection, else the canonical name that
 * is forced ("English"; the caller validates it against the 30 ASR languages). context: system
 * text (may be empty), must not contain audio tokens (QA_ERR_INPUT). */
qa_status qa_asr_prompt_ids(const qa_tokenizer *t, size_t n_audio, const char *language, const char *context,
                            size_t context_len, qa_ids *out, qa_err *e);

/* Number of ids[i] == timestamp_id; when pos is non-NULL also writes their indices in order
 * (pos must hold that many). */
size_t qa_timestamp_positions(const int32_t *ids, size_t n, int32_t timestamp_id, int32_t *pos);

#endif
