"""Splitting a transcript among audio chunks (qwen3align/textsplit.py) on synthetic ASR outputs."""
import time

import numpy as np
import pytest

from qwen3align.textsplit import align_words, normalize_word, split_by_aligner, split_by_asr


def levenshtein(a, b):
    """Textbook O(nm) edit distance (the reference for align_words' cost)."""
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = cur
    return prev[-1]


def cost_of(pair, ref, hyp):
    """Edit cost implied by a pairing: unpaired words on both sides plus substitutions; also checks
    that the pairing is strictly increasing (a valid alignment)."""
    js = pair[pair >= 0]
    assert np.all(np.diff(js) > 0), "pairing is not monotone"
    subs = sum(normalize_word(ref[i]) != normalize_word(hyp[j]) or not normalize_word(ref[i])
               for i, j in enumerate(pair) if j >= 0)
    return (len(ref) - js.size) + (len(hyp) - js.size) + subs


def test_normalize_word():
    assert normalize_word("Hello,") == "hello"
    assert normalize_word("DON'T") == "dont"
    assert normalize_word("Straße") == "strasse"
    assert normalize_word("42%") == "42"
    assert normalize_word("—") == ""
    assert normalize_word("你好") == "你好"


@pytest.mark.parametrize("seed", range(6))
def test_align_words_is_minimal(seed):
    rng = np.random.default_rng(seed)
    vocab = [f"w{k}" for k in range(6)]
    ref = list(rng.choice(vocab, rng.integers(0, 40)))
    hyp = list(rng.choice(vocab, rng.integers(0, 40)))
    pair = align_words(ref, hyp)
    assert cost_of(pair, ref, hyp) == levenshtein([normalize_word(w) for w in ref],
                                                  [normalize_word(w) for w in hyp])


def test_align_words_band_finds_the_optimum_when_inside():
    rng = np.random.default_rng(1)
    ref = [f"w{k}" for k in rng.integers(0, 50, 300)]
    hyp = list(ref)
    for k in sorted(rng.choice(300, 20, replace=False))[::-1]:
        op = k % 3
        if op == 0:
            del hyp[k]
        elif op == 1:
            hyp.insert(k, "extra")
        else:
            hyp[k] = "sub"
    full = align_words(ref, hyp)
    banded = align_words(ref, hyp, band=40)
    assert cost_of(banded, ref, hyp) == cost_of(full, ref, hyp) == levenshtein(ref, hyp)


def words(n, prefix="w"):
    return [f"{prefix}{i}" for i in range(n)]


def test_perfect_asr():
    t = words(30)
    assert split_by_asr(t, [t[:10], t[10:18], t[18:]], [60, 60, 60]) == [0, 10, 18, 30]


def test_case_and_punctuation_do_not_matter():
    t = ["Hello,", "world.", "How", "are", "you?", "Fine!"]
    asr = [["hello", "World"], ["how", "ARE", "you"], ["fine"]]
    assert split_by_asr(t, asr, [1, 1, 1]) == [0, 2, 5, 6]


def test_insertions_at_chunk_edges():
    t = words(30)
    asr = [t[:10] + ["uh", "um"], ["so"] + t[10:18] + ["like"], ["er"] + t[18:]]
    assert split_by_asr(t, asr, [60, 60, 60]) == [0, 10, 18, 30]


def test_substitutions_including_boundary_words():
    t = words(30)
    a0 = t[:9] + ["x9"]          # last word of chunk 0 misrecognised
    a1 = ["x10"] + t[11:17] + ["x17"]
    a2 = ["x18"] + t[19:]
    assert split_by_asr(t, [a0, a1, a2], [60, 60, 60]) == [0, 10, 18, 30]


def test_deletions_inside_chunks():
    t = words(40)
    a0 = t[:3] + t[5:12]
    a1 = t[12:20] + t[22:25]
    a2 = t[25:33] + t[36:]
    assert split_by_asr(t, [a0, a1, a2], [60, 60, 60]) == [0, 12, 25, 40]


def test_deletions_at_a_boundary_split_at_the_middle():
    t = words(30)
    # words 8..11 heard by neither chunk: the run is split at its middle (2 + 2)
    assert split_by_asr(t, [t[:8], t[12:]], [60, 60]) == [0, 10, 30]
    # leading / trailing runs go to the first / last chunk
    assert split_by_asr(t, [t[3:15], t[15:27]], [60, 60]) == [0, 15, 30]


def test_missing_chunk_gets_the_words_between_its_neighbours():
    t = words(40)
    for empty in ([], None):
        assert split_by_asr(t, [t[:10], empty, t[25:]], [60, 60, 60]) == [0, 10, 25, 40]


def test_two_missing_chunks_share_by_duration():
    t = words(40)
    # 24 unheard words between chunk 0 and chunk 3: chunks 1 (20 s) and 2 (60 s) take 1/4 and 3/4
    assert split_by_asr(t, [t[:10], [], [], t[34:]], [60, 20, 60, 60]) == [0, 10, 16, 34, 40]


