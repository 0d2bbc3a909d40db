"""Audio of any length (qwen3align/longaudio.py) with the fixture models (tiny, random weights).

The fixture cases' clips are concatenated with 1 s of silence between them; models are loaded with a
small max_audio_seconds so that a minute of audio is cut into several chunks. Random weights make
the times meaningless as times, but they are exactly what one forward computes, which is what the
chunked result must reproduce chunk by chunk.
"""
import os
import time

import numpy as np
import pytest

import qwen3align as qa
from qwen3align import longaudio
from qwen3align.audio import SAMPLE_RATE as SR
from conftest import FIXTURES, load_case, npy

ALIGNER = os.path.join(FIXTURES, "aligner")
ASR = os.path.join(FIXTURES, "asr")
# clips shorter than 9 s, so every ±5 s search range holds a whole 1 s silence
CLIPS = ["en_short", "punct_numbers", "tiny", "en_short", "punct_numbers", "en_short", "tiny",
         "punct_numbers", "en_short", "punct_numbers", "en_short", "tiny", "punct_numbers", "en_short"]


def concatenated(names=CLIPS, gap=1.0):
    """(samples, text, words, silences as (start, end) sample ranges)."""
    parts, silences, texts, words, pos = [], [], [], [], 0
    for k, name in enumerate(names):
        a = npy(name, "audio16k.npy").astype(np.float32)
        parts.append(a)
        pos += len(a)
        exp = load_case(name)
        texts.append(exp["text"])
        words += exp["words"]
        if k + 1 < len(names):
            g = int(gap * SR)
            parts.append(np.zeros(g, np.float32))
            silences.append((pos, pos + g))
            pos += g
    x = np.concatenate(parts)
    return x, " ".join(texts), words, [widen(x, s, e) for s, e in silences]


def widen(x, s, e, quiet=1e-3):
    """The inserted gap [s, e) grown by the near-silent samples the clips end and start with."""
    while s > 0 and abs(x[s - 1]) <= quiet:
        s -= 1
    while e < len(x) and abs(x[e]) <= quiet:
        e += 1
    return s, e


@pytest.fixture(scope="module")
def aligner_only():
    with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=20) as m:
        yield m


@pytest.fixture(scope="module")
def both():
    with qa.load_models(aligner=ALIGNER, asr=ASR, device="cpu", max_audio_seconds=20, max_new_tokens=12) as m:
        yield m


def check_chunked(models, res, x, words, silences):
    """The issue-8 contract of a chunked Alignment."""
    n = len(x)
    assert res.chunks is not None and len(res.chunks) >= 3, f"expected several chunks, got {res.chunks}"
    starts = [round(c[0] * SR) for c in res.chunks]
    ends = [round(c[1] * SR) for c in res.chunks]
    assert starts[0] == 0 and ends[-1] == n and starts[1:] == ends[:-1], "chunks must tile the audio"
    for cut in starts[1:]:
        assert any(s <= cut < e for s, e in silences), f"cut at {cut / SR:.3f} s is not inside a silence"
    assert max(e - s for s, e in zip(starts, ends)) <= 20 * SR, "a chunk is longer than max_audio_seconds"
    if words is not None:
        assert [it.text for it in res] == words, "every word once and in order"
    firsts = [c[2] for c in res.chunks]
    lasts = [c[3] for c in res.chunks]
    assert firsts[0] == 0 and lasts[-1] == len(res) - 1 and firsts[1:] == [l + 1 for l in lasts[:-1]]
    assert abs(res.duration - n / SR) < 1e-9
    for (s0, s1, f, l), a, b in zip(res.chunks, starts, ends):
        items = list(res)[f:l + 1]
        starts_t = [it.start for it in items]
        assert starts_t == sorted(starts_t), "times must be non-decreasing within a chunk"
        assert all(it.start <= it.end for it in items)
        if not items:
            continue
        alone = longaudio.align(models, x[a:b], words=[it.text for it in items], sample_rate=SR)
        assert alone.chunks is None
        want = [(round(it.start + s0, 3), round(it.end + s0, 3)) for it in alone]
        assert [(it.start, it.end) for it in items] == want, f"chunk at {s0:.2f} s differs from aligning it alone"


def test_long_text_split_by_aligner_windows(aligner_only):
    x, text, words, silences = concatenated()
    seen = []
    res = longaudio.align(aligner_only, x, text, sample_rate=SR, progress=lambda *a: seen.append(a))
    check_chunked(aligner_only, res, x, words, silences)
    assert res.text == text
    K = len(res.chunks)
    assert ("align", 0, K) in seen and ("align", K, K) in seen and ("split", K - 1, K - 1) in seen


