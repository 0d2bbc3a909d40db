#!/usr/bin/env python3
"""CPU speed/memory bench: a real-size random-weight Qwen3-ForcedAligner-0.6B (BF16 safetensors).

    .venv/bin/python bench/bench_cpu.py [--seconds 60] [--dtype float32 bfloat16] [--threads N]

Writes the checkpoint once (tools/make_random_checkpoint.py) into bench/out/, then for each dtype in
a fresh process: load_models (timed), one align() of `--seconds` of audio with a 150-words-per-minute
transcript (timed; the weights are random, so only the time and memory mean anything), the
process's peak RSS next to the plan's arena size. The CPU seconds of the align (user + sys of
the process) are printed too: on a shared machine they are closer to the idle-machine time than the
wall clock (with OPENBLAS_NUM_THREADS=1 the engine uses one core). Results go to bench/RESULTS.md by hand.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CKPT = os.path.join(HERE, "out", "Qwen3-ForcedAligner-0.6B-random")


def ensure_checkpoint():
    if os.path.exists(os.path.join(CKPT, "model.safetensors")):
        return
    subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "make_random_checkpoint.py"),
                           "--preset", "Qwen3-ForcedAligner-0.6B", "--out", CKPT])


def one_run(dtype, seconds):
    """Runs in a child process: prints one JSON line of timings and memory."""
    import resource

    import numpy as np

    sys.path.insert(0, ROOT)
    import qwen3align as qa

    t0 = time.perf_counter()
    m = qa.load_models(aligner=CKPT, device="cpu", dtype=dtype, max_audio_seconds=max(seconds, 1.0))
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    n_words = max(1, int(seconds * 150 / 60))
    text = " ".join(("hello", "world", "alignment", "of", "speech")[i % 5] for i in range(n_words))
    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    res = m.align(audio, text=text, sample_rate=16000)
    align_s, align_cpu = time.perf_counter() - t0, cpu() - c0
    t0 = time.perf_counter()
    m.align(audio, text=text, sample_rate=16000)
    align2_s = time.perf_counter() - t0
    rep = m.memory_report()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"dtype": dtype, "seconds": seconds, "words": len(res), "load_s": load_s, "align_s": align_s,
                      "align_again_s": align2_s, "align_cpu_s": align_cpu,
                      "load_avg": os.getloadavg()[0], "arena_bytes": rep["arena_bytes"],
                      "workspace_bytes": rep["regions"]["workspace"], "workspace_peak": rep["regions_peak"]["workspace"],
                      "peak_rss_bytes": peak_rss, "allocations_after_load": rep["allocations_after_load"],
                      "blas_core": os.environ.get("OPENBLAS_CORETYPE"), "threads": os.environ.get("OPENBLAS_NUM_THREADS")}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=None, help="OPENBLAS_NUM_THREADS for the runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return one_run(a.child, a.seconds)
    ensure_checkpoint()
    env = dict(os.environ)
    if a.threads:
        env["OPENBLAS_NUM_THREADS"] = str(a.threads)
    print(f"machine: {os.cpu_count()} CPUs, {open('/proc/cpuinfo').read().split('model name')[1].split(chr(10))[0][3:]}")
    for dtype in a.dtype:
        out = subprocess.run([sys.executable, __file__, "--child", dtype, "--seconds", str(a.seconds)], env=env,
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        gib = 2 ** 30
        print(f"{dtype:9s} load {r['load_s']:5.1f} s | align {r['seconds']:.0f} s audio ({r['words']} words): "
              f"{r['align_s']:5.1f} s (CPU {r['align_cpu_s']:5.1f} s), again {r['align_again_s']:5.1f} s "
              f"[load avg {r['load_avg']:.1f}] | peak RSS {r['peak_rss_bytes'] / gib:.2f} GiB "
              f"vs arena {r['arena_bytes'] / gib:.2f} GiB (workspace {r['workspace_bytes'] / 2**20:.0f} MiB, "
              f"peak {r['workspace_peak'] / 2**20:.0f} MiB) | BLAS {r['blas_core']} threads {r['threads'] or 'default'}")


if __name__ == "__main__":
    sys.exit(main())
