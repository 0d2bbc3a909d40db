"""Quiet-point boundary search (csrc/frontend/chunks.c) on synthetic audio.

The reference is the official algorithm as MODEL_FACTS §9 states it (Qwen3-ASR
split_audio_into_chunks), written out below with NumPy; the engine must pick the same cuts.
"""
import numpy as np
import pytest

from qwen3align import _qwen3align as C

SR = 16000
WIN = 1600  # 100 ms


def official_bounds(x, max_len, search, win=WIN):
    """MODEL_FACTS §9, step by step (moving sum over win samples, first argmin)."""
    n = len(x)
    bounds, start = [0], 0
    while n - start > max_len:
        cut = start + max_len
        left, right = max(start, cut - search), min(n, cut + search)
        if right - left <= win:
            b = cut
        else:
            seg = np.abs(x[left:right].astype(np.float64))
            c = np.concatenate([[0.0], np.cumsum(seg)])
            sums = c[win:] - c[:-win]  # = np.convolve(seg, ones(win), "valid")
            w = int(np.argmin(sums))
            b = left + w + int(np.argmin(seg[w:w + win]))
        b = min(max(b, start + 1), n)
        bounds.append(b)
        start = b
    if bounds[-1] != n or len(bounds) == 1:
        bounds.append(n)
    return bounds


def tones_and_silences(seconds, rng, tone=(2.0, 6.0), gap=(0.3, 1.5)):
    """Tone bursts (2-6 s) separated by exact-zero silences (0.3-1.5 s), so every ±5 s search range
    holds a whole silence; returns (x, [(start, end) of each silence])."""
    n = int(seconds * SR)
    x = np.zeros(n, np.float32)
    silences, pos = [], 0
    while pos < n:
        t = int(rng.uniform(*tone) * SR)
        end = min(n, pos + t)
        k = np.arange(end - pos)
        x[pos:end] = 0.5 * np.sin(2 * np.pi * rng.uniform(150, 900) * k / SR) + 0.05 * rng.standard_normal(end - pos)
        pos = end
        g = int(rng.uniform(*gap) * SR)
        if pos < n:
            silences.append((pos, min(n, pos + g)))
        pos += g
    return x, silences


def check_tiling(b, n):
    assert b[0] == 0 and b[-1] == n, f"boundaries {b[:3]}…{b[-3:]} do not span [0, {n}]"
    assert np.all(np.diff(b) > 0) or (n == 0 and len(b) == 2), f"boundaries not increasing: {b}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boundaries_fall_in_silences(seed):
    rng = np.random.default_rng(seed)
    x, silences = tones_and_silences(600, rng)
    max_len, search = 60 * SR, 5 * SR
    b = C._chunk_bounds(x, max_len, search)
    check_tiling(b, len(x))
    assert len(b) > 9, f"600 s in ~60 s chunks gave only {len(b) - 1} chunks"
    for cut in b[1:-1]:
        inside = [s for s in silences if s[0] <= cut < s[1]]
        assert inside, f"cut at {cut / SR:.3f} s is not inside a silence"
    lens = np.diff(b)
    assert lens[:-1].max() <= max_len + search and lens[:-1].min() >= max_len - search, lens / SR
    assert lens[-1] <= max_len + search
    assert list(b) == official_bounds(x, max_len, search)


def test_matches_reference_on_noise():
    rng = np.random.default_rng(7)
    n = 47 * SR + 123
    env = 0.2 + np.abs(np.sin(np.arange(n) / (0.7 * SR)))
    x = (rng.standard_normal(n) * env).astype(np.float32)
    for max_len, search in [(10 * SR, 2 * SR), (7 * SR + 5, SR), (3 * SR, 0), (5 * SR, 3 * SR)]:
        b = C._chunk_bounds(x, max_len, search)
        check_tiling(b, n)
        assert list(b) == official_bounds(x, max_len, search), (max_len, search)


@pytest.mark.parametrize("n,max_len,expect", [(0, 100, [0, 0]), (1, 100, [0, 1]), (SR, SR, [0, SR])])
def test_short_audio_is_one_chunk(n, max_len, expect):
    x = np.ones(n, np.float32)
    assert list(C._chunk_bounds(x, max_len, 10)) == expect


def test_one_sample_over_the_limit_cuts():
    x = np.ones(10 * SR + 1, np.float32)
    x[9 * SR] = 0.0  # the only zero in the searched range
    b = C._chunk_bounds(x, 10 * SR, 2 * SR)
    check_tiling(b, len(x))
    assert len(b) == 3
    assert list(b) == official_bounds(x, 10 * SR, 2 * SR)


def test_small_search_range_cuts_at_target():
    x = np.ones(5000, np.float32)
    b = C._chunk_bounds(x, 1000, 100, window=1600)  # range of 200 samples <= window
    assert list(b) == [0, 1000, 2000, 3000, 4000, 5000]


def test_tiny_chunks_clamp_to_progress():
    # max_len smaller than the search range: the cut could fall before start; it is clamped to start+1.
    x = np.zeros(50, np.float32)
    b = C._chunk_bounds(x, 3, 10, window=2)
    check_tiling(b, 50)
    assert list(b) == official_bounds(x, 3, 10, win=2)


def test_input_errors():
    from qwen3align import InputError

    with pytest.raises(InputError, match="1-D"):
        C._chunk_bounds(np.zeros((10, 2), np.float32), 5, 1)
    with pytest.raises(InputError, match="max_len"):
        C._chunk_bounds(np.zeros(10, np.float32), 0, 1)
    with pytest.raises(InputError, match="window"):
        C._chunk_bounds(np.zeros(10, np.float32), 5, 1, window=0)


def test_float64_input_is_converted():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20 * SR)
    assert list(C._chunk_bounds(x, 6 * SR, SR)) == list(C._chunk_bounds(x.astype(np.float32), 6 * SR, SR))
