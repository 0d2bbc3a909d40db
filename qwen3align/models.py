"""load_models() and Models: one arena holding the aligner and/or the ASR model.

    import qwen3align as qa
    with qa.load_models(aligner="…/Qwen3-ForcedAligner-0.6B", asr="…/Qwen3-ASR-1.7B") as models:
        print(models.memory_report())

The plan is checked against the device's free memory before anything is allocated
(OutOfMemoryError says how much is needed, how much is free, and what to lower); then the whole
plan is taken in ONE allocation. A Models object is safe to share between threads (calls
release the GIL; each takes one of the object's workers and waits while all are busy); close()
frees the arena at once (after the calls in flight).

Workers (CPU): load_models(..., workers=N) plans N workspaces (and N ASR KV caches) in the one
arena, the weights shared, so N requests compute at once; align_batch()/transcribe_batch() run
their items on N threads. OpenBLAS's thread count is process-wide: while a batch with N > 1 workers
runs, it is lowered to max(1, T // N) (T = the count when the batch started, by default one per
CPU), so N workers × BLAS threads <= T, and restored afterwards. A single call keeps all T threads.
OpenBLAS (pthreads build) lets one multi-threaded GEMM run at a time, so workers pay off most with
one BLAS thread each (N near the core count); a 2-CPU machine gains little.
"""
import os

from . import _qwen3align
from .errors import InputError
from .memory import MemoryPlan, MemoryReport, _limits_kwargs, _resolve_dtype, _resolve_workers

__all__ = ["load_models", "Models"]

_CUDA_LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libqa_cuda.so")


def _cuda_device_count():
    """CUDA devices this build can use: 0 without the CUDA backend library, a driver new enough for
    its runtime, or a visible device (_cuda_probe raises InputError saying which)."""
    try:
        return int(_qwen3align._cuda_probe(0)["device_count"])
    except InputError:
        return 0


def _cuda_unusable_reason():
    try:
        _qwen3align._cuda_probe(0)
        return "no CUDA GPU is visible"
    except InputError as ex:  # the probe's own words: no driver, driver older than runtime, no device
        return "no usable CUDA GPU (" + str(ex).split("; use device")[0] + ")"


def _resolve_device(device, require=True):
    """'auto' -> 'cuda:0' if the CUDA backend is built and a GPU is visible, else 'cpu'.
    'cuda' / 'cuda:N' without a usable GPU -> InputError saying why (never a silent CPU fallback),
    unless require is False (plan() may plan for a GPU this machine does not have)."""
    if device is None or device == "auto":
        return "cuda:0" if _cuda_device_count() > 0 else "cpu"
    if not isinstance(device, str):
        raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "cpu":
        return "cpu"
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        dev = "cuda:0" if device == "cuda" else device
        if require:
            n = _cuda_device_count()
            if n == 0:
                why = ("qwen3align was built without the CUDA backend (no qwen3align/libqa_cuda.so)"
                       if not os.path.exists(_CUDA_LIB) else _cuda_unusable_reason())
                raise InputError(f"device={device!r} requested but {why}; use device='cpu'")
            if int(dev[5:]) >= n:
                raise InputError(f"device={device!r} requested but only {n} CUDA device(s) are visible")
        return dev
    raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


_TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")  # what Tokenizer(folder) reads


def _tokenizer_key(folder):
    """The tokenizer files' contents, hashed: equal keys load equal tokenizers."""
    import hashlib

    h = hashlib.sha1()
    for name in _TOKENIZER_FILES:
        try:
            with open(os.path.join(folder, name), "rb") as f:
                h.update(hashlib.sha1(f.read()).digest())
        except OSError:
            return None  # the loader reports the missing or unreadable file
    return h.hexdigest()


def _load_tokenizers(folders):
    """Load and validate each checkpoint folder's tokenizer eagerly (qwen3align.Tokenizer; None in a
    build without the type). The Qwen3 aligner and ASR checkpoints ship the same files, so one
    instance (~40 MB of tables) serves both when the contents are equal."""
    out, by_key = {}, {}
    for kind, folder in folders.items():
        if folder is None:
            continue
        if not hasattr(_qwen3align, "Tokenizer") or not os.path.isdir(folder):
            out[kind] = None  # a missing folder is reported by the C loader with its own message
            continue
        key = _tokenizer_key(folder)
        tok = by_key.get(key) if key is not None else None
        if tok is None:
            tok = _qwen3align.Tokenizer(folder)
            if key is not None:
                by_key[key] = tok
        out[kind] = tok
    return out


