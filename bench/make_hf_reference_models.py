"""Random-weight, full-size reference checkpoints built with transformers' own initialisation.

For each model (aligner = Qwen3-ForcedAligner-0.6B, asr = Qwen3-ASR-1.7B) this script
1. reads the ORIGINAL-layout config.json (`thinker_config`, shared/models/<name>/config.json),
2. flattens it into the transformers 5.17 "-hf" config (the converter's rules, MODEL_FACTS §1.6:
   audio/text configs lifted out of thinker_config, classify_num -> num_labels, M-RoPE fields
   stripped, audio max_position_embeddings 13),
3. builds Qwen3ASRForTokenClassification / Qwen3ASRForConditionalGeneration in FP32 after
   torch.manual_seed(0) (transformers initialises on construction), casts to BF16,
4. writes both layouts from the SAME BF16 tensors:
     <out>/<name>-hf/   save_pretrained (what transformers loads; FP32 truth = these values upcast)
     <out>/<name>/      original names (`thinker.*`, MODEL_FACTS §2.3 reversed), the original
                        config.json, generation/preprocessor/tokenizer files; ASR as two shards +
                        index with a stored thinker.lm_head.weight equal to the embeddings, like
                        the release.
A marker file makes a second run a no-op. Usage:
    python bench/make_hf_reference_models.py --out /tmp/qa_bench/models [--tiny] [--device cuda]
"""
import argparse
import json
import os
import shutil
import sys
import time

MODEL_NAMES = {"aligner": "Qwen3-ForcedAligner-0.6B", "asr": "Qwen3-ASR-1.7B"}
TINY_SOURCES = {"aligner": "aligner", "asr": "asr"}  # folders under shared/fixtures
SIDE_FILES = ("generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
              "vocab.json", "merges.txt", "chat_template.json")
SEED = 0

# original key prefix <-> transformers 5.17 prefix; projector rules before the generic tower rule
_TO_ORIGINAL = (
    ("model.multi_modal_projector.linear_1.", "thinker.audio_tower.proj1."),
    ("model.multi_modal_projector.linear_2.", "thinker.audio_tower.proj2."),
    ("model.audio_tower.", "thinker.audio_tower."),
    ("model.language_model.", "thinker.model."),
    ("score.", "thinker.lm_head."),
    ("lm_head.", "thinker.lm_head."),
)
_AUDIO_DROP = ("max_source_positions", "conv_chunksize")
_COMMON_DROP = (
    "_name_or_path", "architectures", "dtype", "model_type", "use_bfloat16", "add_cross_attention",
    "chunk_size_feed_forward", "cross_attention_hidden_size", "decoder_start_token_id",
    "finetuning_task", "id2label", "label2id", "is_decoder", "is_encoder_decoder",
    "output_attentions", "output_hidden_states", "prefix", "problem_type", "pruned_heads",
    "return_dict", "sep_token_id", "task_specific_params", "tf_legacy_loss", "tie_encoder_decoder",
    "tokenizer_class", "torchscript", "bad_words_ids", "begin_suppress_tokens", "diversity_penalty",
    "do_sample", "early_stopping", "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty",
    "forced_bos_token_id", "forced_eos_token_id", "length_penalty", "max_length", "min_length",
    "no_repeat_ngram_size", "num_beam_groups", "num_beams", "num_return_sequences", "output_scores",
    "remove_invalid_values", "repetition_penalty", "return_dict_in_generate", "suppress_tokens",
    "temperature", "top_k", "top_p", "typical_p", "pad_token_id", "bos_token_id", "eos_token_id",
)


def to_original_name(hf_name):
    """transformers 5.17 tensor name -> original checkpoint name (MODEL_FACTS §2.3 reversed)."""
    for hf_prefix, orig_prefix in _TO_ORIGINAL:
        if hf_name.startswith(hf_prefix):
            return orig_prefix + hf_name[len(hf_prefix):]
    raise ValueError(f"no original name for tensor {hf_name!r}")


def is_aligner_config(orig):
    th = orig.get("thinker_config", {})
    return "forced_aligner" in th.get("model_type", "") or "classify_num" in th


def hf_config_dict(orig):
    """Original-layout config.json dict -> kwargs for transformers' Qwen3ASRConfig (5.17)."""
    th = orig["thinker_config"]
    audio = {k: v for k, v in th["audio_config"].items() if k not in _COMMON_DROP + _AUDIO_DROP}
    audio.pop("num_hidden_layers", None)  # alias of encoder_layers in the original file
    audio.pop("tie_word_embeddings", None)
    audio["max_position_embeddings"] = 13  # 13 post-CNN rows per 100-frame chunk
    text = {k: v for k, v in th["text_config"].items() if k not in _COMMON_DROP}
    rope_theta = text.pop("rope_theta", 1000000.0)
    text.pop("rope_scaling", None)  # M-RoPE collapses to plain RoPE (MODEL_FACTS §5)
    text["rope_parameters"] = {"rope_theta": float(rope_theta), "rope_type": "default"}
    cfg = {"audio_config": audio, "text_config": text,
           "audio_token_id": th.get("audio_token_id", 151676),
           "initializer_range": th.get("initializer_range", 0.02),
           "tie_word_embeddings": bool(text.get("tie_word_embeddings", False)),
           "token_classification_bias": False}
    if "timestamp_token_id" in orig:
        cfg["timestamp_token_id"] = orig["timestamp_token_id"]
    if is_aligner_config(orig):
        cfg["num_labels"] = int(th["classify_num"])
    return cfg


