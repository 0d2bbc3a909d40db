"""Streamlit helpers: one loaded model set per set of arguments, shared by all sessions, closed on clear.

    import streamlit as st
    from qwen3align.streamlit import load_models_cached, clear_models_cache, memory_panel

    models = load_models_cached(aligner="Qwen3-ForcedAligner-0.6B/", asr="Qwen3-ASR-1.7B/", device="cuda")
    memory_panel(models)                       # sidebar: where every byte is
    if st.button("Reload models"):
        clear_models_cache()                   # closes the old arena BEFORE the next load takes memory

Why this wrapper instead of a bare @st.cache_resource around load_models: the Models object owns one
device allocation (the arena); when Streamlit drops a cache entry, that memory must be returned at
once (`close()`), not whenever the garbage collector gets to it — otherwise a reload briefly needs
the memory twice and fails on a small card. `on_release` (Streamlit ≥ 1.50) is the hook; on older
versions the same is done by closing every instance we made before clearing the cache.
Models is safe to share across sessions (threads): calls are serialised inside and release the GIL.
"""
from __future__ import annotations

import os
import threading

__all__ = ["load_models_cached", "clear_models_cache", "memory_panel"]

_lock = threading.Lock()
_loader = None  # the st.cache_resource-wrapped function, built on first use
_live = []  # instances made by the loader (for Streamlit versions without on_release)


def _close(models):
    close = getattr(models, "close", None)
    if close is not None:
        close()
    with _lock:
        if models in _live:
            _live.remove(models)


def _norm_model(x):
    # "./ckpt" and "/abs/ckpt" are the same model: one cache entry; released names stay as given
    return os.path.abspath(x) if isinstance(x, str) and os.path.exists(x) else x


def _build_loader():
    import streamlit as st

    def _load(aligner, asr, device, max_audio_seconds, max_new_tokens, max_device_bytes, extra):
        import qwen3align as qa

        models = qa.load_models(aligner=aligner, asr=asr, device=device, max_audio_seconds=max_audio_seconds,
                                max_new_tokens=max_new_tokens, max_device_bytes=max_device_bytes, **dict(extra))
        with _lock:
            _live.append(models)
        return models

    try:
        return st.cache_resource(show_spinner="Loading models (planning memory, reading weights)…",
                                 on_release=_close)(_load), True
    except TypeError:  # Streamlit < 1.50: no on_release
        return st.cache_resource(show_spinner="Loading models…")(_load), False


def _get_loader():
    global _loader
    with _lock:
        if _loader is None:
            _loader = _build_loader()
        return _loader


def load_models_cached(aligner=None, asr=None, *, device="auto", max_audio_seconds=300, max_new_tokens=1024,
                       max_device_bytes=None, **kwargs):
    """qwen3align.load_models(...) cached with st.cache_resource: one Models per distinct arguments,
    shared by every session; the entry's Models is closed when the cache entry is released."""
    fn, _ = _get_loader()
    extra = tuple(sorted(kwargs.items()))
    return fn(_norm_model(aligner), _norm_model(asr), device, max_audio_seconds, max_new_tokens,
              max_device_bytes, extra)


def clear_models_cache():
    """Close every cached Models (returning their memory) and empty the cache."""
    fn, has_on_release = _get_loader()
    if not has_on_release:
        with _lock:
            old = list(_live)
        for m in old:
            _close(m)
    fn.clear()  # with on_release, this closes each entry's Models
    with _lock:  # anything left (e.g. made outside a script run) is closed too
        old = list(_live)
    for m in old:
        _close(m)


def memory_panel(models, container=None):
    """Show models.memory_report() (a fixed-width table) in the sidebar or the given container."""
    import streamlit as st

    box = container if container is not None else st.sidebar
    box.subheader("Memory")
    box.code(str(models.memory_report()), language=None)
