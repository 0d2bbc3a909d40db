/* checkpoint.c — open a checkpoint folder, check every tensor against the config, load into the arena.
 *
 * Contract (checkpoint.h): phase 1 (qa_checkpoint_open) mmaps model.safetensors or the shards named
 * by model.safetensors.index.json (weight_map), and checks every tensor the config implies
 * (weights/names.c) for presence, dtype (F32/F16/BF16) and shape, plus the absence of tensors we do
 * not know — before a byte of the arena exists. Phase 2 (qa_checkpoint_load) converts each tensor once
 * into the compute dtype at its place in the weights region (ndim >= 2 -> compute dtype; 1-D -> F32);
 * on a device the conversion runs there when the device offers it (raw bytes through the pinned
 * staging, issue #5), and a table the plan keeps off the device is converted into host memory.
 * Tied ASR (tie_word_embeddings): head = embedding view, a stored lm_head is skipped, as transformers
 * 5.17 does (`_tied_weights_keys`, MODEL_FACTS.md §2.2). Messages name the file and the tensor.
 */
#include "checkpoint.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"
#include "convert.h"
#include "json.h"
#include "safetensors.h"

#define MAX_SHARDS 64
#define INDEX_MAX_BYTES (64u * 1024u * 1024u)
#define STAGING_BYTES (4u * 1024u * 1024u)

struct qa_checkpoint {
    const qa_model_config *cfg;
    char dir[4096];
    qa_dtype compute;
    qa_safetensors *files[MAX_SHARDS];
    char shard_names[MAX_SHARDS][256];
    int n_files;
    qa_json_doc *index; /* model.safetensors.index.json, or NULL for a single file */
    size_t bytes;
    char (*expected)[QA_NAME_MAX]; /* file names of every expected tensor (phase 1 scratch) */
    size_t n_expected;
    int embed_host;     /* the embedding table goes to host_table, not the region */
    size_t host_bytes;  /* its bytes then (excluded from `bytes`) */
    void *host_table;   /* qa_checkpoint_set_targets, borrowed */
    void *scratch;      /* device scratch for dev->upload_convert, borrowed */
    size_t scratch_bytes;
};

static const char EMBED_NAME[] = "thinker.model.embed_tokens.weight";

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static qa_status open_file(qa_checkpoint *ck, const char *name, qa_err *e)
{
    char path[4400];
    if (ck->n_files >= MAX_SHARDS)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: more than %d safetensors shards", ck->dir, MAX_SHARDS);
    snprintf(path, sizeof path, "%s/%s", ck->dir, name);
    QA_TRY(qa_safetensors_open(path, &ck->files[ck->n_files], e));
    snprintf(ck->shard_names[ck->n_files], sizeof ck->shard_names[0], "%s", name);
    ck->n_files++;
    return QA_OK;
}

static int shard_slot(const qa_checkpoint *ck, const char *name)
{
    for (int i = 0; i < ck->n_files; i++)
        if (strcmp(ck->shard_names[i], name) == 0)
            return i;
    return -1;
}

static const qa_json *weight_map(const qa_checkpoint *ck)
{
    return qa_json_get(qa_json_root(ck->index), "weight_map");
}

/* Open every shard named in the index's weight_map (each once, names without path parts). */
static qa_status open_shards(qa_checkpoint *ck, const char *index_path, qa_err *e)
{
    QA_TRY(qa_json_parse_file(index_path, INDEX_MAX_BYTES, &ck->index, e));
    const qa_json *wm = weight_map(ck);
    if (!wm || wm->type != QA_JSON_OBJECT)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: no weight_map object", index_path);
    for (size_t i = 0; i < wm->n; i++) {
        const char *shard = qa_json_string(&wm->items[i]);
        if (!shard || !*shard || strchr(shard, '/') || strcmp(shard, "..") == 0 || strlen(shard) >= 256)
            return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s' maps to an invalid shard name", index_path,
                           wm->items[i].key);
        if (shard_slot(ck, shard) < 0)
            QA_TRY(open_file(ck, shard, e));
    }
    return QA_OK;
}

