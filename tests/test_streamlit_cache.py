"""qwen3align.streamlit.load_models_cached: one Models per distinct arguments, shared across reruns,
and every cached Models closed when the cache is cleared (Streamlit's AppTest runs the script)."""
import pytest

pytest.importorskip("streamlit", reason="optional extra (pip install streamlit); not installed here")


def app():
    import builtins

    import streamlit as st

    import qwen3align as qa
    from qwen3align import streamlit as qst

    log = builtins.__dict__.setdefault("_qa_streamlit_log", [])

    class StubModels:  # stands in for qa.load_models: records loads and closes
        def __init__(self, **kw):
            self.kw = kw
            log.append(("load", kw["aligner"], kw["max_audio_seconds"]))

        def close(self):
            log.append(("close", self.kw["aligner"], self.kw["max_audio_seconds"]))

        def memory_report(self):
            return "arena 1 MiB"

    vars(qa)["load_models"] = StubModels
    a = qst.load_models_cached(aligner="x", max_audio_seconds=60)
    b = qst.load_models_cached(aligner="x", max_audio_seconds=60)
    c = qst.load_models_cached(aligner="x", max_audio_seconds=120)
    st.write(f"same={a is b} different={a is not c}")
    qst.memory_panel(a)
    if st.session_state.get("clear"):
        qst.clear_models_cache()


def test_cache_one_instance_per_arguments_and_close_on_clear():
    import builtins

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import qwen3align as qa

    real_load_models = qa.load_models  # the app swaps in a stub: put the real one back afterwards
    try:
        _run_app(AppTest)
    finally:
        vars(qa)["load_models"] = real_load_models
        st.cache_resource.clear()


def _run_app(AppTest):
    import builtins

    builtins._qa_streamlit_log = []
    at = AppTest.from_function(app).run()
    assert not at.exception
    assert at.markdown[0].value == "same=True different=True"
    assert "arena 1 MiB" in at.sidebar.code[0].value
    at.run()  # a rerun reuses the cached instances
    assert builtins._qa_streamlit_log == [("load", "x", 60), ("load", "x", 120)]
    at.session_state["clear"] = True
    at.run()
    log = builtins._qa_streamlit_log
    assert sorted(log[2:]) == [("close", "x", 60), ("close", "x", 120)]
    del builtins._qa_streamlit_log