def build_model(orig, device):
    """FP32 model with transformers' own init under seed 0, returned in BF16 (eval mode)."""
    import torch
    import transformers as T

    config = T.Qwen3ASRConfig(**hf_config_dict(orig))
    cls = T.Qwen3ASRForTokenClassification if is_aligner_config(orig) else \
        T.Qwen3ASRForConditionalGeneration
    torch.manual_seed(SEED)
    with torch.device(device):
        model = cls(config)
    assert next(model.parameters()).dtype == torch.float32
    return model.to(torch.bfloat16).eval()


def original_state(model, aligner):
    """{original name: CPU bf16 tensor}; ASR also stores the tied head like the release does."""
    out = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: written below as a copy of the embeddings
        out[to_original_name(name)] = t.detach().to("cpu").contiguous()
    if not aligner:
        out["thinker.lm_head.weight"] = out["thinker.model.embed_tokens.weight"].clone()
    return out


def save_original(state, folder, shards):
    from safetensors.torch import save_file

    names = list(state)
    if shards == 1:
        save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        return
    total = sum(t.numel() * t.element_size() for t in state.values())
    groups, acc, cur = [[]], 0, 0
    for n in names:
        size = state[n].numel() * state[n].element_size()
        if acc + size > (cur + 1) * total / shards and groups[-1] and len(groups) < shards:
            groups.append([])
            cur += 1
        groups[-1].append(n)
        acc += size
    weight_map = {}
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: state[n] for n in g}, os.path.join(folder, fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in g})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)


def copy_side_files(src, dst, include_config):
    os.makedirs(dst, exist_ok=True)
    for fn in SIDE_FILES + (("config.json",) if include_config else ()):
        if os.path.exists(os.path.join(src, fn)):
            shutil.copyfile(os.path.join(src, fn), os.path.join(dst, fn))


def make_one(kind, src_dir, out_dir, device, tiny):
    name = MODEL_NAMES[kind]
    orig_dir, hf_dir = os.path.join(out_dir, name), os.path.join(out_dir, name + "-hf")
    marker = os.path.join(out_dir, f".{name}.complete.json")
    stamp = {"seed": SEED, "tiny": tiny, "src": os.path.abspath(src_dir), "device": device}
    try:
        with open(marker) as f:
            if json.load(f) == stamp:
                print(f"{name}: up to date in {out_dir}")
                return
    except (OSError, ValueError):
        pass
    t0 = time.time()
    with open(os.path.join(src_dir, "config.json")) as f:
        orig = json.load(f)
    model = build_model(orig, device)
    t1 = time.time()
    for d in (orig_dir, hf_dir):
        shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(hf_dir)
    copy_side_files(src_dir, hf_dir, include_config=False)
    aligner = is_aligner_config(orig)
    state = original_state(model, aligner)
    del model
    copy_side_files(src_dir, orig_dir, include_config=True)
    save_original(state, orig_dir, shards=1 if aligner else 2)
    nparams = sum(t.numel() for n, t in state.items() if n != "thinker.lm_head.weight" or aligner)
    with open(marker, "w") as f:
        json.dump(stamp, f)
    print(f"{name}: {nparams / 1e6:.1f} M params, init {t1 - t0:.1f} s, "
          f"save {time.time() - t1:.1f} s -> {orig_dir} (+ -hf)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=os.environ.get("QA_MODELS_DIR", "shared/models"),
                    help="original configs + tokenizer files (default shared/models)")
    ap.add_argument("--fixtures-dir", default=os.environ.get("QA_FIXTURES_DIR", "shared/fixtures"))
    ap.add_argument("--out", default="/tmp/qa_bench/models")
    ap.add_argument("--device", default="cpu", help="where to run the init (cuda is faster)")
    ap.add_argument("--tiny", action="store_true", help="fixture-sized configs (CPU smoke test)")
    ap.add_argument("--which", default="aligner,asr")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for kind in args.which.split(","):
        src = os.path.join(args.fixtures_dir, TINY_SOURCES[kind]) if args.tiny else \
            os.path.join(args.models_dir, MODEL_NAMES[kind])
        make_one(kind, src, args.out, args.device, args.tiny)
    return 0


if __name__ == "__main__":
    sys.exit(main())
