/* checkpoint.h — a checkpoint folder's tensors, validated against its config, placed into the arena.
 *
 * Lifecycle (two phases so that nothing is allocated before everything is checked):
 *     qa_checkpoint *ck;
 *     QA_TRY(qa_checkpoint_open(dir, &cfg, QA_F32, &ck, e));  // mmap files, check every tensor
 *     size_t need = qa_checkpoint_bytes(ck);                   // == qa_names_weight_bytes(&cfg, QA_F32)
 *     ... plan, OOM check, qa_arena_create ...
 *     QA_TRY(qa_checkpoint_load(ck, region, &dev, &model, e)); // convert once into the region
 *     qa_checkpoint_close(ck);                                 // unmap; the model keeps arena views
 *     ...
 *     qa_model_free(&model);                                   // layer arrays (not the arena)
 *
 * Sources: <dir>/model.safetensors, or <dir>/model.safetensors.index.json + the shards it names.
 * Both name layouts (original `thinker.*`, -hf `model.*`/`score`/`lm_head`). Checks: each expected
 * tensor present (in the shard the index names), dtype F32/F16/BF16, shape as the config says; no
 * unknown tensor; a stored lm_head of a tied ASR checkpoint is skipped (not loaded, not counted); the
 * aligner's head must be [classify_num, hidden] (cross-check of the kind given by the config).
 */
#ifndef QA_CHECKPOINT_H
#define QA_CHECKPOINT_H

#include "../memory/arena.h"
#include "../model/weights.h"
#include "names.h"

typedef struct qa_checkpoint qa_checkpoint;

/* Open and validate dir's tensors for cfg (borrowed, must outlive *out). compute: QA_F32 or QA_BF16.
 * Caller frees with qa_checkpoint_close. QA_ERR_MODEL naming the file and the tensor on failure. */
qa_status qa_checkpoint_open(const char *dir, const qa_model_config *cfg, qa_dtype compute, qa_checkpoint **out,
                             qa_err *e);

/* Weight bytes the checkpoint will take in its region (sum of aligned tensor sizes). */
size_t qa_checkpoint_bytes(const qa_checkpoint *ck);

/* Keep the text embedding table out of the weights region (the CUDA aligner: plan.h
 * qa_plan_embed_to_host). From then on qa_checkpoint_bytes excludes it and qa_checkpoint_host_bytes is
 * its size; qa_checkpoint_load converts it into the host buffer given to qa_checkpoint_set_targets and
 * sets m->dec.embed_on_host. Call between open and load. */
void qa_checkpoint_embed_to_host(qa_checkpoint *ck);
size_t qa_checkpoint_host_bytes(const qa_checkpoint *ck);

/* Where load puts what is not in the region (all borrowed, valid during load only):
 * host_table: host memory of qa_checkpoint_host_bytes bytes (NULL when 0);
 * scratch: device memory that dev->upload_convert may stage raw file bytes in (the idle arena
 * workspace; NULL: F32/F16 tensors are converted on the host as before). */
void qa_checkpoint_set_targets(qa_checkpoint *ck, void *host_table, void *scratch, size_t scratch_bytes);

/* Allocate m's layer arrays (host, owned by m), take each tensor from `region` and convert it into
 * place through dev: direct when dev->host_accessible; else the same dtype is copied through
 * dev->copy_h2d straight from the mmap, another one is converted on the device (dev->upload_convert
 * with the scratch of set_targets) or, without those, on the host into a staging buffer + copy_h2d.
 * Fills m->cfg, m->dir, m->weight_bytes; the tied ASR head becomes a view of the embedding. */
qa_status qa_checkpoint_load(qa_checkpoint *ck, qa_region *region, const qa_device *dev, qa_model *m, qa_err *e);

void qa_checkpoint_close(qa_checkpoint *ck);

/* Allocate m->enc.layers / m->dec.layers for cfg (zeroed). Caller frees with qa_model_free. */
qa_status qa_model_alloc_layers(qa_model *m, const qa_model_config *cfg, qa_err *e);

/* Free the layer arrays and zero *m (arena views are not freed here). Safe twice. */
void qa_model_free(qa_model *m);

/* Borrowed: the slot whose canonical name is `name` (tied head included), or NULL. */
const qa_tensor *qa_model_find(qa_model *m, const char *name);

#endif
