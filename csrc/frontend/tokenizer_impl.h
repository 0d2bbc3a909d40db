/* tokenizer_impl.h — the tokenizer's tables, shared by tokenizer.c (tables, decode),
 * tokenizer_files.c (reading the checkpoint files) and bpe.c (encode). Not a public header.
 *
 * Tables (all owned by the qa_tokenizer, freed by qa_tokenizer_free):
 *   ent[id]     one entry per id < n_ids: the token as written in vocab.json (byte-mapped form,
 *               e.g. "Ġworld") and its decoded bytes (" world"), both in pool;
 *   str_hash    open addressing, content -> id (vocab form; added tokens by their content);
 *   merges      open addressing, (left id, right id) -> (rank, merged id);
 *   byte_id[b]  the single-symbol token of byte b (start of every BPE word);
 *   added[]     added tokens for the whole-match scan before BPE.
 */
#ifndef QA_TOKENIZER_IMPL_H
#define QA_TOKENIZER_IMPL_H

#include <stdint.h>

#include "tokenizer.h"

enum { QA_TOK_PRESENT = 1, QA_TOK_ADDED = 2, QA_TOK_SPECIAL = 4 };

typedef struct qa_tok_entry {
    uint32_t str_off, str_len; /* vocab.json form, in pool */
    uint32_t dec_off, dec_len; /* bytes emitted by decode, in pool */
    uint32_t flags;
} qa_tok_entry;

typedef struct qa_merge_slot {
    uint64_t key; /* (left << 32) | right; QA_MERGE_EMPTY when free */
    uint32_t rank;
    int32_t id;
} qa_merge_slot;

#define QA_MERGE_EMPTY UINT64_MAX

typedef struct qa_added_token {
    int32_t id;
    uint32_t off, len; /* content in pool */
    int special;
} qa_added_token;

struct qa_tokenizer {
    qa_tok_entry *ent;
    int32_t n_ids;
    char *pool;
    size_t pool_len, pool_cap;
    int32_t *str_hash; /* -1 = empty */
    size_t str_mask;
    qa_merge_slot *merges;
    size_t merge_mask;
    size_t n_merges;
    int32_t byte_id[256];
    qa_added_token *added;
    size_t n_added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */
};

/* tokenizer.c: table building used while loading. */
qa_status qa_tok_set(qa_tokenizer *t, int32_t id, const char *s, size_t len, uint32_t flags, const char *file,
                     qa_err *e);
qa_status qa_tok_add_merge(qa_tokenizer *t, int32_t left, int32_t right, int32_t id, qa_err *e);
qa_status qa_tok_reserve(qa_tokenizer *t, int32_t n_ids, size_t n_merges, qa_err *e);

/* (rank, merged id) of the pair, or 0 when the pair is not a merge. */
static inline int qa_tok_merge(const qa_tokenizer *t, int32_t left, int32_t right, uint32_t *rank, int32_t *id)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (size_t i = (size_t)(h >> 32) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const qa_merge_slot *s = &t->merges[i];
        if (s->key == key) {
            *rank = s->rank;
            *id = s->id;
            return 1;
        }
        if (s->key == QA_MERGE_EMPTY)
            return 0;
    }
}

/* tokenizer_files.c: read the three files of a checkpoint folder into t. */
qa_status qa_tok_read_files(qa_tokenizer *t, const char *folder, qa_err *e);

#endif
