"""Models.align / Models.transcribe: the request policy around the C engine.

    res = models.align("talk.wav", text="...", language="English")   # -> Alignment
    res = models.align("talk.wav")                                     # ASR first, then align
    txt = models.transcribe("talk.wav")                                # -> Transcription

align: load_audio -> log_mel -> split_words (or the given words) -> aligner_prompt_ids -> aligner
forward (classes + softmax probabilities at every <timestamp>, C engine) -> repair_timestamps
(classes × 80 ms, LIS repair) -> word i gets stamps 2i, 2i+1, seconds = round(ms / 1000, 3),
confidence = the smaller of its two probabilities (MODEL_FACTS §7).
transcribe: load_audio -> log_mel -> asr_prompt_ids (context, optional forced language) -> greedy
generation with the KV cache (C engine) -> decode -> parse_asr_output (§8).
Limits are checked here with messages naming them (max_audio_seconds of load_models, the aligner's
300 s); the engine checks the plan again (frames, tokens) before computing.
On CUDA the engine takes the samples and computes log_mel on the device (the *_from_audio entries:
upload, mel, encoder, decoder without a host round trip); on the CPU the host log_mel (the same
frontend/mel.c code) feeds the feature entries, as before.
"""
import warnings as _warnings

import numpy as np

from .audio import SAMPLE_RATE, log_mel, request_samples
from .errors import InputError
from .frontend import (ALIGNER_LANGUAGES, Tokenizer, aligner_prompt_ids, asr_prompt_ids, audio_token_count,
                       normalize_language, parse_asr_output, repair_timestamps, split_words)
from .results import AlignItem, Alignment, Transcription

# Qwen3-ForcedAligner's documented maximum speech length (model card, paper Table 1).
ALIGNER_MAX_SECONDS = 300.0


def _tokenizer(models, kind):
    """The checkpoint's tokenizer, loaded once per Models (kept on the object)."""
    cache = models.__dict__.setdefault("_qa_tokenizers", {})
    tok = cache.get(kind) or (getattr(models, "tokenizers", {}) or {}).get(kind)
    if tok is None:
        tok = Tokenizer(models.folders[kind])
    cache[kind] = tok
    return tok


def _require(models, kind, why):
    if models.folders.get(kind) is None:
        raise InputError(f"{why} needs the {'ASR' if kind == 'asr' else 'aligner'} model: "
                         f"load_models({kind}=...)")


def _samples(audio, sample_rate, models, kind):
    """16 kHz mono samples, refused (InputError naming the limit) when longer than the plan allows."""
    x = request_samples(audio, sample_rate)
    seconds = len(x) / SAMPLE_RATE
    limit = models._plan()["limits"]["max_audio_seconds"][kind]
    if seconds > limit:
        raise InputError(f"the audio is {seconds:.2f} s long, more than max_audio_seconds={limit:g} the models "
                         f"were loaded with for the {kind}; load_models(max_audio_seconds=...) higher or cut "
                         "the audio")
    if kind == "aligner" and seconds > ALIGNER_MAX_SECONDS:
        raise InputError(f"the audio is {seconds:.2f} s long; the forced aligner handles at most "
                         f"{ALIGNER_MAX_SECONDS:g} s (cut it into chunks)")
    return x


def _mel_frames(n_samples):
    """Valid mel frames of a clip (frontend/mel.c qa_mel_frames: zero-padded to 8000 samples, hop 160)."""
    return max(n_samples, 8000) // 160


def _device_mel(models):
    """True when the engine should compute the features itself (CUDA: the request stays on the device).
    models._host_mel = True forces the host log_mel path (tests compare the two)."""
    return str(getattr(models, "device", "cpu")).startswith("cuda") and not getattr(models, "_host_mel", False)


def _check_words(words):
    if isinstance(words, str) or not all(isinstance(w, str) and w.strip() for w in words):
        raise InputError("words must be a list of non-empty strings")
    words = [w.strip() for w in words]
    if not words:
        raise InputError("no words to align: words=[] is empty")
    return words


def transcribe(models, audio, language=None, *, context="", sample_rate=None, max_new_tokens=None,
               _samples16k=None):
    """Speech to text with the ASR model: a Transcription (text, language, tokens, warnings)."""
    _require(models, "asr", "transcribe()")
    if not isinstance(context, str):
        raise InputError(f"context must be a str, not {type(context).__name__}")
    forced = normalize_language(language)
    x = _samples16k if _samples16k is not None else _samples(audio, sample_rate, models, "asr")
    device_mel = _device_mel(models)
    feats, frames = (None, _mel_frames(len(x))) if device_mel else log_mel(x)
    tok = _tokenizer(models, "asr")
    prompt = np.asarray(asr_prompt_ids(tok, audio_token_count(frames), forced, context), np.int32)
    limit = models._plan()["limits"]["max_new_tokens"]
    if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or
                                       not isinstance(max_new_tokens, (int, np.integer))):
        raise InputError(f"max_new_tokens must be an integer or None, not {type(max_new_tokens).__name__}")
    max_new = limit if max_new_tokens is None else int(max_new_tokens)
    if max_new > limit:  # also keeps huge Python ints away from the C call's Py_ssize_t
        raise InputError(f"max_new_tokens {max_new} exceeds the plan's max_new_tokens {limit} (load_models)")
    if device_mel:
        ids, _ = models.asr_generate_from_audio(x, prompt, max_new)
    else:
        ids, _ = models.asr_generate(feats, frames, prompt, max_new)
    notes = []
    if len(ids) == max_new:
        notes.append(f"the transcript stopped at max_new_tokens={max_new} (it may be cut)")
    lang, text = parse_asr_output(tok.decode(ids.tolist(), skip_special_tokens=True), forced_language=forced)
    return Transcription(text=text, language=lang, tokens=tuple(ids.tolist()), warnings=tuple(notes))


