/* utf8.h — the UTF-8 rules the text frontend shares (validation, decoding, lossy repair).
 *
 * Strict UTF-8 (RFC 3629 / Unicode §3.9 table 3-7): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Repair follows the "maximal subpart" practice that Python's errors="replace" and Rust's
 * String::from_utf8_lossy (used by `tokenizers` decode) share: each maximal invalid subpart becomes
 * one U+FFFD.
 */
#ifndef QA_UTF8_H
#define QA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the code point at s[i] of text already known to be valid UTF-8; returns its length in
 * bytes and stores it in *cp. */
static inline size_t qa_utf8_next(const uint8_t *s, size_t i, int32_t *cp)
{
    uint8_t c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = ((int32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        *cp = ((int32_t)(c & 0x0F) << 12) | ((int32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
        return 3;
    }
    *cp = ((int32_t)(c & 0x07) << 18) | ((int32_t)(s[i + 1] & 0x3F) << 12) | ((int32_t)(s[i + 2] & 0x3F) << 6) |
          (s[i + 3] & 0x3F);
    return 4;
}

/* Length of the longest prefix of s[0..n) (n >= 1) that is a whole character or the start of one
 * (0 if s[0] starts none); *complete says whether it is a whole character. */
size_t qa_utf8_prefix(const uint8_t *s, size_t n, int *complete);

/* Offset of the first byte of s[0..n) that is not part of a valid character, or n. */
size_t qa_utf8_invalid_at(const uint8_t *s, size_t n);

/* Copy s[0..n) to out replacing every maximal invalid subpart by U+FFFD; out holds 3 * n bytes.
 * Returns the bytes written. */
size_t qa_utf8_sanitize(const uint8_t *s, size_t n, uint8_t *out);

#endif
