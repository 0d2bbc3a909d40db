"""Subtitle / TextGrid writers on fixture-like results: what they write parses back (with independent
parsers: srt, webvtt-py, textgrid) and obeys the contract — times in [0, duration], ordered, no overlap,
no empty cue, a TextGrid tier tiling [0, duration].

The alignments come from the reference fixtures' expected items (transformers on random tiny models):
their times are mostly far past the audio end and often zero-length — the edge cases to clamp.
"""
import os
import re

import numpy as np
import pytest

from conftest import CASES, case_dir, load_case

import qwen3align as qa
from qwen3align import subtitles as st

srt = pytest.importorskip("srt", reason="independent SRT parser (make test installs it)")
webvtt = pytest.importorskip("webvtt", reason="independent WebVTT parser (make test installs it: webvtt-py)")
textgrid = pytest.importorskip("textgrid", reason="independent TextGrid parser (make test installs it)")


def fixture_alignment(name):
    exp = load_case(name)
    dur = len(np.load(os.path.join(case_dir(name), "audio16k.npy"))) / 16000.0
    return qa.Alignment(exp["items"], text=exp["text"], language=exp.get("language"), duration=dur), exp


def synthetic(dur=10.0):
    # realistic spacing plus every edge: zero length, overlap, reversed, past the end, negative
    items = [("a", -0.5, 0.2), ("bb", 0.2, 0.2), ("ccc", 0.1, 0.9), ("dd", 1.5, 1.2), ("eee", 2.0, 2.6),
             ("ff", 9.9, 12.0), ("g", 13.0, 13.0), ("h", 13.0, 14.0)]
    return qa.Alignment(items, text="a bb, ccc dd eee ff g h.", duration=dur)


ALL = [pytest.param(n, id=n) for n in CASES] + [pytest.param("synthetic", id="synthetic")]


def get(name):
    return (synthetic(), None) if name == "synthetic" else fixture_alignment(name)


def check_spans(spans, n, dur_ms):
    assert len(spans) == n
    prev = 0
    for s, e in spans:
        assert 0 <= prev <= s < e <= dur_ms, (prev, s, e, dur_ms)
        prev = e


@pytest.mark.parametrize("name", ALL)
def test_normalize_spans_contract(name):
    res, _ = get(name)
    spans = st.normalize_spans(list(res), res.duration)
    check_spans(spans, len(res), int(res.duration * 1000 + 1e-6))


def test_normalize_keeps_valid_times_untouched():
    items = [qa.AlignItem("x", 0.5, 0.9), qa.AlignItem("y", 1.0, 1.25), qa.AlignItem("z", 1.25, 2.0)]
    assert st.normalize_spans(items, 3.0) == [(500, 900), (1000, 1250), (1250, 2000)]


def test_zero_length_word_gets_one_ms_without_overlap():
    items = [qa.AlignItem("x", 1.0, 1.0), qa.AlignItem("y", 1.0, 1.0), qa.AlignItem("z", 1.0, 2.0)]
    assert st.normalize_spans(items, 3.0) == [(1000, 1001), (1001, 1002), (1002, 2000)]
    # all past the end: squeezed into the last milliseconds, in order
    items = [qa.AlignItem(w, 9.0, 9.0) for w in "abc"]
    assert st.normalize_spans(items, 2.0) == [(1997, 1998), (1998, 1999), (1999, 2000)]


def parse_srt(text):
    return list(srt.parse(text, ignore_errors=False))


@pytest.mark.parametrize("name", ALL)
def test_srt_parses_back(name):
    res, exp = get(name)
    out = res.to_srt()
    assert re.fullmatch(r"(\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n[^\n]+\n)(\n\d+\n\d\d:\d\d:\d\d,\d{3}"
                        r" --> \d\d:\d\d:\d\d,\d{3}\n[^\n]+\n)*", out), out
    subs = parse_srt(out)
    assert [s.index for s in subs] == list(range(1, len(subs) + 1))
    prev = 0.0
    for s in subs:
        a, b = s.start.total_seconds(), s.end.total_seconds()
        assert prev <= a < b <= res.duration + 1e-9
        prev = b
    if exp is not None:  # the cue texts are the transcript, punctuation kept
        assert " ".join(s.content for s in subs) == " ".join(exp["text"].split()) or \
            "".join(s.content for s in subs) == "".join(exp["text"].split())


