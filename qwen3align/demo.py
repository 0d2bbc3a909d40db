"""`make demo` / `python -m qwen3align demo`: the whole pipeline on this machine, no download needed.

1. Models: QWEN3ALIGN_ALIGNER / QWEN3ALIGN_ASR (checkpoint folders) when set; otherwise a tiny
   random-weight aligner and ASR with the real architecture and vocabulary, generated once into
   the cache (qwen3align.random_checkpoint). Random weights mean the times and the transcript are
   meaningless — the demo says so; the audio front end, prompts, memory plan and outputs are real.
2. Audio: a sentence spoken by espeak-ng (installed by the Makefile), or a generated tone sequence.
3. align with the known sentence, transcribe, print the words, an SRT and memory_report().
Until the engine exists (Models.align), it prints the memory plan of the released models instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

SENTENCE = "Hello world, this is the qwen three align demo."
LANGUAGE = "English"
SEED = 20260101


def cache_dir() -> str:
    from . import __version__

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "qwen3align", f"demo-{__version__}-{SEED}")


def demo_models(quiet=False):
    """(aligner_dir, asr_dir, random?) — from the environment or generated tiny models."""
    env_fa, env_asr = os.environ.get("QWEN3ALIGN_ALIGNER"), os.environ.get("QWEN3ALIGN_ASR")
    if env_fa or env_asr:
        return env_fa, env_asr, False
    from .random_checkpoint import make_checkpoint

    root = cache_dir()
    out = []
    for name, preset in (("aligner", "Qwen3-ForcedAligner-0.6B"), ("asr", "Qwen3-ASR-0.6B")):
        d = os.path.join(root, name)
        if not os.path.exists(os.path.join(d, "model.safetensors")):
            os.makedirs(root, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=name + ".", dir=root)
            # f32: the tiny aligner's clock head needs more than bf16's 8 bits (see random_checkpoint)
            make_checkpoint(tmp, preset, tiny=True, seed=SEED, max_seconds=30.0, dtype="f32")
            shutil.rmtree(d, ignore_errors=True)
            os.replace(tmp, d)  # atomic: a half-written model is never picked up
        out.append(d)
    return out[0], out[1], True


def demo_audio():
    """(audio, description): espeak-ng's WAV path, else a (float32 array, 16000) tone sequence."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe:
        path = os.path.join(cache_dir(), "demo.wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        r = subprocess.run([exe, "-v", "en", "-s", "150", "-w", path, SENTENCE], capture_output=True)
        if r.returncode == 0 and os.path.getsize(path) > 1000:
            return path, f"{SENTENCE!r} spoken by {os.path.basename(exe)}"
    import numpy as np

    sr, parts = 16000, []
    for k, _ in enumerate(SENTENCE.split()):  # one short tone per word, silence between
        t = np.arange(int(0.25 * sr)) / sr
        parts += [0.3 * np.sin(2 * np.pi * (220 + 40 * k) * t) * np.hanning(len(t)), np.zeros(int(0.08 * sr))]
    return (np.concatenate(parts).astype(np.float32), sr), "a generated tone per word (espeak-ng not found)"


def print_plan_only(out=sys.stdout):
    """Before the engine exists: what the released models would need."""
    print("qwen3align demo: the inference engine is not built into this version yet; here is the memory\n"
          "plan for the released models (computed from their config.json, no weights needed):\n", file=out)
    try:
        import qwen3align as qa

        plan = qa.plan(aligner="Qwen3-ForcedAligner-0.6B", asr="Qwen3-ASR-1.7B")
    except Exception as e:  # the planner may not be built either: say so instead of failing
        print(f"(the memory planner is not available either: {type(e).__name__}: {e})", file=out)
        return 0
    print(plan, file=out)
    try:
        verdict = plan.fits()
        rows = [("this device", None, verdict)] if isinstance(verdict, bool) else verdict
        for name, free, ok in rows:
            have = "" if free is None else f" ({free / 2**30:.2f} GiB free)"
            print(f"fits on {name}{have}: {'yes' if ok else 'no'}", file=out)
    except Exception as e:
        print(f"(could not check the device: {e})", file=out)
    return 0


def _engine_ready() -> bool:
    try:
        from .models import Models
    except Exception:
        return False
    return hasattr(Models, "align")


def run_demo(device="auto", quiet=False, out=sys.stdout) -> int:
    if not _engine_ready():
        return print_plan_only(out)
    import qwen3align as qa

    from .progress import ProgressBar, progress

    bar = ProgressBar(5, "demo", quiet=quiet)
    with progress("generating tiny random-weight models (first run only)", quiet=quiet):
        fa, asr, random_weights = demo_models(quiet)
    bar.update("models ready")
    audio, what = demo_audio()
    bar.update("audio ready")
    models = qa.load_models(aligner=fa, asr=asr, device=device, max_audio_seconds=30, max_new_tokens=32)
    bar.update("models loaded")
    with models:
        res = models.align(audio, text=SENTENCE, language=LANGUAGE) if fa else None
        bar.update("aligned")
        tr = models.transcribe(audio) if asr else None
        bar.update("transcribed")
        bar.close()
        print(f"\naudio: {what}", file=out)
        if res is not None:
            print(f"\nword timestamps ({len(res)} words):", file=out)
            for it in res:
                print(f"  {it.start:8.3f} {it.end:8.3f}  {it.text}", file=out)
            print("\nas SRT (times clamped to the audio):\n" + res.to_srt(), file=out)
        if tr is not None:
            print(f"transcript: {str(tr)!r} (language: {tr.language})\n", file=out)
        print(models.memory_report(), file=out)
    if random_weights:
        print("\nNOTE: these models have RANDOM weights (generated by qwen3align.random_checkpoint), so the\n"
              "timestamps and the transcript above are meaningless: the tiny aligner's times come from a\n"
              "position clock wired into it (about 0.1 s per text token), not from listening, and the ASR\n"
              "strings random words together. Everything else is real: audio decoding, log-mel, tokenizer,\n"
              "prompts, the model architecture, the memory plan and the output formats.\n"
              "Set QWEN3ALIGN_ALIGNER and QWEN3ALIGN_ASR to real checkpoint folders to run the real models.",
              file=out)
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
