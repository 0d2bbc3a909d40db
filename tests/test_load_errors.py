"""Hostile and broken checkpoints: each raises ModelLoadError naming the file (and the tensor), built
in tmp_path by copying a fixture folder and rewriting its files with a small independent writer.
Also: F32/F16 files load with exact conversion, BF16 compute rounds to nearest even."""
import json
import os
import struct

import numpy as np
import pytest

from conftest import FIXTURES
from safetensors_util import all_f64, copy_fixture, load_all, read_raw, tensor_f32, write_raw, write_tensors
import qwen3align as qa

NORM = "thinker.model.norm.weight"
CONV = "thinker.audio_tower.conv2d1.weight"


def folder(tmp_path, name="asr"):
    return copy_fixture(os.path.join(FIXTURES, name), str(tmp_path / name))


def st_path(d):
    return os.path.join(d, "model.safetensors")


def rewrite(d, fn):
    """fn(tensors dict) -> tensors dict, written back as a valid file."""
    ts = load_all(st_path(d))
    write_tensors(st_path(d), fn(ts))


def load(d, kind="asr", **kw):
    return qa.load_models(**{kind: d}, **kw)


def expect(d, *patterns, kind="asr"):
    with pytest.raises(qa.ModelLoadError) as ei:
        load(d, kind)
    for p in patterns:
        assert p in str(ei.value), f"{p!r} not in {ei.value}"
    return str(ei.value)


def test_missing_folder_and_config(tmp_path):
    expect(str(tmp_path / "nope"), "nope", "does not exist")
    expect(str(tmp_path), "missing config.json")


def test_config_missing_key_and_unknown_model_type(tmp_path):
    d = folder(tmp_path)
    c = json.load(open(os.path.join(d, "config.json")))
    del c["thinker_config"]["text_config"]["num_hidden_layers"]
    json.dump(c, open(os.path.join(d, "config.json"), "w"))
    expect(d, "config.json", "thinker_config.text_config.num_hidden_layers", "missing")
    c["thinker_config"]["text_config"]["num_hidden_layers"] = 2
    c["model_type"] = "llama"
    json.dump(c, open(os.path.join(d, "config.json"), "w"))
    expect(d, "config.json", "unknown model_type 'llama'")


def test_no_weights_file(tmp_path):
    d = folder(tmp_path)
    os.remove(st_path(d))
    expect(d, "no model.safetensors or model.safetensors.index.json")


def test_missing_tensor(tmp_path):
    d = folder(tmp_path)
    rewrite(d, lambda ts: {k: v for k, v in ts.items() if k != NORM})
    expect(d, st_path(d), f"missing tensor '{NORM}'")


def test_missing_tensor_hf_names_both_spellings(tmp_path):
    d = folder(tmp_path, "asr-hf")
    rewrite(d, lambda ts: {k: v for k, v in ts.items() if k != "model.language_model.norm.weight"})
    expect(d, st_path(d), "model.language_model.norm.weight", NORM)


def test_wrong_shape(tmp_path):
    d = folder(tmp_path)

    def f(ts):
        ts[CONV] = ("BF16", [16, 1, 9], ts[CONV][2])
        return ts
    rewrite(d, f)
    expect(d, st_path(d), CONV, "[16, 1, 9]", "expected [16, 1, 3, 3]")


def test_aligner_head_cross_check(tmp_path):
    d = folder(tmp_path, "aligner")

    def f(ts):  # an ASR-shaped head in an aligner checkpoint
        ts["thinker.lm_head.weight"] = ts["thinker.model.embed_tokens.weight"]
        return ts
    rewrite(d, f)
    expect(d, "thinker.lm_head.weight", "[152064, 32]", "expected [5000, 32]", "ForcedAligner", kind="aligner")


def test_kind_passed_wrong(tmp_path):
    expect(os.path.join(FIXTURES, "aligner"), "aligner model", "passed as asr=")


def test_unsupported_dtype(tmp_path):
    d = folder(tmp_path)

    def f(ts):
        vals = tensor_f32(os.path.join(FIXTURES, "asr", "model.safetensors"), NORM)
        ts[NORM] = ("F64", list(vals.shape), vals.astype("<f8").tobytes())
        return ts
    rewrite(d, f)
    expect(d, st_path(d), NORM, "unsupported dtype F64")


def test_unexpected_tensor(tmp_path):
    d = folder(tmp_path)

    def f(ts):
        ts["thinker.model.layers.2.input_layernorm.weight"] = ts[NORM]
        return ts
    rewrite(d, f)
    expect(d, st_path(d), "unexpected tensor 'thinker.model.layers.2.input_layernorm.weight'")