class Models(_qwen3align.Models):
    """The loaded models and their arena. Create with load_models(); use as a context manager."""

    def __init__(self, aligner=None, asr=None, *, device="cpu", **limits):
        # limits use the C layer's names (max_audio_seconds_aligner, ...): prefer load_models()
        device = _resolve_device(device)
        self.device = device
        self.folders = {"aligner": aligner, "asr": asr}
        self.tokenizers = {}
        super().__init__(aligner, asr, device=device, **limits)  # configs, plan, OOM check, weights
        try:
            self.tokenizers = _load_tokenizers(self.folders)
            if device.startswith("cuda"):
                _warm_up(self, self.tokenizers)
        except BaseException:
            self.close()
            raise
        self._mark_loaded()  # the tokenizers' host allocations belong to the load, not to requests

    @property
    def loaded(self):
        """The kinds loaded ('aligner', 'asr')."""
        return tuple(k for k, f in self.folders.items() if f is not None)

    def align(self, audio, text=None, language=None, *, words=None, sample_rate=None, context="",
              progress=None, split="auto", target_seconds=None):
        """Word (or CJK character) timestamps of `audio` -> Alignment of AlignItem(text, start, end,
        confidence), times in seconds.

        audio: a path, file bytes, an array with sample_rate=, or (array, rate), of any length
        (longer audio is cut at quiet points into chunks of about `target_seconds`, default 180 s
        or less to fit the plan; see qwen3align.longaudio). text: the transcript (split with
        split_words(text, language)), or words=[...] already split; with neither, the ASR model
        transcribes first (context= biases it) and the detected language picks the splitter.
        language: one of the aligner's 11 languages (name or code) or None (default splitter).
        split: how a transcript is divided among chunks: "auto" (ASR when loaded, else aligner
        windows), "asr" or "aligner". progress(stage, done, total) is called per chunk.
        Raises InputError (arguments, too many words for the plan), AudioError.
        """
        from . import longaudio

        return longaudio.align(self, audio, text, language, words=words, sample_rate=sample_rate,
                               context=context, split=split, progress=progress, target_seconds=target_seconds)

    def transcribe(self, audio, language=None, *, context="", sample_rate=None, max_new_tokens=None,
                   progress=None, target_seconds=None):
        """Speech to text with the ASR model -> Transcription(text, language, tokens, warnings).

        language: force one of the 30 ASR languages (name or code), or None to detect it.
        context: system-prompt text (hotwords, names) that biases the transcript.
        max_new_tokens: at most the value load_models was given (the default), per chunk.
        Audio of any length: chunks of about 1200 s (or less to fit the plan) cut at quiet points.
        """
        from . import longaudio

        return longaudio.transcribe(self, audio, language, context=context, sample_rate=sample_rate,
                                    max_new_tokens=max_new_tokens, progress=progress,
                                    target_seconds=target_seconds)

    def align_batch(self, items, *, progress=None, split="auto"):
        """align() for each dict of `items` (keys: audio, text or words, language, sample_rate,
        context) -> list of Alignment in the same order; every item is checked before the first runs.
        One worker: clips that need one forward each are packed several to an aligner forward (within
        the plan's max_audio_seconds; GPU throughput); with workers=N (load_models, CPU) the items run
        on N threads at once. Results equal align()'s (within float tolerance).
        An item that fails raises its error (of the first failing item in order, as one-by-one
        calls would); Ctrl-C stops every worker and leaves the models usable."""
        from . import longaudio

        return longaudio.align_batch(self, items, progress=progress, split=split)

    def transcribe_batch(self, audios, language=None, *, context="", sample_rate=None, max_new_tokens=None,
                         progress=None):
        """transcribe() for each audio -> list of Transcription in the same order (on `workers`
        threads at once, like align_batch)."""
        from . import longaudio

        return longaudio.transcribe_batch(self, audios, language, context=context, sample_rate=sample_rate,
                                          max_new_tokens=max_new_tokens, progress=progress)

    def memory_report(self):
        """Arena total/used/peak, each region, device free/total, allocations since load, limits."""
        return MemoryReport(self._memory_report())

    def plan(self):
        """The memory plan this object was loaded with (same numbers as qwen3align.plan())."""
        d = self._plan()
        d["device"] = self.device
        return MemoryPlan(d)

    def config(self, kind):
        """The parsed config of the loaded 'aligner' or 'asr' model (dict)."""
        return self._config(kind)

    def close(self):
        """Free the arena now, and the tokenizers (host memory) with it; closing twice is harmless."""
        super().close()
        self.tokenizers = {}
        self.__dict__.pop("_qa_tokenizers", None)

    def __enter__(self):
        if self.closed:
            raise InputError("Models is closed (call load_models() again)")
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __reduce__(self):
        raise TypeError("cannot pickle 'Models': it owns device memory; call load_models() in each worker "
                        "(e.g. once per Dask worker or with st.cache_resource)")

    def __repr__(self):
        if self.closed:
            return "<qwen3align.Models closed>"
        parts = ", ".join(f"{k}={os.path.basename(os.path.normpath(f))!r}" for k, f in self.folders.items() if f)
        return f"<qwen3align.Models {parts} on {self.device}>"