/* Find file tensor `fname`: in the shard the index names, or in the single file. */
static qa_status locate(const qa_checkpoint *ck, const char *fname, const char *canon, qa_safetensors **st,
                        const qa_st_tensor **t, qa_err *e)
{
    int f = 0;
    if (ck->index) {
        const char *shard = qa_json_string(qa_json_get(weight_map(ck), fname));
        if (!shard)
            return QA_FAIL(e, QA_ERR_MODEL, "%s/model.safetensors.index.json: missing tensor '%s' (%s)", ck->dir,
                           fname, canon);
        f = shard_slot(ck, shard);
        if (f < 0)
            return QA_FAIL(e, QA_ERR_INTERNAL, "shard %s of tensor '%s' was not opened", shard, fname);
    }
    *st = ck->files[f];
    *t = qa_safetensors_find(*st, fname);
    if (!*t)
        return QA_FAIL(e, QA_ERR_MODEL, "%s: missing tensor '%s'%s%s", (*st)->path, fname,
                       strcmp(fname, canon) ? " = " : "", strcmp(fname, canon) ? canon : "");
    return QA_OK;
}

static void shape_str(char *out, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(out + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n)
        snprintf(out + k, n - k, "]");
}

static qa_status check_tensor(const qa_checkpoint *ck, const qa_weight_slot *s, const qa_safetensors *st,
                              const qa_st_tensor *t, qa_err *e)
{
    if (!qa_convert_supported(t->dtype))
        return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s' has unsupported dtype %s (expected BF16, F16 or F32)",
                       st->path, t->name, qa_st_dtype_name(t->dtype));
    int same = t->ndim == s->ndim;
    for (int i = 0; same && i < s->ndim; i++)
        same = t->shape[i] == s->shape[i];
    if (same)
        return QA_OK;
    char got[160], want[160];
    shape_str(got, sizeof got, t->ndim, t->shape);
    shape_str(want, sizeof want, s->ndim, s->shape);
    const char *hint = "";
    if (strcmp(s->name, "thinker.lm_head.weight") == 0)
        hint = ck->cfg->kind == QA_MODEL_ALIGNER ? " (config.json says this is a ForcedAligner: head [classify_num, hidden])"
                                                 : " (config.json says this is an ASR model: head [vocab, hidden])";
    return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s' has shape %s, expected %s from config.json%s", st->path, t->name,
                   got, want, hint);
}

static qa_status validate_slot(void *ctx, const qa_weight_slot *s, qa_err *e)
{
    qa_checkpoint *ck = ctx;
    char fname[QA_NAME_MAX];
    qa_names_file_name(ck->cfg, s->name, fname, sizeof fname);
    snprintf(ck->expected[ck->n_expected++], QA_NAME_MAX, "%s", fname);
    if (s->tied)
        return QA_OK; /* a stored copy (original layout) is allowed and skipped */
    qa_safetensors *st;
    const qa_st_tensor *t;
    QA_TRY(locate(ck, fname, s->name, &st, &t, e));
    QA_TRY(check_tensor(ck, s, st, t, e));
    ck->bytes += qa_slot_bytes(s, ck->compute);
    return QA_OK;
}

static qa_status count_slot(void *ctx, const qa_weight_slot *s, qa_err *e)
{
    (*(size_t *)ctx)++;
    return QA_OK;
}

static int is_expected(const qa_checkpoint *ck, const char *name)
{
    for (size_t i = 0; i < ck->n_expected; i++)
        if (strcmp(ck->expected[i], name) == 0)
            return 1;
    return 0;
}

/* Every stored tensor must be one we expect, and live in one file only. */
static qa_status check_unknown(const qa_checkpoint *ck, qa_err *e)
{
    for (int f = 0; f < ck->n_files; f++)
        for (size_t i = 0; i < ck->files[f]->n; i++) {
            const char *name = ck->files[f]->tensors[i].name;
            if (!is_expected(ck, name))
                return QA_FAIL(e, QA_ERR_MODEL,
                               "%s: unexpected tensor '%s' (not part of a %s with %d encoder and %d decoder layers "
                               "as config.json describes)", ck->files[f]->path, name,
                               qa_model_kind_name(ck->cfg->kind), ck->cfg->audio.layers, ck->cfg->text.layers);
            for (int g = f + 1; g < ck->n_files; g++)
                if (qa_safetensors_find(ck->files[g], name))
                    return QA_FAIL(e, QA_ERR_MODEL, "%s: tensor '%s' is also stored in %s", ck->files[f]->path, name,
                                   ck->files[g]->path);
        }
    return QA_OK;
}

