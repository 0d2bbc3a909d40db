/* convert.c — BF16/F16/F32 conversions for placing weights in the arena (see convert.h).
 *
 * Rounding matches PyTorch's float -> bfloat16 (round to nearest even on the upper 16 bits,
 * c10/util/BFloat16.h round_to_nearest_even) and IEEE half conversion (c10/util/Half.h
 * fp16_ieee_from_fp32_value semantics: RNE, overflow to inf, subnormals). Called once per tensor at
 * load; speed is secondary to exactness.
 */
#include "convert.h"

#include <math.h>
#include <string.h>

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float qa_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t qa_f32_to_bf16(float f)
{
    uint32_t u = bits_of(f);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))
        return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float qa_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0x1F)
        return float_of(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {
        float v = ldexpf((float)man, -24); /* subnormal: man * 2^-24 */
        return sign ? -v : v;
    }
    return float_of(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t qa_f32_to_f16(float f)
{
    uint32_t u = bits_of(f), sign = (u >> 16) & 0x8000u;
    float a = fabsf(f);
    if (isnan(f))
        return (uint16_t)(sign | 0x7E00u);
    if (a >= 65520.0f) /* rounds to inf */
        return (uint16_t)(sign | 0x7C00u);
    if (a < 6.103515625e-05f) { /* subnormal half: round a / 2^-24 to nearest even */
        float q = a * 16777216.0f;
        uint32_t m = (uint32_t)nearbyintf(q);
        return (uint16_t)(sign | m);
    }
    uint32_t ua = bits_of(a);
    ua += 0xFFFu + ((ua >> 13) & 1u); /* RNE on the 13 dropped bits */
    return (uint16_t)(sign | (((ua >> 23) - 112u) << 10 | ((ua >> 13) & 0x3FFu)));
}

int qa_convert_supported(qa_st_dtype src) { return src == QA_ST_F32 || src == QA_ST_F16 || src == QA_ST_BF16; }

static float load_one(const uint8_t *p, qa_st_dtype t)
{
    if (t == QA_ST_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return t == QA_ST_BF16 ? qa_bf16_to_f32(h) : qa_f16_to_f32(h);
}

void qa_convert(void *dst, qa_dtype dst_type, const void *src, qa_st_dtype src_type, size_t n)
{
    const uint8_t *s = src;
    size_t ss = qa_st_dtype_size(src_type);
    int same = (dst_type == QA_F32 && src_type == QA_ST_F32) || (dst_type == QA_BF16 && src_type == QA_ST_BF16) ||
               (dst_type == QA_F16 && src_type == QA_ST_F16);
    if (same) {
        memcpy(dst, src, n * ss);
        return;
    }
    if (dst_type == QA_F32) {
        float *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = load_one(s + i * ss, src_type);
        return;
    }
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i++) {
        float f = load_one(s + i * ss, src_type);
        d[i] = dst_type == QA_BF16 ? qa_f32_to_bf16(f) : qa_f32_to_f16(f);
    }
}
