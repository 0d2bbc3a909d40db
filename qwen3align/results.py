"""Result objects: what `Models.align` and `Models.transcribe` return.

    res = models.align("talk.wav", text="...")        # an Alignment: a sequence of AlignItem
    res[0].text, res[0].start, res[0].end             # seconds
    res.to_srt(); res.to_vtt(); res.to_textgrid(); res.to_json(); res.to_dataframe(); res.plot(audio)

Plain Python (no NumPy at import). Subtitle/TextGrid writing lives in qwen3align.subtitles, which
clamps times to the audio duration and never writes overlapping or empty cues; the raw model times
stay untouched here (a random or confused model may put words past the end of the audio).
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["AlignItem", "Alignment", "Transcription"]


@dataclass(frozen=True)
class AlignItem:
    """One aligned word (or CJK character): text and its start/end in seconds."""

    text: str
    start: float
    end: float
    confidence: float = float("nan")  # nan when the engine did not compute one

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        conf = None if self.confidence is None or math.isnan(self.confidence) else float(self.confidence)
        return {"text": self.text, "start": float(self.start), "end": float(self.end), "confidence": conf}


def _as_item(x) -> AlignItem:
    if isinstance(x, AlignItem):
        return x
    if isinstance(x, dict):
        conf = x.get("confidence")
        return AlignItem(str(x["text"]), float(x["start"]), float(x["end"]),
                         float("nan") if conf is None else float(conf))
    return AlignItem(*x)


class Alignment(Sequence):
    """Word timestamps of one recording: a read-only sequence of AlignItem plus metadata.

    text      the transcript that was aligned (as given or as transcribed)
    language  the language used (given, forced or detected), or None
    warnings  tuple of human-readable notes from the engine (e.g. "3 words past the audio end")
    duration  audio length in seconds (subtitle writers clamp to it), or None when unknown
    chunks    [(start_s, end_s, first_word, last_word), ...] when long audio was cut, else None
    """

    __slots__ = ("_items", "text", "language", "warnings", "duration", "chunks")

    def __init__(self, items=(), *, text="", language=None, warnings=(), duration=None, chunks=None):
        self._items = tuple(_as_item(x) for x in items)
        self.text = text or ""
        self.language = language
        self.warnings = tuple(warnings or ())
        self.duration = None if duration is None else float(duration)
        self.chunks = None if chunks is None else [tuple(c) for c in chunks]

    # -- Sequence -------------------------------------------------------------------------------
    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Alignment(self._items[i], text=self.text, language=self.language,
                             warnings=self.warnings, duration=self.duration)
        return self._items[i]

    def __eq__(self, other):
        if not isinstance(other, Alignment):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self):
        words = " ".join(it.text for it in self._items[:8]) + (" …" if len(self) > 8 else "")
        lang = f", language={self.language!r}" if self.language else ""
        return f"<Alignment {len(self)} items{lang}: {words!r}>"

    @property
    def items(self) -> list:
        return list(self._items)

    @property
    def words(self) -> list:
        return [it.text for it in self._items]

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "language": self.language,
            "duration": self.duration,
            "warnings": list(self.warnings),
            "chunks": None if self.chunks is None else [list(c) for c in self.chunks],
            "items": [it.to_dict() for it in self._items],
        }

    def to_json(self, indent=None, ensure_ascii=False) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=ensure_ascii)

    @classmethod
    def from_dict(cls, d: dict) -> "Alignment":
        return cls(d.get("items", ()), text=d.get("text", ""), language=d.get("language"),
                   warnings=d.get("warnings", ()), duration=d.get("duration"), chunks=d.get("chunks"))

    @classmethod
    def from_json(cls, s: str) -> "Alignment":
        return cls.from_dict(json.loads(s))

    def to_srt(self, **grouping) -> str:
        """SubRip text; `grouping`: max_chars=42, max_duration=7.0, max_gap=1.5 (see subtitles)."""
        from . import subtitles

        return subtitles.to_srt(self, **grouping)

    def to_vtt(self, **grouping) -> str:
        """WebVTT text; same grouping options as to_srt."""
        from . import subtitles

        return subtitles.to_vtt(self, **grouping)

    def to_textgrid(self, **options) -> str:
        """Praat TextGrid (long text format) with a "words" tier covering [0, duration]."""
        from . import subtitles

        return subtitles.to_textgrid(self, **options)

    def to_text(self) -> str:
        """The words joined as text (no space between CJK characters)."""
        from . import subtitles

        return subtitles.join_words(self.words)

    def to_dataframe(self):
        """pandas DataFrame with columns text, start, end, confidence."""
        try:
            import pandas as pd
        except ImportError as e:  # pandas is an optional extra
            raise ImportError("Alignment.to_dataframe() needs pandas: pip install pandas "
                              "(or pip install 'qwen3align[pandas]')") from e
        rows = [it.to_dict() for it in self._items]
        return pd.DataFrame(rows, columns=["text", "start", "end", "confidence"])

    # -- notebook -------------------------------------------------------------------------------
    def _repr_html_(self, max_rows=200):
        head = [f"{len(self)} items"]
        if self.language:
            head.append(f"language {html.escape(str(self.language))}")
        if self.duration is not None:
            head.append(f"audio {self.duration:.2f} s")
        rows = []
        for i, it in enumerate(self._items[:max_rows]):
            conf = "" if math.isnan(it.confidence) else f"{it.confidence:.3f}"
            rows.append(f"<tr><td>{i}</td><td>{html.escape(it.text)}</td><td>{it.start:.3f}</td>"
                        f"<td>{it.end:.3f}</td><td>{conf}</td></tr>")
        if len(self) > max_rows:
            rows.append(f"<tr><td colspan='5'>… {len(self) - max_rows} more</td></tr>")
        warn = "".join(f"<div>⚠ {html.escape(w)}</div>" for w in self.warnings)
        return (f"<div><b>Alignment</b>: {', '.join(head)}{warn}<table>"
                "<thead><tr><th>#</th><th>text</th><th>start (s)</th><th>end (s)</th>"
                f"<th>confidence</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")

    def plot(self, audio, sample_rate=16000, ax=None):
        """Words as shaded spans over the waveform (and a spectrogram when ax is None).

        audio: a float array (with sample_rate), an (array, rate) pair, or anything
        qwen3align.load_audio accepts. Needs matplotlib. Returns the matplotlib Figure.
        """
        from ._plot import plot_alignment

        return plot_alignment(self, audio, sample_rate=sample_rate, ax=ax)


@dataclass(frozen=True)
class Transcription:
    """What `Models.transcribe` returns: the text, the language (forced or detected) and token ids."""

    text: str
    language: str | None = None
    tokens: tuple = field(default=())
    warnings: tuple = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    def __str__(self):
        return self.text

    def to_dict(self) -> dict:
        return {"text": self.text, "language": self.language, "tokens": [int(t) for t in self.tokens],
                "warnings": list(self.warnings)}

    def to_json(self, indent=None, ensure_ascii=False) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=ensure_ascii)