static qa_status open_sources(qa_checkpoint *ck, qa_err *e)
{
    char path[4400];
    struct stat sb;
    if (stat(ck->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return QA_FAIL(e, QA_ERR_MODEL, "model folder %s does not exist or is not a folder", ck->dir);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", ck->dir);
    if (file_exists(path))
        return open_shards(ck, path, e);
    snprintf(path, sizeof path, "%s/model.safetensors", ck->dir);
    if (!file_exists(path))
        return QA_FAIL(e, QA_ERR_MODEL, "%s: no model.safetensors or model.safetensors.index.json", ck->dir);
    return open_file(ck, "model.safetensors", e);
}

qa_status qa_checkpoint_open(const char *dir, const qa_model_config *cfg, qa_dtype compute, qa_checkpoint **out,
                             qa_err *e)
{
    *out = NULL;
    qa_checkpoint *ck = qa_calloc_n(1, sizeof *ck, e);
    if (!ck)
        return QA_ERR_OOM;
    ck->cfg = cfg;
    ck->compute = compute;
    snprintf(ck->dir, sizeof ck->dir, "%s", dir);
    size_t n = 0;
    qa_names_foreach(cfg, NULL, count_slot, &n, e);
    qa_status s = open_sources(ck, e);
    if (s == QA_OK)
        s = (ck->expected = qa_calloc_n(n, QA_NAME_MAX, e)) ? QA_OK : QA_ERR_OOM;
    if (s == QA_OK)
        s = qa_names_foreach(cfg, NULL, validate_slot, ck, e);
    if (s == QA_OK)
        s = check_unknown(ck, e);
    qa_free(ck->expected);
    ck->expected = NULL;
    if (s != QA_OK) {
        qa_checkpoint_close(ck);
        return s;
    }
    *out = ck;
    return QA_OK;
}

size_t qa_checkpoint_bytes(const qa_checkpoint *ck) { return ck->bytes; }
size_t qa_checkpoint_host_bytes(const qa_checkpoint *ck) { return ck->host_bytes; }

static qa_status embed_bytes(void *ctx, const qa_weight_slot *s, qa_err *e)
{
    qa_checkpoint *ck = ctx;
    if (strcmp(s->name, EMBED_NAME) == 0)
        ck->host_bytes = qa_slot_bytes(s, ck->compute); /* exactly what validate_slot counted for it */
    return QA_OK;
}

void qa_checkpoint_embed_to_host(qa_checkpoint *ck)
{
    if (ck->embed_host)
        return;
    qa_names_foreach(ck->cfg, NULL, embed_bytes, ck, NULL);
    ck->bytes -= ck->host_bytes;
    ck->embed_host = 1;
}

void qa_checkpoint_set_targets(qa_checkpoint *ck, void *host_table, void *scratch, size_t scratch_bytes)
{
    ck->host_table = host_table;
    ck->scratch = scratch;
    ck->scratch_bytes = scratch_bytes;
}

void qa_checkpoint_close(qa_checkpoint *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n_files; i++)
        qa_safetensors_close(ck->files[i]);
    qa_json_free(ck->index);
    qa_free(ck->expected);
    qa_free(ck);
}

/* ---- phase 2: conversion into the arena ---- */

typedef struct load_ctx {
    qa_checkpoint *ck;
    qa_region *region;
    const qa_device *dev;
    qa_model *m;
    void *staging; /* host buffer when the arena is not host-accessible */
} load_ctx;

/* The file dtype as a compute-dtype value (upload_convert's vocabulary); -1 for none. */
static int as_qa_dtype(qa_st_dtype st)
{
    return st == QA_ST_F32 ? QA_F32 : st == QA_ST_BF16 ? QA_BF16 : st == QA_ST_F16 ? QA_F16 : -1;
}

static qa_status place(load_ctx *lc, void *dst, qa_dtype dt, const void *src, qa_st_dtype st, size_t n, qa_err *e)
{
    const qa_device *dev = lc->dev;
    if (dev->host_accessible) {
        qa_convert(dst, dt, src, st, n);
        return QA_OK;
    }
    if (as_qa_dtype(st) == (int)dt) /* nothing to convert: straight from the mmap into the staging */
        return dev->copy_h2d(dev->ctx, dst, src, n * qa_dtype_size(dt), e);
    if (dev->upload_convert && lc->ck->scratch) /* issue #5: raw bytes up, converted by the GPU */
        return dev->upload_convert(dev->ctx, dst, (int)dt, src, as_qa_dtype(st), n, lc->ck->scratch,
                                   lc->ck->scratch_bytes, e);
    size_t per = STAGING_BYTES / qa_dtype_size(dt);
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        qa_convert(lc->staging, dt, (const uint8_t *)src + i * qa_st_dtype_size(st), st, k);
        QA_TRY(lc->dev->copy_h2d(lc->dev->ctx, (uint8_t *)dst + i * qa_dtype_size(dt), lc->staging,
                                 k * qa_dtype_size(dt), e));
    }
    return QA_OK;
}

