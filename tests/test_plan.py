"""plan(): sizes from configs alone (presets, config-only folders, checkpoints), checked against
independent numbers: MODEL_FACTS parameter counts, the fixtures' safetensors headers, the KV formula,
the audio token count table."""
import math
import os

import pytest

from conftest import FIXTURES, MODELS
from safetensors_util import read_header
import qwen3align as qa

ALIGN = 256
PARAMS = {"Qwen3-ForcedAligner-0.6B": 917_728_896, "Qwen3-ASR-1.7B": 2_038_052_480, "Qwen3-ASR-0.6B": 782_426_112}
TENSORS = {"Qwen3-ForcedAligner-0.6B": 708, "Qwen3-ASR-1.7B": 708, "Qwen3-ASR-0.6B": 612}  # MODEL_FACTS §2.1


def aligned(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def header_weight_bytes(folder, dtype):
    """Independent: sum of aligned tensor sizes from the files' headers (tied lm_head skipped)."""
    d = os.path.join(FIXTURES, folder)
    total = 0
    for f in sorted(os.listdir(d)):
        if not f.endswith(".safetensors"):
            continue
        for name, info in read_header(os.path.join(d, f))[1].items():
            if name == "__metadata__" or (folder.startswith("asr") and name in ("thinker.lm_head.weight", "lm_head.weight")):
                continue
            size = 4 if dtype == "float32" or len(info["shape"]) < 2 else 2
            total += aligned(math.prod(info["shape"]) * size)
    return total


@pytest.mark.parametrize("name", list(PARAMS))
def test_preset_weight_bytes_match_parameter_counts(name):
    kind = "aligner" if "Aligner" in name else "asr"
    for dtype, elem in (("float32", 4), ("bfloat16", 2)):
        p = qa.plan(**{kind: name}, dtype=dtype, device="cpu")
        w = p["regions"][f"weights/{kind}"]
        assert p["models"][kind]["weight_bytes"] == w
        if dtype == "float32":
            assert 0 <= w - 4 * PARAMS[name] < ALIGN * TENSORS[name]
        else:  # 1-D tensors stay float32: bounded by the small share of biases/norms
            assert elem * PARAMS[name] <= w < elem * PARAMS[name] * 1.01 + ALIGN * TENSORS[name]


def test_both_presets_with_no_files():
    p = qa.plan(aligner="Qwen3-ForcedAligner-0.6B", asr="Qwen3-ASR-1.7B")
    assert list(p["regions"]) == ["weights/aligner", "weights/asr", "kv/asr", "mel/tables", "workspace"]
    # the log-mel DFT matrix (FP64 402 x 400) and Slaney filters (FP32 128 x 201), backend.h
    assert p["regions"]["mel/tables"] == aligned(402 * 400 * 8 + 128 * 201 * 4)
    assert p["arena_bytes"] == sum(p["regions"].values())
    assert all(v % ALIGN == 0 for v in p["regions"].values())
    assert p["regions"]["workspace"] == max(m["workspace_bytes"] for m in p["models"].values())
    assert "weights/asr" in str(p) and "<table>" in p._repr_html_()
    assert p.fits(p["arena_bytes"]) == [("budget", p["arena_bytes"], True)]
    assert p.fits("1GiB")[0][2] is False
    assert p.fits()[0][0] == "cpu"


@pytest.mark.parametrize("name", list(PARAMS))
def test_config_only_folder_equals_preset(name):
    kind = "aligner" if "Aligner" in name else "asr"
    a = qa.plan(**{kind: name})
    b = qa.plan(**{kind: os.path.join(MODELS, name)})
    assert a["regions"] == b["regions"] and a["arena_bytes"] == b["arena_bytes"]


@pytest.mark.parametrize("folder", ["aligner", "aligner-hf", "asr", "asr-hf", "asr-sharded"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fixture_weight_bytes_equal_header_sizes(folder, dtype):
    kind = "aligner" if folder.startswith("aligner") else "asr"
    p = qa.plan(**{kind: os.path.join(FIXTURES, folder)}, dtype=dtype, device="cpu")
    assert p["regions"][f"weights/{kind}"] == header_weight_bytes(folder, dtype)


@pytest.mark.parametrize("seconds,tokens", [(0.3, 7), (0.5, 7), (1, 13), (8, 104), (15, 195), (30, 390),
                                            (60, 780), (180, 2340), (185, 2405), (300, 3900), (1200, 15600)])
def test_audio_token_counts(seconds, tokens):
    p = qa.plan(asr="Qwen3-ASR-0.6B", max_audio_seconds=seconds, max_new_tokens=16)
    assert p["models"]["asr"]["audio_tokens"] == tokens
    assert p["models"]["asr"]["mel_frames"] == max(int(round(seconds * 16000)), 8000) // 160


# the KV cache has the compute dtype (issue #6): 28 layers x K, V x 8 kv heads x 128 x 4 or 2 bytes a position
@pytest.mark.parametrize("dtype,per_token", [("float32", 28 * 2 * 8 * 128 * 4), ("bfloat16", 28 * 2 * 8 * 128 * 2)])
def test_kv_cache_bytes(dtype, per_token):
    p = qa.plan(asr="Qwen3-ASR-1.7B", max_audio_seconds=60, max_new_tokens=500, dtype=dtype, device="cpu")
    m = p["models"]["asr"]
    assert m["seq_tokens"] == 15 + 16 + 780 + 256  # fixed prompt + language + audio + context
    assert p["regions"]["kv/asr"] == aligned(per_token * (m["seq_tokens"] + 500)) == m["kv_bytes"]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_bf16_kv_cache_is_half_the_float32_one(device):
    """At the issue-6 limits (300 s, 1024 new tokens) the FP32 cache of the 1.7B ASR is ~1.1 GiB; BF16 halves it
    exactly, on every device (the region is a multiple of 256 bytes either way)."""
    kw = dict(asr="Qwen3-ASR-1.7B", max_audio_seconds=300, max_new_tokens=1024, device=device)
    f32, bf16 = qa.plan(dtype="float32", **kw), qa.plan(dtype="bfloat16", **kw)
    assert f32["regions"]["kv/asr"] == 2 * bf16["regions"]["kv/asr"]
    assert f32["models"]["asr"]["kv_bytes"] == 2 * bf16["models"]["asr"]["kv_bytes"]
    assert f32["regions"]["kv/asr"] > 1100 * 2**20


def test_aligner_text_tokens_default_and_limits():
    p = qa.plan(aligner="Qwen3-ForcedAligner-0.6B")
    m = p["models"]["aligner"]
    assert (m["text_tokens"], m["seq_tokens"]) == (8192 - 2 - 3900, 8192)
    assert p["limits"]["max_text_tokens"] == 8192 - 2 - 3900
    # the fixture aligner allows 65536 positions: the documented cap 20/s + 64 applies
    f = qa.plan(aligner=os.path.join(FIXTURES, "aligner"), max_audio_seconds=30)["models"]["aligner"]
    assert f["text_tokens"] == 20 * 30 + 64
    g = qa.plan(aligner="Qwen3-ForcedAligner-0.6B", max_audio_seconds=30, max_text_tokens=100)
    assert g["models"]["aligner"]["seq_tokens"] == 2 + 390 + 100
    assert qa.plan(aligner="Qwen3-ForcedAligner-0.6B", max_audio_seconds=400)["models"]["aligner"]["text_tokens"] == 2990


def test_per_model_seconds_and_dtype_auto():
    p = qa.plan(aligner="Qwen3-ForcedAligner-0.6B", asr="Qwen3-ASR-0.6B",
                max_audio_seconds={"aligner": 180, "asr": 1200})
    assert p["limits"]["max_audio_seconds"] == {"aligner": 180.0, "asr": 1200.0}
    assert (p["models"]["aligner"]["audio_tokens"], p["models"]["asr"]["audio_tokens"]) == (2340, 15600)
    assert p["limits"]["dtype"] == "float32" and p["device"] == "cpu"
    g = qa.plan(asr="Qwen3-ASR-1.7B", device="cuda")  # planning for a GPU works without one
    assert g["limits"]["dtype"] == "bfloat16" and g["device"] == "cuda:0"


@pytest.mark.parametrize("kw,match", [
    (dict(aligner="Qwen3-ForcedAligner-0.6B", max_audio_seconds=401), "5000 classes x 80 ms"),
    (dict(aligner="Qwen3-ForcedAligner-0.6B", max_text_tokens=5000), "max_text_tokens 5000 does not fit"),
    (dict(asr="Qwen3-ASR-1.7B", max_audio_seconds=6000), "the ASR model allows 65536"),
    (dict(asr="Qwen3-ASR-1.7B", max_audio_seconds=0), "positive"),
    (dict(asr="Qwen3-ASR-1.7B", max_audio_seconds=True), "positive"),
    (dict(asr="Qwen3-ASR-1.7B", max_audio_seconds={"asr": 10, "encoder": 3}), "keys"),
    (dict(asr="Qwen3-ASR-1.7B", max_new_tokens=0), "max_new_tokens"),
    (dict(asr="Qwen3-ASR-1.7B", dtype="float16"), "dtype"),
    (dict(asr="Qwen3-ASR-1.7B", device="tpu"), "device"),
    (dict(asr="Qwen3-ForcedAligner-0.6B"), "passed as asr="),
    (dict(), "at least one"),
])
def test_bad_limits_raise_input_error(kw, match):
    with pytest.raises(qa.InputError, match=match):
        qa.plan(**kw)


def test_unknown_preset_is_model_load_error():
    with pytest.raises(qa.ModelLoadError, match="not a preset name"):
        qa.plan(asr="Qwen3-ASR-4B")


def test_parse_bytes():
    from qwen3align.memory import parse_bytes
    assert parse_bytes("8GiB") == 8 * 2**30 and parse_bytes("512 MB") == 512 * 10**6 and parse_bytes(1e9) == 10**9
    with pytest.raises(qa.InputError):
        parse_bytes("8 parsecs")


def test_plan_for_cuda_uses_the_cuda_backend_scratch():
    """plan(device='cuda') is the plan load_models makes there: the CUDA scratch (cuBLAS workspace,
    BF16 staging) replaces the CPU backend's, so the workspace region and the arena differ."""
    import qwen3align as qa

    kw = dict(aligner="Qwen3-ForcedAligner-0.6B", asr="Qwen3-ASR-1.7B", dtype="bfloat16")
    cpu, cuda = qa.plan(device="cpu", **kw), qa.plan(device="cuda", **kw)
    table = cuda["host_bytes"]  # the aligner's embedding table, pinned host memory on CUDA (issue #6)
    assert cpu["regions"]["weights/aligner"] == cuda["regions"]["weights/aligner"] + table
    assert cpu["regions"]["weights/asr"] == cuda["regions"]["weights/asr"]
    assert cpu["regions"]["kv/asr"] == cuda["regions"]["kv/asr"]
    assert cuda["regions"]["workspace"] != cpu["regions"]["workspace"]
    assert cuda["arena_bytes"] - cpu["arena_bytes"] == (cuda["regions"]["workspace"] - cpu["regions"]["workspace"]
                                                       - table)


@pytest.mark.parametrize("dtype,elem", [("bfloat16", 2), ("float32", 4)])
def test_cuda_plan_keeps_the_aligner_embedding_table_in_pinned_host_memory(dtype, elem):
    """Issue #6: on CUDA the aligner's embedding table (152064 x 1024, only gathered per request) leaves the
    arena for pinned host memory, listed as its own line; the ASR's (its tied head) stays; the CPU is unchanged."""
    table = aligned(152064 * 1024 * elem)
    kw = dict(aligner="Qwen3-ForcedAligner-0.6B", asr="Qwen3-ASR-1.7B", dtype=dtype)
    cpu, cuda = qa.plan(device="cpu", **kw), qa.plan(device="cuda", **kw)
    assert cuda["host_regions"] == {"host/aligner": table} and cuda["host_bytes"] == table
    assert cpu["host_regions"] == {} and cpu["host_bytes"] == 0
    assert cuda["models"]["aligner"]["host_bytes"] == table and cuda["models"]["asr"]["host_bytes"] == 0
    assert cuda["models"]["aligner"]["weight_bytes"] == cpu["models"]["aligner"]["weight_bytes"] - table
    assert cuda["regions"]["weights/aligner"] == cuda["models"]["aligner"]["weight_bytes"]
    assert cuda["arena_bytes"] == sum(cuda["regions"].values())
    assert "host/aligner" in str(cuda) and "not in the arena" in str(cuda) and "host/aligner" in cuda._repr_html_()
    assert "host/" not in str(cpu)
    asr_only = qa.plan(asr="Qwen3-ASR-1.7B", device="cuda", dtype=dtype)
    assert asr_only["host_bytes"] == 0 and asr_only["host_regions"] == {}


def test_cuda_embed_device_switch_keeps_the_table_in_the_arena(monkeypatch):
    """QA_CUDA_EMBED=device (the GPU tests' comparison path): the plan of the old layout, table in the arena."""
    kw = dict(aligner="Qwen3-ForcedAligner-0.6B", dtype="bfloat16", device="cuda")
    host = qa.plan(**kw)
    monkeypatch.setenv("QA_CUDA_EMBED", "device")
    dev = qa.plan(**kw)
    assert dev["host_bytes"] == 0 and dev["host_regions"] == {}
    assert dev["regions"]["weights/aligner"] == host["regions"]["weights/aligner"] + host["host_bytes"]
