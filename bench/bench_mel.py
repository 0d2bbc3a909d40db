"""Speed of qwen3align.log_mel: 60 s of 16 kHz audio on one thread (target: <= 50 ms).

Run: .venv/bin/python bench/bench_mel.py [seconds]   (prints the best and median of 20 runs)
"""
import os
import sys
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before the extension (and numpy) load OpenBLAS

import numpy as np  # noqa: E402

import qwen3align as qa  # noqa: E402


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    qa.log_mel(audio)  # warm-up (page faults, OpenBLAS init)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        feats, valid = qa.log_mel(audio)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"log_mel: {seconds:g} s of audio ({valid} frames, features {feats.shape}) on 1 thread: "
          f"best {times[0] * 1e3:.1f} ms, median {times[len(times) // 2] * 1e3:.1f} ms (target <= 50 ms for 60 s)")


if __name__ == "__main__":
    main()