def _aligner_language(language, detected, notes):
    """The language that picks the word splitter: an explicit one must be an aligner language
    (InputError otherwise); a detected one that is not falls back to the default splitter."""
    if language is not None:
        return normalize_language(language, aligner=True)
    if detected is None or detected in ALIGNER_LANGUAGES:
        return detected
    msg = (f"the detected language {detected!r} is not one of the aligner's languages; "
           "words were split with the default whitespace/CJK rules")
    notes.append(msg)
    _warnings.warn(msg, stacklevel=3)
    return None


def align(models, audio, text=None, language=None, *, words=None, sample_rate=None, context="", _samples16k=None):
    """Word timestamps of `audio`: an Alignment of AlignItem(text, start, end, confidence)."""
    job = _prepare_align(models, audio, text, language, words=words, sample_rate=sample_rate, context=context,
                         _samples16k=_samples16k)
    if isinstance(job, Alignment):
        return job
    classes, probs = _forward(models, job)
    return _finish(models, job, classes, probs)


class _AlignJob:
    """One clip ready for the aligner forward: samples, words, the prompt ids and (host log-mel path)
    its features; what align() computes before the engine call, so a batch can pack several jobs."""

    def __init__(self, models, x, words, text, language, notes):
        self.x, self.words, self.text, self.language, self.notes = x, words, text, language, notes
        self.device_mel = _device_mel(models)
        self.feats, self.frames = (None, _mel_frames(len(x))) if self.device_mel else log_mel(x)
        self.ids = np.asarray(aligner_prompt_ids(_tokenizer(models, "aligner"), words,
                                                 audio_token_count(self.frames)), np.int32)

    def clip(self):
        """This job as one entry of Models._align_pack."""
        return (self.x, self.ids) if self.device_mel else (self.feats, self.frames, self.ids)


def _prepare_align(models, audio, text=None, language=None, *, words=None, sample_rate=None, context="",
                   _samples16k=None):
    """Everything align() does before the aligner forward (checks, audio, ASR without text, word
    split, prompt): an _AlignJob, or the finished Alignment when a transcript has no words."""
    _require(models, "aligner", "align()")
    if text is not None and words is not None:
        raise InputError("give text= or words=, not both")
    if text is not None and not isinstance(text, str):
        raise InputError(f"text must be a str, not {type(text).__name__}")
    x = _samples16k if _samples16k is not None else _samples(audio, sample_rate, models, "aligner")
    notes, detected, transcribed = [], None, False
    if text is None and words is None:
        _require(models, "asr", "align() without text=")
        tr = transcribe(models, None, language, context=context, _samples16k=x)
        notes += list(tr.warnings)
        text, detected, transcribed = tr.text, tr.language, True
    lang = _aligner_language(language, detected, notes)
    if words is not None:
        words = _check_words(words)
        text = " ".join(words)
    else:
        try:
            words = split_words(text, lang)
        except InputError:
            if not transcribed:
                raise
            notes.append("the transcript has no words to align (silence?)")
            return Alignment([], text=text, language=lang or detected, warnings=notes,
                             duration=len(x) / SAMPLE_RATE)
    return _AlignJob(models, x, words, text, lang or detected, notes)


def _forward(models, job):
    """(classes, probs) of one job: the aligner forward alone."""
    if job.device_mel:
        return models._align_forward_audio(job.x, job.ids)
    return models._align_forward(job.feats, job.frames, job.ids)


def _seconds(ms):
    """[round(v / 1000.0, 3) for v in ms] without a Python round() per value where it changes nothing: for
    a whole number v, v / 1000.0 already is the double nearest a 3-decimal number, which round() returns
    unchanged (the classes' multiples of 80 ms; only the repair's interpolated values can be fractional)."""
    a = np.asarray(ms, np.float64)
    secs, whole = (a / 1000.0).tolist(), (a == np.floor(a)).tolist()
    return [s if w else round(v / 1000.0, 3) for v, s, w in zip(ms, secs, whole)]


def _finish(models, job, classes, probs):
    """The Alignment of a job from its classes and probabilities (repair, 80 ms steps, confidences):
    word i gets stamps 2i, 2i+1 and the smaller of their probabilities (min()'s rule: the first unless
    the second is smaller)."""
    segment_ms = float(models._config("aligner")["timestamp_segment_ms"])
    secs = _seconds(repair_timestamps((np.asarray(classes).astype(np.float64) * segment_ms).tolist()))
    p = np.asarray(probs)
    conf = np.where(p[1::2] < p[0::2], p[1::2], p[0::2]).tolist()
    items = [AlignItem(w, secs[2 * i], secs[2 * i + 1], conf[i]) for i, w in enumerate(job.words)]
    return Alignment(items, text=job.text, language=job.language, warnings=job.notes,
                     duration=len(job.x) / SAMPLE_RATE)
