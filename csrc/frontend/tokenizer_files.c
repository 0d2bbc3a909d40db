/* tokenizer_files.c — reading a checkpoint's tokenizer files into the tables of tokenizer.c.
 *
 * Files (Qwen2Tokenizer layout, MODEL_FACTS §6; the only place that knows their format):
 *   vocab.json             {"token": id, ...}: 151,643 regular tokens in byte-mapped form;
 *   merges.txt             "#version: 0.2" then one "left right" pair per line, rank = order;
 *   tokenizer_config.json  "added_tokens_decoder": {"151643": {"content": "<|endoftext|>",
 *                          "special": true, ...}, ...} — the added tokens, matched whole.
 * Contract: every check fails with QA_ERR_MODEL naming the file (and the line for merges.txt, the
 * token or id for the JSON files): not an object, non-integer or negative ids, duplicate tokens or
 * ids, a merge line without exactly two symbols, a merge whose symbols or result are not in the
 * vocabulary. JSON itself is parsed by csrc/weights/json.c (this file only walks the document).
 * Reference: tokenizers BPE::from_file / convert_merges_to_hashmap and AddedVocabulary.
 */
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "../weights/json.h"
#include "tokenizer_impl.h"

#define QA_TOK_MAX_FILE ((size_t)256 << 20) /* far above the 3 MB vocab.json of Qwen3 */
#define QA_TOK_MAX_ID (1 << 24)             /* ids above this are a corrupt file, not a vocabulary */

typedef struct tok_files {
    const char *folder;
    char vocab_path[4096], config_path[4096], merges_path[4096];
    qa_json_doc *vocab, *config;
    const qa_json *added; /* the added_tokens_decoder object */
    char *merges;         /* merges.txt contents */
    size_t merges_len;
} tok_files;

static qa_status read_text_file(const char *path, char **out, size_t *len, qa_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: cannot open (%s)", path, "missing or unreadable");
    qa_status s = QA_OK;
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        s = QA_FAIL(e, QA_ERR_MODEL, "%s: cannot determine the file size", path);
    else if ((size_t)size > QA_TOK_MAX_FILE)
        s = QA_FAIL(e, QA_ERR_MODEL, "%s: %ld bytes, more than the %zu allowed", path, size, QA_TOK_MAX_FILE);
    else if (!(buf = qa_malloc((size_t)size + 1, e)))
        s = QA_ERR_OOM;
    else if (fread(buf, 1, (size_t)size, f) != (size_t)size)
        s = QA_FAIL(e, QA_ERR_MODEL, "%s: short read", path);
    fclose(f);
    if (s != QA_OK) {
        qa_free(buf);
        return s;
    }
    buf[size] = 0;
    *out = buf;
    *len = (size_t)size;
    return QA_OK;
}

