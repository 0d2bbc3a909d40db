"""The engine's log-mel (backend.h log_mel, issue #5) on the CPU backend, and the engine entries that
start from samples: Models.mel_features equals qwen3align.log_mel bit for bit (the CPU op runs
frontend/mel.c), and every *_from_audio entry equals its features twin exactly. The CUDA op is
checked against these same CPU features in tests/test_cuda.py (test_cuda_mel_*).
"""
import numpy as np
import pytest

import qwen3align as qa
from conftest import CASES, FIXTURES, load_case, npy


@pytest.fixture(scope="module")
def both():
    from qwen3align._qwen3align import Models

    return Models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", max_audio_seconds_aligner=70.0,
                  max_audio_seconds_asr=70.0)


def _random(seconds, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


def _host(x):
    feats, valid = qa.log_mel(x)
    return feats[:, :valid], valid


AUDIO = {c: (lambda c=c: npy(c, "audio16k.npy")) for c in CASES}
AUDIO.update({"random_1s": lambda: _random(1.0), "random_60s": lambda: _random(60.0, 1),
              "short_3000": lambda: _random(3000 / 16000, 2), "silence": lambda: np.zeros(20000, np.float32),
              "odd_length": lambda: _random(16159 / 16000, 3)})


@pytest.mark.parametrize("name", list(AUDIO))
def test_mel_features_equal_frontend_log_mel(both, name):
    x = AUDIO[name]()
    ref, valid = _host(x)
    out = both.mel_features(x)
    assert out.dtype == np.float32 and out.shape == (128, valid)
    print(f"{name}: {len(x)} samples, {valid} frames, max abs diff {np.abs(out - ref).max():.1e}")
    np.testing.assert_array_equal(out, ref)


def test_mel_features_input_conversion_and_errors(both):
    x = _random(0.7, 4).astype(np.float64)
    np.testing.assert_array_equal(both.mel_features(x), _host(x.astype(np.float32))[0])
    with pytest.raises(qa.InputError, match="1-D"):
        both.mel_features(np.zeros((2, 9000), np.float32))
    with pytest.raises(qa.InputError, match="real-valued"):
        both.mel_features(np.zeros(9000, np.complex64))
    bad = np.zeros(9000, np.float32)
    bad[3] = np.inf
    with pytest.raises(qa.AudioError, match="sample 3"):
        both.mel_features(bad)
    with pytest.raises(qa.InputError, match="max_audio_seconds"):
        both.mel_features(np.zeros(71 * 16000, np.float32))


@pytest.mark.parametrize("case", CASES)
def test_from_audio_entries_equal_feature_entries(both, case):
    x = npy(case, "audio16k.npy")
    feats, valid = _host(x)
    ids = npy(case, "aligner_input_ids.npy")
    np.testing.assert_array_equal(both.aligner_logits_from_audio(x, ids), both.aligner_logits(feats, valid, ids))
    for a, b in zip(both._align_forward_audio(x, ids), both._align_forward(feats, valid, ids)):
        np.testing.assert_array_equal(a, b)
    for kind in ("aligner", "asr"):
        np.testing.assert_array_equal(both.audio_embeddings_from_audio(x, model=kind),
                                      both.audio_embeddings(feats, valid, model=kind))
    prompt = npy(case, "asr_prompt_ids.npy")
    got, ref = both.asr_generate_from_audio(x, prompt, 8, 8), both.asr_generate(feats, valid, prompt, 8, 8)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert both._memory_report()["allocations_after_load"] == 0


def test_from_audio_prompt_must_match_the_samples(both):
    ids = npy("tiny", "aligner_input_ids.npy")  # audio tokens of 50 frames (tiny is under 8000 samples)
    with pytest.raises(qa.InputError, match="audio_pad"):
        both.aligner_logits_from_audio(_random(2.0), ids)


def test_public_align_and_transcribe_same_through_the_device_path(monkeypatch):
    """The CUDA pipeline (samples to the engine) run on the CPU backend gives exactly the results of
    the host-features pipeline: same prompts, same frames, same numbers."""
    from qwen3align import _pipeline

    with qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu", max_audio_seconds=30,
                        max_new_tokens=8) as m:
        for case in CASES:
            exp, x = load_case(case), npy(case, "audio16k.npy")
            host_a = m.align((x, 16000), words=exp["words"], language=exp["language"])
            host_t = m.transcribe((x, 16000), max_new_tokens=8)
            monkeypatch.setattr(_pipeline, "_device_mel", lambda models: True)
            dev_a = m.align((x, 16000), words=exp["words"], language=exp["language"])
            dev_t = m.transcribe((x, 16000), max_new_tokens=8)
            monkeypatch.undo()
            assert [(i.text, i.start, i.end, i.confidence) for i in dev_a] == \
                   [(i.text, i.start, i.end, i.confidence) for i in host_a]
            assert (dev_t.text, dev_t.language, dev_t.tokens) == (host_t.text, host_t.language, host_t.tokens)
        assert m.memory_report()["allocations_after_load"] == 0


def test_mel_frames_helper_matches_the_frontend():
    from qwen3align._pipeline import _mel_frames

    for n in (0, 1, 7999, 8000, 16159, 16160, 480000):
        assert _mel_frames(n) == qa.log_mel(np.zeros(n, np.float32))[1]
