"""qwen3align.log_mel vs the reference features (transformers 5.17 Qwen3ASRFeatureExtractor).

Every case: max abs error <= 2e-4 against input_features.npy computed from audio16k.npy, and
valid_frames == expected.json mel_frames. Speed is measured in bench/bench_mel.py, not here.
"""
import numpy as np
import pytest

import qwen3align as qa
from conftest import CASES, load_case, npy


@pytest.mark.parametrize("case", CASES)
def test_log_mel_matches_reference(case):
    audio = npy(case, "audio16k.npy")
    ref = npy(case, "input_features.npy")
    feats, valid = qa.log_mel(audio)
    assert feats.dtype == np.float32 and feats.flags.c_contiguous
    assert feats.shape == ref.shape, f"{case}: shape {feats.shape}, reference {ref.shape}"
    assert valid == load_case(case)["mel_frames"]
    err = np.abs(feats.astype(np.float64) - ref)
    print(f"{case}: {len(audio)} samples, {valid} frames, max abs error {err.max():.2e}")
    assert err.max() <= 2e-4, f"{case}: max abs error {err.max():.3e} at {np.unravel_index(err.argmax(), err.shape)}"
    assert np.all(feats[:, valid:] == 0.0), "padding columns must be 0.0"


@pytest.mark.parametrize("n,valid,padded", [
    (0, 50, 100), (1, 50, 100), (7999, 50, 100), (8000, 50, 100), (16159, 100, 100),
    (16160, 101, 200), (160 * 1000, 1000, 1000), (480000, 3000, 3000),
])
def test_frame_counts(n, valid, padded):
    feats, v = qa.log_mel(np.zeros(n, np.float32))
    assert v == valid and feats.shape == (128, padded)


def test_silence_is_minus_one_and_a_half():
    feats, valid = qa.log_mel(np.zeros(12345, np.float32))
    assert np.all(feats[:, :valid] == -1.5) and np.all(feats[:, valid:] == 0.0)


def test_short_clip_is_zero_padded_to_8000_samples():
    x = np.random.default_rng(1).standard_normal(3000).astype(np.float32) * 0.1
    padded = np.concatenate([x, np.zeros(5000, np.float32)])
    np.testing.assert_array_equal(qa.log_mel(x)[0], qa.log_mel(padded)[0])


def test_dynamic_range_floor_is_max_minus_8():
    t = np.arange(32000) / 16000.0
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    feats, valid = qa.log_mel(x)
    v = feats[:, :valid]
    assert np.isclose(v.min(), v.max() - 2.0, atol=1e-6)  # floor (max - 8) after (x + 4) / 4


def test_input_conversion_and_errors():
    x = np.random.default_rng(2).standard_normal(9000) * 0.1
    np.testing.assert_array_equal(qa.log_mel(x)[0], qa.log_mel(x.astype(np.float32))[0])
    np.testing.assert_array_equal(qa.log_mel(x[::-1].astype(np.float32)[::-1])[0], qa.log_mel(x.astype(np.float32))[0])
    with pytest.raises(qa.InputError, match="1-D"):
        qa.log_mel(np.zeros((2, 9000), np.float32))
    bad = np.zeros(9000, np.float32)
    bad[3] = np.nan
    with pytest.raises(qa.AudioError, match="sample 3"):
        qa.log_mel(bad)
