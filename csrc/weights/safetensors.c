/* safetensors.c — the only file that knows the safetensors format (see safetensors.h).
 *
 * Contract: qa_safetensors_open() maps a file read-only and accepts it only if the header passes every
 * check of the official validator (huggingface/safetensors `Metadata::validate`: sorted offsets tile
 * the buffer exactly, numel x dtype size == span) plus ours (header <= 100 MB and inside the file,
 * header is a JSON object, no duplicate names, known dtypes, shapes without overflow). Tensor data
 * is never copied here: callers get views into the mapping (weights/checkpoint.c converts them into
 * the arena). Nothing is trusted from the file before it is checked against the file size.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "json.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[QA_ST_N_DTYPES] = {
    [QA_ST_BOOL] = {"BOOL", 1}, [QA_ST_U8] = {"U8", 1}, [QA_ST_I8] = {"I8", 1},
    [QA_ST_F8_E4M3] = {"F8_E4M3", 1}, [QA_ST_F8_E5M2] = {"F8_E5M2", 1},
    [QA_ST_I16] = {"I16", 2}, [QA_ST_U16] = {"U16", 2}, [QA_ST_F16] = {"F16", 2}, [QA_ST_BF16] = {"BF16", 2},
    [QA_ST_I32] = {"I32", 4}, [QA_ST_U32] = {"U32", 4}, [QA_ST_F32] = {"F32", 4},
    [QA_ST_I64] = {"I64", 8}, [QA_ST_U64] = {"U64", 8}, [QA_ST_F64] = {"F64", 8},
};

const char *qa_st_dtype_name(qa_st_dtype d) { return d < QA_ST_N_DTYPES ? dtypes[d].name : "?"; }
size_t qa_st_dtype_size(qa_st_dtype d) { return d < QA_ST_N_DTYPES ? dtypes[d].size : 0; }

static int dtype_from_name(const char *s, qa_st_dtype *out)
{
    for (int i = 0; i < QA_ST_N_DTYPES; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (qa_st_dtype)i;
            return 1;
        }
    return 0;
}

/* One header entry -> *t (name, dtype, shape, offsets, span check). */
static qa_status parse_entry(const qa_safetensors *st, const qa_json *v, qa_st_tensor *t, qa_err *e)
{
    const char *name = v->key;
    t->name = name;
    if (v->type != QA_JSON_OBJECT)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': header entry is not an object", st->path, name);
    const char *dt = qa_json_string(qa_json_get(v, "dtype"));
    const qa_json *shape = qa_json_get(v, "shape");
    const qa_json *offs = qa_json_get(v, "data_offsets");
    if (!dt || !shape || shape->type != QA_JSON_ARRAY || !offs || offs->type != QA_JSON_ARRAY)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': needs dtype, shape and data_offsets", st->path, name);
    if (!dtype_from_name(dt, &t->dtype))
        return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': unknown dtype '%s'", st->path, name, dt);
    if (shape->n > QA_ST_MAX_DIMS)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': %zu dimensions (at most %d)", st->path, name,
                       shape->n, QA_ST_MAX_DIMS);
    t->ndim = (int)shape->n;
    size_t numel = 1;
    for (size_t i = 0; i < shape->n; i++) {
        int64_t d;
        if (!qa_json_as_int(&shape->items[i], &d) || d < 0)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': shape[%zu] is not a non-negative integer", st->path,
                           name, i);
        if (d && numel > SIZE_MAX / 8 / (size_t)d)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': shape overflows", st->path, name);
        t->shape[i] = d;
        numel *= (size_t)d;
    }
    int64_t b, en;
    if (offs->n != 2 || !qa_json_as_int(&offs->items[0], &b) || !qa_json_as_int(&offs->items[1], &en) || b < 0 ||
        en < b)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end",
                       st->path, name);
    if ((uint64_t)en > st->data_size)
        return QA_FAIL(e, QA_ERR_MODEL,
                       "%s: tensor '%s': data_offsets [%lld, %lld] outside the data buffer of %zu bytes", st->path,
                       name, (long long)b, (long long)en, st->data_size);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    if (numel * dtypes[t->dtype].size != t->end - t->begin)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': %zu elements of %s need %zu bytes, data_offsets span %zu",
                       st->path, name, numel, dt, numel * dtypes[t->dtype].size, t->end - t->begin);
    return QA_OK;
}

