/* bpe.c — encode: added tokens, NFC, pre-tokenizer pieces, byte-level BPE merges.
 *
 * Contract: qa_tokenizer_encode appends the ids that transformers 5.17's Qwen2 tokenizer gives
 * for a text with add_special_tokens=False (fixtures/text_cases.json):
 *  1. added tokens are cut out first, leftmost-longest, never normalised nor merged
 *     (tokenizers AddedVocabulary; `<timestamp>` and `<asr_text>` too although not special);
 *  2. each remaining segment is NFC-normalised (utf8proc) and split by qa_pretokenize_next;
 *  3. each piece starts as its bytes' symbols and merges the adjacent pair of lowest rank,
 *     leftmost first on ties, until no pair is a merge (tokenizers word.rs merge_all: a heap of
 *     (rank, position) with stale entries skipped), which is O(m log m) for an m-byte piece.
 * Scratch memory is per call (the tokenizer itself is read-only, so calls may run in parallel).
 */
#include <string.h>
#include <utf8proc.h>

#include "../core/alloc.h"
#include "pretokenize.h"
#include "tokenizer_impl.h"

typedef struct heap_ent {
    uint64_t key; /* (rank << 32) | position: lowest rank first, then leftmost */
    int32_t left, right;
} heap_ent;

#define SMALL 64 /* pieces up to this many bytes (nearly all words) use the arrays in the struct */

typedef struct work {
    int32_t *sym, *prev, *next; /* symbols of the current piece as a linked list */
    heap_ent *heap;
    size_t cap, n_heap;
    int32_t *nfc; /* NFC scratch (UTF-32, re-encoded in place) */
    size_t nfc_cap;
    int32_t sym_s[SMALL], prev_s[SMALL], next_s[SMALL];
    heap_ent heap_s[3 * SMALL];
} work;

static void work_init(work *w)
{
    w->sym = w->sym_s, w->prev = w->prev_s, w->next = w->next_s, w->heap = w->heap_s;
    w->cap = SMALL;
    w->n_heap = 0;
    w->nfc = NULL;
    w->nfc_cap = 0;
}

static void work_free_arrays(work *w)
{
    if (w->sym != w->sym_s) {
        qa_free(w->sym);
        qa_free(w->prev);
        qa_free(w->next);
        qa_free(w->heap);
    }
}

static void work_free(work *w)
{
    work_free_arrays(w);
    qa_free(w->nfc);
}

static qa_status work_reserve(work *w, size_t m, qa_err *e)
{
    if (m <= w->cap)
        return QA_OK;
    work_free_arrays(w);
    size_t cap = m * 2;
    w->sym = qa_malloc_n(cap, sizeof *w->sym, e);
    w->prev = qa_malloc_n(cap, sizeof *w->prev, e);
    w->next = qa_malloc_n(cap, sizeof *w->next, e);
    w->heap = qa_malloc_n(cap * 3, sizeof *w->heap, e); /* m-1 pairs + 2 per merge */
    w->cap = cap;
    if (w->sym && w->prev && w->next && w->heap)
        return QA_OK;
    work_free_arrays(w);
    work_init(w);
    return QA_ERR_OOM;
}

static void heap_push(work *w, heap_ent x)
{
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p].key <= x.key)
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = x;
}

static heap_ent heap_pop(work *w)
{
    heap_ent top = w->heap[0], x = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && w->heap[c + 1].key < w->heap[c].key)
            c++;
        if (x.key <= w->heap[c].key)
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = x;
    return top;
}

static void push_pair(const qa_tokenizer *t, work *w, int32_t pos)
{
    int32_t q = w->next[pos];
    uint32_t rank;
    int32_t id;
    if (q >= 0 && qa_tok_merge(t, w->sym[pos], w->sym[q], &rank, &id))
        heap_push(w, (heap_ent){((uint64_t)rank << 32) | (uint32_t)pos, w->sym[pos], w->sym[q]});
}

