"""Random-weight checkpoints with the real Qwen3-ForcedAligner / Qwen3-ASR architecture (NumPy only).

    from qwen3align.random_checkpoint import make_checkpoint
    make_checkpoint("out/aligner", preset="Qwen3-ForcedAligner-0.6B", tiny=True)

Writes a complete checkpoint folder like a real download: config.json (the released one, or a small
"tiny" variant with the same structure and the real vocabulary), tokenizer files and model.safetensors.
Tensor names and shapes follow MODEL_FACTS.md §2.1 (original `thinker.*` layout) and §2.3 (the
transformers-native "-hf" layout); the tied ASR head is absent unless store_lm_head (original only).
The safetensors file is written by hand: 8-byte little-endian header length, a JSON header padded
with spaces to a multiple of 8, then the tensors back to back in name order (the format's spec).
BF16 = the upper 16 bits of the float32 value rounded to nearest even (what torch's .to(bfloat16) does).
Init: normal(0, 0.02) matrices, ones for norm weights, zeros for biases (HF's init). Tiny models are
made to give varied, in-range output for the demo: statistics like the reference fixtures' tiny
models (matrices at 1/sqrt(fan_in), random norms and biases, sharp q/k norms); the tiny ASR can
only emit ~400 common English word pieces and the special tokens; the tiny aligner gets a wired-in
position clock (see _aligner_clock) so its stamps advance ~0.1 s per text token, capped at
`max_seconds` — monotone like speech, but synthetic: it does not listen.
The weights are random: outputs are meaningless, only their shapes and the pipeline are real.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import struct
import zlib

import numpy as np

PRESETS = ("Qwen3-ForcedAligner-0.6B", "Qwen3-ASR-1.7B", "Qwen3-ASR-0.6B")
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "preprocessor_config.json",
                   "generation_config.json")
_CHUNK = 1 << 23  # elements generated per step: 32 MB of float32, keeps memory flat for 2 B params
_SPECIAL_IDS = range(151643, 151706)  # added tokens (MODEL_FACTS §6)
_PROMPT_IDS = (198, 872, 8948, 77091)  # "\n", "user", "system", "assistant"


def preset_config(preset: str) -> dict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    with open(os.path.join(DATA, "configs", preset, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def is_aligner(cfg: dict) -> bool:
    return "forced_aligner" in cfg["thinker_config"].get("model_type", "")


def tiny_config(preset: str) -> dict:
    """The preset's config with small sizes: same structure, same vocabulary, same token ids."""
    cfg = copy.deepcopy(preset_config(preset))
    a = cfg["thinker_config"]["audio_config"]
    t = cfg["thinker_config"]["text_config"]
    a.update(d_model=64, encoder_layers=2, num_hidden_layers=2, encoder_attention_heads=4,
             encoder_ffn_dim=128, downsample_hidden_size=32, output_dim=64)
    t.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32)
    cfg["qwen3align_random"] = "tiny random-weight model made by qwen3align.random_checkpoint"
    return cfg


def tensor_specs(cfg: dict, layout: str = "original", store_lm_head: bool = False):
    """[(name, shape)] sorted by name, for an original-layout config (MODEL_FACTS §2.1 / §2.3)."""
    a = cfg["thinker_config"]["audio_config"]
    t = cfg["thinker_config"]["text_config"]
    d, ffn, c = a["d_model"], a["encoder_ffn_dim"], a["downsample_hidden_size"]
    freq = a["num_mel_bins"] // 8  # three stride-2 convs: 128 -> 64 -> 32 -> 16
    h, inter, v = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    hd = t.get("head_dim", h // t["num_attention_heads"])
    q, kv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    audio = [("conv2d1.weight", [c, 1, 3, 3]), ("conv2d1.bias", [c]), ("conv2d2.weight", [c, c, 3, 3]),
             ("conv2d2.bias", [c]), ("conv2d3.weight", [c, c, 3, 3]), ("conv2d3.bias", [c]),
             ("conv_out.weight", [d, c * freq]), ("ln_post.weight", [d]), ("ln_post.bias", [d])]
    for i in range(a["encoder_layers"]):
        p = f"layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            audio += [(p + f"self_attn.{proj}.weight", [d, d]), (p + f"self_attn.{proj}.bias", [d])]
        for ln in ("self_attn_layer_norm", "final_layer_norm"):
            audio += [(p + f"{ln}.weight", [d]), (p + f"{ln}.bias", [d])]
        audio += [(p + "fc1.weight", [ffn, d]), (p + "fc1.bias", [ffn]),
                  (p + "fc2.weight", [d, ffn]), (p + "fc2.bias", [d])]
    proj = [("1.weight", [d, d]), ("1.bias", [d]), ("2.weight", [a["output_dim"], d]), ("2.bias", [a["output_dim"]])]
    text = [("embed_tokens.weight", [v, h]), ("norm.weight", [h])]
    for i in range(t["num_hidden_layers"]):
        p = f"layers.{i}."
        text += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h]),
                 (p + "self_attn.q_proj.weight", [q, h]), (p + "self_attn.k_proj.weight", [kv, h]),
                 (p + "self_attn.v_proj.weight", [kv, h]), (p + "self_attn.o_proj.weight", [h, q]),
                 (p + "self_attn.q_norm.weight", [hd]), (p + "self_attn.k_norm.weight", [hd]),
                 (p + "mlp.gate_proj.weight", [inter, h]), (p + "mlp.up_proj.weight", [inter, h]),
                 (p + "mlp.down_proj.weight", [h, inter])]
    aligner = is_aligner(cfg)
    if layout not in ("original", "hf"):
        raise ValueError(f"layout must be 'original' or 'hf', got {layout!r}")
    specs = [("thinker.audio_tower." + n, s) for n, s in audio]
    specs += [("thinker.audio_tower.proj" + n, s) for n, s in proj]
    specs += [("thinker.model." + n, s) for n, s in text]
    if aligner or (store_lm_head and layout == "original"):
        specs.append(("thinker.lm_head.weight", [cfg["thinker_config"]["classify_num"] if aligner else v, h]))
    if layout == "hf":
        specs = [(hf_name(n, aligner), s) for n, s in specs]
    return sorted(specs)


