/* safetensors.h — one .safetensors file, memory-mapped, its header fully validated.
 *
 * Lifecycle:
 *     qa_safetensors *st;
 *     QA_TRY(qa_safetensors_open("dir/model.safetensors", &st, e));   // mmap + validate header
 *     const qa_st_tensor *t = qa_safetensors_find(st, "thinker.model.norm.weight");
 *     const void *bytes = qa_safetensors_data(st, t);                 // view into the mapping
 *     qa_safetensors_close(st);                                       // unmaps; views die here
 *
 * Format (huggingface/safetensors docs "Format"): u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data
 * buffer; offsets are relative to the buffer. Checks (the official validator's list plus gguf.cpp's
 * style): N <= 100 MB and 8 + N <= file size; header is a JSON object; no duplicate names; known
 * dtype; shape of non-negative integers with no overflow; (end - begin) == numel * dtype size;
 * offsets, sorted, tile the data buffer exactly (no overlap, no gap, last end == buffer size).
 */
#ifndef QA_SAFETENSORS_H
#define QA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"

#define QA_ST_MAX_HEADER (100u * 1024u * 1024u)
#define QA_ST_MAX_DIMS 8

typedef enum qa_st_dtype {
    QA_ST_BOOL, QA_ST_U8, QA_ST_I8, QA_ST_F8_E4M3, QA_ST_F8_E5M2,
    QA_ST_I16, QA_ST_U16, QA_ST_F16, QA_ST_BF16,
    QA_ST_I32, QA_ST_U32, QA_ST_F32,
    QA_ST_I64, QA_ST_U64, QA_ST_F64,
    QA_ST_N_DTYPES
} qa_st_dtype;

typedef struct qa_st_tensor {
    const char *name;       /* NUL-terminated, owned by the qa_safetensors */
    qa_st_dtype dtype;
    int ndim;
    int64_t shape[QA_ST_MAX_DIMS];
    size_t begin, end;      /* byte offsets into the data buffer */
} qa_st_tensor;

typedef struct qa_safetensors {
    char path[4096];
    const uint8_t *map;     /* whole file (mmap) or caller buffer */
    size_t size;
    const uint8_t *data;    /* data buffer = map + 8 + header length */
    size_t data_size;
    qa_st_tensor *tensors;  /* n entries, in header order */
    size_t n;
    void *json;             /* qa_json_doc holding the names */
    int mapped;             /* 1 if map must be munmap'ed on close */
} qa_safetensors;

/* mmap path read-only and validate its header. Caller frees with qa_safetensors_close.
 * Errors: QA_ERR_MODEL naming the file (and the tensor when one is at fault). */
qa_status qa_safetensors_open(const char *path, qa_safetensors **out, qa_err *e);

/* Validate an in-memory file image (for fuzzing and tests); buf is borrowed and must outlive *out.
 * label names the "file" in messages. Caller frees with qa_safetensors_close. */
qa_status qa_safetensors_parse(const uint8_t *buf, size_t len, const char *label, qa_safetensors **out,
                               qa_err *e);

void qa_safetensors_close(qa_safetensors *st);

/* Borrowed: the tensor named name, or NULL. Linear scan (headers hold hundreds of entries). */
const qa_st_tensor *qa_safetensors_find(const qa_safetensors *st, const char *name);

/* View into the mapping (valid until close). */
static inline const void *qa_safetensors_data(const qa_safetensors *st, const qa_st_tensor *t)
{
    return st->data + t->begin;
}

const char *qa_st_dtype_name(qa_st_dtype d);
size_t qa_st_dtype_size(qa_st_dtype d);

#endif