@pytest.mark.parametrize("name", ALL)
def test_vtt_parses_back(name):
    res, _ = get(name)
    out = res.to_vtt()
    assert out.startswith("WEBVTT\n\n")
    cues = list(webvtt.from_string(out, strict=True))
    srt_cues = parse_srt(res.to_srt())
    assert len(cues) == len(srt_cues) > 0
    for c, s in zip(cues, srt_cues):
        assert c.start == srt.timedelta_to_srt_timestamp(s.start).replace(",", ".")
        assert c.end == srt.timedelta_to_srt_timestamp(s.end).replace(",", ".")
        assert c.text == s.content


def test_vtt_escapes_markup():
    res = qa.Alignment([("a<b", 0.0, 0.5), ("&c", 0.5, 1.0), ("-->", 1.0, 1.5)], duration=2.0)
    out = res.to_vtt()
    body = out.split("\n", 2)[2]
    assert "<" not in body and "-->" not in body.replace(" --> ", "")
    assert "a&lt;b &amp;c --&gt;" in out


@pytest.mark.parametrize("name", ALL)
def test_textgrid_tiles_duration(name, tmp_path):
    res, _ = get(name)
    p = tmp_path / "x.TextGrid"
    p.write_text(res.to_textgrid(cues=True), encoding="utf-8")
    xmax = float(re.search(r"^xmax = (\S+) $", p.read_text(encoding="utf-8"), re.M).group(1))
    assert xmax == res.duration  # the exact duration is written
    tg = textgrid.TextGrid.fromFile(str(p))  # (this parser rounds times to 5 decimals)
    assert len(tg.tiers) == 2 and tg.tiers[0].name == "words" and tg.tiers[1].name == "cues"
    assert abs(tg.maxTime - res.duration) < 1e-5 and tg.minTime == 0
    for tier in tg.tiers:
        iv = list(tier)
        assert iv[0].minTime == 0 and abs(iv[-1].maxTime - res.duration) < 1e-5
        for a, b in zip(iv, iv[1:]):
            assert a.maxTime == b.minTime and a.minTime < a.maxTime
    labelled = [i.mark for i in tg.tiers[0] if i.mark]
    assert labelled == res.words


def test_textgrid_quotes_and_no_duration():
    res = qa.Alignment([('say "hi"', 0.25, 0.5)])
    out = res.to_textgrid()
    assert 'text = "say ""hi""" ' in out
    assert "xmax = 0.5 " in out  # without a duration the grid ends at the last word


def test_grouping_limits():
    words = [(f"w{i:02d}", i * 0.4, i * 0.4 + 0.3) for i in range(40)]
    res = qa.Alignment(words, duration=20.0)
    cues = st.group_cues(list(res), res.duration, max_chars=20, max_duration=2.0)
    assert sum(c.last - c.first + 1 for c in cues) == 40
    for c in cues:
        assert len(c.text) <= 20 and (c.end_ms - c.start_ms) <= 2000
    # a long pause splits a cue
    res = qa.Alignment([("a", 0, 0.2), ("b", 0.3, 0.5), ("c", 5.0, 5.2)], duration=6)
    assert [c.text for c in st.group_cues(list(res), 6.0)] == ["a b", "c"]


def test_cjk_join_and_width():
    assert st.join_words(["今", "天", "hello", "world", "好"]) == "今天hello world好"
    res = qa.Alignment([(c, i * 0.2, i * 0.2 + 0.2) for i, c in enumerate("一二三四五六七八九十" * 3)], duration=10)
    cues = st.group_cues(list(res), 10.0, max_chars=20)
    assert [len(c.text) for c in cues] == [10, 10, 10]  # 2 columns per CJK character
    assert all(" " not in line for line in res.to_srt().splitlines() if "-->" not in line)


def test_text_fallback_when_words_not_in_text():
    res = qa.Alignment([("alpha", 0, 1), ("beta", 1, 2)], text="something else", duration=3)
    assert "alpha beta" in res.to_srt()


def test_empty_word_still_makes_a_valid_cue():
    res = qa.Alignment([("", 0.0, 0.5), ("b", 3.0, 3.5)], duration=4.0)
    subs = parse_srt(res.to_srt())
    assert [s.content for s in subs] == ["…", "b"]


def test_timestamp_formats():
    assert st.format_srt_time(3_723_004) == "01:02:03,004"
    assert st.format_vtt_time(59_999) == "00:00:59.999"


def test_expected_json_has_the_edge_cases():
    # guard: the fixtures really exercise clamping (times past the end and zero-length words)
    past = zero = 0
    for name in CASES:
        res, _ = fixture_alignment(name)
        past += sum(it.end > res.duration for it in res)
        zero += sum(it.start == it.end for it in res)
    assert past > 0 and zero > 0
