"""Audio of any length: cut at quiet points, run the models chunk by chunk, put the results together.

    res = longaudio.align(models, "2h_talk.wav", text=transcript)      # Alignment with .chunks
    txt = longaudio.transcribe(models, "2h_talk.wav")                   # Transcription
    outs = longaudio.align_batch(models, [{"audio": a, "text": t}, ...])

One model forward handles at most the `max_audio_seconds` the models were loaded with (and the
aligner at most 300 s). Longer audio is cut like the official Qwen3-ASR pipeline (MODEL_FACTS §9):
a target chunk length (180 s for alignment, 1200 s for transcription, lowered to
`max_audio_seconds − search` so that a chunk, which may grow by the ±search range, still fits);
audio up to the target goes in one forward (result without .chunks); longer audio is cut, each
cut moved to the quietest 100 ms within ±5 s (csrc/frontend/chunks.c). The chunks tile the audio
exactly. Each chunk is one request to the single-forward pipeline (qwen3align._pipeline), whose
workspace is reset per request, so the arena peak is the same for 10 minutes and for 2 hours.

Alignment of long audio:
  * without text: per chunk, ASR then alignment of that chunk's transcript (the official path);
  * with text (or words): the words are split among the chunks (qwen3align.textsplit) — by
    edit-distance alignment to per-chunk ASR output when an ASR model is loaded, else with the
    aligner on windows around each cut — then each chunk is aligned with its own words.
  Item times are offset by the chunk's start (rounded to 1 ms like the reference). The result's
  `.chunks` lists (start_s, end_s, first_word, last_word) per chunk; a chunk without words has
  first_word = last_word + 1.
Transcription of long audio joins the chunk texts (with a space between two chunks when neither
side is CJK or already a space — the reference joins with "", which glues words of space-delimited
languages) and the languages as a comma list without repeats in a row ("Chinese,English").

progress(stage, done, total) is called before the first and after each chunk of a stage
("transcribe", "split", "align", "batch"). A KeyboardInterrupt (Ctrl-C, or raised by the callback)
stops between chunks; each request leaves the models in a usable state, so the next call works.

Batches (align_batch, transcribe_batch) run their items one by one — align_batch packing the clips
that need one forward each into shared aligner forwards (_PackedAlign) — or, when the models were
loaded with workers=N > 1 (CPU), on N threads at once: each item's engine calls take a free worker
(its own workspace in the arena), the GIL is released while they compute, and OpenBLAS's threads
are shared out while the batch runs (_blas_share). The results are the one-by-one results, in order.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np

from . import _pipeline
from . import _qwen3align as _C
from .audio import SAMPLE_RATE, request_samples
from .errors import InputError, Qwen3AlignError
from .frontend import ALIGNER_LANGUAGES, audio_token_count, normalize_language, split_words
from .results import AlignItem, Alignment, Transcription
from .textsplit import split_by_aligner, split_by_asr

__all__ = ["align", "transcribe", "align_batch", "transcribe_batch", "chunk_bounds", "chunk_limits",
           "ALIGN_TARGET_SECONDS", "ASR_TARGET_SECONDS", "SEARCH_SECONDS"]

ALIGN_TARGET_SECONDS = 180.0  # qwen_asr MAX_FORCE_ALIGN_INPUT_SECONDS
ASR_TARGET_SECONDS = 1200.0   # qwen_asr MAX_ASR_INPUT_SECONDS
SEARCH_SECONDS = 5.0          # ± range of the quiet-point search
WINDOW_SECONDS = 0.1          # the quiet window (1600 samples)
SPLIT_WINDOW_SECONDS = 20.0   # aligner-window text split: seconds on each side of a cut


def chunk_bounds(x, target_seconds, search_seconds=SEARCH_SECONDS):
    """Sample boundaries [0, ..., len(x)] (Python ints) of the chunks of 16 kHz samples x."""
    max_len = max(1, int(target_seconds * SAMPLE_RATE))
    return _C._chunk_bounds(x, max_len, int(search_seconds * SAMPLE_RATE),
                            int(WINDOW_SECONDS * SAMPLE_RATE)).tolist()


def _limit(models, kind):
    limit = float(models._plan()["limits"]["max_audio_seconds"][kind])
    return min(limit, _pipeline.ALIGNER_MAX_SECONDS) if kind == "aligner" else limit


def chunk_limits(models, kind, target_seconds=None):
    """(single, target, search) seconds for `kind` ('aligner' or 'asr'): audio up to `single` goes
    in one forward; longer audio is cut near `target` with a ±`search` quiet-point search, so that
    no chunk exceeds `single`."""
    single = _limit(models, kind)
    search = min(SEARCH_SECONDS, single / 4)
    default = ALIGN_TARGET_SECONDS if kind == "aligner" else ASR_TARGET_SECONDS
    target = min(default if target_seconds is None else float(target_seconds), single - search)
    if not target > 0:
        raise InputError(f"chunk target must be positive, got {target_seconds!r}")
    # a search range wider than the chunk would let the quietest window sit at the chunk's start
    # (1-sample chunks); at most half the target keeps every chunk >= half of it
    return single, target, min(search, target / 2)


def _tick(progress, stage, done, total):
    if progress is not None:
        progress(stage, done, total)


def _need(models, kind, why):
    if models.folders.get(kind) is None:
        raise InputError(f"{why} needs the {'ASR' if kind == 'asr' else 'aligner'} model: load_models({kind}=...)")


def _merge_languages(langs):
    out = []
    for lang in langs:
        for part in (lang or "").split(","):
            if part and (not out or out[-1] != part):
                out.append(part)
    return ",".join(out) or None


def _is_cjk(ch):
    cp = ord(ch)
    return (0x2E80 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF or 0xF900 <= cp <= 0xFAFF
            or 0xFF00 <= cp <= 0xFFEF or 0x20000 <= cp <= 0x3FFFF)


def _join_texts(texts):
    out = ""
    for t in texts:
        if not t:
            continue
        if out and not out[-1].isspace() and not t[0].isspace() and not (_is_cjk(out[-1]) or _is_cjk(t[0])):
            out += " "
        out += t
    return out


# -- transcription --------------------------------------------------------------------------------

def transcribe(models, audio, language=None, *, context="", sample_rate=None, max_new_tokens=None,
               progress=None, target_seconds=None):
    """Transcription of audio of any length (chunks of about 1200 s, or less to fit the plan)."""
    _need(models, "asr", "transcribe()")
    x = request_samples(audio, sample_rate)
    _, target, search = chunk_limits(models, "asr", target_seconds)
    b = chunk_bounds(x, target, search)
    if len(b) == 2:
        return _pipeline.transcribe(models, None, language, context=context, max_new_tokens=max_new_tokens,
                                    _samples16k=x)
    parts = _transcribe_chunks(models, x, b, language, context, max_new_tokens, progress)
    notes = [_chunk_note(b, k, w) for k, p in enumerate(parts) for w in p.warnings]
    return Transcription(text=_join_texts(p.text for p in parts), language=_merge_languages(p.language for p in parts),
                         tokens=tuple(t for p in parts for t in p.tokens), warnings=tuple(notes))


def _transcribe_chunks(models, x, b, language, context, max_new_tokens, progress):
    K = len(b) - 1
    _tick(progress, "transcribe", 0, K)
    out = []
    for k in range(K):
        out.append(_pipeline.transcribe(models, None, language, context=context, max_new_tokens=max_new_tokens,
                                        _samples16k=x[b[k]:b[k + 1]]))
        _tick(progress, "transcribe", k + 1, K)
    return out


# -- alignment ------------------------------------------------------------------------------------

def align(models, audio, text=None, language=None, *, words=None, sample_rate=None, context="",
          split="auto", progress=None, target_seconds=None):
    """Word timestamps of audio of any length (module docstring). split: how a given transcript is
    divided among chunks — "auto" (ASR when loaded, else aligner windows), "asr" or "aligner"."""
    _align_checks(models, text, words, split)
    x = request_samples(audio, sample_rate)
    b = _align_bounds(models, x, text, words, split, target_seconds)
    if len(b) == 2:  # one forward, as the reference does up to the target length
        return _pipeline.align(models, None, text, language, words=words, context=context, _samples16k=x)
    return _align_chunks(models, x, b, text, language, words, context, split, progress)


def _align_checks(models, text, words, split):
    _need(models, "aligner", "align()")
    if text is not None and words is not None:
        raise InputError("give text= or words=, not both")
    if split not in ("auto", "asr", "aligner"):
        raise InputError(f"split must be 'auto', 'asr' or 'aligner', got {split!r}")


def _uses_asr(models, text, words, split):
    return (text is None and words is None) or split == "asr" or (
        split == "auto" and models.folders.get("asr") is not None)


def _align_bounds(models, x, text, words, split, target_seconds):
    """Sample bounds of the chunks align() cuts x into; [0, len(x)]: one forward."""
    single, target, search = chunk_limits(models, "aligner", target_seconds)
    if _uses_asr(models, text, words, split) and models.folders.get("asr") is not None:
        s_single, t_asr, s_asr = chunk_limits(models, "asr", target)  # chunks must fit the ASR's limit too
        single, target, search = min(single, s_single), min(target, t_asr), min(search, s_asr)
    # a clip no longer than the requested target (and one forward) is never cut
    wanted = ALIGN_TARGET_SECONDS if target_seconds is None else float(target_seconds)
    return [0, len(x)] if len(x) <= round(min(wanted, single) * SAMPLE_RATE) else chunk_bounds(x, target, search)


def _align_chunks(models, x, b, text, language, words, context, split, progress):
    """align() of audio cut at the bounds b (more than one chunk)."""
    if text is None and words is None:
        return _align_transcribing(models, x, b, language, context, progress)
    lang = normalize_language(language, aligner=True)
    if words is not None:
        words = _pipeline._check_words(words)
        text = " ".join(words)
    elif not isinstance(text, str):
        raise InputError(f"text must be a str, not {type(text).__name__}")
    else:
        words = split_words(text, lang)
    if _uses_asr(models, text, words, split):
        _need(models, "asr", "split='asr'")
        wb = _split_with_asr(models, x, b, words, lang, context, progress)
    else:
        wb = _split_with_aligner(models, x, b, words, lang, progress)
    return _align_pieces(models, x, b, words, wb, text, lang, progress)


def _offset_items(res, offset):
    return [AlignItem(it.text, round(it.start + offset, 3), round(it.end + offset, 3), it.confidence)
            for it in res]


def _chunk_note(b, k, w):
    return f"chunk {k} ({b[k] / SAMPLE_RATE:.1f}-{b[k + 1] / SAMPLE_RATE:.1f} s): {w}"


def _align_pieces(models, x, b, words, wb, text, lang, progress):
    """Align chunk k with words[wb[k]:wb[k+1]] and put the pieces together."""
    K = len(b) - 1
    items, chunks, notes = [], [], []
    _tick(progress, "align", 0, K)
    for k in range(K):
        lo, hi = b[k], b[k + 1]
        piece = words[wb[k]:wb[k + 1]]
        if piece:
            res = _pipeline.align(models, None, words=piece, language=lang, _samples16k=x[lo:hi])
            items += _offset_items(res, lo / SAMPLE_RATE)
            notes += [_chunk_note(b, k, w) for w in res.warnings]
        chunks.append((lo / SAMPLE_RATE, hi / SAMPLE_RATE, wb[k], wb[k + 1] - 1))
        _tick(progress, "align", k + 1, K)
    return Alignment(items, text=text, language=lang, warnings=notes, duration=len(x) / SAMPLE_RATE, chunks=chunks)


def _align_transcribing(models, x, b, language, context, progress):
    """No transcript: per chunk ASR then alignment of the chunk's text (MODEL_FACTS §9)."""
    _need(models, "asr", "align() without text=")
    K = len(b) - 1
    items, chunks, notes, texts, langs = [], [], [], [], []
    _tick(progress, "align", 0, K)
    for k in range(K):
        lo, hi = b[k], b[k + 1]
        res = _pipeline.align(models, None, None, language, context=context, _samples16k=x[lo:hi])
        first = len(items)
        items += _offset_items(res, lo / SAMPLE_RATE)
        chunks.append((lo / SAMPLE_RATE, hi / SAMPLE_RATE, first, len(items) - 1))
        notes += [_chunk_note(b, k, w) for w in res.warnings]
        texts.append(res.text)
        langs.append(res.language)
        _tick(progress, "align", k + 1, K)
    return Alignment(items, text=_join_texts(texts), language=_merge_languages(langs), warnings=notes,
                     duration=len(x) / SAMPLE_RATE, chunks=chunks)


