"""Aligner forward parity: raw argmax classes identical to transformers 5.17 (rows with a reference top-2
margin below 1e-4 are allowed to differ), and the confidence is the softmax probability of the class."""
import numpy as np
import pytest

from conftest import CASES, npy
from engine_util import features, model, top2_margin

LAYOUTS = ["aligner", "aligner-hf"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_raw_classes_identical(layout, case):
    feat, frames = features(case)
    classes, probs = model(layout)._align_forward(feat, frames, npy(case, "aligner_input_ids.npy"))
    ref = npy(case, "aligner_raw_classes.npy")
    ref_logits = npy(case, "aligner_logits_at_timestamps.npy")
    assert classes.dtype == np.int32 and classes.shape == ref.shape
    differ = np.nonzero(classes != ref)[0]
    near_tie = top2_margin(ref_logits)[differ] < 1e-4
    print(f"{layout}/{case}: {len(differ)} of {len(ref)} classes differ")
    assert near_tie.all(), f"classes differ at rows {differ[~near_tie].tolist()}"
    # confidence = softmax(reference logits)[class], computed here in float64 from the reference
    x = ref_logits.astype(np.float64)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, p[np.arange(len(ref)), ref], rtol=1e-4, atol=1e-7)


def test_asr_model_is_not_an_aligner():
    from qwen3align import InputError

    feat, frames = features("tiny")
    with pytest.raises(InputError, match="aligner"):
        model("asr").aligner_logits(feat, frames, npy("tiny", "aligner_input_ids.npy"))


# ---- end to end: input.wav + transcript -> Alignment (needs the audio and text frontends) ----------

@pytest.fixture(scope="module")
def both():
    import qwen3align as qa
    from conftest import FIXTURES

    with qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu") as m:
        yield m


@pytest.mark.parametrize("case", CASES)
def test_align_end_to_end(both, case):
    from conftest import load_case

    exp = load_case(case)
    res = both.align(f"{exp['_dir']}/input.wav", text=exp["text"], language=exp["language"])
    assert [it.text for it in res] == exp["words"]
    differ = sum((it.start, it.end) != (ref["start"], ref["end"]) for it, ref in zip(res, exp["items"]))
    print(f"{case}: {differ} of {len(res)} items differ from the reference timestamps")
    assert all(0.0 <= it.confidence <= 1.0 for it in res)
    assert res.language == (exp["language"] and exp["language"].capitalize())


def test_align_words_and_language_errors(both):
    from qwen3align import InputError
    from conftest import load_case

    exp = load_case("en_short")
    wav = f"{exp['_dir']}/input.wav"
    res = both.align(wav, words=exp["words"])
    assert [it.text for it in res] == exp["words"]
    with pytest.raises(InputError, match="unsupported language"):
        both.align(wav, text=exp["text"], language="Thai")
    with pytest.raises(InputError, match="not both"):
        both.align(wav, text="a", words=["a"])


def test_align_without_text_uses_detected_language(both, monkeypatch):
    from qwen3align import _pipeline
    from qwen3align.results import Transcription
    from conftest import load_case

    exp = load_case("en_short")
    monkeypatch.setattr(_pipeline, "transcribe", lambda *a, **k: Transcription("hello world", "Thai"))
    with pytest.warns(UserWarning, match="Thai"):
        res = both.align(f"{exp['_dir']}/input.wav")
    assert [it.text for it in res] == ["hello", "world"] and res.warnings and res.language == "Thai"


def test_align_needs_asr_without_text():
    import qwen3align as qa
    from qwen3align import InputError
    from conftest import FIXTURES, load_case

    with qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu") as m:
        with pytest.raises(InputError, match="ASR"):
            m.align(f"{load_case('tiny')['_dir']}/input.wav")


def test_audio_longer_than_the_limit():
    """One forward never exceeds max_audio_seconds: the low-level call refuses naming the limit,
    align() cuts the audio into chunks that each fit (issue 8)."""
    import qwen3align as qa
    from qwen3align import InputError
    from conftest import FIXTURES, load_case, npy

    exp = load_case("en_short")  # 5.5 s
    with qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", max_audio_seconds=3) as m:
        feats = npy("en_short", "input_features.npy")
        ids = npy("en_short", "aligner_input_ids.npy")
        with pytest.raises(InputError, match="max_audio_seconds"):
            m.aligner_logits(feats, exp["mel_frames"], ids)
        res = m.align(f"{exp['_dir']}/input.wav", text=exp["text"])
        assert [it.text for it in res] == exp["words"]
        assert res.chunks is not None and len(res.chunks) >= 2
        for start, end, _, _ in res.chunks:
            assert type(start) is float and type(end) is float
            assert end - start <= 3.0 + 1e-9


def test_more_text_than_the_plan_allows():
    import qwen3align as qa
    from qwen3align import InputError
    from conftest import FIXTURES, load_case

    exp = load_case("en_short")  # 11 words -> 22 timestamps + word tokens
    with qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", max_text_tokens=10) as m:
        with pytest.raises(InputError, match="max_text_tokens"):
            m.align(f"{exp['_dir']}/input.wav", text=exp["text"])


def test_target_seconds_decides_one_forward_or_chunks():
    """A clip no longer than target_seconds (and the plan) goes in one forward; a shorter target cuts it."""
    import numpy as np

    import qwen3align as qa
    from conftest import FIXTURES, load_case, npy

    exp = load_case("en_long")  # 16.4 s
    audio = npy("en_long", "audio16k.npy")
    with qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", max_audio_seconds=30) as m:
        one = m.align((audio, 16000), words=exp["words"], target_seconds=len(audio) / 16000)
        assert one.chunks is None
        assert [(it.text, it.start, it.end) for it in one] == [(i["text"], i["start"], i["end"]) for i in exp["items"]]
        cut = m.align((audio, 16000), words=exp["words"], target_seconds=8)
        assert cut.chunks is not None and len(cut.chunks) >= 2
        assert np.all(np.diff([c[0] for c in cut.chunks]) > 0)
