"""Streamlit helpers: one loaded model set per set of arguments, shared by all sessions, closed on clear.

    import streamlit as st
    from qwen3align.streamlit import load_models_cached, clear_models_cache, memory_panel

    models = load_models_cached(aligner="Qwen3-ForcedAligner-0.6B/", asr="Qwen3-ASR-1.7B/", device="cuda")
    memory_panel(models)                       # sidebar: where every byte is
    if st.button("Reload models"):
        clear_models_cache()                   # closes the old arena BEFORE the next load takes memory

Why this wrapper instead of a bare @st.cache_resource around load_models: the Models object owns one
device allocation (the arena); when Streamlit drops a cache entry, that memory must be returned at
once (`close()`), not whenever the garbage collector gets to it — otherwise a reload briefly holds
the memory twice and fails on a small card (streamlit#5998: cache_resource entries are dropped, never
closed). `on_release` (Streamlit >= 1.50) is the hook; on older versions the same is done by closing
every instance we made before clearing the cache. `exclusive=True` goes one step further for apps
whose settings can change (another folder, another max_audio_seconds): the other cached model sets
are closed before the new one is loaded, so the process never holds two arenas.
Models is safe to share across sessions (threads): calls are serialised inside and release the GIL.
"""
from __future__ import annotations

import os
import threading

__all__ = ["load_models_cached", "clear_models_cache", "memory_panel", "live_models"]

_lock = threading.RLock()
_loader = None  # (the st.cache_resource-wrapped function, has_on_release), built on first use
_live = []  # [(args, Models)] made by the loader and not yet closed


def _close(models):
    close = getattr(models, "close", None)
    if close is not None:
        close()  # Models.close() twice is harmless
    with _lock:
        _live[:] = [(k, m) for k, m in _live if m is not models]


def _is_open(models):
    return not getattr(models, "closed", False)


def _norm_model(x):
    # "./ckpt" and "/abs/ckpt" are the same model: one cache entry; preset names stay as given
    return os.path.abspath(x) if isinstance(x, str) and os.path.exists(x) else x


def _build_loader():
    import streamlit as st

    def _load(aligner, asr, device, max_audio_seconds, max_new_tokens, max_device_bytes, extra):
        import qwen3align as qa

        models = qa.load_models(aligner=aligner, asr=asr, device=device, max_audio_seconds=max_audio_seconds,
                                max_new_tokens=max_new_tokens, max_device_bytes=max_device_bytes, **dict(extra))
        with _lock:
            _live.append(((aligner, asr, device, max_audio_seconds, max_new_tokens, max_device_bytes, extra),
                          models))
        return models

    spinner = "Loading models (planning memory, reading weights)…"
    try:  # validate: a Models somebody closed by hand is loaded again instead of served closed
        return st.cache_resource(show_spinner=spinner, on_release=_close, validate=_is_open)(_load), True
    except TypeError:  # Streamlit < 1.50: no on_release
        return st.cache_resource(show_spinner=spinner)(_load), False


def _get_loader():
    global _loader
    with _lock:
        if _loader is None:
            _loader = _build_loader()
        return _loader


def live_models():
    """The open Models this helper loaded (for memory panels and tests)."""
    with _lock:
        return [m for _, m in _live if _is_open(m)]


def load_models_cached(aligner=None, asr=None, *, device="auto", max_audio_seconds=300, max_new_tokens=1024,
                       max_device_bytes=None, exclusive=False, **kwargs):
    """qwen3align.load_models(...) cached with st.cache_resource: one Models per distinct arguments,
    shared by every session; the entry's Models is closed when the cache entry is released.

    exclusive=True: before loading a model set that is not cached yet, close every other cached one
    (one arena in the process at a time; sessions still using an old set get "Models is closed").
    """
    fn, _ = _get_loader()
    args = (_norm_model(aligner), _norm_model(asr), device, max_audio_seconds, max_new_tokens, max_device_bytes,
            tuple(sorted(kwargs.items())))
    if exclusive:
        with _lock:
            others = [m for k, m in _live if k != args]
        if others:
            clear_models_cache()
    return fn(*args)


def clear_models_cache():
    """Close every cached Models (returning their memory) and empty the cache."""
    fn, has_on_release = _get_loader()
    with _lock:
        old = [m for _, m in _live]
    if not has_on_release:
        for m in old:
            _close(m)
    fn.clear()  # with on_release, this closes each entry's Models
    with _lock:  # anything left (e.g. an entry Streamlit already forgot) is closed too
        old = [m for _, m in _live]
    for m in old:
        _close(m)


def memory_panel(models, container=None):
    """Show models.memory_report() (a fixed-width table) in the sidebar or the given container."""
    import streamlit as st

    box = container if container is not None else st.sidebar
    box.subheader("Memory")
    box.code(str(models.memory_report()), language=None)
