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
`--ncu` instead runs each scenario's child under Nsight Compute (clocks left alone) with one request
bracketed by cuProfilerStart/Stop: every kernel's own duration, summed per kernel, against the plain
wall time of the same request — GPU-busy time vs launch-bound time, without the profiler's waits.
The "memwatch" scenario (issue 5) loads both models with QA_CUDA_MEMWATCH=1, runs requests of many
lengths through the public calls, and prints nvidia-smi's process memory after load and after the work
plus every op after which the device's free memory fell (csrc/backend/cuda/profile.cu).
"""
import argparse
import json
import os
import re
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


def child(name, models_dir, ncu=False):
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
    if ncu:  # one more request, the only one Nsight Compute records (--profile-from-start off)
        import ctypes
        cu = ctypes.CDLL("libcuda.so.1")
        cu.cuProfilerStart()
        call()
        cu.cuProfilerStop()
    m.close()


def ncu_table(name, models_dir, out):
    """Kernel durations of one request of scenario `name` (Nsight Compute), summed per kernel."""
    import csv

    log = os.path.join(out, f"ncu_{name}.csv")
    import glob
    import shutil

    exe = shutil.which("ncu") or (sorted(glob.glob("/opt/nvidia/nsight-compute/*/ncu")) or ["ncu"])[-1]
    cmd = [exe, "--profile-from-start", "off", "--clock-control", "none", "--metrics", "gpu__time_duration.sum",
           "--csv", "--log-file", log, sys.executable, __file__, "--child", name, "--models", models_dir, "--ncu"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    lines = [f"## {name} (ncu, exit {r.returncode})"] + [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not os.path.exists(log):
        return lines + (r.stdout + r.stderr).splitlines()[-15:]
    per, total, n = {}, 0.0, 0
    with open(log) as f:
        rows = [ln for ln in f if ln.startswith('"')]
    for row in csv.DictReader(rows):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        ns = float(row["Metric Value"].replace(",", "")) * (1e3 if row["Metric Unit"] == "usecond" else
                                                            1e6 if row["Metric Unit"] == "msecond" else 1)
        k = re.sub(r"\(.*", "", row["Kernel Name"])[:70]
        c, t = per.get(k, (0, 0.0))
        per[k] = (c + 1, t + ns)
        total += ns
        n += 1
    lines.append(f"kernels {n}, GPU busy {total / 1e6:.3f} ms (sum of kernel durations)")
    for k, (c, t) in sorted(per.items(), key=lambda kv: -kv[1][1])[:25]:
        lines.append(f"  {t / 1e6:8.3f} ms {100 * t / total:5.1f} % {c:5d}x  {k}")
    return lines


def memwatch(models_dir):
    """Issue 5's check, op by op: what takes device memory after load_models returned."""
    import numpy as np

    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import bench_common as bc
    import qwen3align as qa

    m = qa.load_models(aligner=os.path.join(models_dir, PRESETS["aligner"]),
                       asr=os.path.join(models_dir, PRESETS["asr"]), device="cuda", max_audio_seconds=300,
                       max_new_tokens=1024)
    print("MEMWATCH after load: nvidia-smi %s" % bc.gpu_memory_mib(), flush=True)
    print("MEMWATCH ---- requests", file=sys.stderr, flush=True)
    rng = np.random.default_rng(7)
    audio = bc.synth_speech(300, 11)
    for secs in [300, 60, 10, 1, 0.5, 180, 33.3] + list(rng.uniform(1, 300, 12)):
        n = int(secs * bc.SR)
        words = bc.words_for(secs, int(secs * 10))
        m.align(audio[:n], text=" ".join(words), language="English", sample_rate=bc.SR, target_seconds=300)
        print(f"MEMWATCH align {secs:.1f} s: nvidia-smi {bc.gpu_memory_mib()['process_mib']}", file=sys.stderr,
              flush=True)
    for secs in [60, 5, 300, 17.5]:
        t = m.transcribe(audio[:int(secs * bc.SR)], sample_rate=bc.SR, max_new_tokens=48)
        print(f"MEMWATCH transcribe {secs:.1f} s ({len(t.text)} chars): nvidia-smi "
              f"{bc.gpu_memory_mib()['process_mib']}", file=sys.stderr, flush=True)
    print("MEMWATCH after work: nvidia-smi %s; report %s" % (bc.gpu_memory_mib(), {
        k: v for k, v in m.memory_report().items() if "alloc" in k or k == "cuda"}), flush=True)
    m.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="/tmp/qa_bench/models")
    ap.add_argument("--out", default=os.environ.get("OUT", os.path.join(HERE, "out")))
    ap.add_argument("--child")
    ap.add_argument("--memwatch-only", action="store_true", help="only the memwatch scenario")
    ap.add_argument("--ncu", action="store_true", help="kernel durations under Nsight Compute instead")
    ap.add_argument("--only", default=os.environ.get("QA_PROFILE_ONLY", ""),
                    help="comma-separated scenarios (default all)")
    a = ap.parse_args()
    if a.child == "memwatch":
        memwatch(a.models)
        return
    if a.child:
        child(a.child, a.models, a.ncu)
        return
    for p in PRESETS.values():
        if not os.path.exists(os.path.join(a.models, p, "config.json")):
            subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "make_random_checkpoint.py"),
                                   "--preset", p, "--out", os.path.join(a.models, p)])
    lines = []
    names = [n for n in SCENARIOS if not a.only or n in a.only.split(",")]
    if a.ncu:
        os.makedirs(a.out, exist_ok=True)
        for name in names:
            lines += ncu_table(name, a.models, a.out)
            print("\n".join(lines), flush=True)
        with open(os.path.join(a.out, "profile.log"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return
    for name in [] if a.memwatch_only else names:
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
    r = subprocess.run([sys.executable, __file__, "--child", "memwatch", "--models", a.models], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, QA_CUDA_MEMWATCH="1"))
    lines.append(f"## memwatch (exit {r.returncode})")
    lines += [ln for ln in (r.stdout + r.stderr).splitlines() if "MEMWATCH" in ln or r.returncode][-80:]
    print("\n".join(lines[-80:]), flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "profile.log"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
