/* fuzz_safetensors.c — libFuzzer target for the safetensors header validator (csrc/weights/safetensors.c).
 *
 * Each input is a whole file image given to qa_safetensors_parse(buf, len). A file that is accepted
 * must be self-consistent: every tensor has a name found by qa_safetensors_find (first match), a
 * known dtype, at most QA_ST_MAX_DIMS non-negative dimensions whose product times the dtype size is
 * its span, begin <= end <= data size, and the spans, sorted, tile the data buffer exactly; the data
 * buffer lies inside the input. The first and last byte of every tensor are read through
 * qa_safetensors_data, so ASan sees any view that leaves the buffer. A rejection must carry a status
 * and a message. Seeds (corpus/safetensors/) are tiny valid files in both name layouts and the
 * hostile cases of the official validator's error list.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "weights/safetensors.h"

static volatile uint8_t sink;

/* (begin, end) pairs by begin, then end: empty tensors at an offset come before the one starting there. */
static int cmp_span(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

static void check_file(const qa_safetensors *st, const uint8_t *data, size_t size)
{
    FUZZ_CHECK(st->data >= data + 8 && st->data <= data + size);
    FUZZ_CHECK((size_t)(st->data - data) + st->data_size == size);
    FUZZ_CHECK(st->n == 0 || st->tensors != NULL);
    size_t *spans = malloc(2 * sizeof(size_t) * (st->n ? st->n : 1));
    FUZZ_CHECK(spans != NULL);
    for (size_t i = 0; i < st->n; i++) {
        const qa_st_tensor *t = &st->tensors[i];
        FUZZ_CHECK(t->name != NULL);
        FUZZ_CHECK(qa_safetensors_find(st, t->name) == t); /* names are unique */
        FUZZ_CHECK(t->dtype < QA_ST_N_DTYPES && qa_st_dtype_size(t->dtype) > 0);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= QA_ST_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            FUZZ_CHECK(!__builtin_mul_overflow(numel, (size_t)t->shape[d], &numel));
        }
        size_t bytes;
        FUZZ_CHECK(!__builtin_mul_overflow(numel, qa_st_dtype_size(t->dtype), &bytes));
        FUZZ_CHECK(t->begin <= t->end && t->end <= st->data_size && t->end - t->begin == bytes);
        if (bytes) {
            const uint8_t *p = qa_safetensors_data(st, t);
            sink ^= p[0] ^ p[bytes - 1];
        }
        spans[2 * i] = t->begin;
        spans[2 * i + 1] = t->end;
    }
    /* Sorted, the spans tile [0, data_size) with no gap or overlap. */
    qsort(spans, st->n, 2 * sizeof(size_t), cmp_span);
    size_t at = 0;
    for (size_t i = 0; i < st->n; i++) {
        FUZZ_CHECK(spans[2 * i] == at);
        at = spans[2 * i + 1];
    }
    FUZZ_CHECK(at == st->data_size);
    free(spans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qa_safetensors *st = NULL;
    qa_err e;
    qa_err_clear(&e);
    qa_status s = qa_safetensors_parse(data, size, "<fuzz>", &st, &e);
    if (s != QA_OK) {
        fuzz_check_error(s, &e);
        FUZZ_CHECK(st == NULL);
        return 0;
    }
    FUZZ_CHECK(st != NULL);
    check_file(st, data, size);
    qa_safetensors_close(st);
    return 0;
}
