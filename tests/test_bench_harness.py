"""The GPU benchmark's torch-free pieces: checkpoint name/config mapping and deterministic inputs.

The reference-model builder must write the original layout exactly as the released checkpoints
name their tensors (checked against the fixture pair aligner/ + aligner-hf/, asr/ + asr-hf/), and
flatten the original config.json into the -hf config transformers 5.17 itself wrote.
"""
import json
import os
import struct
import sys

import numpy as np
import pytest

from conftest import FIXTURES, MODELS, REPO

sys.path.insert(0, os.path.join(REPO, "bench"))
import bench_common as bc  # noqa: E402
import make_hf_reference_models as mk  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.isdir(FIXTURES), reason="needs ../shared/fixtures")


def tensor_names(folder):
    names = set()
    for fn in os.listdir(folder):
        if fn.endswith(".safetensors"):
            with open(os.path.join(folder, fn), "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                names |= set(json.loads(f.read(n))) - {"__metadata__"}
    return names


@pytest.mark.parametrize("orig,hf", [("aligner", "aligner-hf"), ("asr", "asr-hf")])
def test_original_names_match_fixture_layout(orig, hf):
    mapped = {mk.to_original_name(n) for n in tensor_names(os.path.join(FIXTURES, hf))}
    assert mapped == tensor_names(os.path.join(FIXTURES, orig))


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="no original name"):
        mk.to_original_name("encoder.layers.0.weight")


@pytest.mark.parametrize("orig,hf", [("aligner", "aligner-hf"), ("asr", "asr-hf")])
def test_flattened_config_matches_transformers_dump(orig, hf):
    with open(os.path.join(FIXTURES, orig, "config.json")) as f:
        mine = mk.hf_config_dict(json.load(f))
    with open(os.path.join(FIXTURES, hf, "config.json")) as f:
        ref = json.load(f)
    for sub in ("audio_config", "text_config"):
        for k, v in mine[sub].items():
            assert ref[sub][k] == v, f"{sub}.{k}: {v!r} vs transformers {ref[sub][k]!r}"
    for k in ("audio_token_id", "tie_word_embeddings", "token_classification_bias"):
        assert mine[k] == ref[k], k
    if orig == "aligner":
        assert mine["num_labels"] == len(ref["id2label"]) == 5000


@pytest.mark.skipif(not os.path.isdir(MODELS), reason="needs ../shared/models")
def test_real_configs_give_the_real_shapes():
    with open(os.path.join(MODELS, "Qwen3-ForcedAligner-0.6B", "config.json")) as f:
        al = mk.hf_config_dict(json.load(f))
    with open(os.path.join(MODELS, "Qwen3-ASR-1.7B", "config.json")) as f:
        asr = mk.hf_config_dict(json.load(f))
    assert (al["num_labels"], al["text_config"]["vocab_size"], al["tie_word_embeddings"]) == (5000, 152064, False)
    assert al["audio_config"]["encoder_layers"] == 24 and al["audio_config"]["output_dim"] == 1024
    assert (asr["text_config"]["hidden_size"], asr["audio_config"]["output_dim"]) == (2048, 2048)
    assert (asr["text_config"]["vocab_size"], asr["tie_word_embeddings"]) == (151936, True)
    assert "num_labels" not in asr


def test_inputs_are_deterministic_and_speech_like():
    a, b = bc.synth_speech(3, 7), bc.synth_speech(3, 7)
    assert a.dtype == np.float32 and a.shape == (48000,)
    assert np.array_equal(a, b) and not np.array_equal(a, bc.synth_speech(3, 8))
    assert abs(float(np.abs(a).max()) - 0.5) < 1e-6 and np.count_nonzero(a) == a.size
    assert bc.words_for(10, 1) == bc.words_for(10, 1) and len(bc.words_for(300, 1)) == 750
    sched = bc.mixed_schedule(100, 300, 60)
    assert len(sched) == 100 and sum(k == "asr" for k, _ in sched) == 25
    assert all(1 <= s <= (300 if k == "align" else 60) for k, s in sched)
