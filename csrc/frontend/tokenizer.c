/* tokenizer.c — the tokenizer's tables (id <-> token, merge ranks), its lifecycle and decode.
 *
 * Contract: qa_tokenizer_load reads a checkpoint folder (tokenizer_files.c), then checks that the
 * tables can tokenize anything: every one of the 256 byte symbols must be in the vocabulary
 * (byte-level BPE never produces an unknown token). The tokenizer owns every table; nothing is
 * allocated after load except the caller-owned outputs of encode/decode.
 * Decode follows `tokenizers` (ByteLevel decoder, transformers 5.17, `errors: replace`): each
 * token's characters are mapped back through the GPT-2 byte table (a token with a character
 * outside the table contributes its raw UTF-8), the bytes are concatenated, and every maximal
 * invalid UTF-8 subpart becomes U+FFFD (Unicode §3.9 / Rust from_utf8_lossy / Python "replace").
 */
#include "tokenizer_impl.h"

#include <string.h>

#include "../core/alloc.h"
#include "bytes_map.h"
#include "grow.h"
#include "utf8.h"

/* ---- id arrays ---------------------------------------------------------------------------- */

qa_status qa_ids_append(qa_ids *a, const int32_t *ids, size_t n, qa_err *e)
{
    int32_t *v = qa_grow(a->v, &a->cap, a->n + n, sizeof *v, 64, e);
    if (!v)
        return QA_ERR_OOM;
    a->v = v;
    if (n)
        memcpy(a->v + a->n, ids, n * sizeof *ids);
    a->n += n;
    return QA_OK;
}

qa_status qa_ids_push(qa_ids *a, int32_t id, qa_err *e)
{
    return qa_ids_append(a, &id, 1, e);
}

void qa_ids_free(qa_ids *a)
{
    qa_free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* ---- tables ----------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bit */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p *= 2;
    return p;
}

qa_status qa_tok_reserve(qa_tokenizer *t, int32_t n_ids, size_t n_merges, qa_err *e)
{
    t->n_ids = n_ids;
    t->ent = qa_calloc_n((size_t)n_ids, sizeof *t->ent, e);
    t->str_mask = pow2_at_least((size_t)n_ids * 2) - 1;
    t->str_hash = qa_malloc_n(t->str_mask + 1, sizeof *t->str_hash, e);
    t->merge_mask = pow2_at_least(n_merges * 2) - 1;
    t->merges = qa_malloc_n(t->merge_mask + 1, sizeof *t->merges, e);
    if (!t->ent || !t->str_hash || !t->merges)
        return QA_ERR_OOM;
    memset(t->str_hash, 0xff, (t->str_mask + 1) * sizeof *t->str_hash);
    for (size_t i = 0; i <= t->merge_mask; i++)
        t->merges[i].key = QA_MERGE_EMPTY;
    return QA_OK;
}

static qa_status pool_put(qa_tokenizer *t, const char *s, size_t n, uint32_t *off, qa_err *e)
{
    if (t->pool_len + n > UINT32_MAX)
        return QA_FAIL(e, QA_ERR_MODEL, "tokenizer: token strings exceed 4 GiB");
    char *p = qa_grow(t->pool, &t->pool_cap, t->pool_len + n, 1, (size_t)1 << 20, e);
    if (!p)
        return QA_ERR_OOM;
    t->pool = p;
    memcpy(t->pool + t->pool_len, s, n);
    *off = (uint32_t)t->pool_len;
    t->pool_len += n;
    return QA_OK;
}

static int32_t *str_slot(const qa_tokenizer *t, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & t->str_mask;; i = (i + 1) & t->str_mask) {
        int32_t id = t->str_hash[i];
        if (id < 0)
            return &t->str_hash[i];
        const qa_tok_entry *en = &t->ent[id];
        if (en->str_len == n && memcmp(t->pool + en->str_off, s, n) == 0)
            return &t->str_hash[i];
    }
}

int32_t qa_tokenizer_token_id(const qa_tokenizer *t, const char *token, size_t len)
{
    return *str_slot(t, token, len);
}

/* Bytes that decode emits for a token written s[0..n): the byte-mapped characters turned back into
 * bytes, or the raw UTF-8 when a character is outside the map (tokenizers' ByteLevel decoder). */
static qa_status decoded_form(qa_tokenizer *t, const char *s, size_t n, uint32_t *off, uint32_t *len, qa_err *e)
{
    char tmp[1024];
    size_t k = 0;
    int raw = n > sizeof tmp;
    for (size_t i = 0; i < n && !raw;) {
        int b = qa_bytes_char_to_byte((const uint8_t *)s, n, &i);
        if (b < 0)
            raw = 1;
        else
            tmp[k++] = (char)b;
    }
    *len = raw ? (uint32_t)n : (uint32_t)k;
    return pool_put(t, raw ? s : tmp, *len, off, e);
}

