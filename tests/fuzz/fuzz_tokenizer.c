/* fuzz_tokenizer.c — libFuzzer target for the text frontend: BPE tokenizer (csrc/frontend/tokenizer*.c,
 * bpe.c, pretokenize.c, utf8.c), word splitting (words.c), prompt ids (prompts.c), timestamp
 * repair (timestamps.c) and the tokenizer file readers (tokenizer_files.c).
 *
 * The real Qwen3 tokenizer is loaded once from $QA_TOKENIZER_DIR (default ../shared/fixtures/aligner,
 * relative to the repository root where `make fuzz` and the tests run). Byte 0 of an input picks
 * what the rest is:
 *   0-3  text: encode (ids in range; for NFC text decode(encode(x)) == x), split_words in mode
 *        byte0 % 3, the aligner prompt of those words (2 <timestamp> per word) and the ASR prompt
 *        with the text as context;
 *   4    ids (int32 little-endian, negatives included): decode with and without skip_special;
 *        output NUL-terminated, valid UTF-8 (invalid bytes become U+FFFD);
 *   5    raw timestamps (float64 little-endian, NaN/inf included): repair; a success is finite
 *        and non-decreasing;
 *   6    tokenizer files: vocab.json \0 merges.txt \0 tokenizer_config.json written to a temp
 *        folder and loaded with qa_tokenizer_load; a loaded tokenizer must encode/decode ASCII.
 * Failures must carry a status and a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <utf8proc.h>

#include "core/alloc.h"
#include "frontend/prompts.h"
#include "frontend/timestamps.h"
#include "frontend/tokenizer.h"
#include "frontend/words.h"
#include "fuzz_common.h"

#define MAX_TEXT 4096 /* the BPE is linear-ish; longer inputs only slow the fuzzer */

static qa_tokenizer *tok;
static int32_t ts_id;
static char tmp_dir[64];

static void cleanup(void)
{
    const char *names[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    char p[128];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp_dir, names[i]);
        unlink(p);
    }
    rmdir(tmp_dir);
    qa_tokenizer_free(tok);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("QA_TOKENIZER_DIR");
    qa_err e;
    qa_err_clear(&e);
    if (qa_tokenizer_load(dir ? dir : "../shared/fixtures/aligner", &tok, &e) != QA_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load the tokenizer (set QA_TOKENIZER_DIR): %s\n", e.msg);
        exit(2);
    }
    FUZZ_CHECK(qa_tokenizer_require(tok, "<timestamp>", &ts_id, &e) == QA_OK);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/qa_fuzz_tok_XXXXXX");
    FUZZ_CHECK(mkdtemp(tmp_dir) != NULL);
    atexit(cleanup);
    return 0;
}

