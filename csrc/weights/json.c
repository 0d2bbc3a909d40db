/* json.c — strict RFC 8259 reader over (buf, len) with a depth cap (see json.h for the contract).
 *
 * Shape: recursive descent, depth-capped at QA_JSON_MAX_DEPTH so hostile input cannot exhaust the C
 * stack. Children of the container being parsed are collected on one growable scratch stack and
 * copied into the doc's blocks when the container closes, so each node costs no allocation of its
 * own (hsnyder/ujson style "(ptr, limit)" discipline: every read checks p < end first).
 * Strings are validated as UTF-8 and decoded in place into doc memory; the decoded form is never
 * longer than the raw form, which bounds the allocation by the input. Numbers keep an exact int64
 * when written as integers (token ids, sizes, offsets must not go through double).
 */
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"

#define BLOCK_MIN (64 * 1024)
#define NUMBER_MAX_CHARS 128

typedef struct block {
    struct block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} block;

struct qa_json_doc {
    block *blocks;
    qa_json root;
};

typedef struct parser {
    const char *start, *p, *end;
    qa_json_doc *doc;
    qa_json *stack; /* children of the open containers */
    size_t top, cap;
    int depth;
    qa_err *e;
} parser;

static qa_status fail(parser *ps, const char *what)
{
    return QA_FAIL(ps->e, QA_ERR_MODEL, "JSON error at byte %zu: %s", (size_t)(ps->p - ps->start), what);
}

static void *doc_alloc(parser *ps, size_t bytes)
{
    bytes = (bytes + 15) & ~(size_t)15;
    block *b = ps->doc->blocks;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > BLOCK_MIN ? bytes : BLOCK_MIN;
        b = qa_malloc(sizeof(block) + cap, ps->e);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = ps->doc->blocks;
        ps->doc->blocks = b;
    }
    void *out = b->data + b->used;
    b->used += bytes;
    return out;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes available), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid, RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* \uXXXX (and its low-surrogate partner) at ps->p (just after the 'u'); writes UTF-8 to o. */
static qa_status decode_u_escape(parser *ps, unsigned char *o, size_t *olen)
{
    unsigned cp, lo;
    if (ps->end - ps->p < 4 || !hex4(ps->p, &cp))
        return fail(ps, "bad \\u escape");
    ps->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(ps, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || !hex4(ps->p + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return fail(ps, "high surrogate not followed by a low surrogate");
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    *olen = put_utf8(o, cp);
    return QA_OK;
}

/* String at ps->p (on the opening quote). Decoded into doc memory. */
static qa_status parse_string(parser *ps, const char **out, size_t *out_len)
{
    ps->p++; /* opening quote */
    const char *q = ps->p;
    while (q < ps->end && *q != '"') /* find the end first: bounds the decoded size */
        q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end)
        return fail(ps, "unterminated string");
    unsigned char *o = doc_alloc(ps, (size_t)(q - ps->p) + 1);
    if (!o)
        return QA_ERR_OOM;
    size_t n = 0;
    while (ps->p < q) {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20)
            return fail(ps, "control character in string");
        if (c == '\\') {
            char x = ps->p[1];
            ps->p += 2;
            const char *simple = strchr("\"\\/bfnrt", x);
            if (x && simple) {
                o[n++] = (unsigned char)"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            } else if (x == 'u') {
                size_t k = 0;
                QA_TRY(decode_u_escape(ps, o + n, &k));
                n += k;
            } else {
                ps->p -= 1;
                return fail(ps, "bad escape in string");
            }
            continue;
        }
        size_t k = utf8_len((const unsigned char *)ps->p, (size_t)(q - ps->p));
        if (!k)
            return fail(ps, "invalid UTF-8 in string");
        memcpy(o + n, ps->p, k);
        n += k;
        ps->p += k;
    }
    o[n] = 0;
    ps->p = q + 1;
    *out = (const char *)o;
    *out_len = n;
    return QA_OK;
}

static int is_digit(const char *p, const char *end) { return p < end && *p >= '0' && *p <= '9'; }

static qa_status parse_number(parser *ps, qa_json *v)
{
    const char *s = ps->p, *p = ps->p;
    int integral = 1;
    if (p < ps->end && *p == '-') p++;
    if (!is_digit(p, ps->end)) return fail(ps, "bad number");
    if (*p == '0') p++;
    else while (is_digit(p, ps->end)) p++;
    if (p < ps->end && *p == '.') {
        integral = 0;
        p++;
        if (!is_digit(p, ps->end)) return fail(ps, "bad number fraction");
        while (is_digit(p, ps->end)) p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        integral = 0;
        p++;
        if (p < ps->end && (*p == '+' || *p == '-')) p++;
        if (!is_digit(p, ps->end)) return fail(ps, "bad number exponent");
        while (is_digit(p, ps->end)) p++;
    }
    if (p - s >= NUMBER_MAX_CHARS) return fail(ps, "number too long");
    char tmp[NUMBER_MAX_CHARS];
    memcpy(tmp, s, (size_t)(p - s));
    tmp[p - s] = 0;
    v->type = QA_JSON_NUMBER;
    v->num = strtod(tmp, NULL);
    if (integral) {
        errno = 0;
        long long x = strtoll(tmp, NULL, 10);
        v->is_int = errno != ERANGE;
        v->i = (int64_t)x;
    }
    ps->p = p;
    return QA_OK;
}