def test_garbage_asr_gives_proportional_split():
    t = words(100)
    b = split_by_asr(t, [["zz"], ["qq", "rr"], []], [30, 60, 10])
    assert b == [0, 30, 90, 100]


def test_empty_transcript_and_all_empty_asr():
    assert split_by_asr([], [["a"], ["b"]], [1, 1]) == [0, 0, 0]
    assert split_by_asr(words(10), [[], []], [1, 1]) == [0, 5, 10]


def test_chunk_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 ASR outputs for 3 chunks"):
        split_by_asr(words(3), [[], []], [1, 1, 1])


def test_two_hours_of_words_is_fast_and_exact():
    rng = np.random.default_rng(5)
    n, K = 18000, 40
    t = [f"w{k}" for k in rng.integers(0, 3000, n)]
    cuts = np.sort(rng.choice(np.arange(1, n), K - 1, replace=False))
    edges = [0, *cuts.tolist(), n]
    asr = []
    for k in range(K):
        seg = list(t[edges[k] + 1:edges[k + 1] - 1])  # drop the edge words (the hard case)
        for _ in range(len(seg) // 30):  # ~3 % substitutions, some insertions and deletions
            p = int(rng.integers(0, len(seg)))
            seg[p] = "sub"
            seg.insert(int(rng.integers(0, len(seg))), "ins")
            del seg[int(rng.integers(0, len(seg)))]
        asr.append(seg)
    t0 = time.perf_counter()
    b = split_by_asr(t, asr, [180.0] * K)
    dt = time.perf_counter() - t0
    print(f"split of {n} words into {K} chunks: {dt:.2f} s")
    assert b[0] == 0 and b[-1] == n
    # each lost edge word pair is split at its middle: at most one word away from the true cut
    assert max(abs(x - y) for x, y in zip(b, edges)) <= 1, list(zip(b, edges))
    assert dt < 30


# -- aligner windows ----------------------------------------------------------------------------

def timeline(n, rng, pause_every=7):
    """Word i at [s_i, e_i]: words of 0.2-0.6 s, gaps of 0.05 s, a 1.5 s pause every few words;
    the rate varies along the file (a slow stretch in the middle)."""
    t, spans, pauses = 0.5, [], []
    for i in range(n):
        d = rng.uniform(0.2, 0.6) * (2.5 if n // 3 < i < n // 2 else 1.0)
        spans.append((t, t + d))
        t += d + 0.05
        if i % pause_every == pause_every - 1:
            pauses.append((t, t + 1.5))
            t += 1.5
    return spans, pauses, t + 0.5


def oracle_aligner(spans, all_words):
    """An aligner that knows the truth: words in the window get their true times; words outside it
    are squeezed onto the window's edges (what a forced aligner does with extra words)."""
    index = {w: i for i, w in enumerate(all_words)}
    calls = []

    def align_window(w0, w1, span_words):
        calls.append((w0, w1, len(span_words)))
        out = []
        for w in span_words:
            s, e = spans[index[w]]
            s, e = min(max(s, w0), w1), min(max(e, w0), w1)
            out.append((s - w0, e - w0))
        return out

    return align_window, calls


def true_bounds(spans, cuts):
    mids = np.array([(s + e) / 2 for s, e in spans])
    return [0] + [int(np.searchsorted(mids, c)) for c in cuts] + [len(spans)]


@pytest.mark.parametrize("seed", [0, 1])
def test_aligner_windows_find_the_true_boundaries(seed):
    rng = np.random.default_rng(seed)
    t = words(600)
    spans, pauses, T = timeline(len(t), rng)
    # cut inside a pause every ~40 s, like the quiet-point search would
    cuts, last = [], 0.0
    for s, e in pauses:
        if s - last > 40:
            cuts.append((s + e) / 2)
            last = s
    align_window, calls = oracle_aligner(spans, t)
    b = split_by_aligner(t, cuts, T, align_window, window=10.0)
    assert b == true_bounds(spans, cuts)
    assert all(w1 - w0 <= 20.0 + 1e-9 for w0, w1, _ in calls)


def test_aligner_windows_with_nonsense_times_stay_valid():
    t = words(50)

    def junk(w0, w1, span_words):  # a random-weight model: times far past the window
        return [(500.0 + k, 501.0 + k) for k in range(len(span_words))]

    b = split_by_aligner(t, [10.0, 20.0, 30.0], 40.0, junk, window=5.0)
    assert b[0] == 0 and b[-1] == 50 and all(x <= y for x, y in zip(b, b[1:]))


def test_aligner_windows_respect_max_words():
    t = words(400)
    seen = []

    def rec(w0, w1, span_words):
        seen.append(len(span_words))
        return [(0.0, 0.0)] * len(span_words)

    split_by_aligner(t, [50.0, 100.0], 150.0, rec, window=30.0, max_words=40)
    assert seen and max(seen) <= 40


def test_aligner_no_words_left():
    assert split_by_aligner([], [1.0, 2.0], 3.0, lambda *a: []) == [0, 0, 0, 0]
