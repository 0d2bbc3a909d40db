"""Alignment.plot: words as shaded spans over the waveform, plus a spectrogram (matplotlib, optional).

Times are clamped with the same rules as the subtitle writers (qwen3align.subtitles.normalize_spans),
so a word the model put past the end of the audio is drawn at the end instead of off the axes.
"""
from __future__ import annotations


def _audio_array(audio, sample_rate):
    import numpy as np

    if isinstance(audio, tuple) and len(audio) == 2:
        audio, sample_rate = audio
    if isinstance(audio, np.ndarray) or isinstance(audio, list):
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim == 2:  # (samples, channels) or (channels, samples): average the short axis
            x = x.mean(axis=1 if x.shape[0] > x.shape[1] else 0)
        return x, int(sample_rate)
    from .audio import load_audio

    out = load_audio(audio)
    if isinstance(out, tuple):
        return np.asarray(out[0], dtype=np.float32), int(out[1])
    return np.asarray(out, dtype=np.float32), 16000


def _draw_words(ax, result, spans, top):
    colors = ("tab:orange", "tab:green")
    for k, (it, (s, e)) in enumerate(zip(result, spans)):
        ax.axvspan(s / 1000.0, e / 1000.0, color=colors[k % 2], alpha=0.25, lw=0)
        ax.text((s + e) / 2000.0, top * (0.9 if k % 2 == 0 else 0.7), it.text, ha="center", va="top",
                fontsize=8, clip_on=True)


def plot_alignment(result, audio, sample_rate=16000, ax=None):
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Alignment.plot() needs matplotlib: pip install matplotlib "
                          "(or pip install 'qwen3align[plot]')") from e
    import numpy as np

    from .subtitles import normalize_spans

    x, sr = _audio_array(audio, sample_rate)
    duration = len(x) / float(sr) if sr > 0 else result.duration
    spans = normalize_spans(list(result), duration)
    t = np.arange(len(x)) / float(sr)
    if ax is None:
        fig, (ax_w, ax_s) = plt.subplots(2, 1, sharex=True, figsize=(12, 4.5))
    else:
        fig, ax_w, ax_s = ax.figure, ax, None
    ax_w.plot(t, x, lw=0.5, color="tab:blue")
    top = float(np.max(np.abs(x))) if len(x) else 1.0
    top = top if top > 0 else 1.0
    ax_w.set_ylim(-top * 1.05, top * 1.05)
    _draw_words(ax_w, result, spans, top)
    ax_w.set_ylabel("amplitude")
    ax_w.set_xlim(0, max(duration or 0.0, 1e-3))
    if ax_s is not None:
        if len(x) >= 512:
            with np.errstate(divide="ignore"):  # digital silence: log10(0) is drawn as the floor colour
                ax_s.specgram(x, NFFT=400, Fs=sr, noverlap=240, cmap="magma")
        for s, e in spans:
            ax_s.axvline(s / 1000.0, color="white", lw=0.5, alpha=0.6)
        ax_s.set_ylabel("Hz")
        ax_s.set_xlabel("time (s)")
    else:
        ax_w.set_xlabel("time (s)")
    title = f"{len(result)} words" + (f", {result.language}" if getattr(result, "language", None) else "")
    ax_w.set_title(title)
    return fig