def test_long_text_split_by_asr(both):
    x, text, words, silences = concatenated()
    seen = []
    res = longaudio.align(both, x, text, sample_rate=SR, progress=lambda *a: seen.append(a))
    check_chunked(both, res, x, words, silences)
    assert {s for s, _, _ in seen} == {"transcribe", "align"}


def test_words_argument_and_explicit_split(both):
    x, _, words, silences = concatenated()
    res = longaudio.align(both, x, words=words, sample_rate=SR, split="aligner")
    check_chunked(both, res, x, words, silences)


def test_long_align_without_text(both):
    x, _, _, silences = concatenated()
    res = longaudio.align(both, x, sample_rate=SR)
    check_chunked(both, res, x, None, silences)
    starts = [round(c[0] * SR) for c in res.chunks] + [len(x)]
    texts = [longaudio.transcribe(both, x[a:b], sample_rate=SR).text for a, b in zip(starts, starts[1:])]
    assert res.text == longaudio._join_texts(texts)


def test_long_transcribe_joins_chunks(both):
    x, _, _, silences = concatenated()
    tr = longaudio.transcribe(both, x, sample_rate=SR)
    _, target, search = longaudio.chunk_limits(both, "asr")
    b = longaudio.chunk_bounds(x, target, search)
    assert len(b) >= 4
    for cut in b[1:-1]:
        assert any(s <= cut < e for s, e in silences)
    parts = [longaudio.transcribe(both, x[b[k]:b[k + 1]], sample_rate=SR) for k in range(len(b) - 1)]
    assert tr.tokens == tuple(t for p in parts for t in p.tokens)
    assert tr.text == longaudio._join_texts(p.text for p in parts)
    assert tr.language == longaudio._merge_languages(p.language for p in parts)


def test_short_audio_is_one_forward(both):
    x = npy("en_short", "audio16k.npy")
    exp = load_case("en_short")
    res = longaudio.align(both, x, exp["text"], "English", sample_rate=SR)
    assert res.chunks is None
    assert [(it.text, it.start, it.end) for it in res] == [(d["text"], d["start"], d["end"]) for d in exp["items"]]


def test_interrupt_between_chunks_leaves_models_usable(aligner_only):
    x, text, words, _ = concatenated()
    before = longaudio.align(aligner_only, x, text, sample_rate=SR)

    def stop(stage, done, total):
        if stage == "align" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        longaudio.align(aligner_only, x, text, sample_rate=SR, progress=stop)
    after = longaudio.align(aligner_only, x, text, sample_rate=SR)
    assert after == before


def test_chunk_limits_follow_the_plan(aligner_only, both):
    assert longaudio.chunk_limits(aligner_only, "aligner") == (20.0, 15.0, 5.0)
    # the ±5 s search shrinks to half a short target (a wider one allows 1-sample chunks)
    assert longaudio.chunk_limits(both, "asr", target_seconds=8) == (20.0, 8.0, 4.0)
    with pytest.raises(qa.InputError):
        longaudio.chunk_limits(both, "asr", target_seconds=0)


def test_a_chunk_without_words(aligner_only, monkeypatch):
    # speech, then 40 s of silence; the text split gives every word to the first chunk
    a = npy("en_short", "audio16k.npy").astype(np.float32)
    x = np.concatenate([a, np.zeros(40 * SR, np.float32)])
    words = load_case("en_short")["words"]
    monkeypatch.setattr(longaudio, "_split_with_aligner",
                        lambda models, x, b, words, lang, progress: [0] + [len(words)] * (len(b) - 1))
    res = longaudio.align(aligner_only, x, words=words, sample_rate=SR)
    assert [it.text for it in res] == words
    assert len(res.chunks) >= 3
    assert res.chunks[0][2:] == (0, len(words) - 1)
    assert all(c[2:] == (len(words), len(words) - 1) for c in res.chunks[1:])  # first = last + 1
    assert res.chunks[0][0] == 0 and abs(res.chunks[-1][1] - len(x) / SR) < 1e-9
    alone = longaudio.align(aligner_only, x[:round(res.chunks[0][1] * SR)], words=words, sample_rate=SR)
    assert [(i.start, i.end) for i in res] == [(i.start, i.end) for i in alone]


def test_batches_keep_order_and_chunk_long_items(both):
    x, text, words, _ = concatenated()
    short = npy("en_short", "audio16k.npy")
    items = [{"audio": short, "text": load_case("en_short")["text"], "sample_rate": SR, "language": "English"},
             {"audio": x, "words": words, "sample_rate": SR},
             {"audio": (npy("tiny", "audio16k.npy"), SR), "text": "ok"}]
    out = longaudio.align_batch(both, items)
    assert len(out) == 3 and out[0].chunks is None and out[1].chunks is not None
    assert out[1] == longaudio.align(both, x, words=words, sample_rate=SR)
    assert [it.text for it in out[2]] == ["ok"]
    trs = longaudio.transcribe_batch(both, [short, x], sample_rate=SR)
    assert [t.tokens for t in trs] == [longaudio.transcribe(both, a, sample_rate=SR).tokens for a in (short, x)]
    with pytest.raises(qa.InputError, match="item 1"):
        longaudio.align_batch(both, [{"audio": short, "text": "a"}, {"text": "no audio"}])
    with pytest.raises(qa.InputError, match="item 0"):
        longaudio.align_batch(both, ["not a dict"])


