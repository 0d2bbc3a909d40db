/* json.h — a small, strict JSON reader for config.json, safetensors headers, index and tokenizer files.
 *
 * Lifecycle:
 *     qa_json_doc *doc;
 *     QA_TRY(qa_json_parse(buf, len, &doc, e));       // or qa_json_parse_file(path, cap, &doc, e)
 *     const qa_json *v = qa_json_get(qa_json_root(doc), "hidden_size");
 *     int64_t n; if (v && qa_json_as_int(v, &n)) ...
 *     qa_json_free(doc);                              // every node and string dies with the doc
 *
 * The reader takes (buf, len) and never reads past len, never trusts a length, caps nesting at
 * QA_JSON_MAX_DEPTH, validates UTF-8, decodes escapes (surrogate pairs included; lone surrogates are
 * rejected) and keeps integers exact (int64) next to their double value (RFC 8259 grammar).
 * Nodes and strings live in blocks owned by the doc, so a 150k-entry vocab.json costs a handful of
 * allocations. Duplicate object keys are kept in order; callers that must reject them do so.
 */
#ifndef QA_JSON_H
#define QA_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"

#define QA_JSON_MAX_DEPTH 64

typedef enum qa_json_type {
    QA_JSON_NULL = 0,
    QA_JSON_BOOL,
    QA_JSON_NUMBER,
    QA_JSON_STRING,
    QA_JSON_ARRAY,
    QA_JSON_OBJECT
} qa_json_type;

typedef struct qa_json qa_json;
struct qa_json {
    qa_json_type type;
    int is_int;         /* NUMBER written without fraction/exponent and fits int64 */
    int boolean;        /* BOOL */
    int64_t i;          /* NUMBER when is_int */
    double num;         /* NUMBER (always set) */
    const char *str;    /* STRING: NUL-terminated UTF-8 (may contain NUL bytes: use str_len) */
    size_t str_len;
    const char *key;    /* member of an OBJECT: its key (NUL-terminated), else NULL */
    size_t key_len;
    qa_json *items;     /* ARRAY / OBJECT: children, contiguous */
    size_t n;           /* number of children */
};

typedef struct qa_json_doc qa_json_doc;

/* Parse buf[0..len). On success *out is a new doc (caller frees with qa_json_free).
 * On failure QA_ERR_MODEL with "JSON error at byte N: ..." and *out == NULL. */
qa_status qa_json_parse(const char *buf, size_t len, qa_json_doc **out, qa_err *e);

/* Read and parse a whole file of at most max_bytes bytes (QA_ERR_MODEL naming the path otherwise). */
qa_status qa_json_parse_file(const char *path, size_t max_bytes, qa_json_doc **out, qa_err *e);

void qa_json_free(qa_json_doc *doc);

/* Borrowed views, valid until qa_json_free. */
const qa_json *qa_json_root(const qa_json_doc *doc);
/* First member named key of an OBJECT; NULL if obj is NULL / not an object / no such key. */
const qa_json *qa_json_get(const qa_json *obj, const char *key);
/* The string of a STRING node, or NULL. */
const char *qa_json_string(const qa_json *v);
/* 1 and *out if v is an integral NUMBER (an exact int64), else 0. */
int qa_json_as_int(const qa_json *v, int64_t *out);

#endif