static int cmp_begin(const void *a, const void *b)
{
    const qa_st_tensor *x = *(qa_st_tensor *const *)a, *y = *(qa_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

/* Sorted by begin, the spans must tile [0, data_size) exactly (official `validate`). */
static qa_status check_tiling(const qa_safetensors *st, qa_err *e)
{
    qa_st_tensor **order = qa_malloc_n(st->n ? st->n : 1, sizeof *order, e);
    if (!order)
        return QA_ERR_OOM;
    for (size_t i = 0; i < st->n; i++)
        order[i] = &st->tensors[i];
    qsort(order, st->n, sizeof *order, cmp_begin);
    size_t at = 0;
    qa_status s = QA_OK;
    for (size_t i = 0; i < st->n && s == QA_OK; i++) {
        const qa_st_tensor *t = order[i];
        if (t->begin < at)
            s = QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': data_offsets [%zu, %zu] overlap the previous tensor '%s'",
                        st->path, t->name, t->begin, t->end, order[i - 1]->name);
        else if (t->begin > at)
            s = QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': data_offsets begin at %zu, expected %zu (gap in the data)",
                        st->path, t->name, t->begin, at);
        at = t->end;
    }
    if (s == QA_OK && at != st->data_size)
        s = QA_FAIL(e, QA_ERR_MODEL, "%s: tensors cover %zu bytes but the data buffer has %zu", st->path, at,
                    st->data_size);
    qa_free(order);
    return s;
}

static qa_status parse_header(qa_safetensors *st, qa_err *e)
{
    if (st->size < 8)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: file of %zu bytes is too short for a safetensors header", st->path,
                       st->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | st->map[i];
    if (n > QA_ST_MAX_HEADER)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: header length %llu exceeds the 100 MB cap", st->path,
                       (unsigned long long)n);
    if (n > st->size - 8)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: header length %llu runs past the end of the file (%zu bytes)",
                       st->path, (unsigned long long)n, st->size);
    st->data = st->map + 8 + n;
    st->data_size = st->size - 8 - (size_t)n;
    qa_json_doc *doc;
    if (qa_json_parse((const char *)st->map + 8, (size_t)n, &doc, e) != QA_OK) {
        qa_err_prefix(e, "%s: header is not valid JSON: ", st->path);
        return e ? e->code : QA_ERR_MODEL;
    }
    st->json = doc;
    const qa_json *root = qa_json_root(doc);
    if (root->type != QA_JSON_OBJECT)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: header is not a JSON object", st->path);
    st->tensors = qa_calloc_n(root->n ? root->n : 1, sizeof *st->tensors, e);
    if (!st->tensors)
        return QA_ERR_OOM;
    for (size_t i = 0; i < root->n; i++) {
        const qa_json *v = &root->items[i];
        if (strcmp(v->key, "__metadata__") == 0)
            continue;
        if (strlen(v->key) != v->key_len || qa_safetensors_find(st, v->key))
            return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s': duplicate or invalid name in the header", st->path,
                           v->key);
        QA_TRY(parse_entry(st, v, &st->tensors[st->n], e));
        st->n++;
    }
    return check_tiling(st, e);
}

static qa_status new_st(const char *label, qa_safetensors **out, qa_err *e)
{
    *out = qa_calloc_n(1, sizeof **out, e);
    if (!*out)
        return QA_ERR_OOM;
    snprintf((*out)->path, sizeof (*out)->path, "%s", label);
    return QA_OK;
}

qa_status qa_safetensors_parse(const uint8_t *buf, size_t len, const char *label, qa_safetensors **out,
                               qa_err *e)
{
    qa_safetensors *st;
    QA_TRY(new_st(label, &st, e));
    st->map = buf;
    st->size = len;
    qa_status s = parse_header(st, e);
    if (s != QA_OK) {
        qa_safetensors_close(st);
        st = NULL;
    }
    *out = st;
    return s;
}

qa_status qa_safetensors_open(const char *path, qa_safetensors **out, qa_err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return QA_FAIL(e, QA_ERR_MODEL, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return QA_FAIL(e, QA_ERR_MODEL, "%s is not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return QA_FAIL(e, QA_ERR_MODEL, "%s: file of %lld bytes is too short for a safetensors header", path,
                       (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED)
        return QA_FAIL(e, QA_ERR_MODEL, "cannot mmap %s: %s", path, strerror(errno));
    qa_safetensors *st;
    if (new_st(path, &st, e) != QA_OK) {
        munmap(map, (size_t)sb.st_size);
        return QA_ERR_OOM;
    }
    st->map = map;
    st->size = (size_t)sb.st_size;
    st->mapped = 1;
    qa_status s = parse_header(st, e);
    if (s != QA_OK) {
        qa_safetensors_close(st);
        return s;
    }
    *out = st;
    return QA_OK;
}

void qa_safetensors_close(qa_safetensors *st)
{
    if (!st)
        return;
    if (st->mapped && st->map)
        munmap((void *)st->map, st->size);
    qa_json_free(st->json);
    qa_free(st->tensors);
    qa_free(st);
}

const qa_st_tensor *qa_safetensors_find(const qa_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}
