#!/usr/bin/env python3
"""Where the CUDA time goes: per-op GPU time of each benchmark request (QA_CUDA_PROFILE=1).

    python3 bench/gpu_profile.py [--models /tmp/qa_bench/models] [--out DIR]

For each scenario (align 10 / 60 / 300 s model-only, ASR prefill of 60 s, ASR decode of 64 tokens)
a fresh process loads the real-size random checkpoints (tools/make_random_checkpoint.py presets, the
ones gpu_run.sh / gpu_bench.py write), times the call without profiling (median of 5 after a
warm-up), then repeats it with the profiler on: csrc/backend/cuda/profile.cu waits for every op, so
the table shows each op's GPU time and calls, and host − gpu shows the issuing overhead. The load's
warm-up request is in the table too (one 1 s request: small next to the scenario's repeats).
Prints one block per scenario; bench/NOTES.md keeps the stage-vs-floor table built from it.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCENARIOS = {  # name: (model, seconds of audio, new tokens or None, repeats)
    "align_10s": ("aligner", 10, None, 5),
    "align_60s": ("aligner", 60, None, 5),
    "align_300s": ("aligner", 300, None, 3),
    "asr_prefill_60s": ("asr", 60, 1, 5),
    "asr_decode_64": ("asr", 10, 65, 3),
}
PRESETS = {"aligner": "Qwen3-ForcedAligner-0.6B", "asr": "Qwen3-ASR-1.7B"}


def child(name, models_dir):
    import numpy as np

    sys.path.insert(0, ROOT)
    import qwen3align as qa
    from qwen3align.frontend import aligner_prompt_ids, asr_prompt_ids, audio_token_count

    kind, secs, new, reps = SCENARIOS[name]
    folder = os.path.join(models_dir, PRESETS[kind])
    m = qa.load_models(**{kind: folder}, device="cuda", max_audio_seconds=300, max_new_tokens=1024)
    frames = secs * 100
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((128, frames)).astype(np.float32) * 0.5
    tok = m.tokenizers[kind]
    n_audio = audio_token_count(frames)
    if kind == "aligner":
        words = ["word%d" % (i % 50) for i in range(int(secs * 2.5))]
        ids = np.asarray(aligner_prompt_ids(tok, words, n_audio), np.int32)
        call = lambda: m.aligner_logits(feats, frames, ids)  # noqa: E731
    else:
        ids = np.asarray(asr_prompt_ids(tok, n_audio), np.int32)
        call = lambda: m.asr_generate(feats, frames, ids, max_new_tokens=new, min_new_tokens=new)  # noqa: E731
    call()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({"scenario": name, "tokens": int(len(ids)), "median_ms": 1e3 * times[len(times) // 2]}),
          flush=True)
    m.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="/tmp/qa_bench/models")
    ap.add_argument("--out", default=os.environ.get("OUT", os.path.join(HERE, "out")))
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.models)
        return
    for p in PRESETS.values():
        if not os.path.exists(os.path.join(a.models, p, "config.json")):
            subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "make_random_checkpoint.py"),
                                   "--preset", p, "--out", os.path.join(a.models, p)])
    lines = []
    for name in SCENARIOS:
        for prof in ("0", "1"):
            env = dict(os.environ, QA_CUDA_PROFILE=prof)
            r = subprocess.run([sys.executable, __file__, "--child", name, "--models", a.models], env=env,
                               capture_output=True, text=True, timeout=240)
            tag = "profiled" if prof == "1" else "plain"
            lines.append(f"## {name} ({tag}, exit {r.returncode})")
            lines += [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            if prof == "1":
                lines += [ln for ln in r.stderr.splitlines() if ln.startswith("QA_CUDA_PROFILE")]
            if r.returncode:
                lines += r.stderr.splitlines()[-15:]
            print("\n".join(lines[-40:]) if prof == "1" else lines[-1], flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "profile.log"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
