"""The device-state decode loop (backend.h QA_DECODE_STEPS: position, step index and min_new_tokens in
backend memory, token ids written on the device, one copy back per block of steps) gives exactly the
plain loop's ids and first logits. On the CPU it runs with QA_CPU_DECODE=steps (read when the backend
opens); the CUDA graph path replays the same step (tests/test_cuda.py compares it on the GPU)."""
import numpy as np
import pytest

from conftest import FIXTURES, npy
from engine_util import eos_checkpoint, features

BLOCK = 8  # pipeline/asr.c QA_ASR_BLOCK


def _models(monkeypatch, mode, folder, **kw):
    from qwen3align._qwen3align import Models

    if mode == "steps":
        monkeypatch.setenv("QA_CPU_DECODE", "steps")
    else:
        monkeypatch.delenv("QA_CPU_DECODE", raising=False)
    m = Models(asr=folder, max_new_tokens=40, **kw)
    monkeypatch.delenv("QA_CPU_DECODE", raising=False)
    return m


def _same(a, b, what):
    (ia, fa), (ib, fb) = a, b
    assert ia.tolist() == ib.tolist(), f"{what}: ids differ\n{ia.tolist()}\n{ib.tolist()}"
    np.testing.assert_array_equal(fa, fb, err_msg=f"{what}: first logits differ")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_steps_loop_equals_plain_loop(monkeypatch, dtype):
    plain = _models(monkeypatch, "plain", f"{FIXTURES}/asr", dtype=dtype)
    steps = _models(monkeypatch, "steps", f"{FIXTURES}/asr", dtype=dtype)
    for case in ("en_short", "tiny", "zh_mixed"):
        feat, frames = features(case)
        prompt = npy(case, "asr_prompt_ids.npy")
        for max_new, min_new in [(1, 0), (2, 2), (BLOCK, 0), (BLOCK + 3, 5), (2 * BLOCK + 1, 0), (40, 40)]:
            a = plain.asr_generate(feat, frames, prompt, max_new, min_new)
            b = steps.asr_generate(feat, frames, prompt, max_new, min_new)
            assert len(a[0]) == max_new  # the fixture never picks EOS by itself
            _same(a, b, f"{dtype}/{case} max_new={max_new} min_new={min_new}")


def test_steps_loop_stops_at_an_eos_inside_a_block(monkeypatch, tmp_path):
    feat, frames = features("en_short")
    prompt = npy("en_short", "asr_prompt_ids.npy")
    ref = _models(monkeypatch, "plain", f"{FIXTURES}/asr").asr_generate(feat, frames, prompt, 40, 0)[0]
    folder = eos_checkpoint(str(tmp_path / "asr-eos"), ref[3])
    plain = _models(monkeypatch, "plain", folder)
    steps = _models(monkeypatch, "steps", folder)
    lengths = set()
    for min_new in (0, 1, 5, 9, 12, 17):
        a = plain.asr_generate(feat, frames, prompt, 40, min_new)
        b = steps.asr_generate(feat, frames, prompt, 40, min_new)
        _same(a, b, f"eos min_new={min_new}")
        assert min_new <= len(a[0]) < 40 and a[0].tolist() == ref[:len(a[0])].tolist()
        lengths.add(len(a[0]))
    assert any(n % BLOCK for n in lengths), lengths  # an EOS in the middle of a block was seen