def _split_with_asr(models, x, b, words, lang, context, progress):
    """Word boundaries from per-chunk ASR output (textsplit.split_by_asr)."""
    parts = _transcribe_chunks(models, x, b, lang, context, None, progress)
    asr_words = []
    for p in parts:
        split_lang = lang or (p.language if p.language in ALIGNER_LANGUAGES else None)
        try:
            asr_words.append(split_words(p.text, split_lang) if p.text else [])
        except InputError:  # no letters or digits in this chunk's output
            asr_words.append([])
    durations = np.diff(b) / SAMPLE_RATE
    return split_by_asr(words, asr_words, durations)


def _split_with_aligner(models, x, b, words, lang, progress):
    """Word boundaries from the aligner on windows around each cut (textsplit.split_by_aligner)."""
    cuts = [c / SAMPLE_RATE for c in b[1:-1]]
    single = _limit(models, "aligner")
    window = min(SPLIT_WINDOW_SECONDS, single / 2)
    _tick(progress, "split", 0, len(cuts))

    def align_window(w0, w1, span):
        lo, hi = int(round(w0 * SAMPLE_RATE)), int(round(w1 * SAMPLE_RATE))
        res = _pipeline.align(models, None, words=span, language=lang, _samples16k=x[lo:hi])
        return [(it.start, it.end) for it in res]

    def on_cut(k):
        _tick(progress, "split", k, len(cuts))

    return split_by_aligner(words, cuts, len(x) / SAMPLE_RATE, align_window, window=window, max_words=_max_words(models),
                            on_cut=on_cut)


