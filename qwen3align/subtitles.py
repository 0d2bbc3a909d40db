"""Subtitles and TextGrids from word timestamps: grouping words into cues, SRT / WebVTT / TextGrid writers.

Contract (what every writer guarantees, whatever the model produced):
- times are whole milliseconds, clamped to [0, duration] (duration = the audio length when known);
- words keep their order and never overlap; a word or cue that would be empty (start == end, as a
  random or confused model gives, or after clamping past the end) gets the smallest positive span
  that overlaps nothing: 1 ms, borrowed from the free time next to it;
- a TextGrid tier covers [0, duration] exactly, with empty intervals in the gaps (Praat requires
  contiguous intervals).
References: SubRip as read by common players ("HH:MM:SS,mmm --> HH:MM:SS,mmm", cues separated by a
blank line); W3C WebVTT (https://www.w3.org/TR/webvtt1/: "WEBVTT" header, "HH:MM:SS.mmm", text with
&, <, > escaped); Praat's TextGrid long text format (ooTextFile, IntervalTier).
Cue text is cut from the aligned transcript when the words can be found in it in order (so
punctuation survives: "Hello world, it's"); otherwise words are joined with spaces, except around
CJK characters, which take none.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

__all__ = ["Cue", "is_cjk", "join_words", "normalize_spans", "group_cues", "to_srt", "to_vtt",
           "to_textgrid", "format_srt_time", "format_vtt_time"]

# Scripts written without spaces between words (the aligner's CJK ranges, MODEL_FACTS §7.1, plus kana).
_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
               (0x20000, 0x2A6DF), (0x2A700, 0x2CEAF), (0x2F800, 0x2FA1F), (0x3000, 0x303F),
               (0xFF00, 0xFFEF))


@dataclass(frozen=True)
class Cue:
    """One subtitle line: [start_ms, end_ms) and its text; words = indices into the alignment."""

    start_ms: int
    end_ms: int
    text: str
    first: int
    last: int


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return any(a <= o <= b for a, b in _CJK_RANGES)


def join_words(words) -> str:
    """Words joined with single spaces, but no space next to a CJK character."""
    out = ""
    for w in words:
        if out and w and not (is_cjk(out[-1]) or is_cjk(w[0])):
            out += " "
        out += w
    return out


def _width(s: str) -> int:
    # East Asian wide/full-width characters take two columns on screen.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _duration_ms(duration):
    if duration is None or not math.isfinite(duration) or duration < 0:
        return None
    return int(math.floor(duration * 1000.0 + 1e-6))


def normalize_spans(items, duration=None):
    """[(start_ms, end_ms)] per item: ordered, non-overlapping, each at least 1 ms, inside [0, duration].

    Forward pass: clamp into [0, D], start at or after the previous end, end ≥ start + 1 ms. Backward
    pass: pull ends that overran D (or the next start) back, and starts with them. Feasible whenever
    D ≥ n ms; otherwise (n words in less than n ms) the bound is widened to n ms.
    """
    n = len(items)
    d = _duration_ms(duration)
    ms = []
    for it in items:
        s, e = float(it.start), float(it.end)
        s = s if math.isfinite(s) else 0.0
        e = e if math.isfinite(e) else s
        ms.append((int(round(s * 1000.0)), int(round(e * 1000.0))))
    hi = None if d is None else max(d, n)
    out, prev = [], 0
    for s, e in ms:
        s = max(0, s, prev) if hi is None else min(max(0, s, prev), hi)
        e = max(e, s + 1) if hi is None else max(min(e, hi), s + 1)
        out.append([s, e])
        prev = e
    nxt = hi if hi is not None else (out[-1][1] if out else 0)
    for span in reversed(out):
        span[1] = min(span[1], nxt)
        span[0] = min(span[0], span[1] - 1)
        nxt = span[0]
    return [(s, e) for s, e in out]


def _word_char(c: str) -> bool:
    # what the aligner's word cleaner keeps (MODEL_FACTS §7.1): letters, numbers, apostrophe
    return c == "'" or unicodedata.category(c)[0] in "LN"


def _source_spans(text: str, words):
    """Character span of each word in `text` (punctuation skipped inside words), or None if not found."""
    spans, pos = [], 0
    for w in words:
        wi, start, j = 0, None, pos
        while j < len(text) and wi < len(w):
            c = text[j]
            if c == w[wi]:
                start = j if start is None else start
                wi += 1
            elif _word_char(c):
                return None  # a letter the word does not have: the text is not the aligned one
            j += 1
        if wi < len(w) or start is None:
            return None
        spans.append((start, j))
        pos = j
    return spans


def _opening(c: str) -> bool:
    # punctuation that belongs to the word after it: "(room", "¿qué", « mot
    return unicodedata.category(c) in ("Ps", "Pi") or c in "\"'¿¡"


def _cue_text(text, spans, words, a, b):
    """Text of words a..b: a slice of the transcript with the punctuation around it, or joined words.

    Everything between two words goes to the earlier one (",", "—", "。"), except opening marks
    glued to the later word ("(", "«", "¿").
    """
    if spans is None:
        return join_words(words[a:b + 1])
    s = 0 if a == 0 else spans[a][0]
    while a > 0 and s > spans[a - 1][1] and _opening(text[s - 1]):
        s -= 1
    e = len(text) if b + 1 == len(spans) else spans[b + 1][0]
    while b + 1 < len(spans) and e > spans[b][1] and _opening(text[e - 1]):
        e -= 1
    return " ".join(text[s:e].split())


def group_cues(items, duration=None, *, text="", max_chars=42, max_duration=7.0, max_gap=1.5):
    """Group words into one-line cues of at most `max_chars` columns (CJK count 2) and
    `max_duration` seconds; a pause longer than `max_gap` seconds starts a new cue."""
    words = [it.text for it in items]
    spans = normalize_spans(items, duration)
    src = _source_spans(text, words) if text else None
    cues, a = [], 0
    for i in range(1, len(items) + 1):
        if i < len(items):
            too_wide = _width(_cue_text(text, src, words, a, i)) > max_chars
            too_long = spans[i][1] - spans[a][0] > max_duration * 1000.0
            pause = spans[i][0] - spans[i - 1][1] > max_gap * 1000.0
            if not (too_wide or too_long or pause):
                continue
        line = _cue_text(text, src, words, a, i - 1) or "…"  # a cue line may not be empty (SRT/VTT)
        cues.append(Cue(spans[a][0], spans[i - 1][1], line, a, i - 1))
        a = i
    return cues


def _unpack(result, duration):
    items = list(result)
    text = getattr(result, "text", "") or ""
    if duration is None:
        duration = getattr(result, "duration", None)
    return items, text, duration


def format_srt_time(ms: int) -> str:
    h, rem = divmod(int(ms), 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def format_vtt_time(ms: int) -> str:
    return format_srt_time(ms).replace(",", ".")


def to_srt(result, duration=None, **grouping) -> str:
    """SubRip: numbered cues "i\\nHH:MM:SS,mmm --> HH:MM:SS,mmm\\ntext\\n", separated by blank lines."""
    items, text, duration = _unpack(result, duration)
    blocks = []
    for k, c in enumerate(group_cues(items, duration, text=text, **grouping), 1):
        blocks.append(f"{k}\n{format_srt_time(c.start_ms)} --> {format_srt_time(c.end_ms)}\n{c.text}\n")
    return "\n".join(blocks)


def _vtt_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(result, duration=None, **grouping) -> str:
    """WebVTT: "WEBVTT" header, then cues "HH:MM:SS.mmm --> HH:MM:SS.mmm\\ntext" (escaped)."""
    items, text, duration = _unpack(result, duration)
    blocks = ["WEBVTT\n"]
    for c in group_cues(items, duration, text=text, **grouping):
        blocks.append(f"{format_vtt_time(c.start_ms)} --> {format_vtt_time(c.end_ms)}\n{_vtt_escape(c.text)}\n")
    return "\n".join(blocks)


def _tier_intervals(spans, labels, xmax):
    """Contiguous (xmin, xmax, text) covering [0, xmax]: the labelled spans plus empty gaps."""
    out, t = [], 0.0
    for (s, e), lab in zip(spans, labels):
        s, e = s / 1000.0, e / 1000.0
        if s > t:
            out.append((t, s, ""))
        out.append((s, e, lab))
        t = e
    if xmax > t:
        out.append((t, xmax, ""))
    return out


def _num(x: float) -> str:
    return format(x, ".15g")


def _praat_str(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _tier_lines(k, name, intervals, xmax):
    lines = [f"    item [{k}]:", '        class = "IntervalTier" ', f"        name = {_praat_str(name)} ",
             "        xmin = 0 ", f"        xmax = {_num(xmax)} ", f"        intervals: size = {len(intervals)} "]
    for j, (a, b, lab) in enumerate(intervals, 1):
        lines += [f"        intervals [{j}]:", f"            xmin = {_num(a)} ",
                  f"            xmax = {_num(b)} ", f"            text = {_praat_str(lab)} "]
    return lines


def to_textgrid(result, duration=None, *, tier="words", cues=False, **grouping) -> str:
    """Praat TextGrid (long text format): a `tier` of words over [0, duration] (gaps are empty
    intervals); with cues=True a second tier "cues" holds the subtitle lines."""
    items, text, duration = _unpack(result, duration)
    spans = normalize_spans(items, duration)
    end = spans[-1][1] / 1000.0 if spans else 0.0
    xmax = max(duration if duration is not None and math.isfinite(duration) else 0.0, end)
    if xmax <= 0.0:
        xmax = 0.001  # Praat needs xmax > xmin even for an empty grid
    tiers = [(tier, _tier_intervals(spans, [it.text for it in items], xmax))]
    if cues:
        cl = group_cues(items, duration, text=text, **grouping)
        tiers.append(("cues", _tier_intervals([(c.start_ms, c.end_ms) for c in cl], [c.text for c in cl], xmax)))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ",
             f"xmax = {_num(xmax)} ", "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for k, (name, iv) in enumerate(tiers, 1):
        lines += _tier_lines(k, name, iv, xmax)
    return "\n".join(lines) + "\n"
