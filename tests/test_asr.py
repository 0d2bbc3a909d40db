"""ASR parity: first-position logits and 12 greedy tokens (KV cache decoding) against transformers 5.17,
for the original, -hf and sharded layouts; limits of max_new_tokens / min_new_tokens."""
import numpy as np
import pytest

from conftest import CASES, assert_close_rel, npy
from engine_util import features, model

LAYOUTS = ["asr", "asr-hf", "asr-sharded"]
EOS = (151643, 151645)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_first_logits_and_greedy_ids(layout, case):
    feat, frames = features(case)
    # the reference forced 12 tokens (min_new_tokens = max_new_tokens = 12)
    ids, first = model(layout).asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), 12, 12)
    assert_close_rel(first, npy(case, "asr_first_logits.npy"), 1e-4, f"{layout}/{case} first logits")
    assert ids.dtype == np.int32
    assert ids.tolist() == npy(case, "asr_greedy_ids.npy").tolist()


def test_eos_stops_and_min_new_tokens_suppresses_it():
    feat, frames = features("en_short")
    prompt = npy("en_short", "asr_prompt_ids.npy")
    m = model("asr")
    ids, first = m.asr_generate(feat, frames, prompt, 12, 12)
    # Ask for fewer tokens: a prefix of the same greedy run.
    short, _ = m.asr_generate(feat, frames, prompt, 5)
    assert short.tolist() == ids[: len(short)].tolist()
    assert not set(short.tolist()) & set(EOS)
    if int(np.argmax(first)) in EOS:  # reference picks EOS first: without min_new_tokens nothing comes out
        assert len(short) == 0


def test_generation_limits():
    from qwen3align import InputError

    feat, frames = features("tiny")
    prompt = npy("tiny", "asr_prompt_ids.npy")
    m = model("asr")
    with pytest.raises(InputError, match="min_new_tokens"):
        m.asr_generate(feat, frames, prompt, 4, 5)
    with pytest.raises(InputError, match="max_new_tokens"):
        m.asr_generate(feat, frames, prompt, 0)
    with pytest.raises(InputError, match="max_new_tokens"):
        m.asr_generate(feat, frames, prompt, 10**6)
    with pytest.raises(InputError, match="no asr model"):
        model("aligner").asr_generate(feat, frames, prompt, 4)


@pytest.mark.parametrize("case", CASES)
def test_transcribe_end_to_end(case):
    import qwen3align as qa
    from conftest import FIXTURES, load_case

    exp = load_case(case)
    with qa.load_models(asr=f"{FIXTURES}/asr", device="cpu") as m:
        t = m.transcribe(f"{exp['_dir']}/input.wav", language=exp["asr_language"], context=exp["asr_context"],
                         max_new_tokens=12)
    assert list(t.tokens) == npy(case, "asr_greedy_ids.npy").tolist()[: len(t.tokens)]
    if len(t.tokens) == 12:  # no EOS in the first 12: the reference's decoded text (stripped) comes out
        assert t.text == exp["asr_greedy_text"].strip()