# -- hours of audio ---------------------------------------------------------------------------------

def periodic_signal(seconds, period=20.0, tone=16.0, seed=0):
    """A 20 s pattern (16 s of a noisy tone, 4 s of silence) repeated. With the 180 s target the
    first cut lands at 176 s and every later chunk is exactly 180 s of the same audio, so every
    chunk after the first is the same request."""
    rng = np.random.default_rng(seed)
    p = np.zeros(int(period * SR), np.float32)
    k = np.arange(int(tone * SR))
    p[:k.size] = 0.4 * np.sin(2 * np.pi * 330 * k / SR) + 0.05 * rng.standard_normal(k.size)
    reps = int(np.ceil(seconds / period))
    return np.tile(p, reps)[:int(seconds * SR)]


@pytest.fixture(scope="module")
def full_limits():
    with qa.load_models(aligner=ALIGNER, asr=ASR, device="cpu", max_audio_seconds=300, max_new_tokens=12) as m:
        yield m


def test_ten_minutes_with_text(full_limits):
    x = periodic_signal(536)  # 176 s + 2 x 180 s
    words = ["la"] * 900
    res = longaudio.align(full_limits, x, words=words, sample_rate=SR, split="aligner")
    assert [it.text for it in res] == words
    assert [round(c[0] * SR) for c in res.chunks] == [0, 176 * SR, 356 * SR]
    assert [round(c[1] * SR) for c in res.chunks] == [176 * SR, 356 * SR, 536 * SR]


@pytest.mark.slow
def test_memory_is_flat_from_ten_minutes_to_two_hours():
    """Same arena peak for exactly 10 min (600 s) and 2 h (7200 s) of audio aligned without a
    transcript (ASR then alignment per chunk): every request takes its workspace and gives it back.
    Both runs start with the same 176 s + 180 s chunks (the largest requests); 600 s ends with a
    64 s chunk, 7200 s with 38 more 180 s chunks and a 4 s one. About 90 s on 2 CPU cores."""
    peaks = []
    for seconds, n_chunks, tail in ((600, 4, 536), (7200, 41, 7196)):
        with qa.load_models(aligner=ALIGNER, asr=ASR, device="cpu", max_audio_seconds=300, max_new_tokens=12) as m:
            res = longaudio.align(m, periodic_signal(seconds), sample_rate=SR)
            starts = [round(c[0] * SR) for c in res.chunks]
            assert len(res.chunks) == n_chunks and res.chunks[-1][1] == seconds
            assert starts == [0] + [(176 + 180 * k) * SR for k in range(n_chunks - 2)] + [tail * SR]
            peaks.append(m.memory_report()["peak_bytes"])
    assert peaks[0] == peaks[1], f"arena peak grew with the audio length: {peaks}"


def test_chunks_fit_the_smaller_asr_limit():
    x, text, words, silences = concatenated()
    with qa.load_models(aligner=ALIGNER, asr=ASR, device="cpu", max_audio_seconds={"aligner": 40, "asr": 12},
                        max_new_tokens=8) as m:
        res = longaudio.align(m, x, text, sample_rate=SR)  # split by ASR: chunks of <= 12 s
        assert max(c[1] - c[0] for c in res.chunks) <= 12.0
        assert [it.text for it in res] == words
        res = longaudio.align(m, x, text, sample_rate=SR, split="aligner")  # aligner only: up to 40 s
        assert max(c[1] - c[0] for c in res.chunks) > 12.0
        assert [it.text for it in res] == words


def test_a_small_target_still_gives_chunks_of_about_the_target():
    """target_seconds below the 5 s search range must not give tiny chunks (the search shrinks)."""
    import numpy as np

    import qwen3align as qa
    from conftest import FIXTURES

    x = np.random.default_rng(3).standard_normal(16000 * 6).astype(np.float32) * 0.1
    with qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", max_audio_seconds=10) as m:
        res = m.align((x, 16000), words=["a", "b", "c"], target_seconds=1.0)
    lengths = [e - s for s, e, _, _ in res.chunks]
    assert 4 <= len(lengths) <= 12, lengths
    assert min(lengths[:-1]) >= 0.5 - 1e-9 and max(lengths) <= 1.5 + 1e-9, lengths