def hf_name(name: str, aligner: bool) -> str:
    """Original tensor name -> transformers-native (-hf) name (MODEL_FACTS §2.3; proj rules first)."""
    for old, new in (("thinker.audio_tower.proj1.", "model.multi_modal_projector.linear_1."),
                     ("thinker.audio_tower.proj2.", "model.multi_modal_projector.linear_2."),
                     ("thinker.audio_tower.", "model.audio_tower."), ("thinker.model.", "model.language_model.")):
        if name.startswith(old):
            return new + name[len(old):]
    if name == "thinker.lm_head.weight":
        return "score.weight" if aligner else "lm_head.weight"
    raise ValueError(f"no -hf name for {name!r}")


def hf_config(cfg: dict) -> dict:
    """The transformers-native (-hf) config.json for an original-layout config (MODEL_FACTS §1.6)."""
    th = cfg["thinker_config"]
    audio = {k: v for k, v in th["audio_config"].items() if k not in ("conv_chunksize", "max_source_positions")}
    audio.update(model_type="qwen3_asr_encoder", max_position_embeddings=13)
    text = {k: v for k, v in th["text_config"].items() if k not in ("rope_scaling", "rope_theta")}
    text["rope_parameters"] = {"rope_theta": th["text_config"].get("rope_theta", 1000000), "rope_type": "default"}
    aligner = is_aligner(cfg)
    out = {"architectures": ["Qwen3ASRForTokenClassification" if aligner else "Qwen3ASRForConditionalGeneration"],
           "model_type": "qwen3_asr", "audio_config": audio, "text_config": text,
           "audio_token_id": th["audio_token_id"], "timestamp_token_id": 151705, "pad_token_id": 151645,
           "eos_token_id": [151643, 151645], "tie_word_embeddings": bool(text.get("tie_word_embeddings")),
           "token_classification_bias": False, "dtype": "bfloat16"}
    if aligner:
        n = th["classify_num"]
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(n)}
    for k in ("support_languages", "qwen3align_random"):
        if k in cfg:
            out[k] = cfg[k]
    return out


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), round to nearest even; modifies x's buffer (scratch)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lsb = (u >> 16) & 1
    u += 0x7FFF
    u += lsb
    u >>= 16
    return u.astype(np.uint16)


def _is_norm(name: str) -> bool:
    return bool(re.search(r"(layer_norm|layernorm|ln_post|norm)\.weight$", name))


def _rng(seed, name):
    # one stream per tensor (keyed by its original name): values do not depend on the layout, the
    # order of writing or on which other tensors are present
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _tiny_arrays(cfg, orig_specs, seed, max_seconds):
    """All tensors of a tiny model as float32 arrays (original names), made lively (module docstring)."""
    arrays = {}
    for name, shape in orig_specs:
        src = "thinker.model.embed_tokens.weight" if name == "thinker.lm_head.weight" and not is_aligner(cfg) else name
        arrays[name] = next(_fill(src, shape, _rng(seed, src), True)).reshape(shape)
    if is_aligner(cfg):
        _aligner_clock(arrays, cfg, max_seconds)
    else:
        keep = np.zeros(arrays["thinker.model.embed_tokens.weight"].shape[0], dtype=bool)
        keep[sorted(_readable_ids())] = True
        arrays["thinker.model.embed_tokens.weight"][~keep] = 0.0  # tied head: zero rows give logit 0
        if "thinker.lm_head.weight" in arrays:
            arrays["thinker.lm_head.weight"][~keep] = 0.0
    return arrays


