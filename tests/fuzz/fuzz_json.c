/* fuzz_json.c — libFuzzer target for the JSON reader (csrc/weights/json.c) and the config reader
 * (csrc/weights/config.c) on top of it.
 *
 * Each input is parsed with qa_json_parse(buf, len). On success the whole tree is walked and checked:
 * node types are known; strings are NUL-terminated at str_len and valid UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF; NUL bytes allowed); object members have keys, array items
 * do not; nesting stays within QA_JSON_MAX_DEPTH; qa_json_get finds the first member with a key;
 * an exact integer agrees with its double. When the root is an object, the bytes are also written
 * as <tmp>/config.json and read with qa_config_load (both checkpoint layouts are reached from the
 * seeds in corpus/json/). Failures must carry a status and a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "weights/config.h"
#include "weights/json.h"

static char tmp_dir[64];
static char cfg_path[128];

static void remove_tmp(void)
{
    unlink(cfg_path);
    rmdir(tmp_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/qa_fuzz_json_XXXXXX");
    FUZZ_CHECK(mkdtemp(tmp_dir) != NULL);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", tmp_dir);
    atexit(remove_tmp);
    return 0;
}

/* Strict UTF-8 over s[0..n) (NUL bytes allowed): 1 if valid. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, len, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

static void check_string(const char *s, size_t n)
{
    FUZZ_CHECK(s != NULL);
    FUZZ_CHECK(s[n] == '\0');
    FUZZ_CHECK(valid_utf8((const unsigned char *)s, n));
}

static void walk(const qa_json *v, int depth, int in_object)
{
    FUZZ_CHECK(depth <= QA_JSON_MAX_DEPTH);
    FUZZ_CHECK(v->type >= QA_JSON_NULL && v->type <= QA_JSON_OBJECT);
    if (in_object)
        check_string(v->key, v->key_len);
    else
        FUZZ_CHECK(v->key == NULL);
    switch (v->type) {
    case QA_JSON_STRING:
        check_string(v->str, v->str_len);
        FUZZ_CHECK(qa_json_string(v) == v->str);
        break;
    case QA_JSON_NUMBER: {
        int64_t i;
        if (qa_json_as_int(v, &i)) {
            FUZZ_CHECK(i == v->i);
            /* |double - exact| is at most half an ulp of the double (2^63 rounds to 2^63). */
            double d = (double)i;
            FUZZ_CHECK(d == v->num);
        }
        break;
    }
    case QA_JSON_BOOL:
        FUZZ_CHECK(v->boolean == 0 || v->boolean == 1);
        break;
    case QA_JSON_ARRAY:
    case QA_JSON_OBJECT:
        FUZZ_CHECK(v->n == 0 || v->items != NULL);
        for (size_t k = 0; k < v->n; k++) {
            const qa_json *c = &v->items[k];
            walk(c, depth + 1, v->type == QA_JSON_OBJECT);
            if (v->type == QA_JSON_OBJECT && strlen(c->key) == c->key_len) {
                /* qa_json_get returns the first member with this key. */
                const qa_json *first = qa_json_get(v, c->key);
                FUZZ_CHECK(first != NULL && first <= c && strcmp(first->key, c->key) == 0);
            }
        }
        break;
    case QA_JSON_NULL:
        break;
    }
}

static void fuzz_config(const uint8_t *data, size_t size)
{
    FILE *f = fopen(cfg_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    fclose(f);
    qa_model_config cfg;
    qa_err e;
    qa_err_clear(&e);
    qa_status s = qa_config_load(tmp_dir, &cfg, &e);
    if (s != QA_OK) {
        fuzz_check_error(s, &e);
        return;
    }
    FUZZ_CHECK(cfg.kind == QA_MODEL_ALIGNER || cfg.kind == QA_MODEL_ASR);
    FUZZ_CHECK(memchr(cfg.name, '\0', sizeof cfg.name) != NULL);
    FUZZ_CHECK(cfg.n_languages >= 0 && cfg.n_languages <= QA_MAX_LANGUAGES);
    for (int i = 0; i < cfg.n_languages; i++)
        FUZZ_CHECK(memchr(cfg.languages[i], '\0', sizeof cfg.languages[i]) != NULL);
    FUZZ_CHECK(qa_config_conv_out_in(&cfg.audio) >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qa_json_doc *doc = NULL;
    qa_err e;
    qa_err_clear(&e);
    qa_status s = qa_json_parse((const char *)data, size, &doc, &e);
    if (s != QA_OK) {
        fuzz_check_error(s, &e);
        FUZZ_CHECK(doc == NULL);
        return 0;
    }
    const qa_json *root = qa_json_root(doc);
    FUZZ_CHECK(root != NULL);
    walk(root, 0, 0);
    int is_obj = root->type == QA_JSON_OBJECT;
    qa_json_free(doc);
    if (is_obj)
        fuzz_config(data, size);
    return 0;
}