qa_status qa_tok_set(qa_tokenizer *t, int32_t id, const char *s, size_t len, uint32_t flags, const char *file,
                     qa_err *e)
{
    if (id < 0 || id >= t->n_ids)
        return QA_FAIL(e, QA_ERR_INTERNAL, "tokenizer: id %d outside the reserved %d", (int)id, (int)t->n_ids);
    qa_tok_entry *en = &t->ent[id];
    if (en->flags & QA_TOK_PRESENT) {
        /* An added token may restate its vocab entry (same content); anything else is a clash. */
        if (en->str_len == len && memcmp(t->pool + en->str_off, s, len) == 0) {
            en->flags |= flags;
            return QA_OK;
        }
        return QA_FAIL(e, QA_ERR_MODEL, "%s: id %d is given to two tokens ('%.*s' and '%.*s')", file, (int)id,
                       (int)(en->str_len > 60 ? 60 : en->str_len), t->pool + en->str_off,
                       (int)(len > 60 ? 60 : len), s);
    }
    int32_t *slot = str_slot(t, s, len);
    if (*slot >= 0)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: token '%.*s' appears twice (ids %d and %d)", file,
                       (int)(len > 60 ? 60 : len), s, (int)*slot, (int)id);
    QA_TRY(pool_put(t, s, len, &en->str_off, e));
    en->str_len = (uint32_t)len;
    QA_TRY(decoded_form(t, s, len, &en->dec_off, &en->dec_len, e));
    en->flags = flags | QA_TOK_PRESENT;
    *slot = id;
    return QA_OK;
}

qa_status qa_tok_add_merge(qa_tokenizer *t, int32_t left, int32_t right, int32_t id, qa_err *e)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (size_t i = (size_t)(h >> 32) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        qa_merge_slot *s = &t->merges[i];
        if (s->key == key)
            return QA_OK; /* a repeated merge keeps its first (lowest) rank, like tokenizers */
        if (s->key == QA_MERGE_EMPTY) {
            if (t->n_merges >= t->merge_mask / 2 + 1)
                return QA_FAIL(e, QA_ERR_INTERNAL, "tokenizer: merge table sized for fewer merges");
            s->key = key;
            s->rank = (uint32_t)t->n_merges++;
            s->id = id;
            return QA_OK;
        }
    }
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

static qa_status check_byte_symbols(qa_tokenizer *t, const char *folder, qa_err *e)
{
    for (int b = 0; b < 256; b++) {
        uint8_t s[4];
        size_t n = qa_bytes_byte_to_char((uint8_t)b, s);
        t->byte_id[b] = qa_tokenizer_token_id(t, (const char *)s, n);
        if (t->byte_id[b] < 0)
            return QA_FAIL(e, QA_ERR_MODEL,
                           "%s/vocab.json: the byte-level symbol of byte 0x%02x ('%.*s') is missing; "
                           "a byte-level BPE vocabulary needs all 256",
                           folder, b, (int)n, (const char *)s);
    }
    return QA_OK;
}

qa_status qa_tokenizer_load(const char *folder, qa_tokenizer **out, qa_err *e)
{
    *out = NULL;
    qa_tokenizer *t = qa_calloc_n(1, sizeof *t, e);
    if (!t)
        return QA_ERR_OOM;
    qa_status s = qa_tok_read_files(t, folder, e);
    if (s == QA_OK)
        s = check_byte_symbols(t, folder, e);
    if (s != QA_OK) {
        qa_tokenizer_free(t);
        return s;
    }
    for (size_t i = 0; i < t->n_added; i++)
        t->added_first[(uint8_t)t->pool[t->added[i].off]] = 1;
    *out = t;
    return QA_OK;
}

void qa_tokenizer_free(qa_tokenizer *t)
{
    if (!t)
        return;
    qa_free(t->ent);
    qa_free(t->pool);
    qa_free(t->str_hash);
    qa_free(t->merges);
    qa_free(t->added);
    qa_free(t);
}

int32_t qa_tokenizer_n_ids(const qa_tokenizer *t)
{
    return t->n_ids;
}

qa_status qa_tokenizer_require(const qa_tokenizer *t, const char *token, int32_t *id, qa_err *e)
{
    *id = qa_tokenizer_token_id(t, token, strlen(token));
    if (*id < 0)
        return QA_FAIL(e, QA_ERR_MODEL, "tokenizer: required token '%s' is not in the vocabulary", token);
    return QA_OK;
}

/* ---- decode ----------------------------------------------------------------------------------- */

qa_status qa_tokenizer_decode(const qa_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                              char **out, size_t *out_len, qa_err *e)
{
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0)
            return QA_FAIL(e, QA_ERR_INPUT, "decode: ids[%zu] = %d is negative", i, (int)ids[i]);
        if (ids[i] < t->n_ids)
            total += t->ent[ids[i]].dec_len;
    }
    uint8_t *raw = qa_malloc(total + 1, e);
    uint8_t *res = raw ? qa_malloc_n(total + 1, 3, e) : NULL;
    if (!res) {
        qa_free(raw);
        return QA_ERR_OOM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= t->n_ids)
            continue; /* no token for this id (tokenizers skips it silently) */
        const qa_tok_entry *en = &t->ent[ids[i]];
        if (!(en->flags & QA_TOK_PRESENT) || (skip_special && (en->flags & QA_TOK_SPECIAL)))
            continue;
        memcpy(raw + k, t->pool + en->dec_off, en->dec_len);
        k += en->dec_len;
    }
    size_t m = qa_utf8_sanitize(raw, k, res);
    res[m] = 0;
    qa_free(raw);
    *out = (char *)res;
    *out_len = m;
    return QA_OK;
}