def load_models(aligner=None, asr=None, *, device="auto", max_audio_seconds=300.0, max_new_tokens=1024,
                max_text_tokens=None, max_device_bytes=None, dtype="auto", workers=1):
    """Load Qwen3-ForcedAligner (aligner=) and/or Qwen3-ASR (asr=) checkpoint folders into one arena.

    device: "auto" (CUDA when built and visible, else CPU) | "cpu" | "cuda" | "cuda:N".
    max_audio_seconds: the longest clip a request may have (a number, or {"aligner": s, "asr": s});
    max_new_tokens: ASR output tokens; max_text_tokens: aligner words+timestamps (default: what the
    aligner's positions allow, capped at 20 per audio second + 64) and ASR context tokens (default 256);
    max_device_bytes: cap on the arena (bytes or "8GiB"); dtype: "auto" (float32 on CPU, bfloat16 on
    CUDA) | "float32" | "bfloat16".
    workers: requests that may compute at once on the CPU (default 1): each worker adds a workspace
    (and an ASR KV cache) to the arena, the weights are shared; align_batch/transcribe_batch use them
    all. "auto" = one per physical core (half the usable CPUs), at most 16. CUDA takes workers=1
    only (one stream runs one request at a time; InputError otherwise).
    Raises ModelLoadError (folder/config/tensors), OutOfMemoryError (plan does not fit; needed_bytes,
    available_bytes), InputError (arguments, device).
    """
    if aligner is None and asr is None:
        raise InputError("give at least one of aligner= and asr=")
    dev = _resolve_device(device)
    kw = _limits_kwargs(aligner, asr, max_audio_seconds, max_new_tokens, max_text_tokens, max_device_bytes,
                        _resolve_dtype(dtype, "cpu" if dev == "cpu" else "cuda"), _resolve_workers(workers, dev))
    folders = {k: kw.pop(k) for k in ("aligner", "asr")}
    return Models(folders["aligner"], folders["asr"], device=dev, **kw)


# Warm-up (issues 5 and 6): requests during load that give every planned product of the CUDA backend each size
# bucket (csrc/backend/cuda_mm_buckets.h, read through _qwen3align._cuda_gemm_buckets) that the plan lets its
# varying dimension reach: audio tokens of the encoder (and the conv_out tiles they bring), prompt rows of the
# decoder (its MLP tiles and work-area row blocks are those rows or fewer), <timestamp> rows of the aligner's
# head. Each bucket is visited at its lowest size (the cheapest request), the plan's largest request last.


def _warm_up(m, tokenizers):
    """Requests of every size class during load. CUDA loads a kernel on its first use, taking device
    memory outside the arena; matmul.cu gives each product shape one planned cuBLASLt kernel per
    size bucket, and these requests touch them all, so nothing is loaded after load_models returns
    (memory_report()['cuda']['gemm_plans_after_load'] stays 0; issue 5)."""
    import numpy as np

    from .frontend import aligner_prompt_ids, asr_prompt_ids, audio_token_count

    plan = m._plan()
    bounds = _qwen3align._cuda_gemm_buckets()
    for kind in tokenizers:
        tok = tokenizers[kind]
        for samples, ids in _warm_up_requests(kind, tok, plan, bounds):
            audio = np.zeros(samples, np.float32)
            if kind == "aligner":
                m._align_forward_audio(audio, ids)
            else:
                m.asr_generate_from_audio(audio, ids, 2, 2)
        # the host-features entry points too (1 s, or the plan's longest clip)
        frames = min(100, plan["models"][kind]["mel_frames"])
        feats, n_audio = np.zeros((128, 100), np.float32), audio_token_count(frames)
        if kind == "aligner":
            m._align_forward(feats, frames, np.array(aligner_prompt_ids(tok, ["a"], n_audio), np.int32))
        else:
            m.asr_generate(feats, frames, np.array(asr_prompt_ids(tok, n_audio), np.int32), 2, 2)


