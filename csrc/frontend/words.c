/* words.c — transcript -> aligner words (see words.h for the modes and their references).
 *
 * Contract: qa_split_words reproduces transformers 5.17 Qwen3ASRProcessor.split_words_for_alignment
 * (fixtures/text_cases.json "words") for the default mode and Korean; Japanese is a documented
 * fallback. The text is not normalised (a decomposed "é" loses its combining accent, as in the
 * reference, because marks are not kept). Character rules use Python's definitions:
 * str.isspace() for whitespace and unicodedata.category() (here utf8proc) for letters and numbers.
 */
#include "words.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#include "../core/alloc.h"
#include "grow.h"
#include "utf8.h"

/* Python str.isspace(): bidirectional class WS/B/S or category Zs. */
static int py_isspace(int32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* HF _is_cjk_char (the original's ranges plus CJK Compatibility Ideographs Supplement). */
static int is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* HF _is_kept_char: the apostrophe, letters, numbers, CJK ideographs. */
static int is_kept(int32_t cp)
{
    if (cp == '\'')
        return 1;
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) || is_cjk(cp);
}

/* Japanese fallback: the script a kept character belongs to (runs break where it changes). */
enum { SCRIPT_OTHER, SCRIPT_HIRAGANA, SCRIPT_KATAKANA };

static int ja_script(int32_t cp)
{
    if (cp >= 0x3040 && cp <= 0x309F)
        return SCRIPT_HIRAGANA;
    if ((cp >= 0x30A0 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0xFF66 && cp <= 0xFF9F))
        return SCRIPT_KATAKANA;
    return SCRIPT_OTHER;
}

typedef struct splitter {
    qa_words *w;
    size_t word_start; /* offset in w->buf of the word being built */
    int script;        /* Japanese: script of the word being built */
} splitter;

static qa_status put_bytes(qa_words *w, const uint8_t *s, size_t n, qa_err *e)
{
    char *b = qa_grow(w->buf, &w->cap, w->len + n, 1, 256, e);
    if (!b)
        return QA_ERR_OOM;
    w->buf = b;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return QA_OK;
}

/* Close the word being built (if it has any byte). */
static qa_status flush(splitter *sp, qa_err *e)
{
    qa_words *w = sp->w;
    if (w->len == sp->word_start)
        return QA_OK;
    size_t *end = qa_grow(w->end, &w->ncap, w->n + 1, sizeof *end, 64, e);
    if (!end)
        return QA_ERR_OOM;
    w->end = end;
    w->end[w->n++] = w->len;
    sp->word_start = w->len;
    return QA_OK;
}

/* One character s[0..k) = cp of the text. */
static qa_status feed(splitter *sp, qa_words_mode mode, int32_t cp, const uint8_t *s, size_t k, qa_err *e)
{
    if (mode != QA_WORDS_KOREAN && is_cjk(cp)) { /* an ideograph is a word of its own */
        QA_TRY(flush(sp, e));
        QA_TRY(put_bytes(sp->w, s, k, e));
        return flush(sp, e);
    }
    if (py_isspace(cp))
        return flush(sp, e);
    if (!is_kept(cp))
        return QA_OK; /* dropped without splitting the word */
    if (mode == QA_WORDS_JAPANESE) {
        int script = ja_script(cp);
        if (sp->w->len > sp->word_start && script != sp->script)
            QA_TRY(flush(sp, e));
        sp->script = script;
    }
    return put_bytes(sp->w, s, k, e);
}

qa_status qa_split_words(const char *text, size_t len, qa_words_mode mode, qa_words *out, qa_err *e)
{
    const uint8_t *s = (const uint8_t *)text;
    if (mode != QA_WORDS_DEFAULT && mode != QA_WORDS_JAPANESE && mode != QA_WORDS_KOREAN)
        return QA_FAIL(e, QA_ERR_INPUT, "split_words: unknown mode %d", (int)mode);
    size_t bad = qa_utf8_invalid_at(s, len);
    if (bad < len)
        return QA_FAIL(e, QA_ERR_INPUT, "text is not valid UTF-8: byte 0x%02x at offset %zu", s[bad], bad);
    splitter sp = {out, out->len, SCRIPT_OTHER};
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k = qa_utf8_next(s, i, &cp);
        QA_TRY(feed(&sp, mode, cp, s + i, k, e));
        i += k;
    }
    return flush(&sp, e);
}

void qa_words_free(qa_words *w)
{
    qa_free(w->buf);
    qa_free(w->end);
    memset(w, 0, sizeof *w);
}