static int is_valid_utf8(const uint8_t *s, size_t n)
{
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

/* 1 if text is valid UTF-8 without NUL and already in NFC (then BPE must round-trip it exactly). */
static int is_nfc(const uint8_t *s, size_t n)
{
    if (!is_valid_utf8(s, n) || memchr(s, 0, n))
        return 0;
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t m = utf8proc_map(s, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    int same = m >= 0 && (size_t)m == n && memcmp(nfc, s, n) == 0;
    free(nfc);
    return same;
}

static void fuzz_encode(const uint8_t *s, size_t n)
{
    qa_ids ids = {0};
    qa_err e;
    qa_err_clear(&e);
    qa_status st = qa_tokenizer_encode(tok, (const char *)s, n, &ids, &e);
    if (st != QA_OK) {
        fuzz_check_error(st, &e);
        FUZZ_CHECK(!is_valid_utf8(s, n) || st == QA_ERR_OOM);
        qa_ids_free(&ids);
        return;
    }
    int32_t n_ids = qa_tokenizer_n_ids(tok);
    for (size_t i = 0; i < ids.n; i++)
        FUZZ_CHECK(ids.v[i] >= 0 && ids.v[i] < n_ids);
    char *text = NULL;
    size_t len = 0;
    FUZZ_CHECK(qa_tokenizer_decode(tok, ids.v, ids.n, 0, &text, &len, &e) == QA_OK);
    FUZZ_CHECK(text[len] == '\0');
    if (is_nfc(s, n))
        FUZZ_CHECK(len == n && memcmp(text, s, n) == 0);
    qa_free(text);
    qa_ids_free(&ids);
}

static void fuzz_words_and_prompts(const uint8_t *s, size_t n, qa_words_mode mode, size_t n_audio)
{
    qa_words w = {0};
    qa_err e;
    qa_err_clear(&e);
    qa_status st = qa_split_words((const char *)s, n, mode, &w, &e);
    if (st == QA_OK && w.n > 0) {
        const char **words = malloc(w.n * sizeof *words);
        size_t *lens = malloc(w.n * sizeof *lens), total = 0;
        FUZZ_CHECK(words && lens);
        for (size_t i = 0; i < w.n; i++) {
            words[i] = qa_words_at(&w, i, &lens[i]);
            FUZZ_CHECK(lens[i] > 0 && is_valid_utf8((const uint8_t *)words[i], lens[i]));
            total += lens[i];
        }
        FUZZ_CHECK(total <= n);
        qa_ids ids = {0};
        st = qa_aligner_prompt_ids(tok, words, lens, w.n, n_audio, &ids, &e);
        if (st == QA_OK)
            FUZZ_CHECK(qa_timestamp_positions(ids.v, ids.n, ts_id, NULL) == 2 * w.n);
        else
            fuzz_check_error(st, &e);
        qa_ids_free(&ids);
        free(words);
        free(lens);
    } else if (st != QA_OK) {
        fuzz_check_error(st, &e);
    }
    qa_words_free(&w);
    qa_ids ids = {0};
    st = qa_asr_prompt_ids(tok, n_audio, (n & 1) ? "English" : NULL, (const char *)s, n, &ids, &e);
    if (st != QA_OK)
        fuzz_check_error(st, &e);
    qa_ids_free(&ids);
}

static void fuzz_decode(const uint8_t *s, size_t n)
{
    size_t k = n / 4;
    int32_t *ids = malloc((k ? k : 1) * sizeof *ids);
    FUZZ_CHECK(ids != NULL);
    memcpy(ids, s, k * 4);
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL;
        size_t len = 0;
        qa_err e;
        qa_err_clear(&e);
        qa_status st = qa_tokenizer_decode(tok, ids, k, skip, &text, &len, &e);
        if (st == QA_OK) {
            FUZZ_CHECK(text != NULL && text[len] == '\0');
            FUZZ_CHECK(is_valid_utf8((const uint8_t *)text, len));
        } else {
            fuzz_check_error(st, &e);
        }
        qa_free(text);
    }
    free(ids);
}

static void fuzz_timestamps(const uint8_t *s, size_t n)
{
    size_t k = n / 8;
    if (k > 512)
        k = 512; /* the reference repair is O(n^2) */
    double *raw = malloc((k ? k : 1) * sizeof *raw);
    int64_t *out = malloc((k ? k : 1) * sizeof *out);
    FUZZ_CHECK(raw && out);
    memcpy(raw, s, k * 8);
    qa_err e;
    qa_err_clear(&e);
    qa_status st = qa_repair_timestamps(raw, k, out, &e);
    if (st == QA_OK) {
        for (size_t i = 1; i < k; i++)
            FUZZ_CHECK(out[i - 1] <= out[i]);
    } else {
        fuzz_check_error(st, &e);
    }
    free(raw);
    free(out);
}

static void write_file(const char *name, const uint8_t *s, size_t n)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", tmp_dir, name);
    FILE *f = fopen(p, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(s, 1, n, f) == n);
    fclose(f);
}

static void fuzz_files(const uint8_t *s, size_t n)
{
    const char *names[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        const uint8_t *nul = at < n ? memchr(s + at, 0, n - at) : NULL;
        size_t end = nul ? (size_t)(nul - s) : n;
        write_file(names[i], s + at, end - at);
        at = end < n ? end + 1 : n;
    }
    qa_tokenizer *t = NULL;
    qa_err e;
    qa_err_clear(&e);
    qa_status st = qa_tokenizer_load(tmp_dir, &t, &e);
    if (st != QA_OK) {
        fuzz_check_error(st, &e);
        FUZZ_CHECK(t == NULL);
        return;
    }
    qa_ids ids = {0};
    st = qa_tokenizer_encode(t, "Hello world", 11, &ids, &e);
    if (st == QA_OK) {
        char *text = NULL;
        size_t len = 0;
        if (qa_tokenizer_decode(t, ids.v, ids.n, 0, &text, &len, &e) == QA_OK)
            FUZZ_CHECK(text[len] == '\0');
        qa_free(text);
    } else {
        fuzz_check_error(st, &e);
    }
    qa_ids_free(&ids);
    qa_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 7;
    const uint8_t *s = data + 1;
    size_t n = size - 1;
    switch (mode) {
    case 4: fuzz_decode(s, n); break;
    case 5: fuzz_timestamps(s, n); break;
    case 6: fuzz_files(s, n); break;
    default:
        if (n > MAX_TEXT)
            n = MAX_TEXT;
        fuzz_encode(s, n);
        fuzz_words_and_prompts(s, n, (qa_words_mode)(data[0] % 3), (size_t)data[0] / 7);
        break;
    }
    return 0;
}
