"""Streamlit app: upload audio, (optionally) paste the transcript, get word timestamps and subtitles.

    pip install streamlit matplotlib pandas
    QWEN3ALIGN_ALIGNER=Qwen3-ForcedAligner-0.6B/ QWEN3ALIGN_ASR=Qwen3-ASR-1.7B/ streamlit run examples/streamlit_app.py

The models are loaded once per setting and shared by every browser session (load_models_cached);
"Reload models" closes the old ones — returning their memory — before loading again.
"""
import os

import streamlit as st

import qwen3align as qa
from qwen3align.streamlit import clear_models_cache, load_models_cached, memory_panel

LANGUAGES = ["(detect / none)", "English", "Chinese", "Cantonese", "German", "Spanish", "French", "Italian",
             "Portuguese", "Russian", "Korean", "Japanese"]

st.set_page_config(page_title="qwen3align", layout="wide")
st.title("Word timestamps with Qwen3-ForcedAligner")

with st.sidebar:
    st.header("Models")
    aligner = st.text_input("Aligner checkpoint folder", os.environ.get("QWEN3ALIGN_ALIGNER", ""))
    asr = st.text_input("ASR checkpoint folder (to transcribe)", os.environ.get("QWEN3ALIGN_ASR", ""))
    device = st.selectbox("Device", ["auto", "cpu", "cuda"])
    max_seconds = st.number_input("Longest audio (s)", min_value=5, max_value=1200, value=300, step=5)
    if st.button("Reload models"):
        clear_models_cache()  # closes the old Models first: their memory is free before the next load
        st.session_state.pop("result", None)

if not aligner and not asr:
    st.info("Set the aligner (and optionally ASR) checkpoint folder in the sidebar, or start the app with "
            "QWEN3ALIGN_ALIGNER / QWEN3ALIGN_ASR set.")
    st.stop()

try:
    models = load_models_cached(aligner=aligner or None, asr=asr or None, device=device,
                                max_audio_seconds=float(max_seconds))
except qa.Qwen3AlignError as e:  # e.g. OutOfMemoryError with the numbers and what to lower
    st.error(f"{type(e).__name__}: {e}")
    st.stop()
memory_panel(models)

uploaded = st.file_uploader("Audio", type=["wav", "flac", "ogg", "mp3"])
text = st.text_area("Transcript (leave empty to transcribe first)", "")
language = st.selectbox("Language", LANGUAGES)

if uploaded is not None and st.button("Align", type="primary"):
    audio = uploaded.getvalue()
    kw = {} if language == LANGUAGES[0] else {"language": language}
    if text.strip():
        kw["text"] = text
    elif not asr:
        st.error("No transcript given and no ASR model loaded.")
        st.stop()
    try:
        with st.spinner("Aligning…"):
            st.session_state["result"] = (uploaded.name, audio, models.align(audio, **kw))
    except qa.Qwen3AlignError as e:
        st.error(f"{type(e).__name__}: {e}")

if "result" in st.session_state:
    name, audio, result = st.session_state["result"]
    base = os.path.splitext(name)[0]
    st.subheader(f"{len(result)} words" + (f" · {result.language}" if result.language else ""))
    for w in result.warnings:
        st.warning(w)
    try:
        st.dataframe(result.to_dataframe(), use_container_width=True)
    except ImportError:
        st.table([it.to_dict() for it in result])
    try:
        st.pyplot(result.plot(audio))
    except ImportError as e:
        st.caption(str(e))
    c1, c2, c3 = st.columns(3)
    c1.download_button("SRT", result.to_srt(), file_name=base + ".srt", mime="text/plain")
    c2.download_button("VTT", result.to_vtt(), file_name=base + ".vtt", mime="text/vtt")
    c3.download_button("JSON", result.to_json(indent=2), file_name=base + ".json", mime="application/json")