/* Line and column (1-based) of byte offset off in buf. */
static void line_col(const char *buf, size_t len, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static qa_status parse_json(const char *path, qa_json_doc **doc, qa_err *e)
{
    char *buf;
    size_t len;
    QA_TRY(read_text_file(path, &buf, &len, e));
    qa_status s = qa_json_parse(buf, len, doc, e);
    if (s != QA_OK) {
        /* json.c reports "... at byte N: ..."; the file's users want a line to look at */
        const char *at = strstr(e->msg, "at byte ");
        size_t off, line, col;
        char where[64] = "";
        if (at && sscanf(at, "at byte %zu", &off) == 1) {
            line_col(buf, len, off, &line, &col);
            snprintf(where, sizeof where, "line %zu column %zu: ", line, col);
        }
        qa_err_prefix(e, "%s: %s", path, where);
    }
    qa_free(buf);
    if (s != QA_OK)
        return s;
    if (qa_json_root(*doc)->type != QA_JSON_OBJECT)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: the top level is not a JSON object", path);
    return QA_OK;
}

/* Parse a decimal id (the keys of added_tokens_decoder). */
static int parse_id(const char *s, size_t n, int32_t *id)
{
    if (n == 0 || n > 9)
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *id = (int32_t)v;
    return 1;
}

/* The largest id of vocab.json and added_tokens_decoder, checking every id on the way. */
static qa_status scan_ids(tok_files *f, int32_t *max_id, qa_err *e)
{
    const qa_json *root = qa_json_root(f->vocab);
    *max_id = -1;
    for (size_t i = 0; i < root->n; i++) {
        const qa_json *v = &root->items[i];
        int64_t id;
        if (!qa_json_as_int(v, &id) || id < 0 || id >= QA_TOK_MAX_ID)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: token '%.60s' (entry %zu) has no valid id (expected an integer "
                           "in [0, %d))", f->vocab_path, v->key, i + 1, QA_TOK_MAX_ID);
        if (v->key_len == 0)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: entry %zu is the empty token", f->vocab_path, i + 1);
        if (id > *max_id)
            *max_id = (int32_t)id;
    }
    f->added = qa_json_get(qa_json_root(f->config), "added_tokens_decoder");
    if (!f->added || f->added->type != QA_JSON_OBJECT)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: no \"added_tokens_decoder\" object", f->config_path);
    for (size_t i = 0; i < f->added->n; i++) {
        const qa_json *v = &f->added->items[i];
        int32_t id;
        if (!parse_id(v->key, v->key_len, &id) || id >= QA_TOK_MAX_ID)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: added_tokens_decoder key '%.40s' is not an id", f->config_path,
                           v->key);
        if (id > *max_id)
            *max_id = id;
    }
    if (*max_id < 0)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: the vocabulary is empty", f->vocab_path);
    return QA_OK;
}

static qa_status put_vocab(qa_tokenizer *t, tok_files *f, qa_err *e)
{
    const qa_json *root = qa_json_root(f->vocab);
    for (size_t i = 0; i < root->n; i++) {
        const qa_json *v = &root->items[i];
        QA_TRY(qa_tok_set(t, (int32_t)v->i, v->key, v->key_len, 0, f->vocab_path, e));
    }
    return QA_OK;
}

static qa_status put_added(qa_tokenizer *t, tok_files *f, qa_err *e)
{
    t->added = qa_calloc_n(f->added->n ? f->added->n : 1, sizeof *t->added, e);
    if (!t->added)
        return QA_ERR_OOM;
    for (size_t i = 0; i < f->added->n; i++) {
        const qa_json *v = &f->added->items[i];
        const qa_json *content = qa_json_get(v, "content");
        const qa_json *special = qa_json_get(v, "special");
        int32_t id = -1;
        parse_id(v->key, v->key_len, &id);
        if (!content || content->type != QA_JSON_STRING || content->str_len == 0)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: added token %d has no non-empty \"content\" string",
                           f->config_path, (int)id);
        if (special && special->type != QA_JSON_BOOL)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: added token %d: \"special\" is not true/false", f->config_path,
                           (int)id);
        /* lstrip / rstrip / single_word / normalized are false in every Qwen3 checkpoint; the
         * whole-match scan of bpe.c implements exactly that case. */
        int is_special = special && special->boolean;
        uint32_t flags = QA_TOK_ADDED | (is_special ? QA_TOK_SPECIAL : 0);
        QA_TRY(qa_tok_set(t, id, content->str, content->str_len, flags, f->config_path, e));
        qa_added_token *a = &t->added[t->n_added++];
        a->id = id;
        a->off = t->ent[id].str_off;
        a->len = t->ent[id].str_len;
        a->special = is_special;
    }
    return QA_OK;
}

static size_t count_lines(const char *s, size_t n)
{
    size_t lines = 1;
    for (const char *p = s; (p = memchr(p, '\n', n - (size_t)(p - s))) != NULL; p++)
        lines++;
    return lines;
}

