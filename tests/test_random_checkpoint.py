"""tools/make_random_checkpoint.py: the safetensors it writes parse (by the format's spec, read here
independently), and names/shapes/dtypes match the list MODEL_FACTS §2.1/§2.3 derives from config.json.
The released models' counts (tensors, parameters) are checked against MODEL_FACTS §2.2 without writing."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, REPO

from qwen3align import random_checkpoint as rc

TOOL = os.path.join(REPO, "tools", "make_random_checkpoint.py")


def read_safetensors(path):
    """Minimal reader per the spec: u64 LE header size, JSON header, contiguous data in offset order."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and 8 + n <= len(raw)
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    pos = 0
    for a, b, k in spans:  # no gaps, no overlaps, the last offset is the data size
        assert a == pos, f"{k}: offset {a}, expected {pos}"
        pos = b
    assert pos == len(data)
    tensors = {}
    for k, v in header.items():
        a, b = v["data_offsets"]
        size = {"BF16": 2, "F32": 4}[v["dtype"]]
        assert b - a == int(np.prod(v["shape"])) * size, k
        buf = np.frombuffer(data[a:b], dtype="<u2" if size == 2 else "<f4")
        if size == 2:
            buf = (buf.astype(np.uint32) << 16).view(np.float32)
        tensors[k] = (v["dtype"], v["shape"], buf.reshape(v["shape"]))
    return meta, tensors


def expected_names(cfg, layout):
    """Names and shapes written out from MODEL_FACTS §2.1 / §2.3, independently of the tool."""
    a, t = cfg["thinker_config"]["audio_config"], cfg["thinker_config"]["text_config"]
    d, c, ffn, o = a["d_model"], a["downsample_hidden_size"], a["encoder_ffn_dim"], a["output_dim"]
    h, hd, v = t["hidden_size"], t["head_dim"], t["vocab_size"]
    qd, kvd, inter = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd, t["intermediate_size"]
    at, pj, tm = (("thinker.audio_tower.", "thinker.audio_tower.proj", "thinker.model.") if layout == "original"
                  else ("model.audio_tower.", "model.multi_modal_projector.linear_", "model.language_model."))
    e = {at + "conv2d1.weight": [c, 1, 3, 3], at + "conv2d2.weight": [c, c, 3, 3], at + "conv2d3.weight": [c, c, 3, 3],
         at + "conv2d1.bias": [c], at + "conv2d2.bias": [c], at + "conv2d3.bias": [c],
         at + "conv_out.weight": [d, c * 16], at + "ln_post.weight": [d], at + "ln_post.bias": [d],
         pj + "1.weight": [d, d], pj + "1.bias": [d], pj + "2.weight": [o, d], pj + "2.bias": [o],
         tm + "embed_tokens.weight": [v, h], tm + "norm.weight": [h]}
    for i in range(a["encoder_layers"]):
        L = f"{at}layers.{i}."
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
            e[L + f"self_attn.{p}.weight"], e[L + f"self_attn.{p}.bias"] = [d, d], [d]
        for n in ("self_attn_layer_norm", "final_layer_norm"):
            e[L + n + ".weight"], e[L + n + ".bias"] = [d], [d]
        e[L + "fc1.weight"], e[L + "fc1.bias"], e[L + "fc2.weight"], e[L + "fc2.bias"] = [ffn, d], [ffn], [d, ffn], [d]
    for i in range(t["num_hidden_layers"]):
        L = f"{tm}layers.{i}."
        e.update({L + "input_layernorm.weight": [h], L + "post_attention_layernorm.weight": [h],
                  L + "self_attn.q_proj.weight": [qd, h], L + "self_attn.k_proj.weight": [kvd, h],
                  L + "self_attn.v_proj.weight": [kvd, h], L + "self_attn.o_proj.weight": [h, qd],
                  L + "self_attn.q_norm.weight": [hd], L + "self_attn.k_norm.weight": [hd],
                  L + "mlp.gate_proj.weight": [inter, h], L + "mlp.up_proj.weight": [inter, h],
                  L + "mlp.down_proj.weight": [h, inter]})
    if "classify_num" in cfg["thinker_config"]:
        head = "thinker.lm_head.weight" if layout == "original" else "score.weight"
        e[head] = [cfg["thinker_config"]["classify_num"], h]
    return e