def _bucket_lows(bounds, top):
    """The lowest size of each bucket (upper bounds `bounds`, then an open one) that sizes 1..top reach."""
    return [lo for lo in [1] + [b + 1 for b in bounds] if lo <= top]


def _bucket(bounds, v):
    return sum(v > b for b in bounds)


def _warm_up_requests(kind, tok, plan, bounds):
    """[(samples of silence, prompt ids)] whose encoder rows, decoder rows and (aligner) <timestamp> rows together
    visit every bucket the plan reaches; the last request is the plan's largest."""
    import numpy as np

    from .frontend import aligner_prompt_ids, asr_prompt_ids, audio_token_count

    pm = plan["models"][kind]
    max_samples = max(1, int(16000 * plan["limits"]["max_audio_seconds"][kind]))
    max_frames, seq = max(max_samples, 8000) // 160, pm["seq_tokens"]

    def tokens(samples):
        return audio_token_count(max(samples, 8000) // 160)

    def samples_for(n):
        """The shortest clip (at most the plan's) with at least n audio tokens."""
        lo, hi = 50, max_frames
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if audio_token_count(mid) < n else (lo, mid)
        return min(max_samples, max(8000, lo * 160))

    def ids_of(samples, words=1, context=0):
        n = tokens(samples)
        if kind == "aligner":
            return aligner_prompt_ids(tok, ["a"] * words, n)
        return asr_prompt_ids(tok, n, None, " a" * context)

    out, rows, seen = [], set(), set()

    def add(samples, ids):
        rows.add(_bucket(bounds, len(ids)))
        if (samples, len(ids)) not in seen:
            seen.add((samples, len(ids)))
            out.append((samples, np.array(ids, np.int32)))

    short, base = min(max_samples, 8000), len(ids_of(max_samples))
    if kind == "aligner":
        last = _warm_up_ids(tok, tokens(max_samples), None, plan)
    else:  # context tokens (" a" is one) that fill the plan's prompt
        last = ids_of(max_samples, context=seq - base)
    rows.add(_bucket(bounds, len(last)))
    for lo in _bucket_lows(bounds, pm["audio_tokens"]):  # encoder rows (and decoder rows near them)
        add(samples_for(lo), ids_of(samples_for(lo)))
    if kind == "aligner":
        most = _most_words(tok, tokens(short), plan)
        for lo in _bucket_lows(bounds, 2 * most):  # <timestamp> rows: a short clip with (lo + 1) // 2 words
            add(short, ids_of(short, (lo + 1) // 2))
        top = len(ids_of(short, most))
        for lo in _bucket_lows(bounds, seq):  # decoder rows the rungs above missed: more words, then more audio
            if _bucket(bounds, lo) in rows:
                continue
            w = 1
            while w < most and len(ids_of(short, w)) < lo:
                w = min(most, w + max(1, (lo - len(ids_of(short, w))) // 3))
            samples = short if len(ids_of(short, w)) >= lo else samples_for(tokens(short) + lo - top)
            add(samples, _warm_up_ids(tok, tokens(samples), w, plan))
    else:
        for lo in _bucket_lows(bounds, seq):  # prompt rows past the longest clip's: context added to it
            if lo > base and _bucket(bounds, lo) not in rows:
                add(max_samples, ids_of(max_samples, context=lo - base))
    add(max_samples, last)
    return out


def _most_words(tok, n_audio, plan):
    """Most words "a" a prompt with n_audio audio tokens may have: its ids within the plan's sequence, its
    <timestamp> rows (two per word) within max_text_tokens."""
    from .frontend import aligner_prompt_ids

    pm = plan["models"]["aligner"]
    w = max(1, min(pm["text_tokens"] // 2, (pm["seq_tokens"] - n_audio) // 3))
    while w > 1 and len(aligner_prompt_ids(tok, ["a"] * w, n_audio)) > pm["seq_tokens"]:
        w -= 1
    return w


def _warm_up_ids(tok, n_audio, words, plan):
    """Aligner prompt ids with `words` words ("a"), or as many as the plan's sequence allows."""
    import numpy as np

    from .frontend import aligner_prompt_ids

    most = plan["models"]["aligner"]["seq_tokens"]

    def ids_of(n):
        return aligner_prompt_ids(tok, ["a"] * n, n_audio)

    n = words or max(1, (most - n_audio) // 3)
    while n > 1 and len(ids_of(n)) > most:
        n = max(1, n - max(1, (len(ids_of(n)) - most) // 3))
    while words is None and len(ids_of(n + 1)) <= most:
        n += 1
    return np.array(ids_of(n), np.int32)
