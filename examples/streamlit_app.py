"""Streamlit app: upload audio, (optionally) paste the transcript, get word timestamps and subtitles.

    pip install ".[streamlit,plot,pandas]"
    QWEN3ALIGN_ALIGNER=Qwen3-ForcedAligner-0.6B/ QWEN3ALIGN_ASR=Qwen3-ASR-1.7B/ streamlit run examples/streamlit_app.py

Settings come from the sidebar; their defaults from the environment or st.secrets (same names):
QWEN3ALIGN_ALIGNER / QWEN3ALIGN_ASR (checkpoint folders), QWEN3ALIGN_DEVICE, QWEN3ALIGN_EXAMPLE_AUDIO
(a clip offered as "Use the example clip"; default: the demo's espeak-ng sentence).
The models are loaded once and shared by every browser session (load_models_cached, exclusive: one
model set, one arena in the process); "Reload models" closes the old ones — returning their memory —
before loading again.
"""
import os

import streamlit as st

import qwen3align as qa
from qwen3align.streamlit import clear_models_cache, load_models_cached, memory_panel

LANGUAGES = ["(detect / none)", "English", "Chinese", "Cantonese", "German", "Spanish", "French", "Italian",
             "Portuguese", "Russian", "Korean", "Japanese"]


def setting(name, default=""):
    """Environment first, then .streamlit/secrets.toml, then the default."""
    if os.environ.get(name):
        return os.environ[name]
    try:
        return str(st.secrets.get(name, default))
    except Exception:  # no secrets file: st.secrets raises on access
        return default


@st.cache_data(show_spinner=False)
def example_clip(path):
    """(name, bytes, transcript) of the example clip: the given file, else the demo's sentence."""
    if path:
        with open(path, "rb") as f:
            return os.path.basename(path), f.read(), ""
    from qwen3align.demo import SENTENCE, demo_audio

    audio, _ = demo_audio()
    if isinstance(audio, str):
        with open(audio, "rb") as f:
            return "demo.wav", f.read(), SENTENCE
    import io
    import wave

    import numpy as np

    x, sr = audio  # tones (no espeak-ng): write a 16-bit WAV
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return "demo.wav", buf.getvalue(), SENTENCE


def timeline_png(result, audio):
    """The words as spans over the waveform, and a spectrogram: PNG bytes drawn once per result (a
    rerun shows the stored image instead of plotting again), or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import io

    fig = result.plot(audio)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)  # pyplot keeps every figure until it is closed
    return buf.getvalue()


def show_result(name, result, timeline):
    base = os.path.splitext(name)[0]
    st.subheader(f"{len(result)} words" + (f" · {result.language}" if result.language else ""))
    for w in result.warnings:
        st.warning(w)
    try:
        st.dataframe(result.to_dataframe())
    except ImportError:
        st.table([it.to_dict() for it in result])
    if timeline is not None:
        st.image(timeline, caption="words over the waveform and the spectrogram")
    c1, c2, c3 = st.columns(3)
    c1.download_button("SRT", result.to_srt(), file_name=base + ".srt", mime="text/plain")
    c2.download_button("VTT", result.to_vtt(), file_name=base + ".vtt", mime="text/vtt")
    c3.download_button("JSON", result.to_json(indent=2), file_name=base + ".json", mime="application/json")


st.set_page_config(page_title="qwen3align", layout="wide")
st.title("Word timestamps with Qwen3-ForcedAligner")

with st.sidebar:
    st.header("Models")
    aligner = st.text_input("Aligner checkpoint folder", setting("QWEN3ALIGN_ALIGNER"), key="aligner")
    asr = st.text_input("ASR checkpoint folder (to transcribe)", setting("QWEN3ALIGN_ASR"), key="asr")
    devices = ["auto", "cpu", "cuda"]
    dev = setting("QWEN3ALIGN_DEVICE", "auto")
    device = st.selectbox("Device", devices, index=devices.index(dev) if dev in devices else 0, key="device")
    max_seconds = st.number_input("Longest audio (s)", min_value=5, max_value=1200, value=300, step=5)
    if st.button("Reload models", key="reload"):
        clear_models_cache()  # closes the old Models first: their memory is free before the next load
        st.session_state.pop("result", None)
    use_example = st.checkbox("Use the example clip", value=bool(setting("QWEN3ALIGN_EXAMPLE_AUDIO")),
                              key="use_example")

if not aligner and not asr:
    st.info("Set the aligner (and optionally ASR) checkpoint folder in the sidebar, or start the app with "
            "QWEN3ALIGN_ALIGNER / QWEN3ALIGN_ASR set.")
    st.stop()

try:
    models = load_models_cached(aligner=aligner or None, asr=asr or None, device=device,
                                max_audio_seconds=float(max_seconds), exclusive=True)
except qa.Qwen3AlignError as e:  # e.g. OutOfMemoryError with the numbers and what to lower
    st.error(f"{type(e).__name__}: {e}")
    st.stop()
memory_panel(models)

if use_example:
    name, audio, example_text = example_clip(setting("QWEN3ALIGN_EXAMPLE_AUDIO"))
    st.audio(audio)
else:
    uploaded = st.file_uploader("Audio", type=["wav", "flac", "ogg", "mp3"])
    name, audio, example_text = (uploaded.name, uploaded.getvalue(), "") if uploaded is not None else (None, None, "")
text = st.text_area("Transcript (leave empty to transcribe first)", example_text, key="text")
language = st.selectbox("Language", LANGUAGES, key="language")

if audio is not None and st.button("Align", type="primary", key="align"):
    kw = {} if language == LANGUAGES[0] else {"language": language}
    if text.strip():
        kw["text"] = text
    elif not asr:
        st.error("No transcript given and no ASR model loaded.")
        st.stop()
    try:
        with st.spinner("Aligning…"):
            result = models.align(audio, **kw)
            st.session_state["result"] = (name, result, timeline_png(result, audio))
    except qa.Qwen3AlignError as e:
        st.error(f"{type(e).__name__}: {e}")

if "result" in st.session_state:
    show_result(*st.session_state["result"])