def test_truncated_file(tmp_path):
    d = folder(tmp_path)
    blob = open(st_path(d), "rb").read()
    open(st_path(d), "wb").write(blob[:len(blob) // 2])
    expect(d, st_path(d), "outside the data buffer", "tensor '")
    open(st_path(d), "wb").write(blob[:5])
    expect(d, st_path(d), "too short")


def test_header_length_larger_than_file(tmp_path):
    d = folder(tmp_path)
    blob = bytearray(open(st_path(d), "rb").read())
    blob[:8] = struct.pack("<Q", len(blob) + 1)
    open(st_path(d), "wb").write(blob)
    expect(d, st_path(d), "past the end of the file")


def test_header_not_json(tmp_path):
    d = folder(tmp_path)
    header, meta, data = read_raw(st_path(d))
    hb = json.dumps(header).encode()
    write_raw(st_path(d), header, data, header_bytes=hb[:-1] + b"]")
    expect(d, st_path(d), "header is not valid JSON")


def _mutate_offsets(d, fn):
    header, meta, data = read_raw(st_path(d))
    fn(header, len(data))
    write_raw(st_path(d), header, data, meta)


def test_offsets_outside_file(tmp_path):
    d = folder(tmp_path)
    _mutate_offsets(d, lambda h, n: h[NORM].update(data_offsets=[n, n + 64]))
    expect(d, st_path(d), NORM, "outside the data buffer")


def test_overlapping_offsets(tmp_path):
    d = folder(tmp_path)

    def f(h, n):
        a = h[NORM]["data_offsets"]
        other = next(k for k, v in h.items() if v["data_offsets"][1] == a[0])  # the tensor just before
        b = h[other]["data_offsets"]
        h[NORM]["data_offsets"] = [b[0], b[0] + (a[1] - a[0])]
    _mutate_offsets(d, f)
    msg = expect(d, st_path(d), "overlap")
    assert NORM in msg or "previous tensor" in msg


def test_sharded_errors(tmp_path):
    d = folder(tmp_path, "asr-sharded")
    idx = os.path.join(d, "model.safetensors.index.json")
    j = json.load(open(idx))
    j["weight_map"][NORM] = "../model.safetensors"
    json.dump(j, open(idx, "w"))
    expect(d, "invalid shard name", NORM)
    j["weight_map"][NORM] = "model-00003-of-00002.safetensors"
    json.dump(j, open(idx, "w"))
    expect(d, "model-00003-of-00002.safetensors")
    shard_of_conv = j["weight_map"][CONV]
    other = [s for s in set(j["weight_map"].values()) if s not in (shard_of_conv, "model-00003-of-00002.safetensors")][0]
    j["weight_map"][NORM] = other if j["weight_map"].get(CONV) else other
    j["weight_map"][CONV] = other  # the index sends conv2d1 to the shard that lacks it
    json.dump(j, open(idx, "w"))
    expect(d, os.path.join(d, other), f"missing tensor '{CONV}'")


def _bf16_rne(x):
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return (b.astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize("file_dtype", ["F32", "F16"])
def test_f32_and_f16_files_convert_exactly(tmp_path, file_dtype):
    d = folder(tmp_path)
    rng = np.random.default_rng(0)
    ref = {}
    orig = all_f64(os.path.join(FIXTURES, "asr", "model.safetensors"))

    def f(ts):
        out = {}
        for k, (dt, shape, raw) in ts.items():
            v = orig[k]
            if k in (CONV, NORM):
                v = v + rng.normal(0, 1e-3, v.shape)  # values that are not bf16-representable
            v = v.astype(np.float32 if file_dtype == "F32" else np.float16)
            ref[k] = v.astype(np.float32)
            out[k] = (file_dtype, shape, v.astype("<f4" if file_dtype == "F32" else "<f2").tobytes())
        return out
    rewrite(d, f)
    with load(d) as m:
        for k in (CONV, NORM, "thinker.model.embed_tokens.weight", "thinker.audio_tower.layers.0.fc2.bias"):
            np.testing.assert_array_equal(m._tensor("asr", k), ref[k], err_msg=k)
    with load(d, dtype="bfloat16") as m:
        np.testing.assert_array_equal(m._tensor("asr", CONV), _bf16_rne(ref[CONV]))  # matrices: bf16 RNE
        np.testing.assert_array_equal(m._tensor("asr", NORM), ref[NORM])             # 1-D: always float32
