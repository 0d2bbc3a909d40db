#!/usr/bin/env python3
"""CPU batch throughput: align_batch with workers=1 vs workers=2 (or --workers ...), side by side.

    .venv/bin/python bench/bench_batch.py [--clips 4] [--seconds 10] [--workers 1 2] [--dtype bfloat16]
                                          [--repeats 2] [--blas-threads N] [--fixture]

Model: the real-size random-weight Qwen3-ForcedAligner-0.6B of bench/bench_cpu.py (written once by
tools/make_random_checkpoint.py into bench/out/), or with --fixture the tiny test aligner of
../shared/fixtures (fast, for a smoke run). Each worker count runs in a fresh process: load_models
(max_audio_seconds = --seconds, workers = N), one warm-up align, then --repeats timed
align_batch calls over --clips clips of --seconds of noise with a 150-words-per-minute transcript
(the weights are random: only time and memory mean anything). Throughput = audio seconds aligned
per wall second (best of the repeats); also the process CPU seconds, the OpenBLAS threads the batch
ran with, the arena, and a hash of the results (must be equal across worker counts).
Results go to bench/RESULTS.md by hand.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_cpu import CKPT, ensure_checkpoint  # noqa: E402

FIXTURE = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures", "aligner"))


def clips(n, seconds):
    import numpy as np

    rng = np.random.default_rng(0)
    words = ("hello", "world", "alignment", "of", "speech")
    n_words = max(1, int(seconds * 150 / 60))
    return [{"audio": (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), "sample_rate": 16000,
             "text": " ".join(words[(i + k) % 5] for i in range(n_words)), "language": "English"}
            for k in range(n)]


def one_run(workers, a):
    """Runs in a child process: prints one JSON line."""
    import resource

    sys.path.insert(0, ROOT)
    import qwen3align as qa
    from qwen3align import _qwen3align as C

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    folder = FIXTURE if a.fixture else CKPT
    m = qa.load_models(aligner=folder, device="cpu", dtype=a.dtype, max_audio_seconds=a.seconds, workers=workers)
    items = clips(a.clips, a.seconds)
    m.align(**items[0])  # warm-up: page faults of the weights, OpenBLAS's thread pool
    blas = []
    best, cpu_s, out = None, None, None
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), cpu()
        out = m.align_batch(items, progress=lambda stage, done, n: done and blas.append(C._blas_threads()))
        wall, used = time.perf_counter() - t0, cpu() - c0
        if best is None or wall < best:
            best, cpu_s = wall, used
    digest = hashlib.sha256(repr([[(i.text, i.start, i.end, i.confidence) for i in r] for r in out]).encode())
    rep = m.memory_report()
    print(json.dumps({"workers": workers, "wall_s": best, "cpu_s": cpu_s, "audio_s": a.clips * a.seconds,
                      "blas_threads_in_batch": max(blas) if blas else None,
                      "blas_threads_single": C._blas_threads(), "arena_bytes": rep["arena_bytes"],
                      "allocations_after_load": rep["allocations_after_load"], "results": digest.hexdigest()[:12],
                      "load_avg": os.getloadavg()[0]}))
    m.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--blas-threads", type=int, default=None, help="OPENBLAS_NUM_THREADS for the runs")
    ap.add_argument("--fixture", action="store_true", help="the tiny fixture aligner instead of the real-size one")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return one_run(a.child, a)
    if not a.fixture:
        ensure_checkpoint()
    model = "fixture aligner" if a.fixture else "random Qwen3-ForcedAligner-0.6B"
    print(f"machine: {os.cpu_count()} CPUs, {open('/proc/cpuinfo').read().split('model name')[1].split(chr(10))[0][3:]}")
    print(f"{model} ({a.dtype}), {a.clips} clips x {a.seconds:g} s, best of {a.repeats}, "
          f"OPENBLAS_NUM_THREADS={a.blas_threads or os.environ.get('OPENBLAS_NUM_THREADS') or 'default'}")
    rows = []
    for w in a.workers:
        argv = [sys.executable, __file__, "--child", str(w), "--clips", str(a.clips), "--seconds", str(a.seconds),
                "--dtype", a.dtype, "--repeats", str(a.repeats)] + (["--fixture"] if a.fixture else [])
        env = dict(os.environ, **({"OPENBLAS_NUM_THREADS": str(a.blas_threads)} if a.blas_threads else {}))
        out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'workers':>8} {'wall s':>8} {'audio s/s':>10} {'CPU s':>7} {'BLAS thr':>9} {'arena GiB':>10} "
          f"{'allocs':>7} {'results':>13} {'load avg':>9}")
    for r in rows:
        print(f"{r['workers']:>8} {r['wall_s']:>8.2f} {r['audio_s'] / r['wall_s']:>10.2f} {r['cpu_s']:>7.1f} "
              f"{r['blas_threads_in_batch']:>9} {r['arena_bytes'] / 2**30:>10.2f} "
              f"{r['allocations_after_load']:>7} {r['results']:>13} {r['load_avg']:>9.1f}")
    base = rows[0]["wall_s"]
    print("speed-up vs first: " + ", ".join(f"workers={r['workers']}: {base / r['wall_s']:.2f}x" for r in rows))
    print("same results: " + ("yes" if len({r["results"] for r in rows}) == 1 else "NO"))


if __name__ == "__main__":
    sys.exit(main())