static qa_status parse_value(parser *ps, qa_json *v);

static qa_status push(parser *ps, const qa_json *v)
{
    if (ps->top == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        qa_json *s = qa_realloc_n(ps->stack, cap, sizeof *s, ps->e);
        if (!s)
            return QA_ERR_OOM;
        ps->stack = s;
        ps->cap = cap;
    }
    ps->stack[ps->top++] = *v;
    return QA_OK;
}

/* Move the children collected since `base` into doc memory as v's items. */
static qa_status close_container(parser *ps, qa_json *v, size_t base)
{
    v->n = ps->top - base;
    if (v->n) {
        v->items = doc_alloc(ps, v->n * sizeof(qa_json));
        if (!v->items)
            return QA_ERR_OOM;
        memcpy(v->items, ps->stack + base, v->n * sizeof(qa_json));
    }
    ps->top = base;
    ps->depth--;
    return QA_OK;
}

static qa_status parse_container(parser *ps, qa_json *v, int is_obj)
{
    if (++ps->depth > QA_JSON_MAX_DEPTH)
        return fail(ps, "nesting deeper than 64");
    v->type = is_obj ? QA_JSON_OBJECT : QA_JSON_ARRAY;
    size_t base = ps->top;
    char close = is_obj ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return close_container(ps, v, base);
    }
    for (;;) {
        qa_json item = {0};
        skip_ws(ps);
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, "expected a string key");
            QA_TRY(parse_string(ps, &item.key, &item.key_len));
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, "expected ':' after key");
            ps->p++;
            skip_ws(ps);
        }
        QA_TRY(parse_value(ps, &item));
        QA_TRY(push(ps, &item));
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return close_container(ps, v, base);
        }
        return fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return 0;
    ps->p += n;
    return 1;
}

/* Value at ps->p (whitespace already skipped). Keeps v->key (set by the caller for members). */
static qa_status parse_value(parser *ps, qa_json *v)
{
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of input");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, 1);
    case '[': return parse_container(ps, v, 0);
    case '"':
        v->type = QA_JSON_STRING;
        return parse_string(ps, &v->str, &v->str_len);
    case 't': case 'f':
        v->type = QA_JSON_BOOL;
        v->boolean = *ps->p == 't';
        return literal(ps, v->boolean ? "true" : "false") ? QA_OK : fail(ps, "bad literal");
    case 'n':
        v->type = QA_JSON_NULL;
        return literal(ps, "null") ? QA_OK : fail(ps, "bad literal");
    default:
        return parse_number(ps, v);
    }
}

qa_status qa_json_parse(const char *buf, size_t len, qa_json_doc **out, qa_err *e)
{
    *out = NULL;
    qa_json_doc *doc = qa_calloc_n(1, sizeof *doc, e);
    if (!doc)
        return QA_ERR_OOM;
    parser ps = {.start = buf, .p = buf, .end = buf + len, .doc = doc, .e = e};
    skip_ws(&ps);
    qa_status s = parse_value(&ps, &doc->root);
    if (s == QA_OK) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            s = fail(&ps, "trailing characters after the JSON value");
    }
    qa_free(ps.stack);
    if (s != QA_OK) {
        qa_json_free(doc);
        return s;
    }
    *out = doc;
    return QA_OK;
}

qa_status qa_json_parse_file(const char *path, size_t max_bytes, qa_json_doc **out, qa_err *e)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return QA_FAIL(e, QA_ERR_MODEL, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max_bytes) {
        fclose(f);
        return QA_FAIL(e, QA_ERR_MODEL, "%s is not a regular file of at most %zu bytes", path, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = qa_malloc(n, e);
    if (!buf) {
        fclose(f);
        return QA_ERR_OOM;
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    qa_status s = got == n ? qa_json_parse(buf, n, out, e)
                           : QA_FAIL(e, QA_ERR_MODEL, "short read of %s (%zu of %zu bytes)", path, got, n);
    qa_free(buf);
    if (s != QA_OK && s != QA_ERR_OOM && got == n)
        qa_err_prefix(e, "%s: ", path);
    return s;
}

void qa_json_free(qa_json_doc *doc)
{
    if (!doc)
        return;
    for (block *b = doc->blocks, *next; b; b = next) {
        next = b->next;
        qa_free(b);
    }
    qa_free(doc);
}

const qa_json *qa_json_root(const qa_json_doc *doc) { return doc ? &doc->root : NULL; }

const qa_json *qa_json_get(const qa_json *obj, const char *key)
{
    if (!obj || obj->type != QA_JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->items[i].key, key) == 0)
            return &obj->items[i];
    return NULL;
}

const char *qa_json_string(const qa_json *v) { return v && v->type == QA_JSON_STRING ? v->str : NULL; }

int qa_json_as_int(const qa_json *v, int64_t *out)
{
    if (!v || v->type != QA_JSON_NUMBER || !v->is_int)
        return 0;
    *out = v->i;
    return 1;
}