# Residual dimensions the tiny aligner's clock uses (see _aligner_clock).
_CONST, _CLOCK, _SINK, _TEXT = 0, 1, 2, 3
SECONDS_PER_TOKEN = 0.1  # the tiny aligner's "speaking rate": one text token every 100 ms


def _aligner_clock(w, cfg, max_seconds):
    """Wire a position clock into a tiny aligner so its stamps grow through the text, like speech.

    A random aligner gives the same few classes everywhere (its states at `<timestamp>` positions
    barely differ), so a demo would show every word at one instant. Here one attention head of the
    last layer counts the text tokens before each position: it attends with score S ≈ ln 1e4 to the
    `<|audio_start|>` "sink" (a RoPE pair of near-zero frequency, so the score ignores distance) and
    with score 0 to everything else, whose value is 1 for text tokens — its output is
    ≈ count / 1e4. Residual dims _CONST (always 1) and _CLOCK (that output) reach the head, whose
    row c is (−c²/2, α·c): argmax_c (α·r·c − c²/2) = round(α·r), the count × seconds-per-token in
    80 ms classes. Nothing else writes those dims. The audio is ignored: the times are synthetic.
    """
    t = cfg["thinker_config"]["text_config"]
    h, hd, nl = t["hidden_size"], t["head_dim"], t["num_hidden_layers"]
    special = (_CONST, _CLOCK, _SINK, _TEXT)
    emb = w["thinker.model.embed_tokens.weight"]
    emb *= 0.02 / max(float(emb.std()), 1e-12)  # quiet random part: the special dims dominate RMSNorm
    emb[:, special] = 0.0
    emb[:, _CONST] = 1.0
    emb[:, _TEXT] = 1.0
    audio_ids = [cfg["thinker_config"][k] for k in ("audio_start_token_id", "audio_end_token_id", "audio_token_id")]
    emb[audio_ids, _TEXT] = 0.0
    emb[cfg["thinker_config"]["audio_start_token_id"], _SINK] = 1.0
    p2 = "thinker.audio_tower.proj2."
    w[p2 + "weight"][list(special)] = 0.0  # audio embeddings carry none of the special dims
    w[p2 + "bias"][list(special)] = 0.0
    for name, arr in w.items():  # quiet text layers (HF init), so every token's rms is about the same
        if name.startswith("thinker.model.layers.") and arr.ndim == 2:
            arr *= 0.02 / max(float(arr.std()), 1e-12)
    for i in range(nl):
        p = f"thinker.model.layers.{i}."
        w[p + "self_attn.o_proj.weight"][list(special)] = 0.0
        w[p + "mlp.down_proj.weight"][list(special)] = 0.0
        w[p + "input_layernorm.weight"][list(special)] = 1.0
    p = f"thinker.model.layers.{nl - 1}.self_attn."
    pair = hd // 2 - 1  # the lowest RoPE frequency: θ^(-(hd-2)/hd), no rotation over 10^4 positions
    q, k, v = w[p + "q_proj.weight"], w[p + "k_proj.weight"], w[p + "v_proj.weight"]
    q[:hd] = 0.0
    q[pair, _CONST] = 1.0  # query head 0: a spike, the same at every position
    k[:hd] = 0.0
    k[pair, _SINK] = 1.0  # kv head 0: a key only on the sink, zero (score 0) elsewhere
    v[0] = 0.0
    v[0, _TEXT] = 1.0  # value: 1/rms for text tokens, 0 for audio and the sink
    score = math.log(1e4)
    w[p + "q_norm.weight"][pair] = w[p + "k_norm.weight"][pair] = math.sqrt(score / math.sqrt(hd))
    w[p + "o_proj.weight"][_CLOCK, 0] = 1.0
    w["thinker.model.norm.weight"][[_CONST, _CLOCK]] = 1.0
    # the text tokens' 1/rms: rms² ≈ (2 + quiet noise) / h; layer 0 adds a little (measured ≈ 3 %)
    inv_rms = 1.0 / math.sqrt((2.0 + 0.1) / h)
    seg = cfg.get("timestamp_segment_time", 80) / 1000.0
    alpha = SECONDS_PER_TOKEN / seg * 1e4 / inv_rms
    head = w["thinker.lm_head.weight"]
    live = min(int(max_seconds / seg) + 1, head.shape[0])
    c = np.arange(live, dtype=np.float64)
    head[:] = 0.0  # classes past the clip: logit 0, never above the live maximum (≥ 0)
    head[:live, _CONST] = -c * c / 2.0
    head[:live, _CLOCK] = alpha * c


