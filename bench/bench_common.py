"""Shared pieces of the GPU benchmark: inputs, case table, timing, GPU memory, result files.

Imports only the standard library and NumPy, so both the transformers worker (bench_ref.py) and
our worker (bench_ours.py, which must never import torch) use the same inputs and helpers.

Inputs are deterministic: speech-like audio is synthesised from a seeded RNG (a glottal-pulse
harmonic series with a wandering pitch, two moving formants, syllable and word envelopes and a
little fricative noise), words are drawn from a fixed English list at ~2.5 words per second.
The same (seconds, seed) gives the same float32 samples in every process.
"""
import json
import os
import statistics
import subprocess
import time

import numpy as np

SR = 16000
TIMESTAMP_ID = 151705
WORDS_PER_SECOND = 2.5

# fixed vocabulary for the word lists; plain lowercase/capitalised ASCII words so that the
# reference word splitter returns them unchanged (MODEL_FACTS §7.1)
WORD_LIST = (
    "the of and to in is you that it he was for on are as with his they I at be this have from "
    "or one had by word but not what all were we when your can said there use an each which she "
    "do how their if will up other about out many then them these so some her would make like him "
    "into time has look two more write go see number no way could people my than first water been "
    "call who oil its now find long down day did get come made may part over new sound take only "
    "little work know place year live me back give most very after thing our just name good sentence "
    "man think say great where help through much before line right too mean old any same tell boy "
    "follow came want show also around form three small set put end does another well large must "
    "big even such because turn here why ask went men read need land different home us move try "
    "kind hand picture again change off play spell air away animal house point page letter mother "
    "answer found study still learn should America world Monday London don't it's we'll"
).split()


def case_table(tiny):
    """name -> (seconds, seed, kind). Full size: aligner 10/60/300 s, ASR 60 s (issue 5/6)."""
    if tiny:
        return {"al10": (10, 10, "aligner"), "al60": (30, 60, "aligner"),
                "al300": (60, 300, "aligner"), "asr60": (20, 1060, "asr")}
    return {"al10": (10, 10, "aligner"), "al60": (60, 60, "aligner"),
            "al300": (300, 300, "aligner"), "asr60": (60, 1060, "asr")}


def throughput_clip_seconds(tiny):
    return 20 if tiny else 60


