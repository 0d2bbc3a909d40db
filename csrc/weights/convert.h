/* convert.h — element conversion between the file dtypes and the compute dtypes (done once, at load).
 *
 *     qa_convert(dst, QA_BF16, src, QA_ST_F32, n);   // n elements, host memory both sides
 *
 * BF16 -> F32 is exact (bits << 16); F16 -> F32 is exact (subnormals, inf, NaN kept); F32 -> BF16
 * and F32 -> F16 round to nearest even (torch's `.to(dtype)`), NaN stays NaN.
 */
#ifndef QA_CONVERT_H
#define QA_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "../model/weights.h"
#include "safetensors.h"

/* 1 if a file dtype can be loaded (F32, F16, BF16). */
int qa_convert_supported(qa_st_dtype src);

/* Convert n elements; src must be a supported dtype. Unaligned src is fine (mmap views). */
void qa_convert(void *dst, qa_dtype dst_type, const void *src, qa_st_dtype src_type, size_t n);

float qa_bf16_to_f32(uint16_t h);
float qa_f16_to_f32(uint16_t h);
uint16_t qa_f32_to_bf16(float f);
uint16_t qa_f32_to_f16(float f);

#endif
