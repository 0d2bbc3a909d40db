"""Checkpoint loading: every fixture folder (both layouts, single + sharded) loads, and loaded tensors
equal the file's values (independent NumPy reader), tied head = embedding, aligner head its own."""
import functools
import os

import numpy as np
import pytest

from conftest import FIXTURES
from safetensors_util import all_f64, read_header


@functools.lru_cache(maxsize=None)
def _file_values(path):
    return all_f64(path)


def tensor_f32(path, name):
    return _file_values(path)[name]

FOLDERS = {"aligner": "aligner", "aligner-hf": "aligner", "asr": "asr", "asr-hf": "asr", "asr-sharded": "asr"}

HF = [("thinker.audio_tower.proj1.", "model.multi_modal_projector.linear_1."),
      ("thinker.audio_tower.proj2.", "model.multi_modal_projector.linear_2."),
      ("thinker.audio_tower.", "model.audio_tower."), ("thinker.model.", "model.language_model.")]


def file_name(folder, canon, kind):
    if not folder.endswith("-hf"):
        return canon
    if canon == "thinker.lm_head.weight":
        return "score.weight" if kind == "aligner" else "lm_head.weight"
    for a, b in HF:
        if canon.startswith(a):
            return b + canon[len(a):]
    return canon


def file_of(folder, fname):
    d = os.path.join(FIXTURES, folder)
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        import json
        return os.path.join(d, json.load(open(idx))["weight_map"][fname])
    return os.path.join(d, "model.safetensors")


SAMPLE = ["thinker.audio_tower.conv2d1.weight", "thinker.audio_tower.conv2d3.bias",
          "thinker.audio_tower.conv_out.weight", "thinker.audio_tower.layers.1.self_attn.k_proj.bias",
          "thinker.audio_tower.layers.0.fc1.weight", "thinker.audio_tower.ln_post.weight",
          "thinker.audio_tower.proj1.weight", "thinker.audio_tower.proj2.bias",
          "thinker.model.embed_tokens.weight", "thinker.model.layers.1.self_attn.q_norm.weight",
          "thinker.model.layers.0.mlp.down_proj.weight", "thinker.model.norm.weight"]


@pytest.fixture(scope="module")
def loaded():
    from qwen3align._qwen3align import Models
    out = {}
    for folder, kind in FOLDERS.items():
        out[folder] = Models(**{kind: os.path.join(FIXTURES, folder)})
    yield out
    for m in out.values():
        m.close()


@pytest.mark.parametrize("folder", list(FOLDERS))
def test_loaded_tensors_equal_file_values(loaded, folder):
    kind = FOLDERS[folder]
    m = loaded[folder]
    for canon in SAMPLE + (["thinker.lm_head.weight"] if kind == "aligner" else []):
        fname = file_name(folder, canon, kind)
        ref = tensor_f32(file_of(folder, fname), fname)
        got = m._tensor(kind, canon)
        assert got.dtype == np.float32 and got.shape == ref.shape, canon
        np.testing.assert_array_equal(got.astype(np.float64), ref, err_msg=f"{folder}: {canon}")


@pytest.mark.parametrize("folder", list(FOLDERS))
def test_every_tensor_loads(loaded, folder):
    """Each stored tensor (except a tied ASR's stored lm_head) is reachable under its canonical name."""
    kind = FOLDERS[folder]
    d = os.path.join(FIXTURES, folder)
    files = [f for f in os.listdir(d) if f.endswith(".safetensors")]
    inv = {}
    for canon_prefix, hf_prefix in HF:
        inv[hf_prefix] = canon_prefix
    n = 0
    for f in files:
        _, header = read_header(os.path.join(d, f))
        for name in header:
            if name == "__metadata__":
                continue
            canon = name
            if folder.endswith("-hf"):
                if name in ("score.weight", "lm_head.weight"):
                    canon = "thinker.lm_head.weight"
                for hf_prefix, c in inv.items():
                    if name.startswith(hf_prefix):
                        canon = c + name[len(hf_prefix):]
                        break
            t = loaded[folder]._tensor(kind, canon)
            assert list(t.shape) == header[name]["shape"], name
            n += 1
    assert n > 60


def test_tied_head_is_embedding_and_stored_lm_head_skipped(loaded):
    m = loaded["asr-sharded"]
    np.testing.assert_array_equal(m._tensor("asr", "thinker.lm_head.weight"),
                                  m._tensor("asr", "thinker.model.embed_tokens.weight"))
    # the stored lm_head is not counted: sharded and single-file ASR take the same weight bytes
    assert m._memory_report()["regions"] == loaded["asr"]._memory_report()["regions"]


def test_aligner_head_is_its_own(loaded):
    for folder in ("aligner", "aligner-hf"):
        h = loaded[folder]._tensor("aligner", "thinker.lm_head.weight")
        assert h.shape == (5000, 32)
        ref = tensor_f32(file_of(folder, file_name(folder, "thinker.lm_head.weight", "aligner")),
                         file_name(folder, "thinker.lm_head.weight", "aligner"))
        np.testing.assert_array_equal(h, ref)


def test_bfloat16_compute_dtype_is_exact_for_bf16_files():
    from qwen3align._qwen3align import Models
    with_bf16 = Models(asr=os.path.join(FIXTURES, "asr"), dtype="bfloat16")
    try:
        ref = tensor_f32(os.path.join(FIXTURES, "asr", "model.safetensors"), "thinker.model.embed_tokens.weight")
        np.testing.assert_array_equal(with_bf16._tensor("asr", "thinker.model.embed_tokens.weight"), ref)
        rep = with_bf16._memory_report()
        # matrices in bf16 take about half the float32 weight region
        f32 = Models(asr=os.path.join(FIXTURES, "asr"))
        assert rep["regions"]["weights/asr"] < 0.6 * f32._memory_report()["regions"]["weights/asr"]
        f32.close()
    finally:
        with_bf16.close()


def test_unknown_tensor_name_is_input_error(loaded):
    import qwen3align as qa
    with pytest.raises(qa.InputError, match="no tensor named"):
        loaded["asr"]._tensor("asr", "model.audio_tower.conv2d1.weight")
    with pytest.raises(qa.InputError, match="no aligner model"):
        loaded["asr"]._tensor("aligner", "thinker.model.norm.weight")
