/* pretokenize.h — the Qwen2 pre-tokenizer split, hand-written as a scanner (no regex engine).
 *
 * It cuts NFC text into the pieces that the pattern of transformers tokenization_qwen2.py /
 * tokenizers' Split(Isolated) finds, leftmost alternative first:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} | ?[^\s\p{L}\p{N}]+[\r\n]*
 *   | \s*[\r\n]+ | \s+(?!\S) | \s+
 * Letters/numbers are Unicode general categories L* / N* (utf8proc); \s is the White_Space
 * property (what Oniguruma, the engine of `tokenizers`, uses).
 */
#ifndef QA_PRETOKENIZE_H
#define QA_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

/* Character classes of one code point (bit set). */
enum { QA_CC_L = 1, QA_CC_N = 2, QA_CC_S = 4, QA_CC_NL = 8 };

/* Class bits of code point cp. */
unsigned qa_char_class(int32_t cp);

/* End (exclusive byte offset) of the piece that starts at s[i], i < n. s is valid UTF-8. */
size_t qa_pretokenize_next(const uint8_t *s, size_t n, size_t i);

#endif