def _readable_ids(n=400):
    with open(os.path.join(DATA, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    words = sorted(i for tok, i in vocab.items() if i < 30000 and re.fullmatch("\u0120[a-z]{3,8}", tok))
    return set(words[:n]) | set(_SPECIAL_IDS) | set(_PROMPT_IDS)


def _init(name, shape, tiny):
    """(kind, center, scale) of a tensor's initial values; see the module docstring."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if not tiny:
        if name.endswith(".bias"):
            return ("const", 0.0, 0.0)
        return ("const", 1.0, 0.0) if _is_norm(name) else ("normal", 0.0, 0.02)
    # tiny: statistics like the reference fixtures' tiny models (random norms and biases, q/k norm
    # scales near 4, matrices at 1/sqrt(fan_in)), attention outputs boosted so each position's
    # state depends on its context, not only on its own token
    if name.endswith(("q_norm.weight", "k_norm.weight")):
        return ("normal", 4.0, 0.4)
    if name.endswith(".bias"):
        return ("normal", 0.0, 0.1)
    if _is_norm(name):
        return ("normal", 1.0, 0.1)
    boost = ATTN_BOOST if name.endswith(("o_proj.weight", "out_proj.weight")) else 1.0
    return ("normal", 0.0, boost / math.sqrt(fan_in))


ATTN_BOOST = 3.0


def _fill(name, shape, rng, tiny):
    """Yield the tensor's float32 values in chunks (whole tensor at once when tiny)."""
    n = int(np.prod(shape))
    kind, center, scale = _init(name, shape, tiny)
    step = n if tiny else _CHUNK
    for off in range(0, n, step):
        m = min(step, n - off)
        if kind == "const":
            yield np.full(m, center, dtype=np.float32)
        else:
            x = rng.standard_normal(m, dtype=np.float32)
            x *= np.float32(scale)
            if center:
                x += np.float32(center)
            yield x


def write_safetensors(path, specs, chunks_for, dtype="bf16", metadata=None):
    """Write specs [(name, shape)] in order; chunks_for(name, shape) yields float32 arrays."""
    st_dtype, size = {"bf16": ("BF16", 2), "f32": ("F32", 4)}[dtype]
    header, off = {"__metadata__": dict(metadata or {"format": "pt"})}, 0
    for name, shape in specs:
        nbytes = int(np.prod(shape)) * size
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, shape in specs:
            for x in chunks_for(name, shape):
                f.write(to_bf16(x) if dtype == "bf16" else x)
    return off


def make_checkpoint(out, preset="Qwen3-ForcedAligner-0.6B", *, tiny=False, layout="original", dtype="bf16",
                    seed=0, store_lm_head=False, max_seconds=4.0, config=None):
    """Write a random-weight checkpoint folder; returns its path. See the module docstring.

    config: an original-layout config.json dict to use instead of the preset (HF init, not tiny)."""
    if dtype not in ("bf16", "f32"):
        raise ValueError(f"dtype must be 'bf16' or 'f32', got {dtype!r}")
    if config is not None and tiny:
        raise ValueError("config= and tiny=True exclude each other")
    cfg = config if config is not None else tiny_config(preset) if tiny else preset_config(preset)
    specs = tensor_specs(cfg, layout, store_lm_head)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg if layout == "original" else hf_config(cfg), f, indent=2, ensure_ascii=False)
    for fn in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(DATA, fn), os.path.join(out, fn))
    orig = tensor_specs(cfg, "original", store_lm_head and layout == "original")
    aligner = is_aligner(cfg)
    names = {(n if layout == "original" else hf_name(n, aligner)): n for n, _ in orig}  # written -> original
    tiny_arrays = _tiny_arrays(cfg, orig, seed, max_seconds) if tiny else None

    def chunks_for(name, shape):
        src = names[name]
        if tiny:
            yield tiny_arrays[src].reshape(-1).copy()  # (the bf16 conversion works in place)
            return
        if src == "thinker.lm_head.weight" and not is_aligner(cfg):
            src = "thinker.model.embed_tokens.weight"  # a stored tied head holds the embeddings
        yield from _fill(src, shape, _rng(seed, src), False)

    meta = {"format": "pt", "qwen3align": "random weights, seed %d" % seed}
    write_safetensors(os.path.join(out, "model.safetensors"), specs, chunks_for, dtype, meta)
    return out
