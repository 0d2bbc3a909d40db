"""examples/streamlit_app.py run for real with streamlit.testing.v1.AppTest on the fixture models:
align the example clip, rerun 20 times, press "Reload models" 5 times — and the process holds ONE
arena at the end, and never two at once (each load starts with no other open Models: the old arena is
closed before the new one is taken, the problem of streamlit#5998)."""
import gc
import os

import pytest

from conftest import FIXTURES, REPO, case_dir, load_case

pytest.importorskip("streamlit", reason="optional extra (pip install streamlit); make test installs it")
if not os.path.isdir(os.path.join(FIXTURES, "aligner")):
    pytest.skip("fixture models not found (../shared/fixtures)", allow_module_level=True)

APP = os.path.join(REPO, "examples", "streamlit_app.py")


def open_models():
    """Every open qwen3align Models object in this process (gc sees all of them)."""
    from qwen3align.models import Models

    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Models) and not o.closed]


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture()
def app_env(monkeypatch):
    import qwen3align as qa
    from qwen3align import streamlit as qst

    monkeypatch.setenv("QWEN3ALIGN_ALIGNER", os.path.join(FIXTURES, "aligner"))
    monkeypatch.setenv("QWEN3ALIGN_ASR", os.path.join(FIXTURES, "asr"))
    monkeypatch.setenv("QWEN3ALIGN_DEVICE", "cpu")
    monkeypatch.setenv("QWEN3ALIGN_EXAMPLE_AUDIO", os.path.join(case_dir("en_short"), "input.wav"))
    loads = []  # open Models (made by anyone) at the moment each load starts
    real = qa.load_models

    def counting_load_models(*a, **kw):
        loads.append(len(open_models()))
        return real(*a, **kw)

    monkeypatch.setattr(qa, "load_models", counting_load_models)
    qst.clear_models_cache()
    assert open_models() == [], "another test left a Models open"
    yield loads
    qst.clear_models_cache()


def table_items(at):
    df = at.dataframe[0].value
    return [(r.text, r.start, r.end) for r in df.itertuples()]


def test_app_align_rerun_reload_keeps_one_arena(app_env):
    from streamlit.testing.v1 import AppTest

    loads = app_env
    case = load_case("en_short")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.sidebar.checkbox(key="use_example").value is True
    assert "weights/aligner" in at.sidebar.code[0].value  # memory_report() in the sidebar

    at.text_area(key="text").input(case["text"])
    at.selectbox(key="language").select("English")
    at.button(key="align").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # the table shows the reference timestamps (transformers on the same fixture model)
    got = table_items(at)
    want = [(it["text"], it["start"], it["end"]) for it in case["items"]]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert all(abs(g[1] - w[1]) < 1e-3 and abs(g[2] - w[2]) < 1e-3 for g, w in zip(got, want)), (got, want)
    assert len(at.get("image")) >= 1  # the timeline over the waveform (st.pyplot)
    downloads = [b.proto.label for b in at.get("download_button")]
    assert downloads == ["SRT", "VTT", "JSON"]
    arena = open_models()[0].memory_report()["arena_bytes"]
    rss_loaded = rss_bytes()

    for _ in range(20):
        at.run()
        assert not at.exception, at.exception
    assert table_items(at) == got  # the result survives reruns
    assert len(open_models()) == 1 and loads == [0]

    for _ in range(5):
        at.sidebar.button(key="reload").click().run()
        assert not at.exception, at.exception
    assert "weights/aligner" in at.sidebar.code[0].value
    assert len(loads) == 6 and max(loads) == 0, f"open Models when each load started: {loads}"
    live = open_models()
    assert len(live) == 1, f"{len(live)} arenas held after 5 reloads"
    # the five closed arenas went back to the OS (each is one allocation of `arena` bytes)
    grown = rss_bytes() - rss_loaded
    assert grown < 2 * arena, f"RSS grew {grown:,} bytes over 5 reloads; one arena is {arena:,}"

    # changing a setting loads the new set only after closing the old one (exclusive)
    at.sidebar.number_input[0].set_value(60).run()
    assert not at.exception, at.exception
    assert loads[-1] == 0 and len(open_models()) == 1
    assert open_models()[0].plan()["limits"]["max_audio_seconds"]["aligner"] == 60
