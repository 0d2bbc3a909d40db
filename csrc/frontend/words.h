/* words.h — splitting a transcript into the units the forced aligner times (MODEL_FACTS §7.1).
 *
 *     qa_words w = {0};
 *     QA_TRY(qa_split_words(text, len, QA_WORDS_DEFAULT, &w, e));
 *     for (size_t i = 0; i < w.n; i++) { size_t n; const char *s = qa_words_at(&w, i, &n); ... }
 *     qa_words_free(&w);
 *
 * Modes (the caller maps a language to a mode; see qwen3align/frontend.py LANGUAGES):
 *   QA_WORDS_DEFAULT   every language but Japanese/Korean, Chinese included: HF 5.17
 *                      split_words_for_alignment — split at Python-whitespace, keep letters (L*),
 *                      numbers (N*), the apostrophe and CJK ideographs, drop anything else without
 *                      splitting ("50-minute" -> "50minute"), every CJK ideograph is its own word;
 *   QA_WORDS_KOREAN    exact HF 5.17 result: soynlp LTokenizer() without scores keeps every
 *                      whitespace word whole, then the same cleaning (ideographs are not split);
 *   QA_WORDS_JAPANESE  fallback for nagisa (no C equivalent): the default rules, and a kept run
 *                      is also cut where the script changes between hiragana, katakana and other
 *                      letters/digits ("のテキストです" -> "の", "テキスト", "です").
 */
#ifndef QA_WORDS_H
#define QA_WORDS_H

#include <stddef.h>

#include "../core/status.h"

typedef enum qa_words_mode { QA_WORDS_DEFAULT = 0, QA_WORDS_JAPANESE = 1, QA_WORDS_KOREAN = 2 } qa_words_mode;

/* Words as one byte buffer: word i is buf[i ? end[i-1] : 0 .. end[i]). Zero-initialise; the owner
 * frees with qa_words_free. */
typedef struct qa_words {
    char *buf;
    size_t len, cap;
    size_t *end;
    size_t n, ncap;
} qa_words;

/* Append the words of text[0..len) (UTF-8) to *out. Invalid UTF-8 or an unknown mode ->
 * QA_ERR_INPUT. No words is not an error here (the caller decides; the aligner needs >= 1). */
qa_status qa_split_words(const char *text, size_t len, qa_words_mode mode, qa_words *out, qa_err *e);

void qa_words_free(qa_words *w);

/* Borrowed view of word i (not NUL-terminated); *len gets its length in bytes. */
static inline const char *qa_words_at(const qa_words *w, size_t i, size_t *len)
{
    size_t start = i ? w->end[i - 1] : 0;
    *len = w->end[i] - start;
    return w->buf + start;
}

#endif
