"""The decoder's K / V rows have the compute dtype (issue #6): BF16 for dtype="bfloat16" (the ASR KV cache and
the aligner's K / V buffers), FP32 for dtype="float32" (the exact parity tests elsewhere). The fixture
checkpoints are BF16 files, so on the CPU a bfloat16 engine has the float32 engine's weights and float32
activations: what differs is only the rounding of K and V to BF16. Bounds: those of the GPU's bf16 test
(tests/test_cuda.py test_bf16_model_runs_and_is_close: ‖Δ‖/‖ref‖ ≤ 1e-1 against the float32 reference);
the tiny random models amplify the rounding (measured 2e-3 .. 3.3e-2), and flip classes only where the
reference's top-2 margin is small."""
import numpy as np
import pytest

from conftest import CASES, FIXTURES, assert_close_rel, npy
from engine_util import features, model, top2_margin

EOS = [151643, 151645]
BF16_TOL = 1e-1


@pytest.mark.parametrize("case", CASES)
def test_bf16_aligner_logits_close_to_reference(case):
    feat, frames = features(case)
    out = model("aligner", "bfloat16").aligner_logits(feat, frames, npy(case, "aligner_input_ids.npy"))
    ref = npy(case, "aligner_logits_at_timestamps.npy")
    assert_close_rel(out, ref, BF16_TOL, f"bf16 aligner {case}")
    differ = np.nonzero(out.argmax(1) != npy(case, "aligner_raw_classes.npy"))[0]
    assert (top2_margin(ref)[differ] < 0.1).all(), f"{case}: classes differ at clear rows {differ.tolist()}"


@pytest.mark.parametrize("case", CASES)
def test_bf16_asr_first_logits_close_to_reference(case):
    feat, frames = features(case)
    _, first = model("asr", "bfloat16").asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), 1, 1)
    assert_close_rel(first, npy(case, "asr_first_logits.npy"), BF16_TOL, f"bf16 asr {case} first logits")


@pytest.mark.parametrize("case", CASES)
def test_bf16_cache_decoding_equals_recomputing_the_prefix(case):
    """Each greedy token decoded through the BF16 cache (one row per step, reading earlier rows back) is the
    argmax of a fresh prefill of prompt + the tokens before it (which stores and reads the same BF16 rows),
    EOS suppressed as min_new_tokens does; only a near-tie could let them differ."""
    m = model("asr", "bfloat16")
    feat, frames = features(case)
    prompt = npy(case, "asr_prompt_ids.npy")
    ids, _ = m.asr_generate(feat, frames, prompt, 12, 12)
    for i in range(len(ids)):
        _, logits = m.asr_generate(feat, frames, np.r_[prompt, ids[:i]].astype(np.int32), 1, 1)
        logits = logits.astype(np.float64)
        logits[EOS] = -np.inf
        if int(np.argmax(logits)) != ids[i]:
            assert top2_margin(logits) < 1e-3, f"{case}: step {i} decoded {ids[i]}, recomputed {np.argmax(logits)}"


def test_bf16_models_hold_half_the_kv_cache():
    """The loaded arena's kv/asr region (the one the engine views) is half the float32 one, exactly."""
    from qwen3align._qwen3align import Models

    kv = {}
    for dtype in ("float32", "bfloat16"):
        m = Models(asr=f"{FIXTURES}/asr", dtype=dtype, max_audio_seconds_asr=30.0, max_new_tokens=64)
        kv[dtype] = m._memory_report()["regions"]["kv/asr"]
        m.close()
    assert kv["float32"] == 2 * kv["bfloat16"] > 0
