/* weights.h — one model's parameters as views into the arena (llama2.c / llm.c style).
 *
 * Contract: the loader (weights/checkpoint.c) fills every qa_tensor of a qa_model with a pointer into
 * the arena's `weights/<model>` region, already converted to the compute dtype; the engine only reads
 * them. Shapes follow PyTorch's (out, in) convention for Linear weights. Layer arrays are small host
 * allocations owned by the qa_model (freed by qa_model_free in checkpoint.c).
 * Dimension letters (backend.h): D hidden, T tokens, H heads, Hk kv heads, Dh head dim, F ffn,
 * M mel bins, V vocab, C conv channels (480), E encoder width (d_model).
 */
#ifndef QA_WEIGHTS_H
#define QA_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "../weights/config.h"

typedef enum qa_dtype { QA_F32 = 0, QA_BF16 = 1, QA_F16 = 2 } qa_dtype;

static inline size_t qa_dtype_size(qa_dtype t) { return t == QA_F32 ? 4 : 2; }

typedef struct qa_tensor {
    void *data;        /* view into the arena (device pointer on the CUDA backend) */
    qa_dtype dtype;    /* compute dtype of the stored copy */
    int ndim;
    int64_t shape[4];
} qa_tensor;

typedef struct qa_encoder_layer {
    qa_tensor q_w, q_b, k_w, k_b, v_w, v_b; /* (E, E), (E) */
    qa_tensor o_w, o_b;                     /* out_proj (E, E), (E) */
    qa_tensor ln1_w, ln1_b;                 /* self_attn_layer_norm (E) */
    qa_tensor fc1_w, fc1_b;                 /* (F, E), (F) */
    qa_tensor fc2_w, fc2_b;                 /* (E, F), (E) */
    qa_tensor ln2_w, ln2_b;                 /* final_layer_norm (E) */
} qa_encoder_layer;

typedef struct qa_encoder_weights {
    qa_tensor conv1_w, conv1_b;   /* (C, 1, 3, 3), (C) */
    qa_tensor conv2_w, conv2_b;   /* (C, C, 3, 3), (C) */
    qa_tensor conv3_w, conv3_b;   /* (C, C, 3, 3), (C) */
    qa_tensor conv_out_w;         /* (E, C*16), no bias */
    qa_encoder_layer *layers;     /* [audio.layers], host array owned by qa_model */
    qa_tensor ln_post_w, ln_post_b; /* (E) */
    qa_tensor proj1_w, proj1_b;   /* (E, E), (E) */
    qa_tensor proj2_w, proj2_b;   /* (D, E), (D) */
} qa_encoder_weights;

typedef struct qa_decoder_layer {
    qa_tensor in_norm;            /* input_layernorm (D) */
    qa_tensor q_w;                /* (H*Dh, D) */
    qa_tensor k_w, v_w;           /* (Hk*Dh, D) */
    qa_tensor o_w;                /* (D, H*Dh) */
    qa_tensor q_norm, k_norm;     /* (Dh) */
    qa_tensor post_norm;          /* post_attention_layernorm (D) */
    qa_tensor gate_w, up_w;       /* (F, D) */
    qa_tensor down_w;             /* (D, F) */
} qa_decoder_layer;

typedef struct qa_decoder_weights {
    qa_tensor embed;              /* (V, D) */
    qa_decoder_layer *layers;     /* [text.layers], host array owned by qa_model */
    qa_tensor norm;               /* (D) */
    qa_tensor head;               /* aligner: score (classify_num, D); ASR: == embed when tied */
    int embed_on_host;            /* embed.data is HOST memory (the CUDA aligner's pinned table, issue #6):
                                   * rows are gathered by the CPU and uploaded (pipeline/inputs.c) */
} qa_decoder_weights;

typedef struct qa_model {
    qa_model_config cfg;
    qa_encoder_weights enc;
    qa_decoder_weights dec;
    size_t weight_bytes;          /* bytes of this model's weights region */
    char dir[4096];               /* checkpoint folder */
} qa_model;

#endif