def _smooth_curve(rng, n, step, lo, hi):
    """Piecewise-linear random curve in [lo, hi] with a control point every `step` samples."""
    pts = rng.uniform(lo, hi, size=n // step + 2)
    return np.interp(np.arange(n), np.arange(len(pts)) * step, pts)


def synth_speech(seconds, seed):
    """Deterministic speech-like float32 mono audio at 16 kHz, peak 0.5."""
    rng = np.random.RandomState(seed)
    n = int(round(seconds * SR))
    f0 = _smooth_curve(rng, n, SR // 4, 95.0, 210.0)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    f1 = _smooth_curve(rng, n, SR // 8, 300.0, 850.0)
    f2 = _smooth_curve(rng, n, SR // 8, 900.0, 2500.0)
    voiced = np.zeros(n)
    for k in range(1, 25):
        fk = k * f0
        amp = (np.exp(-((fk - f1) / 180.0) ** 2) + 0.6 * np.exp(-((fk - f2) / 250.0) ** 2)
               + 0.02) / k ** 0.5
        amp[fk > 7600] = 0.0
        voiced += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    # syllables at ~4 Hz, words separated by short pauses, sentence pauses now and then
    syl = 0.5 - 0.5 * np.cos(2 * np.pi * np.cumsum(_smooth_curve(rng, n, SR // 2, 3.0, 5.5)) / SR)
    gate = np.ones(n)
    pos = 0
    while pos < n:
        pos += int(rng.uniform(0.25, 0.9) * SR)
        gap = int(rng.uniform(0.04, 0.12 if rng.rand() > 0.08 else 0.6) * SR)
        gate[pos:pos + gap] = 0.0
        pos += gap
    gate = np.convolve(gate, np.ones(160) / 160, mode="same")
    noise = rng.standard_normal(n) * (rng.rand(n // 1600 + 1).repeat(1600)[:n] > 0.8) * 0.15
    x = (voiced * syl + noise * (1 - syl)) * gate
    x += rng.standard_normal(n) * 1e-3  # room noise: no exact zeros
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def words_for(seconds, seed):
    rng = np.random.RandomState(seed + 7919)
    count = max(1, int(round(WORDS_PER_SECOND * seconds)))
    return [WORD_LIST[i] for i in rng.randint(0, len(WORD_LIST), size=count)]


def audio_cached(workdir, name, seconds, seed):
    """synth_speech, cached as workdir/audio_<name>.npy so each process does not redo it."""
    path = os.path.join(workdir, f"audio_{name}.npy")
    if os.path.exists(path):
        return np.load(path)
    x = synth_speech(seconds, seed)
    tmp = path + f".{os.getpid()}.tmp.npy"
    np.save(tmp, x)
    os.replace(tmp, path)
    return x


def mixed_call_count(tiny, quick):
    return 20 if tiny else (50 if quick else 100)


def throughput_clips(workdir, tiny, quick):
    """[(audio, words)] of the throughput run: 16 clips of 60 s (8 with --quick)."""
    secs = throughput_clip_seconds(tiny)
    k = 8 if (quick or tiny) else 16
    return [(audio_cached(workdir, f"tp{i}", secs, 5000 + i), words_for(secs, 5000 + i))
            for i in range(k)]


def mixed_schedule(n_calls, max_align_s, max_asr_s, seed=4242):
    """The 100 'mixed calls' of issue 5: (kind, seconds). Every 4th call is ASR."""
    rng = np.random.RandomState(seed)
    out = []
    for i in range(n_calls):
        if i % 4 == 3:
            out.append(("asr", float(rng.uniform(1.0, max_asr_s))))
        else:
            out.append(("align", float(rng.uniform(1.0, max_align_s))))
    return out


# ---------------------------------------------------------------- timing and statistics

def median(xs):
    return float(statistics.median(xs)) if xs else None


def time_calls(fn, reps, warmup, deadline=None):
    """Median wall seconds of fn() (our calls are synchronous). Stops early at the deadline."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        if deadline is not None and time.time() > deadline and ts:
            break
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return median(ts), len(ts)


def rel_err(out, ref):
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


# ---------------------------------------------------------------- GPU memory without torch

def nvidia_smi(query, per_process=False):
    """Rows of `nvidia-smi --query-...` as lists of strings, or None when it is unavailable."""
    flag = "--query-compute-apps" if per_process else "--query-gpu"
    try:
        out = subprocess.run(["nvidia-smi", f"{flag}={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [[c.strip() for c in line.split(",")] for line in out.stdout.strip().splitlines() if line]


def gpu_memory_mib(pid=None):
    """{'device_used_mib', 'process_mib'} for GPU 0 and (if nvidia-smi lists it) this process.

    device_used minus the baseline taken before any worker started is the worker's footprint,
    CUDA context included, because the workers run one at a time on an otherwise idle card.
    """
    res = {"device_used_mib": None, "process_mib": None}
    rows = nvidia_smi("memory.used")
    if rows:
        try:
            res["device_used_mib"] = float(rows[0][0])
        except ValueError:
            pass
    rows = nvidia_smi("pid,used_memory", per_process=True)
    pid = os.getpid() if pid is None else pid
    for r in rows or []:
        if len(r) >= 2 and r[0] == str(pid):
            try:
                res["process_mib"] = float(r[1])
            except ValueError:
                pass
    base = os.environ.get("QA_BENCH_BASELINE_MIB")
    if base and res["device_used_mib"] is not None:
        res["delta_mib"] = res["device_used_mib"] - float(base)
    return res


def footprint_mib(mem):
    """The number we report: per-process if nvidia-smi gives it, else the device delta."""
    if mem.get("process_mib") is not None:
        return mem["process_mib"]
    return mem.get("delta_mib")


# ---------------------------------------------------------------- result files

def save_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def load_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


AUTOSAVE = None  # (path, log): Stage saves the log after every stage, so a crash keeps the rest


class SkipStage(Exception):
    """Raised by Stage.check() when the time budget is spent; recorded as skipped."""


class Stage:
    """Context manager that records a stage's outcome in `log` and never lets it raise.

    with Stage(log, "align_60s") as st: ...   -> log["stages"]["align_60s"] = {"ok", "s", "error"}
    """

    def __init__(self, log, name, deadline=None):
        self.log, self.name, self.deadline = log, name, deadline

    def check(self):
        if self.deadline is not None and time.time() > self.deadline:
            raise SkipStage("time budget spent")

    def __enter__(self):
        self.t0 = time.time()
        print(f"[stage] {self.name} ...", flush=True)
        return self

    def __exit__(self, et, ev, tb):
        rec = {"ok": et is None, "s": round(time.time() - self.t0, 3)}
        if et is SkipStage:
            rec = {"ok": False, "skipped": True, "s": 0.0}
            print(f"[stage] {self.name} skipped (time budget)", flush=True)
        elif et is not None:
            import traceback

            rec["error"] = f"{et.__name__}: {ev}"
            print(f"[stage] {self.name} FAILED: {rec['error']}", flush=True)
            traceback.print_exception(et, ev, tb, limit=6)
        else:
            print(f"[stage] {self.name} ok ({rec['s']} s)", flush=True)
        self.log.setdefault("stages", {})[self.name] = rec
        if AUTOSAVE is not None:
            save_json(*AUTOSAVE)
        return et is not None and issubclass(et, Exception)


def mixed_workload(cfg):
    """Issue 5's memory workload, the same for both engines: yields ("align", audio, words) or
    ("asr", audio, None) for the 300 s align, the 60 s ASR, then the mixed calls, until the deadline."""
    import time

    table = case_table(cfg["tiny"])
    long_s, long_seed, _ = table["al300"]
    asr_s, asr_seed, _ = table["asr60"]
    long_audio = audio_cached(cfg["workdir"], "al300", long_s, long_seed)
    asr_audio = audio_cached(cfg["workdir"], "asr60", asr_s, asr_seed)
    words = words_for(long_s, long_seed)
    for kind, secs in [("align", long_s), ("asr", asr_s)] + mixed_schedule(
            mixed_call_count(cfg["tiny"], cfg["quick"]), long_s, asr_s):
        if time.time() > cfg["deadline"]:
            return
        n = int(secs * SR)
        if kind == "align":
            yield kind, long_audio[:n], words[:max(1, int(len(words) * secs / long_s))]
        else:
            yield kind, asr_audio[:n], None
