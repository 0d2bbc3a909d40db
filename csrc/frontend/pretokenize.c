/* pretokenize.c — the Qwen2 split pattern as a hand-written scanner (see pretokenize.h).
 *
 * Contract: qa_pretokenize_next(s, n, i) returns where the piece starting at i ends, exactly as the
 * regex engine of `tokenizers` (Oniguruma, leftmost alternative wins, greedy with backtracking)
 * would end the match there. Every character is matched by some alternative, so the pieces tile
 * the text. Reference: the pattern in transformers tokenization_qwen2.py (PRETOKENIZE_REGEX) and
 * MODEL_FACTS §6; case-insensitive contractions use Unicode case folding ('ſ' folds to 's').
 */
#include "pretokenize.h"

#include <utf8proc.h>

enum { L = QA_CC_L, N = QA_CC_N, S = QA_CC_S, NL = QA_CC_NL };

static const uint8_t ascii_class[128] = {
    ['\t'] = S, ['\n'] = S | NL, ['\v'] = S, ['\f'] = S, ['\r'] = S | NL, [' '] = S,
    ['0' ... '9'] = N, ['A' ... 'Z'] = L, ['a' ... 'z'] = L,
};

/* The White_Space property beyond ASCII (Oniguruma's \s for Unicode text). */
static int is_unicode_space(int32_t cp)
{
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

unsigned qa_char_class(int32_t cp)
{
    if (cp < 128)
        return ascii_class[cp];
    unsigned c = 0;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: c = L; break;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: c = N; break;
    default: break;
    }
    if (is_unicode_space(cp))
        c |= S;
    return c;
}

static inline unsigned class_at(const uint8_t *s, size_t i, size_t *len)
{
    if (s[i] < 0x80) {
        *len = 1;
        return ascii_class[s[i]];
    }
    int32_t cp;
    *len = qa_utf8_next(s, i, &cp);
    return qa_char_class(cp);
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i] == '\''; returns the end or 0. OR-ing 0x20 lower-cases
 * exactly the ASCII letters compared here and maps no other byte onto them. */
static size_t contraction(const uint8_t *s, size_t n, size_t i)
{
    if (i + 1 >= n)
        return 0;
    uint8_t a = s[i + 1] | 0x20;
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return i + 2;
    if (s[i + 1] == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) /* U+017F LATIN SMALL LETTER LONG S */
        return i + 3;
    if (i + 2 >= n)
        return 0;
    uint8_t b = s[i + 2] | 0x20;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return i + 3;
    return 0;
}

/* End of the run of characters starting at j whose class has none of the bits in stop. */
static size_t run_without(const uint8_t *s, size_t n, size_t j, unsigned stop)
{
    while (j < n) {
        size_t l;
        if (class_at(s, j, &l) & stop)
            break;
        j += l;
    }
    return j;
}

static size_t run_with(const uint8_t *s, size_t n, size_t j, unsigned need)
{
    while (j < n) {
        size_t l;
        if (!(class_at(s, j, &l) & need))
            break;
        j += l;
    }
    return j;
}

/* \s*[\r\n]+ | \s+(?!\S) | \s+ for a whitespace character at s[i]. */
static size_t whitespace_piece(const uint8_t *s, size_t n, size_t i)
{
    size_t e = i, last_nl = (size_t)-1, last_start = i;
    while (e < n) {
        size_t l;
        unsigned c = class_at(s, e, &l);
        if (!(c & S))
            break;
        if (c & NL)
            last_nl = e;
        last_start = e;
        e += l;
    }
    if (last_nl != (size_t)-1)
        return last_nl + 1; /* \s* backs off to the last line break, [\r\n]+ takes it */
    if (e == n)
        return e; /* \s+ at the end of the text: (?!\S) holds */
    if (last_start > i)
        return last_start; /* \s+(?!\S) gives the last space to the next piece */
    return e;              /* a single space before a non-space: \s+ */
}

size_t qa_pretokenize_next(const uint8_t *s, size_t n, size_t i)
{
    if (s[i] == '\'') {
        size_t e = contraction(s, n, i);
        if (e)
            return e;
    }
    size_t l0;
    unsigned c0 = class_at(s, i, &l0);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    size_t j = (c0 & (L | N | NL)) ? i : i + l0;
    if (j < n) {
        size_t lj;
        if (class_at(s, j, &lj) & L)
            return run_with(s, n, j + lj, L);
    }
    /* \p{N} */
    if (c0 & N)
        return i + l0;
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    j = s[i] == ' ' ? i + 1 : i;
    if (j < n) {
        size_t lj;
        if (!(class_at(s, j, &lj) & (S | L | N))) {
            j = run_without(s, n, j + lj, S | L | N);
            while (j < n && (s[j] == '\r' || s[j] == '\n'))
                j++;
            return j;
        }
    }
    return whitespace_piece(s, n, i);
}