def _max_words(models):
    """Words one aligner request may carry: each takes >= 3 text positions (a token and 2 stamps)."""
    lim = models._plan()["limits"].get("max_text_tokens")
    if isinstance(lim, Mapping):
        lim = lim.get("aligner")
    return max(2, int(lim) // 3) if lim else None


# -- batches --------------------------------------------------------------------------------------

_ALIGN_KEYS = {"audio", "text", "words", "language", "sample_rate", "context"}


def align_batch(models, items, *, progress=None, split="auto"):
    """align() for each dict in items (keys: audio, and text or words, language, sample_rate,
    context); a list of Alignment in the same order. Long items are chunked. Every item's keys are
    checked before the first one runs. One worker: clips that need one forward each are packed into
    shared aligner forwards (_PackedAlign); with workers > 1 the items run on that many threads
    (_run_batch)."""
    items = list(items)
    for i, it in enumerate(items):
        if not isinstance(it, Mapping):
            raise InputError(f"align_batch: item {i} must be a dict with 'audio', got {type(it).__name__}")
        extra = set(it) - _ALIGN_KEYS
        if "audio" not in it or extra:
            raise InputError(f"align_batch: item {i} needs key 'audio' and only {sorted(_ALIGN_KEYS)}"
                             + (f"; unknown {sorted(extra)}" if extra else ""))
    if _workers(models) <= 1:
        return _PackedAlign(models, len(items), progress).run(items, split)

    def run(i):
        it = items[i]
        return align(models, it["audio"], it.get("text"), it.get("language"), words=it.get("words"),
                     sample_rate=it.get("sample_rate"), context=it.get("context", ""), split=split)

    return _run_batch(models, len(items), run, progress)


def _batch_item(models, it, split):
    """align() of one batch item up to the aligner forward: an _AlignJob when the item needs one
    forward, else its finished Alignment (long audio, cut and aligned chunk by chunk now; or a
    transcript without words)."""
    text, words, language, context = it.get("text"), it.get("words"), it.get("language"), it.get("context", "")
    _align_checks(models, text, words, split)
    x = request_samples(it["audio"], it.get("sample_rate"))
    b = _align_bounds(models, x, text, words, split, None)
    if len(b) > 2:
        return _align_chunks(models, x, b, text, language, words, context, split, None)
    return _pipeline._prepare_align(models, None, text, language, words=words, context=context, _samples16k=x)


class _PackedAlign:
    """align_batch on one worker: the items' single-forward clips go through the aligner several at a
    time, packed into ONE forward (Models._align_pack: the rows of all clips in the same GEMMs,
    attention and RoPE positions per clip), which keeps a GPU busy where one ~60 s clip cannot.

    Packs are filled greedily in item order while the clips' summed mel frames, 100-frame chunks,
    audio tokens, prompt tokens and timestamps stay within the plan of the longest single request
    (Models._align_pack_limits), so a pack needs no memory beyond the plan. A clip over the limits
    by itself, and long audio (chunked), run as align() runs them. Each clip's results equal its own
    forward's within float tolerance (classes identical except near-ties).
    A full pack's forward runs on a helper thread (_PackForward; the engine releases the GIL) while
    this thread prepares the next clips (audio, words, prompt) and finishes the pack before (repair,
    items), so the host work hides behind the device's; at most two packs are in flight, and the
    second one's engine call waits for the worker until the first one's ends.
    Errors keep the one-by-one semantics: when preparing item k fails (audio, words, ASR), the packs of
    earlier items are collected first (their error, if any, comes first), then k's error is raised;
    when a pack's forward fails, its clips are redone one by one, which raises the first failing
    clip's own error. progress("batch", done, n) after each finished item; Ctrl-C (or a progress
    callback that raises) cancels the forwards in flight (their threads' flags) and re-raises."""

    _KEYS = ("frames", "chunks", "audio_tokens", "tokens", "stamps")

    def __init__(self, models, n, progress):
        self.models, self.n, self.progress = models, n, progress
        self.out, self.done = [None] * n, 0
        self.pack, self.size = [], dict.fromkeys(self._KEYS, 0)  # [(index, job)], their totals
        self.inflight = []  # _PackForward, oldest first
        self.limits = None  # read with the first clip: a closed Models or a missing aligner fails in align()'s words

    def run(self, items, split):
        _tick(self.progress, "batch", 0, self.n)
        try:
            for i, it in enumerate(items):
                try:
                    job = _batch_item(self.models, it, split)
                except Exception:  # earlier items first, as a loop would have run them
                    self.flush(wait=True)
                    raise
                if isinstance(job, Alignment):
                    self.finished(i, job)
                else:
                    self.add(i, job)
            self.flush(wait=True)
        except BaseException:
            for fw in self.inflight:
                fw.cancel()
            raise
        return self.out

    def finished(self, i, res):
        self.out[i] = res
        self.done += 1
        _tick(self.progress, "batch", self.done, self.n)

    def sizes(self, job):
        if self.limits is None:
            cfg = self.models._config("aligner")
            self.limits = self.models._align_pack_limits()
            self.chunk, self.stamp_id = 2 * cfg["audio"]["n_window"], cfg["timestamp_token_id"]
        return {"frames": job.frames, "chunks": -(-job.frames // self.chunk),
                "audio_tokens": audio_token_count(job.frames), "tokens": len(job.ids),
                "stamps": int(np.count_nonzero(job.ids == self.stamp_id))}

    def fits(self, sz, alone=False):
        """Whether a clip of sizes sz fits the plan by itself (alone) or joins the current pack."""
        if alone:
            return all(sz[k] <= self.limits[k] for k in self._KEYS)
        return len(self.pack) < self.limits["clips"] and all(
            self.size[k] + sz[k] <= self.limits[k] for k in self._KEYS)

    def add(self, i, job):
        sz = self.sizes(job)
        if not self.fits(sz, alone=True):  # over the plan by itself: the engine says why, as align() would
            self.flush(wait=True)
            self.finished(i, _single(self.models, job))
            return
        if not self.fits(sz):
            self.flush()
        self.pack.append((i, job))
        for k in self._KEYS:
            self.size[k] += sz[k]

    def flush(self, wait=False):
        """Start the current pack's forward, then collect the packs before it (all of them: wait)."""
        pack, self.pack, self.size = self.pack, [], dict.fromkeys(self._KEYS, 0)
        if pack:
            self.inflight.append(_PackForward(self.models, pack))
        while len(self.inflight) > (0 if wait else 1):
            fw = self.inflight[0]
            results = fw.results()  # waits; the pack's own error (or its first clip's) raises here
            self.inflight.pop(0)
            for (i, _), res in zip(fw.pack, results):
                self.finished(i, res)


class _PackForward:
    """One pack's aligner forward on a helper thread; cancel() stops it through the thread's flag
    (_C._set_thread_cancel: the engine polls it between layers, as it polls Ctrl-C on the main thread)."""

    def __init__(self, models, pack):
        self.models, self.pack = models, pack
        self.flag, self.raw, self.error = bytearray(1), None, None
        self.thread = threading.Thread(target=self._run, name="qwen3align-pack", daemon=True)
        self.thread.start()

    def _run(self):
        _C._set_thread_cancel(self.flag)
        try:
            jobs = [job for _, job in self.pack]
            if len(jobs) == 1:
                self.raw = _pipeline._forward(self.models, jobs[0]) + ([None],)
            else:
                self.raw = self.models._align_pack([job.clip() for job in jobs])
        except BaseException as ex:  # noqa: B036 — handed to the calling thread
            self.error = ex
        finally:
            _C._set_thread_cancel(None)

    def results(self):
        """The pack's Alignments, in order (waits for the forward)."""
        self.thread.join()  # interruptible: Ctrl-C lands here
        jobs = [job for _, job in self.pack]
        if isinstance(self.error, Qwen3AlignError):  # redo one by one: the first failing clip's own error
            return [_single(self.models, job) for job in jobs]
        if self.error is not None:
            raise self.error
        classes, probs, counts = self.raw
        if len(jobs) == 1:
            return [_pipeline._finish(self.models, jobs[0], classes, probs)]
        cuts = np.cumsum(counts)[:-1]
        return [_pipeline._finish(self.models, job, c, p)
                for job, c, p in zip(jobs, np.split(classes, cuts), np.split(probs, cuts))]

    def cancel(self):
        self.flag[0] = 1
        self.thread.join()


def _single(models, job):
    """A prepared job through its own forward, as align() runs it."""
    return _pipeline._finish(models, job, *_pipeline._forward(models, job))


def transcribe_batch(models, audios, language=None, *, context="", sample_rate=None, max_new_tokens=None,
                     progress=None):
    """transcribe() for each audio source; a list of Transcription in the same order. `language`
    and `sample_rate` are one value for all or a list with one per audio."""
    audios = list(audios)
    langs = _per_item(language, len(audios), "language")
    rates = _per_item(sample_rate, len(audios), "sample_rate")

    def run(i):
        return transcribe(models, audios[i], langs[i], context=context, sample_rate=rates[i],
                          max_new_tokens=max_new_tokens)

    return _run_batch(models, len(audios), run, progress)


def _run_batch(models, n, run, progress):
    """[run(0), ..., run(n-1)], on min(workers, n) threads when the models have several workers
    (each call takes a free worker in the C layer), else one by one. progress("batch", done, n)."""
    threads = min(_workers(models), n)
    _tick(progress, "batch", 0, n)
    if threads <= 1:
        out = []
        for i in range(n):
            out.append(run(i))
            _tick(progress, "batch", i + 1, n)
        return out
    with _blas_share(threads):
        return _Batch(n, run, threads).run(progress)


def _workers(models):
    try:
        return int(models.workers) if getattr(models, "device", "cpu") == "cpu" else 1
    except (AttributeError, InputError):  # a closed Models: the first call says so
        return 1


# OpenBLAS's thread count is process-wide; batches that run at once (on any Models) share the
# count T that was set when the first of them started: T // (their workers together), at least 1.
# Restored when the last one ends. (A pthreads OpenBLAS runs one multi-threaded GEMM at a time, so
# several workers each asking for many threads would mostly wait for each other.)
_blas_lock = threading.Lock()
_blas_state = {"workers": 0, "base": 0}


def _blas_set_share(delta):
    with _blas_lock:
        st = _blas_state
        if st["workers"] == 0:
            st["base"] = _C._blas_threads()
        st["workers"] += delta
        _C._blas_threads(st["base"] if st["workers"] == 0 else max(1, st["base"] // st["workers"]))


@contextmanager
def _blas_share(workers):
    _blas_set_share(workers)
    try:
        yield
    finally:
        _blas_set_share(-workers)


class _Batch:
    """Items 0..n-1 on `threads` Python threads; each item is one align()/transcribe() whose engine
    calls take a free worker (the GIL is released while they compute).

    Errors keep the one-by-one semantics: when item k fails, no item after k starts and the items
    after k in flight are cancelled, while the items before k finish; the error of the first
    failing item is raised (the one a loop over the items would have raised). Ctrl-C (or a progress
    callback that raises) in the calling thread cancels every item and re-raises after all threads
    stopped. Cancelling goes through each thread's flag (_C._set_thread_cancel): the engine polls it
    between layers like Ctrl-C, which reaches only the main thread."""

    def __init__(self, n, run, threads):
        self.n, self.run_item, self.threads = n, run, threads
        self.out = [None] * n
        self.errors = {}            # index -> exception of an item that failed by itself
        self.limit = n              # items >= limit do not start
        self.next = 0
        self.current = [None] * threads  # item index each thread runs now
        self.flags = [bytearray(1) for _ in range(threads)]
        self.lock = threading.Lock()
        self.done = queue.SimpleQueue()

    def _take(self, t):
        with self.lock:
            i = self.next
            if i >= self.limit:
                return None
            self.next += 1
            self.current[t] = i
            return i

    def _failed(self, t, i, ex):
        with self.lock:
            if self.flags[t][0]:    # cancelled by us: a consequence, not the item's own error
                return
            self.errors[i] = ex
            self.limit = min(self.limit, i)
            for u, j in enumerate(self.current):
                if j is not None and j > i:
                    self.flags[u][0] = 1

    def _thread(self, t):
        _C._set_thread_cancel(self.flags[t])
        try:
            while True:
                i = self._take(t)
                if i is None:
                    return
                try:
                    self.out[i] = self.run_item(i)
                except BaseException as ex:  # noqa: B036 — handed to the calling thread
                    self._failed(t, i, ex)
                with self.lock:
                    self.current[t] = None
                    self.flags[t][0] = 0 if self.limit > i else self.flags[t][0]
                self.done.put(i)
        finally:
            _C._set_thread_cancel(None)
            self.done.put(None)

    def cancel_all(self):
        with self.lock:
            self.limit = -1
            for f in self.flags:
                f[0] = 1

    def run(self, progress):
        ts = [threading.Thread(target=self._thread, args=(t,), name=f"qwen3align-batch-{t}", daemon=True)
              for t in range(self.threads)]
        for th in ts:
            th.start()
        try:
            finished, alive = 0, len(ts)
            while alive:
                i = self.done.get()  # interruptible: Ctrl-C lands here
                if i is None:
                    alive -= 1
                elif i not in self.errors and self.limit > i:
                    finished += 1
                    _tick(progress, "batch", finished, self.n)
        except BaseException:
            self.cancel_all()
            raise
        finally:
            for th in ts:
                th.join()
        if self.errors:
            raise self.errors[min(self.errors)]
        return self.out


def _per_item(value, n, what):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InputError(f"transcribe_batch: {what} has {len(value)} entries for {n} audios")
        return list(value)
    return [value] * n

