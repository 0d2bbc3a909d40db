"""load_models() + memory_report(): one arena equal to plan(), weight regions equal the tensors'
aligned sizes, zero host allocations after load, OOM refusals with numbers, close()/context manager."""
import os
import pickle
import threading

import pytest

from conftest import FIXTURES
from test_plan import header_weight_bytes
import qwen3align as qa

AL, ASR = os.path.join(FIXTURES, "aligner"), os.path.join(FIXTURES, "asr-sharded")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_report_equals_plan_and_tensor_sizes(dtype):
    kw = dict(aligner=AL, asr=ASR, max_audio_seconds={"aligner": 60, "asr": 120}, max_new_tokens=64, dtype=dtype)
    p = qa.plan(**kw)
    with qa.load_models(**kw) as m:
        r = m.memory_report()
        assert r["arena_bytes"] == p["arena_bytes"] and r["regions"] == p["regions"]
        assert r["limits"] == p["limits"]
        assert r["regions"]["weights/aligner"] == header_weight_bytes("aligner", dtype)
        assert r["regions"]["weights/asr"] == header_weight_bytes("asr-sharded", dtype)
        assert r["regions_used"] == {"weights/aligner": r["regions"]["weights/aligner"],
                                     "weights/asr": r["regions"]["weights/asr"],
                                     "kv/asr": r["regions"]["kv/asr"], "mel/tables": r["regions"]["mel/tables"],
                                     "workspace": 0}  # the KV cache and the log-mel tables are held from load on
        assert r["used_bytes"] == (r["regions"]["weights/aligner"] + r["regions"]["weights/asr"] + r["regions"]["kv/asr"]
                                   + r["regions"]["mel/tables"])
        assert r["allocations_after_load"] == 0
        assert r["host_regions"] == p["host_regions"] == {} and r["host_bytes"] == 0  # CPU: no pinned tables
        assert r["device"] == "cpu" and 0 < r["device_free_bytes"] <= r["device_total_bytes"]
        assert m.plan()["regions"] == p["regions"]
        assert "weights/aligner" in str(r) and "<table>" in r._repr_html_()
        assert m.config("aligner")["kind"] == "aligner" and m.loaded == ("aligner", "asr")


def test_close_context_manager_and_pickle():
    m = qa.load_models(asr=ASR)
    with pytest.raises(TypeError, match="cannot pickle"):
        pickle.dumps(m)
    with m:
        assert not m.closed
    assert m.closed and "closed" in repr(m)
    m.close()  # twice is harmless
    for call in (m.memory_report, m.plan, lambda: m.config("asr"), lambda: m._tensor("asr", "x")):
        with pytest.raises(qa.InputError, match="closed"):
            call()
    with pytest.raises(qa.InputError, match="closed"):
        with m:
            pass


def test_out_of_memory_before_allocating(tmp_path):
    p = qa.plan(aligner=AL, asr=ASR)
    cap = p["arena_bytes"] - 1
    with pytest.raises(qa.OutOfMemoryError) as ei:
        qa.load_models(aligner=AL, asr=ASR, max_device_bytes=cap)
    e = ei.value
    assert isinstance(e, MemoryError)
    assert (e.needed_bytes, e.available_bytes) == (p["arena_bytes"], cap)
    msg = str(e)
    for word in (str(p["arena_bytes"]), str(cap), "max_audio_seconds", "max_new_tokens", "one model", "bfloat16"):
        assert word in msg
    with qa.load_models(aligner=AL, asr=ASR, max_device_bytes=p["arena_bytes"]) as m:  # exactly enough
        assert m.memory_report()["limits"]["max_device_bytes"] == p["arena_bytes"]
    # more than this machine has: the config alone decides, before any tensor is looked at
    (tmp_path / "config.json").write_text(open(os.path.join(FIXTURES, "asr", "config.json")).read()
                                          .replace('"encoder_ffn_dim": 96', '"encoder_ffn_dim": 16777216')
                                          .replace('"d_model": 64', '"d_model": 16384'))
    with pytest.raises(qa.OutOfMemoryError, match="cpu has .* available; lower") as ei:
        qa.load_models(asr=str(tmp_path))
    assert ei.value.needed_bytes > 2**40 > ei.value.available_bytes


def test_device_resolution():
    with qa.load_models(asr=ASR, device="auto") as m:
        assert m.memory_report()["device"] == "cpu" and m.memory_report()["limits"]["dtype"] == "float32"
    if not qa.models._cuda_device_count():
        with pytest.raises(qa.InputError, match="CUDA"):
            qa.load_models(asr=ASR, device="cuda")
        with pytest.raises(qa.InputError, match="CUDA"):
            qa.load_models(asr=ASR, device="cuda:1")
    with pytest.raises(qa.InputError, match="device"):
        qa.load_models(asr=ASR, device="gpu")
    with pytest.raises(qa.InputError, match="at least one"):
        qa.load_models()


def test_threads_share_one_models():
    m = qa.load_models(asr=ASR)
    errors = []

    def work():
        try:
            for _ in range(50):
                m.memory_report()
                m._tensor("asr", "thinker.model.norm.weight")
        except qa.InputError as e:  # closed under our feet is the only acceptable failure
            assert "closed" in str(e)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    m.close()
    for t in ts:
        t.join()
    assert not errors and m.closed


def test_workspace_takes_stay_inside_the_plan():
    with qa.load_models(asr=ASR, max_audio_seconds=10, max_new_tokens=8) as m:
        ws = m.memory_report()["regions"]["workspace"]
        assert m._region_take("workspace", 1000) == 0
        assert m._region_take("workspace", 10) == 1024  # 256-byte alignment
        with pytest.raises(qa.Qwen3AlignError, match=rf"workspace overflow: .*plan has {ws}"):
            m._region_take("workspace", ws)
        r = m.memory_report()
        assert r["regions_used"]["workspace"] == 1280 and r["regions_peak"]["workspace"] == 1280
        m._region_take("workspace", -1)  # per-request reset: used back to 0, peak kept
        assert m._region_take("workspace", ws) == 0
        r = m.memory_report()
        assert r["regions_peak"]["workspace"] == ws and r["allocations_after_load"] == 0
        with pytest.raises(qa.InputError, match="no region"):
            m._region_take("kv/aligner", 1)
