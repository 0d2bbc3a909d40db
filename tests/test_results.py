"""Result types: AlignItem / Alignment / Transcription behaviour, serialisation round trips, the
notebook repr, pandas and matplotlib hooks, on the reference fixtures' expected items."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import CASES, case_dir, load_case

import qwen3align as qa


def case_alignment(name):
    exp = load_case(name)
    audio = np.load(os.path.join(case_dir(name), "audio16k.npy"))
    return qa.Alignment(exp["items"], text=exp["text"], language=exp.get("language"),
                        duration=len(audio) / 16000.0), exp, audio


def test_align_item_is_frozen_and_has_duration():
    it = qa.AlignItem("word", 1.25, 1.75, 0.5)
    assert it.duration == 0.5
    with pytest.raises(AttributeError):
        it.start = 0.0  # type: ignore[misc]
    assert math.isnan(qa.AlignItem("w", 0, 1).confidence)
    assert qa.AlignItem("w", 0, 1).to_dict()["confidence"] is None


@pytest.mark.parametrize("name", CASES)
def test_alignment_sequence_and_json_round_trip(name):
    res, exp, _ = case_alignment(name)
    assert len(res) == len(exp["items"]) == len(exp["words"])
    assert res.words == exp["words"]
    assert [(it.start, it.end) for it in res] == [(i["start"], i["end"]) for i in exp["items"]]
    assert isinstance(res[0], qa.AlignItem) and isinstance(res[1:3], qa.Alignment) and len(res[1:3]) == len(exp["items"][1:3])
    d = json.loads(res.to_json())
    assert d["text"] == exp["text"] and d["language"] == exp.get("language")
    assert d["items"][0]["text"] == exp["items"][0]["text"]
    assert qa.Alignment.from_json(res.to_json()) == res
    assert json.loads(res.to_json(ensure_ascii=True)) == d


def test_alignment_metadata():
    res = qa.Alignment([("a", 0, 1, 0.9)], text="a", language="English", warnings=["w1"],
                       duration=2.0, chunks=[(0.0, 2.0, 0, 0)])
    assert res.warnings == ("w1",) and res.chunks == [(0.0, 2.0, 0, 0)] and res.duration == 2.0
    d = res.to_dict()
    assert d["warnings"] == ["w1"] and d["chunks"] == [[0.0, 2.0, 0, 0]] and d["duration"] == 2.0
    assert "English" in repr(res) and "1 items" in repr(res)
    empty = qa.Alignment([])
    assert len(empty) == 0 and empty.to_srt() == "" and empty.to_vtt() == "WEBVTT\n"


def test_repr_html_escapes_and_shows_times():
    res = qa.Alignment([("<b>x&y</b>", 0.5, 0.75, 0.25)], language="English", duration=1.0,
                       warnings=["past <end>"])
    h = res._repr_html_()
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in h and "<b>x&y" not in h
    assert "0.500" in h and "0.750" in h and "0.250" in h and "past &lt;end&gt;" in h
    many = qa.Alignment([("w", i, i + 1) for i in range(250)])
    assert "50 more" in many._repr_html_()


def test_to_text_cjk():
    res, exp, _ = case_alignment("zh_mixed")
    joined = res.to_text()
    assert " " not in joined and all(w in joined for w in exp["words"])


def test_to_dataframe():
    pd = pytest.importorskip("pandas", reason="optional extra; make test installs it")
    res, exp, _ = case_alignment("en_short")
    df = res.to_dataframe()
    assert list(df.columns) == ["text", "start", "end", "confidence"]
    assert df["text"].tolist() == exp["words"] and df["end"].tolist() == [i["end"] for i in exp["items"]]
    assert isinstance(df, pd.DataFrame)


def test_to_dataframe_without_pandas_says_how_to_install():
    code = ("import sys; sys.modules['pandas'] = None; import qwen3align as qa\n"
            "try:\n qa.Alignment([('a',0,1)]).to_dataframe()\nexcept ImportError as e: print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install pandas" in out


def test_plot_waveform_and_spectrogram():
    pytest.importorskip("matplotlib", reason="optional extra; make test installs it")
    import matplotlib

    matplotlib.use("Agg")
    res, _, audio = case_alignment("en_short")
    fig = res.plot(audio, sample_rate=16000)
    axes = fig.get_axes()
    assert len(axes) == 2
    # words past the audio end are drawn inside it (clamped), one span per word
    spans = [p for p in axes[0].patches]
    assert len(spans) == len(res)
    assert max(p.get_x() + p.get_width() for p in spans) <= len(audio) / 16000.0 + 1e-9
    assert [t.get_text() for t in axes[0].texts] == res.words
    fig2 = res.plot((audio, 16000), ax=axes[0])  # onto given axes: waveform only
    assert fig2 is fig
    matplotlib.pyplot.close(fig)


def test_transcription():
    t = qa.Transcription("hello there", "English", [1, 2, 3])
    assert str(t) == "hello there" and t.tokens == (1, 2, 3)
    assert t.to_dict() == {"text": "hello there", "language": "English", "tokens": [1, 2, 3], "warnings": []}
    assert json.loads(t.to_json())["language"] == "English"
