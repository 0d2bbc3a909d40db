"""config.json of both layouts (csrc/weights/config.c): kinds, layouts, numbers, documented -hf
defaults, presets equal to the released config.json files, and errors naming file and key."""
import json
import os

import pytest

from conftest import FIXTURES, MODELS
from qwen3align import _qwen3align as q
import qwen3align as qa

KINDS = {"aligner": ("aligner", "original"), "aligner-hf": ("aligner", "hf"), "asr": ("asr", "original"),
         "asr-hf": ("asr", "hf"), "asr-sharded": ("asr", "original")}


def released(name):
    return json.load(open(os.path.join(MODELS, name, "config.json")))


@pytest.mark.parametrize("folder", list(KINDS))
def test_fixture_configs(folder):
    c = q._config(os.path.join(FIXTURES, folder))
    kind, layout = KINDS[folder]
    dims = json.load(open(os.path.join(FIXTURES, "index.json")))["dims"]
    assert (c["kind"], c["layout"], c["name"]) == (kind, layout, folder)
    a, t = c["audio"], c["text"]
    assert (a["d_model"], a["layers"], a["heads"], a["ffn"], a["down_hidden"]) == (
        dims["d_model"], dims["enc_layers"], dims["enc_heads"], dims["enc_ffn"], dims["down"])
    assert (t["hidden"], t["layers"], t["heads"], t["kv_heads"], t["head_dim"], t["inter"]) == (
        dims["hidden"], dims["layers"], dims["heads"], dims["kv"], dims["head_dim"], dims["inter"])
    assert a["output_dim"] == t["hidden"] and t["vocab"] == 152064 and t["rope_theta"] == 1e6
    assert t["tie_word_embeddings"] == (kind == "asr")
    assert c["classify_num"] == (5000 if kind == "aligner" else 0)
    assert (c["audio_token_id"], c["audio_start_token_id"], c["audio_end_token_id"]) == (151676, 151669, 151670)
    assert c["eos_token_ids"] == (151643, 151645)
    if kind == "aligner":
        assert c["timestamp_token_id"] == 151705 and c["timestamp_segment_ms"] == 80


def test_languages():
    assert q._config(os.path.join(FIXTURES, "asr"))["languages"] == ["Chinese", "English", "Cantonese"]
    hf = q._config(os.path.join(FIXTURES, "aligner-hf"))["languages"]  # -hf: the 11 of MODEL_FACTS §10
    assert hf == released("Qwen3-ForcedAligner-0.6B")["support_languages"]
    assert len(q._config(os.path.join(FIXTURES, "asr-hf"))["languages"]) == 30


@pytest.mark.parametrize("name", ["Qwen3-ForcedAligner-0.6B", "Qwen3-ASR-1.7B", "Qwen3-ASR-0.6B"])
def test_presets_equal_released_configs(name):
    preset, folder = q._config(name), q._config(os.path.join(MODELS, name))  # config-only folder loads too
    assert preset["name"] == name and folder["name"] == name
    for k in preset:
        if k != "name":
            assert preset[k] == folder[k], k
    r = released(name)
    th = r["thinker_config"]
    assert preset["text"]["vocab"] == th["text_config"]["vocab_size"]
    assert preset["text"]["max_positions"] == th["text_config"]["max_position_embeddings"]
    assert preset["audio"]["layers"] == th["audio_config"]["encoder_layers"]
    assert preset["languages"] == r["support_languages"]


def edit(tmp_path, folder, fn):
    d = tmp_path / folder
    i = 0
    while d.exists():
        i += 1
        d = tmp_path / f"{folder}{i}"
    d.mkdir()
    c = json.load(open(os.path.join(FIXTURES, folder, "config.json")))
    fn(c)
    (d / "config.json").write_text(json.dumps(c))
    return str(d)


@pytest.mark.parametrize("folder,path,key", [
    ("aligner", ("thinker_config", "text_config"), "hidden_size"),
    ("aligner", ("thinker_config", "audio_config"), "encoder_layers"),
    ("aligner", ("thinker_config",), "classify_num"),
    ("aligner-hf", ("text_config",), "num_key_value_heads"),
    ("asr-hf", ("audio_config",), "d_model"),
])
def test_missing_key_names_file_and_key(tmp_path, folder, path, key):
    def drop(c):
        o = c
        for p in path:
            o = o[p]
        del o[key]
    d = edit(tmp_path, folder, drop)
    if key == "classify_num":  # without classify_num the model_type still says aligner
        with pytest.raises(qa.ModelLoadError, match="classify_num"):
            q._config(d)
        return
    with pytest.raises(qa.ModelLoadError, match=rf"config\.json: key '{'.'.join(path)}.{key}' is missing"):
        q._config(d)


def test_unknown_model_types(tmp_path):
    d = edit(tmp_path, "asr", lambda c: c.update(model_type="whisper"))
    with pytest.raises(qa.ModelLoadError, match="unknown model_type 'whisper'"):
        q._config(d)
    d2 = edit(tmp_path, "aligner", lambda c: c["thinker_config"].update(model_type="qwen2_audio"))
    with pytest.raises(qa.ModelLoadError, match="unknown model_type 'qwen2_audio'"):
        q._config(d2)
    d3 = edit(tmp_path, "asr-hf", lambda c: c.update(architectures=["Qwen3ForCausalLM"]))
    with pytest.raises(qa.ModelLoadError, match="architectures"):
        q._config(d3)


def test_absurd_values(tmp_path):
    d = edit(tmp_path, "asr", lambda c: c["thinker_config"]["text_config"].update(num_key_value_heads=3))
    with pytest.raises(qa.ModelLoadError, match="not a multiple of num_key_value_heads"):
        q._config(d)
    d = edit(tmp_path, "aligner-hf", lambda c: c["text_config"].update(hidden_size=-4))
    with pytest.raises(qa.ModelLoadError, match="hidden_size' = -4 is out of range"):
        q._config(d)
    d = edit(tmp_path, "aligner-hf", lambda c: c["audio_config"].update(output_dim=48))
    with pytest.raises(qa.ModelLoadError, match="output_dim 48 differs from text hidden_size 32"):
        q._config(d)


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(qa.ModelLoadError, match="does not exist"):
        q._config(str(tmp_path / "nope"))
    with pytest.raises(qa.ModelLoadError, match="missing config.json"):
        q._config(str(tmp_path))
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(qa.ModelLoadError, match=r"config\.json: JSON error at byte 1"):
        q._config(str(tmp_path))
    with pytest.raises(qa.ModelLoadError, match="not a preset name"):
        q._config("Qwen3-ASR-9B")