/* One "left right" line of merges.txt (line number lineno, without its newline). */
static qa_status put_merge(qa_tokenizer *t, const tok_files *f, const char *line, size_t n, size_t lineno,
                           qa_err *e)
{
    const char *sp = memchr(line, ' ', n);
    if (!sp || sp == line || sp == line + n - 1 || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - line)))
        return QA_FAIL(e, QA_ERR_MODEL, "%s line %zu: expected two symbols separated by one space, got '%.*s'",
                       f->merges_path, lineno, (int)(n > 60 ? 60 : n), line);
    size_t nl = (size_t)(sp - line), nr = n - nl - 1;
    int32_t left = qa_tokenizer_token_id(t, line, nl);
    int32_t right = qa_tokenizer_token_id(t, sp + 1, nr);
    char both[1024];
    if (left < 0 || right < 0)
        return QA_FAIL(e, QA_ERR_MODEL, "%s line %zu: symbol '%.*s' is not in vocab.json", f->merges_path, lineno,
                       (int)(left < 0 ? nl : nr), left < 0 ? line : sp + 1);
    if (nl + nr > sizeof both)
        return QA_FAIL(e, QA_ERR_MODEL, "%s line %zu: merged symbol longer than %zu bytes", f->merges_path, lineno,
                       sizeof both);
    memcpy(both, line, nl);
    memcpy(both + nl, sp + 1, nr);
    int32_t id = qa_tokenizer_token_id(t, both, nl + nr);
    if (id < 0)
        return QA_FAIL(e, QA_ERR_MODEL, "%s line %zu: the merge result '%.*s' is not in vocab.json", f->merges_path,
                       lineno, (int)(nl + nr), both);
    return qa_tok_add_merge(t, left, right, id, e);
}

static qa_status put_merges(qa_tokenizer *t, const tok_files *f, qa_err *e)
{
    const char *s = f->merges, *end = f->merges + f->merges_len;
    for (size_t lineno = 1; s < end; lineno++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - s);
        if (n && s[n - 1] == '\r')
            n--;
        int is_header = lineno == 1 && n >= 8 && memcmp(s, "#version", 8) == 0;
        if (n && !is_header)
            QA_TRY(put_merge(t, f, s, n, lineno, e));
        s = stop + 1;
    }
    if (t->n_merges == 0)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: no merges", f->merges_path);
    return QA_OK;
}

static qa_status read_all(qa_tokenizer *t, tok_files *f, qa_err *e)
{
    QA_TRY(parse_json(f->vocab_path, &f->vocab, e));
    QA_TRY(parse_json(f->config_path, &f->config, e));
    QA_TRY(read_text_file(f->merges_path, &f->merges, &f->merges_len, e));
    int32_t max_id;
    QA_TRY(scan_ids(f, &max_id, e));
    QA_TRY(qa_tok_reserve(t, max_id + 1, count_lines(f->merges, f->merges_len), e));
    QA_TRY(put_vocab(t, f, e));
    QA_TRY(put_added(t, f, e));
    return put_merges(t, f, e);
}

qa_status qa_tok_read_files(qa_tokenizer *t, const char *folder, qa_err *e)
{
    tok_files f = {.folder = folder};
    size_t n = strlen(folder);
    if (n + 32 > sizeof f.vocab_path)
        return QA_FAIL(e, QA_ERR_MODEL, "tokenizer folder path is too long (%zu bytes)", n);
    snprintf(f.vocab_path, sizeof f.vocab_path, "%s/vocab.json", folder);
    snprintf(f.config_path, sizeof f.config_path, "%s/tokenizer_config.json", folder);
    snprintf(f.merges_path, sizeof f.merges_path, "%s/merges.txt", folder);
    qa_status s = read_all(t, &f, e);
    qa_json_free(f.vocab);
    qa_json_free(f.config);
    qa_free(f.merges);
    return s;
}