/* BPE of one piece p[0..m) appended to out. */
static qa_status bpe_piece(const qa_tokenizer *t, const uint8_t *p, size_t m, work *w, qa_ids *out, qa_err *e)
{
    if (m == 1)
        return qa_ids_push(out, t->byte_id[p[0]], e);
    QA_TRY(work_reserve(w, m, e));
    for (size_t k = 0; k < m; k++) {
        w->sym[k] = t->byte_id[p[k]];
        w->prev[k] = (int32_t)k - 1;
        w->next[k] = k + 1 < m ? (int32_t)k + 1 : -1;
    }
    w->n_heap = 0;
    for (size_t k = 0; k + 1 < m; k++)
        push_pair(t, w, (int32_t)k);
    while (w->n_heap) {
        heap_ent h = heap_pop(w);
        int32_t pos = (int32_t)(uint32_t)h.key, q = w->next[pos];
        if (w->sym[pos] != h.left || q < 0 || w->sym[q] != h.right)
            continue; /* stale: one side was merged since this pair was queued */
        uint32_t rank = 0;
        int32_t id = -1;
        qa_tok_merge(t, h.left, h.right, &rank, &id); /* found: it was found when queued */
        w->sym[pos] = id;
        w->sym[q] = -1;
        w->next[pos] = w->next[q];
        if (w->next[q] >= 0)
            w->prev[w->next[q]] = pos;
        if (w->prev[pos] >= 0)
            push_pair(t, w, w->prev[pos]);
        push_pair(t, w, pos);
    }
    for (int32_t k = 0; k >= 0; k = w->next[k])
        QA_TRY(qa_ids_push(out, w->sym[k], e));
    return QA_OK;
}

/* NFC of s[0..n) into w->nfc (as UTF-8 bytes); *out points into it. */
static qa_status nfc(const uint8_t *s, size_t n, work *w, const uint8_t **out, size_t *out_len, qa_err *e)
{
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    utf8proc_ssize_t need = utf8proc_decompose(s, (utf8proc_ssize_t)n, NULL, 0, opt);
    if (need < 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "NFC: %s", utf8proc_errmsg(need));
    if ((size_t)need + 1 > w->nfc_cap) {
        qa_free(w->nfc);
        w->nfc_cap = (size_t)need + 1;
        w->nfc = qa_malloc_n(w->nfc_cap, sizeof *w->nfc, e);
        if (!w->nfc) {
            w->nfc_cap = 0;
            return QA_ERR_OOM;
        }
    }
    need = utf8proc_decompose(s, (utf8proc_ssize_t)n, w->nfc, need, opt);
    utf8proc_ssize_t len = need < 0 ? need : utf8proc_reencode(w->nfc, need, opt); /* composes, then UTF-8 */
    if (len < 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "NFC: %s", utf8proc_errmsg(len));
    *out = (const uint8_t *)w->nfc;
    *out_len = (size_t)len;
    return QA_OK;
}

/* Text without code points >= U+0300 is already NFC (nothing below composes or decomposes). */
static int maybe_not_nfc(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC)
            return 1;
    return 0;
}

static qa_status encode_segment(const qa_tokenizer *t, const uint8_t *s, size_t n, work *w, qa_ids *out, qa_err *e)
{
    if (maybe_not_nfc(s, n))
        QA_TRY(nfc(s, n, w, &s, &n, e));
    for (size_t i = 0; i < n;) {
        size_t end = qa_pretokenize_next(s, n, i);
        QA_TRY(bpe_piece(t, s + i, end - i, w, out, e));
        i = end;
    }
    return QA_OK;
}

/* First added token at or after `from`, leftmost then longest; returns its index or -1. */
static long find_added(const qa_tokenizer *t, const uint8_t *s, size_t n, size_t from, size_t *at)
{
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[s[i]])
            continue;
        long best = -1;
        for (size_t k = 0; k < t->n_added; k++) {
            const qa_added_token *a = &t->added[k];
            if (a->len <= n - i && memcmp(s + i, t->pool + a->off, a->len) == 0 &&
                (best < 0 || a->len > t->added[best].len))
                best = (long)k;
        }
        if (best >= 0) {
            *at = i;
            return best;
        }
    }
    return -1;
}

static qa_status encode_all(const qa_tokenizer *t, const uint8_t *s, size_t n, work *w, qa_ids *out, qa_err *e)
{
    size_t pos = 0;
    while (pos < n) {
        size_t at = n;
        long k = find_added(t, s, n, pos, &at);
        if (at > pos)
            QA_TRY(encode_segment(t, s + pos, at - pos, w, out, e));
        if (k < 0)
            break;
        QA_TRY(qa_ids_push(out, t->added[k].id, e));
        pos = at + t->added[k].len;
    }
    return QA_OK;
}

qa_status qa_tokenizer_encode(const qa_tokenizer *t, const char *text, size_t len, qa_ids *out, qa_err *e)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = qa_utf8_invalid_at(s, len);
    if (bad < len)
        return QA_FAIL(e, QA_ERR_INPUT, "text is not valid UTF-8: byte 0x%02x at offset %zu", s[bad], bad);
    size_t n0 = out->n;
    work w;
    work_init(&w);
    qa_status st = encode_all(t, s, len, &w, out, e);
    work_free(&w);
    if (st != QA_OK)
        out->n = n0;
    return st;
}