@pytest.mark.parametrize("preset,layout,dtype", [
    ("Qwen3-ForcedAligner-0.6B", "original", "bf16"),
    ("Qwen3-ForcedAligner-0.6B", "hf", "f32"),
    ("Qwen3-ASR-1.7B", "hf", "bf16"),
    ("Qwen3-ASR-0.6B", "original", "bf16"),
])
def test_tiny_checkpoint_matches_config(tmp_path, preset, layout, dtype):
    out = tmp_path / "ckpt"
    r = subprocess.run([sys.executable, TOOL, "--preset", preset, "--tiny", "--layout", layout, "--dtype", dtype,
                        "--seed", "3", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for fn in ("config.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        assert (out / fn).exists(), fn
    cfg_written = json.loads((out / "config.json").read_text())
    cfg = rc.tiny_config(preset)  # the original-layout form of the same numbers
    if layout == "hf":
        assert "thinker_config" not in cfg_written and cfg_written["audio_config"]["d_model"] == 64
        assert cfg_written["text_config"]["vocab_size"] == cfg["thinker_config"]["text_config"]["vocab_size"]
        aligner = "ForcedAligner" in preset
        assert cfg_written["architectures"] == [
            "Qwen3ASRForTokenClassification" if aligner else "Qwen3ASRForConditionalGeneration"]
        if aligner:
            assert len(cfg_written["id2label"]) == 5000
    else:
        assert cfg_written["thinker_config"]["text_config"]["hidden_size"] == 64
    meta, tensors = read_safetensors(out / "model.safetensors")
    assert meta["format"] == "pt"
    want = expected_names(cfg, layout)
    assert {k: v[1] for k, v in tensors.items()} == want
    assert {v[0] for v in tensors.values()} == {"BF16" if dtype == "bf16" else "F32"}
    real_vocab = {"Qwen3-ForcedAligner-0.6B": 152064}.get(preset, 151936)
    assert cfg["thinker_config"]["text_config"]["vocab_size"] == real_vocab


def test_hf_init_on_a_given_config(tmp_path):
    """Presets use HF's init (normal 0.02, norms 1, biases 0); checked on the fixtures' small config."""
    cfg = json.load(open(os.path.join(FIXTURES, "aligner", "config.json")))
    out = rc.make_checkpoint(str(tmp_path / "x"), config=cfg, seed=1, dtype="f32")
    _, tensors = read_safetensors(os.path.join(out, "model.safetensors"))
    assert {k: v[1] for k, v in tensors.items()} == expected_names(cfg, "original")
    for k, (_, shape, x) in tensors.items():
        if k.endswith(".bias"):
            assert not x.any(), k
        elif len(shape) == 1:
            assert (x == 1.0).all(), k
        elif x.size > 1000:
            assert abs(x.std() - 0.02) < 0.002 and abs(x.mean()) < 0.002, k


def test_tiny_outputs_are_constrained(tmp_path):
    out = tmp_path / "fa"
    rc.make_checkpoint(str(out), tiny=True, max_seconds=2.0, dtype="f32")
    _, t = read_safetensors(out / "model.safetensors")
    head = t["thinker.lm_head.weight"][2]
    live = np.flatnonzero(np.abs(head).sum(axis=1))
    assert live.max() == 25  # classes 0..25 = 0..2.0 s at 80 ms; the rest can never win
    # the clock readout: argmax_c (a·c − c²/2) over the live rows is round(a), clamped to 25
    for a in (0.2, 3.4, 11.6, 40.0):
        feats = np.zeros(head.shape[1])
        feats[0], feats[1] = 1.0, a / head[1, 1]
        assert int(np.argmax(head @ feats)) == min(round(a), 25)
    out = tmp_path / "asr"
    rc.make_checkpoint(str(out), "Qwen3-ASR-0.6B", tiny=True, store_lm_head=True)
    _, t = read_safetensors(out / "model.safetensors")
    emb, head = t["thinker.model.embed_tokens.weight"][2], t["thinker.lm_head.weight"][2]
    assert np.array_equal(emb, head)  # a stored tied head equals the embeddings
    rows = np.flatnonzero(np.abs(emb).sum(axis=1))
    assert 151645 in rows and 151643 in rows and 300 < len(rows) < 600


def test_layouts_hold_the_same_weights(tmp_path):
    a = rc.make_checkpoint(str(tmp_path / "o"), "Qwen3-ASR-0.6B", tiny=True, seed=4)
    b = rc.make_checkpoint(str(tmp_path / "h"), "Qwen3-ASR-0.6B", tiny=True, seed=4, layout="hf")
    _, ta = read_safetensors(os.path.join(a, "model.safetensors"))
    _, tb = read_safetensors(os.path.join(b, "model.safetensors"))
    assert np.array_equal(ta["thinker.audio_tower.proj2.weight"][2], tb["model.multi_modal_projector.linear_2.weight"][2])
    assert np.array_equal(ta["thinker.model.norm.weight"][2], tb["model.language_model.norm.weight"][2])


def test_bf16_rounding_is_nearest_even():
    bits = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0xBF80C000], dtype=np.uint32)
    got = rc.to_bf16(bits.view(np.float32).copy())
    assert got.tolist() == [0x3F80, 0x3F82, 0x3F81, 0x3F80, 0xBF81]


def test_seed_is_deterministic_and_matters(tmp_path):
    a, b, c = (rc.make_checkpoint(str(tmp_path / n), tiny=True, seed=s) for n, s in (("a", 1), ("b", 1), ("c", 2)))
    fa, fb, fc = (open(os.path.join(p, "model.safetensors"), "rb").read() for p in (a, b, c))
    assert fa == fb and fa != fc


@pytest.mark.parametrize("preset,tensors,params", [
    # MODEL_FACTS §2.1: original files hold 13 + 16·L_enc audio and 3 + 11·28 text tensors (head
    # included, the tied ASR head stored too); §2.2: unique parameters (= the -hf file's)
    ("Qwen3-ForcedAligner-0.6B", 708, 917_728_896),
    ("Qwen3-ASR-1.7B", 708, 2_038_052_480),
    ("Qwen3-ASR-0.6B", 612, 782_426_112),
])
def test_released_sizes_match_model_facts(preset, tensors, params):
    cfg = rc.preset_config(preset)
    assert len(rc.tensor_specs(cfg, "original", store_lm_head=True)) == tensors
    hf = rc.tensor_specs(cfg, "hf")
    assert len(hf) == (tensors if "Aligner" in preset else tensors - 1)  # -hf: no tied lm_head
    assert sum(int(np.prod(s)) for _, s in hf) == params
