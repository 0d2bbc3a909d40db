/* tokenizer.h — Qwen2 byte-level BPE (the tokenizer of Qwen3-ASR / Qwen3-ForcedAligner).
 *
 * Basic usage:
 *     qa_tokenizer *tok;
 *     QA_TRY(qa_tokenizer_load("Qwen3-ForcedAligner-0.6B", &tok, e));   // vocab.json, merges.txt,
 *                                                                        // tokenizer_config.json
 *     qa_ids ids = {0};
 *     QA_TRY(qa_tokenizer_encode(tok, "Hello world", 11, &ids, e));     // appends [9707, 1879]
 *     char *text; size_t n;
 *     QA_TRY(qa_tokenizer_decode(tok, ids.v, ids.n, 0, &text, &n, e));   // "Hello world"
 *     qa_free(text); qa_ids_free(&ids); qa_tokenizer_free(tok);
 *
 * Behaviour matches the Hugging Face `tokenizers` Qwen2 pipeline used by transformers 5.17
 * (MODEL_FACTS §6): added tokens matched whole (leftmost-longest, before normalisation, including
 * the non-special `<asr_text>` / `<timestamp>`), NFC, the Qwen2 split regex, GPT-2 byte mapping,
 * BPE by merge rank; decode maps bytes back and replaces invalid UTF-8 with U+FFFD.
 * A loaded tokenizer is immutable: encode/decode may run concurrently from several threads.
 */
#ifndef QA_TOKENIZER_H
#define QA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"

typedef struct qa_tokenizer qa_tokenizer;

/* A growable array of token ids. Zero-initialise; the owner frees with qa_ids_free. */
typedef struct qa_ids {
    int32_t *v;
    size_t n, cap;
} qa_ids;

qa_status qa_ids_push(qa_ids *a, int32_t id, qa_err *e);
qa_status qa_ids_append(qa_ids *a, const int32_t *ids, size_t n, qa_err *e);
void qa_ids_free(qa_ids *a);

/* Load <folder>/vocab.json, merges.txt and tokenizer_config.json and validate them.
 * On success *out is a new tokenizer (caller frees with qa_tokenizer_free).
 * Malformed or missing files -> QA_ERR_MODEL naming the file (and line for merges.txt). */
qa_status qa_tokenizer_load(const char *folder, qa_tokenizer **out, qa_err *e);
void qa_tokenizer_free(qa_tokenizer *t);

/* Append the ids of text[0..len) (UTF-8, no special tokens added) to *out.
 * Invalid UTF-8 -> QA_ERR_INPUT naming the byte offset; *out keeps what it had on failure. */
qa_status qa_tokenizer_encode(const qa_tokenizer *t, const char *text, size_t len, qa_ids *out, qa_err *e);

/* Decode ids to UTF-8. skip_special drops added tokens flagged special (keeps `<asr_text>`,
 * `<timestamp>`). Ids without a token (e.g. unused rows 151706..152063 of the embedding) are
 * skipped like `tokenizers` does; negative ids -> QA_ERR_INPUT.
 * *out is NUL-terminated, caller frees with qa_free; *out_len excludes the NUL. */
qa_status qa_tokenizer_decode(const qa_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                              char **out, size_t *out_len, qa_err *e);

/* Id of a token by its exact content (an added token such as "<|audio_pad|>", or a vocab entry in
 * its byte-mapped form). Returns -1 when absent. */
int32_t qa_tokenizer_token_id(const qa_tokenizer *t, const char *token, size_t len);

/* Id of a required added token; QA_ERR_MODEL naming it when the tokenizer lacks it. */
qa_status qa_tokenizer_require(const qa_tokenizer *t, const char *token, int32_t *id, qa_err *e);

/* 1 + the largest id the tokenizer knows (vocab and added tokens). */
int32_t qa_tokenizer_n_ids(const qa_tokenizer *t);

#endif
