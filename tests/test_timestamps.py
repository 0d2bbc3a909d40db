"""repair_timestamps (csrc/frontend/timestamps.c, O(n log n)) against the 300 reference cases and
a transcription of the reference O(n²) algorithm (MODEL_FACTS §7.4) on random inputs."""
import json
import os
import random

import numpy as np
import pytest

import qwen3align as qa
from conftest import FIXTURES

REPAIR_CASES = json.load(open(os.path.join(FIXTURES, "timestamp_repair_cases.json")))


def reference_fix(data):
    """The O(n²) algorithm of MODEL_FACTS §7.4 (transformers _fix_timestamps), written from the spec."""
    n = len(data)
    dp, parent = [1] * n, [-1] * n
    for i in range(1, n):
        for j in range(i):
            if data[j] <= data[i] and dp[j] + 1 > dp[i]:
                dp[i], parent[i] = dp[j] + 1, j
    idx = dp.index(max(dp))
    normal = [False] * n
    while idx != -1:
        normal[idx] = True
        idx = parent[idx]
    out = list(data)
    i = 0
    while i < n:
        if normal[i]:
            i += 1
            continue
        j = i
        while j < n and not normal[j]:
            j += 1
        left = out[i - 1] if i > 0 else None
        right = out[j] if j < n else None
        for k in range(i, j):
            if left is None:
                out[k] = right
            elif right is None:
                out[k] = left
            elif j - i <= 2:
                out[k] = left if (k - (i - 1)) <= (j - k) else right
            else:
                out[k] = left + (right - left) / (j - i + 1) * (k - i + 1)
        i = j
    return [int(v) for v in out]


def test_all_reference_cases():
    bad = [i for i, c in enumerate(REPAIR_CASES) if qa.repair_timestamps(c["raw_ms"]) != c["fixed_ms"]]
    assert not bad, f"{len(bad)} of {len(REPAIR_CASES)} differ, first {bad[:5]}"


def test_transcription_matches_reference_cases():
    assert all(reference_fix(c["raw_ms"]) == c["fixed_ms"] for c in REPAIR_CASES[:50])


@pytest.mark.parametrize("seed", range(6))
def test_random_inputs_match_quadratic_reference(seed):
    rng = random.Random(seed)
    for _ in range(150):
        n = rng.randint(1, 120)
        top = rng.choice([3, 10, 60, 5000])  # small ranges give many ties
        data = [float(rng.randint(0, top) * 80) for _ in range(n)]
        if rng.random() < 0.3:
            data.sort()
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(n)] = float(rng.randint(0, top) * 80)
        assert qa.repair_timestamps(data) == reference_fix(data), data


def test_inputs_and_errors():
    assert qa.repair_timestamps([]) == []
    assert qa.repair_timestamps(np.array([160, 80, 240], dtype=np.float32)) == reference_fix([160.0, 80.0, 240.0])
    assert qa.repair_timestamps((0, 80, 40.5)) == reference_fix([0, 80, 40.5])
    with pytest.raises(qa.InputError, match="value 1"):
        qa.repair_timestamps([0.0, float("nan")])
    with pytest.raises(qa.InputError):
        qa.repair_timestamps([[1.0, 2.0]])
    with pytest.raises(qa.InputError):
        qa.repair_timestamps("abc")


def test_long_sequence_is_fast():
    rng = random.Random(1)
    data = sorted(rng.randint(0, 4999) * 80.0 for _ in range(20000))
    for _ in range(500):
        data[rng.randrange(len(data))] = rng.randint(0, 4999) * 80.0
    out = qa.repair_timestamps(data)
    assert len(out) == len(data) and all(a <= b for a, b in zip(out, out[1:]))


def _finish_per_word(segment_ms, words, classes, probs):
    """align()'s result rule written per word (MODEL_FACTS §7): the reference _pipeline._finish must equal."""
    ms = qa.repair_timestamps([float(c) * segment_ms for c in classes.tolist()])
    return [(w, round(ms[2 * i] / 1000.0, 3), round(ms[2 * i + 1] / 1000.0, 3), float(min(probs[2 * i], probs[2 * i + 1])))
            for i, w in enumerate(words)]


@pytest.mark.parametrize("seed", range(40))
def test_finish_equals_the_per_word_rule(seed):
    """_pipeline._finish (one numpy pass for the seconds and confidences) gives the per-word rule's exact
    floats: monotonic classes (whole milliseconds), shuffled ones (the repair interpolates fractions), NaN
    and tied probabilities (min() keeps the first unless the second is smaller)."""
    from types import SimpleNamespace

    from qwen3align import _pipeline

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    classes = rng.integers(0, 5000, 2 * n).astype(np.int32)
    if seed % 2:
        classes.sort()
    probs = rng.random(2 * n).astype(np.float32)
    if seed % 3 == 0:
        probs[rng.integers(0, 2 * n, 5)] = np.nan
    if seed % 5 == 0:
        probs[1::2] = probs[0::2]
    words = [f"w{i}" for i in range(n)]
    segment_ms = 80 if seed % 4 else 80.0
    models = SimpleNamespace(_config=lambda kind: {"timestamp_segment_ms": segment_ms})
    job = SimpleNamespace(words=words, text="t", language="English", notes=[], x=np.zeros(16000, np.float32))
    got = [(it.text, it.start, it.end, it.confidence) for it in _pipeline._finish(models, job, classes, probs)]
    ref = _finish_per_word(segment_ms, words, classes, probs)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g[:3] == r[:3] and all(type(a) is float for a in g[1:])
        assert g[3] == r[3] or (np.isnan(g[3]) and np.isnan(r[3])), (g, r)
