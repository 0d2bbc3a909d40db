"""Split a given transcript among the chunks of a long recording.

A recording longer than one model input is cut at quiet points (qwen3align.longaudio); when the
user gives the transcript, each chunk must be aligned with exactly the words spoken in it. Two
methods find the word index where each chunk starts; both return boundaries
`b[0] = 0 <= b[1] <= ... <= b[K] = len(words)` (chunk k gets words[b[k]:b[k+1]]), so every word
lands in exactly one chunk, in order.

1. `split_by_asr(words, asr_words, durations)` — when an ASR model is loaded. Each chunk is
   transcribed; the transcript words are aligned to the concatenation of the per-chunk ASR words by
   word-level edit distance (Levenshtein with backtrace; words compared after `normalize_word`:
   casefold, letters and digits only). A transcript word paired with an ASR word (a match or a
   substitution between similar words: difflib ratio of the normalised forms >= 0.5, e.g. "their"
   / "there") takes that ASR word's chunk. The other transcript words (deletions, and substitutions
   by dissimilar words, which are what a wrong or random transcription produces) form runs between two paired words of chunks a <= b: when chunks lie strictly between a and b
   (their ASR output was empty or entirely unmatched), the run is spread over those chunks in
   proportion to their durations; when b == a + 1 the run is split at its middle; a run before
   the first paired word goes to the chunks before it (or to chunk b), one after the last paired
   word to the chunks after it (or to chunk a). No paired word at all: proportional to durations.
   ASR words with no transcript counterpart (insertions) are skipped. For long inputs the dynamic
   programme is restricted to a band around the proportional diagonal (|i/n − j/m| small; width at
   least twice |n − m| + 128 words), which keeps 2 h of speech at tens of MB; the band always holds a
   path, so the result is a valid split even if the best path leaves it.

2. `split_by_aligner(words, cuts, duration, align_window)` — with the aligner alone. Boundaries are
   found one cut at a time, left to right. For cut t (seconds) after the previous boundary (word
   b', time t'): guess the word at t by the remaining speaking rate, g = b' + (t − t')·(n − b')/(T − t');
   force-align the audio window [max(t', t − W), min(T, t + W)] with the words around the guess
   (as many as the rate predicts for W seconds on each side); the boundary is the first word of
   that span whose aligned midpoint lies at or after t. If that word is at an edge of the span
   (the guess was off by more than the span), the span is re-centred on it and aligned again (at
   most `rounds` times). Boundaries are clamped to be non-decreasing.
"""
from __future__ import annotations

import difflib
import itertools
import math
import unicodedata

import numpy as np

__all__ = ["normalize_word", "align_words", "split_by_asr", "split_by_aligner"]


def normalize_word(w: str) -> str:
    """Casefolded letters and digits of w (Unicode categories L* and N*); '' if none."""
    return "".join(ch for ch in w.casefold() if unicodedata.category(ch)[0] in "LN")


def _ids(ref, hyp):
    """Integer ids of the normalised words; a word that normalises to '' matches nothing."""
    table, out, uniq = {}, [], itertools.count(-1, -1)
    for seq in (ref, hyp):
        ids = np.empty(len(seq), np.int64)
        for k, w in enumerate(seq):
            key = normalize_word(w)
            ids[k] = table.setdefault(key, len(table)) if key else next(uniq)
        out.append(ids)
    return out


def _band(n, m, width):
    """Per row i of the (n+1) x (m+1) table: the columns [lo_i, hi_i] inside the band."""
    i = np.arange(n + 1)
    c = i * m / max(n, 1)
    lo = np.clip(np.floor(c).astype(np.int64) - width, 0, m)
    hi = np.clip(np.ceil(c).astype(np.int64) + width, 0, m)
    lo[0], hi[n] = 0, m
    return lo, hi