static qa_status load_slot(void *ctx, const qa_weight_slot *s, qa_err *e)
{
    load_ctx *lc = ctx;
    if (s->tied) {
        *s->t = lc->m->dec.embed;
        return QA_OK;
    }
    char fname[QA_NAME_MAX];
    qa_names_file_name(lc->ck->cfg, s->name, fname, sizeof fname);
    qa_safetensors *st;
    const qa_st_tensor *t;
    QA_TRY(locate(lc->ck, fname, s->name, &st, &t, e));
    qa_dtype dt = qa_slot_dtype(s, lc->ck->compute);
    size_t n = qa_slot_numel(s);
    int to_host = lc->ck->embed_host && strcmp(s->name, EMBED_NAME) == 0;
    if (to_host && !lc->ck->host_table)
        return QA_FAIL(e, QA_ERR_INTERNAL, "%s: the embedding table goes to host memory but none was given",
                       lc->ck->dir);
    void *dst = to_host ? lc->ck->host_table : qa_arena_take(lc->region, n * qa_dtype_size(dt), e);
    if (!dst)
        return e ? e->code : QA_ERR_INTERNAL;
    if (to_host) /* host memory: converted in place by the CPU, exactly as on the CPU device */
        qa_convert(dst, dt, qa_safetensors_data(st, t), t->dtype, n);
    else
        QA_TRY(place(lc, dst, dt, qa_safetensors_data(st, t), t->dtype, n, e));
    if (to_host)
        lc->m->dec.embed_on_host = 1;
    s->t->data = dst;
    s->t->dtype = dt;
    s->t->ndim = s->ndim;
    memcpy(s->t->shape, s->shape, sizeof s->t->shape);
    return QA_OK;
}

qa_status qa_checkpoint_load(qa_checkpoint *ck, qa_region *region, const qa_device *dev, qa_model *m, qa_err *e)
{
    QA_TRY(qa_model_alloc_layers(m, ck->cfg, e));
    m->cfg = *ck->cfg;
    snprintf(m->dir, sizeof m->dir, "%s", ck->dir);
    load_ctx lc = {ck, region, dev, m, NULL};
    size_t before = region->used;
    int host_convert = !dev->host_accessible && !(dev->upload_convert && ck->scratch); /* place()'s last path */
    if (host_convert && !(lc.staging = qa_malloc(STAGING_BYTES, e)))
        return QA_ERR_OOM;
    qa_status s = qa_names_foreach(ck->cfg, m, load_slot, &lc, e);
    qa_free(lc.staging);
    if (s == QA_OK && region->used - before != ck->bytes)
        s = QA_FAIL(e, QA_ERR_INTERNAL, "%s: loaded %zu weight bytes, validated %zu", ck->dir, region->used - before,
                    ck->bytes);
    if (s != QA_OK) {
        qa_model_free(m);
        return s;
    }
    m->weight_bytes = ck->bytes;
    return QA_OK;
}

qa_status qa_model_alloc_layers(qa_model *m, const qa_model_config *cfg, qa_err *e)
{
    memset(m, 0, sizeof *m);
    m->enc.layers = qa_calloc_n((size_t)cfg->audio.layers, sizeof *m->enc.layers, e);
    m->dec.layers = qa_calloc_n((size_t)cfg->text.layers, sizeof *m->dec.layers, e);
    if (!m->enc.layers || !m->dec.layers) {
        qa_model_free(m);
        return QA_ERR_OOM;
    }
    return QA_OK;
}

void qa_model_free(qa_model *m)
{
    qa_free(m->enc.layers);
    qa_free(m->dec.layers);
    memset(m, 0, sizeof *m);
}

typedef struct find_ctx {
    const char *name;
    const qa_tensor *found;
} find_ctx;

static qa_status find_slot(void *ctx, const qa_weight_slot *s, qa_err *e)
{
    find_ctx *fc = ctx;
    if (!fc->found && strcmp(s->name, fc->name) == 0)
        fc->found = s->t;
    return QA_OK;
}

const qa_tensor *qa_model_find(qa_model *m, const char *name)
{
    if (!m->enc.layers)
        return NULL;
    find_ctx fc = {name, NULL};
    qa_names_foreach(&m->cfg, m, find_slot, &fc, NULL);
    return fc.found;
}
