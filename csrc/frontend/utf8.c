/* utf8.c — strict UTF-8 validation and lossy repair for the text frontend (see utf8.h). */
#include "utf8.h"

#include <string.h>

size_t qa_utf8_prefix(const uint8_t *s, size_t n, int *complete)
{
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80) {
        *complete = 1;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong 3-byte forms */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        lo = c == 0xF0 ? 0x90 : 0x80; /* no overlong 4-byte forms */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
    } else {
        *complete = 0;
        return 0;
    }
    size_t k = 1;
    for (; k <= need && k < n; k++) {
        uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (s[k] < l || s[k] > h)
            break;
    }
    *complete = k == need + 1;
    return k;
}

size_t qa_utf8_invalid_at(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII runs are the common case */
            i++;
            continue;
        }
        int complete;
        size_t k = qa_utf8_prefix(s + i, n - i, &complete);
        if (!complete)
            return i;
        i += k;
    }
    return n;
}

size_t qa_utf8_sanitize(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int complete;
        size_t k = qa_utf8_prefix(s + i, n - i, &complete);
        if (complete) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            out[o++] = 0xEF, out[o++] = 0xBF, out[o++] = 0xBD;
            i += k ? k : 1; /* one U+FFFD per maximal invalid subpart */
        }
    }
    return o;
}