def align_words(ref, hyp, *, band=None):
    """Word-level Levenshtein alignment of ref to hyp (sequences of str).

    Returns an int64 array `pair` of len(ref): pair[i] = the index j of the hyp word aligned with
    ref word i (equal after normalisation, or a substitution), or -1 when ref word i is deleted.
    Costs: 1 per insertion, deletion and substitution. On ties the backtrace prefers a pairing,
    then a deletion. `band`: half-width in words of the diagonal band (None: the full table when
    it is small, else max(256, 2|n − m| + 128)).
    """
    n, m = len(ref), len(hyp)
    pair = np.full(n, -1, np.int64)
    if n == 0 or m == 0:
        return pair
    if band is None:
        band = max(n, m) if n * m <= 4_000_000 else max(256, 2 * abs(n - m) + 128)
    r, h = _ids(ref, hyp)
    lo, hi = _band(n, m, int(band))
    moves = []  # per row: int8 codes for columns lo..hi (0 pair, 1 deletion, 2 insertion)
    prev = np.arange(hi[0] + 1, dtype=np.int64)  # row 0: j insertions
    moves.append(np.full(hi[0] + 1, 2, np.int8))
    big = np.int64(1) << 40
    for i in range(1, n + 1):
        cols = np.arange(lo[i], hi[i] + 1)
        plo, phi = lo[i - 1], hi[i - 1]
        up = np.full(cols.size, big)  # deletion: D[i-1][j] + 1
        ok = (cols >= plo) & (cols <= phi)
        up[ok] = prev[cols[ok] - plo] + 1
        diag = np.full(cols.size, big)  # pairing: D[i-1][j-1] + (words differ)
        ok = (cols >= 1) & (cols - 1 >= plo) & (cols - 1 <= phi)
        jj = cols[ok]
        diag[ok] = prev[jj - 1 - plo] + (h[jj - 1] != r[i - 1])
        base = np.minimum(up, diag)
        cur = np.minimum.accumulate(base - cols) + cols  # insertions: D[i][j-1] + 1, in one scan
        code = np.where(cur < base, 2, np.where(diag <= up, 0, 1)).astype(np.int8)
        moves.append(code)
        prev = cur
    i, j = n, m
    while i > 0:
        c = moves[i][j - lo[i]]  # the path never leaves the band (see _band)
        if c == 0:
            pair[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif c == 1:
            i -= 1
        else:
            j -= 1
    return pair


def _similar(a, b):
    """Whether a substitution pairs two forms of one word (so it can anchor a chunk boundary)."""
    a, b = normalize_word(a), normalize_word(b)
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.5


def _spread(count, weights):
    """Assign `count` consecutive items to len(weights) bins in proportion to weights (in order);
    returns the bin of each item (non-decreasing)."""
    w = np.maximum(np.asarray(weights, np.float64), 0.0)
    if count == 0:
        return np.zeros(0, np.int64)
    if w.sum() <= 0:
        w = np.ones(len(w))
    edges = np.cumsum(w) / w.sum()
    pos = (np.arange(count) + 0.5) / count
    return np.minimum(np.searchsorted(edges, pos, side="right"), len(w) - 1)


def _fill_runs(chunk, durations):
    """Give every -1 in chunk (the chunk of each transcript word) a chunk, keeping order."""
    n, K = len(chunk), len(durations)
    paired = np.flatnonzero(chunk >= 0)
    if paired.size == 0:
        return _spread(n, durations)
    out = chunk.copy()
    # runs: before the first paired word, between consecutive paired words, after the last one
    stops = [(-1, 0, paired[0])]
    stops += [(chunk[p], p + 1, q) for p, q in zip(paired[:-1], paired[1:]) if q > p + 1]
    stops += [(chunk[paired[-1]], paired[-1] + 1, n)]
    for a, s, e in stops:
        if e <= s:
            continue
        b = chunk[e] if e < n else K
        inner = list(range(a + 1, b))
        if inner:
            out[s:e] = np.asarray(inner)[_spread(e - s, [durations[k] for k in inner])]
        elif a < 0:
            out[s:e] = b
        elif b >= K:
            out[s:e] = a
        else:
            half = (e - s + 1) // 2
            out[s:s + half], out[s + half:e] = a, b
    return out


def _bounds_of(chunk, K):
    """Boundaries from the (non-decreasing) chunk index of each word."""
    return [int(np.searchsorted(chunk, k, side="left")) for k in range(K)] + [len(chunk)]


def split_by_asr(words, asr_words, durations, *, band=None):
    """Boundaries of `words` (the transcript) among K chunks, from each chunk's ASR words.

    asr_words: K lists of str (an empty list or None for a chunk whose ASR output is empty or
    missing); durations: K chunk lengths in seconds (weights for unpaired runs). See the module
    docstring for the method. Returns K + 1 non-decreasing ints from 0 to len(words).
    """
    K = len(durations)
    if len(asr_words) != K:
        raise ValueError(f"split_by_asr: {len(asr_words)} ASR outputs for {K} chunks")
    hyp, hyp_chunk = [], []
    for k, ws in enumerate(asr_words):
        ws = list(ws or ())
        hyp += ws
        hyp_chunk += [k] * len(ws)
    words = list(words)
    pair = align_words(words, hyp, band=band)
    for i in np.flatnonzero(pair >= 0):
        if not _similar(words[i], hyp[pair[i]]):
            pair[i] = -1
    hc = np.asarray(hyp_chunk, np.int64)
    chunk = np.where(pair >= 0, hc[np.maximum(pair, 0)] if hc.size else -1, -1)
    return _bounds_of(_fill_runs(chunk.astype(np.int64), durations), K)


def _boundary_in(mids, t):
    """Index of the first aligned midpoint at or after t (len(mids) if none)."""
    return int(np.searchsorted(np.asarray(mids, np.float64), t, side="left"))


def _window_boundary(words, b_prev, t_prev, t, duration, align_window, window, rounds, max_words):
    """The word index at cut t, given the previous boundary (word b_prev at time t_prev)."""
    n = len(words)
    rate = (n - b_prev) / max(duration - t_prev, 1e-3)
    g = min(n, b_prev + int(round(rate * (t - t_prev))))
    half = max(2, int(math.ceil(rate * window)) + 1)
    if max_words:
        half = max(1, min(half, max_words // 2))
    w0, w1 = max(t_prev, t - window), min(duration, t + window)
    b = g
    for _ in range(max(1, rounds)):
        lo, hi = max(b_prev, g - half), min(n, g + half)
        if hi <= lo or w1 <= w0:
            break
        times = align_window(w0, w1, words[lo:hi])
        idx = _boundary_in([(s + e) / 2 for s, e in times], t - w0)
        b = lo + idx
        at_edge = (idx == 0 and lo > b_prev) or (idx == hi - lo and hi < n)
        if not at_edge or b == g:
            break
        g = b
    return min(max(b, b_prev), n)


def split_by_aligner(words, cuts, duration, align_window, *, window=20.0, rounds=3, max_words=None, on_cut=None):
    """Boundaries of `words` among the chunks separated by the times `cuts` (seconds, increasing,
    the interior cuts only), using the aligner on windows around each cut (module docstring).

    align_window(start_s, end_s, span_words) -> [(start, end), ...] seconds relative to start_s, one
    per word, from a forced alignment of that audio window with those words. `window`: W seconds
    on each side of a cut; `max_words`: cap on the words of one window (model text limit);
    on_cut(k) is called after the k-th cut's boundary is found (progress).
    Returns len(cuts) + 2 non-decreasing ints from 0 to len(words).
    """
    words = list(words)
    n = len(words)
    bounds = [0]
    b_prev, t_prev = 0, 0.0
    for k, t in enumerate(cuts, 1):
        b = n if b_prev == n else _window_boundary(words, b_prev, t_prev, t, duration, align_window,
                                                   window, rounds, max_words)
        bounds.append(b)
        b_prev, t_prev = b, t
        if on_cut is not None:
            on_cut(k)
    bounds.append(n)
    return bounds
