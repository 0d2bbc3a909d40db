/* bytes_map.h — the GPT-2 byte <-> character table of byte-level BPE (MODEL_FACTS §6).
 *
 * Every byte is written as one printable character in vocab.json and merges.txt: bytes 33–126,
 * 161–172 and 174–255 stand for themselves; the other 68 bytes (0–32, 127–160, 173) become
 * U+0100 + n, n counting them in byte order (so ' ' -> 'Ġ' U+0120, '\n' -> 'Ċ' U+010A).
 * Reference: `bytes_to_unicode` in transformers tokenization_qwen2.py / tokenizers byte_level.rs.
 * Computed arithmetically (no table to initialise, nothing shared between threads).
 */
#ifndef QA_BYTES_MAP_H
#define QA_BYTES_MAP_H

#include <stddef.h>
#include <stdint.h>

static inline int qa_bytes_is_printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* Code point that stands for byte b. */
static inline uint32_t qa_bytes_byte_to_cp(uint8_t b)
{
    if (qa_bytes_is_printable(b))
        return b;
    if (b <= 32)
        return 256u + b;
    if (b >= 127 && b <= 160)
        return 256u + 33u + (b - 127u);
    return 256u + 67u; /* 173, the soft hyphen */
}

/* Byte that code point cp stands for, or -1. */
static inline int qa_bytes_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return qa_bytes_is_printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33)
        return (int)(cp - 256);
    if (cp < 256 + 67)
        return (int)(127 + (cp - 289));
    if (cp == 256 + 67)
        return 173;
    return -1;
}

/* UTF-8 of the character standing for byte b into out (1 or 2 bytes); returns the length. */
static inline size_t qa_bytes_byte_to_char(uint8_t b, uint8_t out[4])
{
    uint32_t cp = qa_bytes_byte_to_cp(b);
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    out[0] = (uint8_t)(0xC0 | (cp >> 6));
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
}

/* Read the character at s[*pos] (s holds n bytes) and advance *pos past it; return the byte it
 * stands for, or -1 if it stands for none (then *pos still advances by one character or byte). */
static inline int qa_bytes_char_to_byte(const uint8_t *s, size_t n, size_t *pos)
{
    size_t i = *pos;
    uint8_t c = s[i];
    if (c < 0x80) {
        *pos = i + 1;
        return qa_bytes_cp_to_byte(c);
    }
    if ((c & 0xE0) == 0xC0 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
        *pos = i + 2;
        return qa_bytes_cp_to_byte(((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F));
    }
    *pos = i + 1; /* longer or malformed: not a byte symbol */
    return -1;
}

#endif
