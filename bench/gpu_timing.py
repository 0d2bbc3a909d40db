"""Time the CUDA backend on a full-size random-weight aligner (and print its memory report).

    python bench/gpu_bench.py [--seconds 30 120 300] [--dtype bfloat16 float32] [--ckpt /tmp/fa]

The checkpoint is written with qwen3align.random_checkpoint (the real Qwen3-ForcedAligner-0.6B shapes,
random BF16 weights): its outputs are meaningless, the work and the memory are the real ones.
Prints one row per (dtype, audio length): tokens, best and median wall time of _align_forward (the
full encoder + decoder + head + argmax; it returns host arrays, so it is synchronous), over 3 runs
after one warm-up. Wall clock includes the host work (mel is not included: features are random).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def prompt(frames, words, rng):
    n_audio = 13 * (frames // 100) + ((frames % 100) + 7) // 8
    text = []
    for _ in range(words):
        text += list(rng.integers(1000, 100000, 2)) + [151705, 151705]
    return np.array([151669] + [151676] * n_audio + [151670] + text, np.int32), n_audio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[30, 120, 300])
    ap.add_argument("--dtype", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--ckpt", default="/tmp/qa_bench_aligner")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--tiny", action="store_true", help="small random model (to try the script on a CPU)")
    a = ap.parse_args()
    from qwen3align.random_checkpoint import make_checkpoint
    from qwen3align._qwen3align import Models

    if not os.path.exists(os.path.join(a.ckpt, "model.safetensors")):
        t = time.perf_counter()
        make_checkpoint(a.ckpt, "Qwen3-ForcedAligner-0.6B", tiny=a.tiny, max_seconds=max(a.seconds) + 10)
        print(f"random full-size aligner written in {time.perf_counter() - t:.1f} s")
    rng = np.random.default_rng(0)
    rows = []
    for dtype in a.dtype:
        t = time.perf_counter()
        m = Models(aligner=a.ckpt, device=a.device, dtype=dtype, max_audio_seconds_aligner=max(a.seconds))
        load_s = time.perf_counter() - t
        for sec in a.seconds:
            frames = int(sec * 100)
            feat = rng.standard_normal((128, frames)).astype(np.float32) * 0.5
            ids, n_audio = prompt(frames, int(sec * 2.5), rng)  # ~150 words a minute
            m._align_forward(feat, frames, ids)  # warm-up
            times = []
            for _ in range(3):
                t = time.perf_counter()
                m._align_forward(feat, frames, ids)
                times.append(time.perf_counter() - t)
            rows.append((dtype, sec, n_audio, len(ids), min(times), statistics.median(times), load_s))
        rep = m._memory_report()
        print(f"\n[{dtype}] memory report: arena {rep['arena_bytes'] / 2**30:.2f} GiB, regions "
              f"{ {k: round(v / 2**20, 1) for k, v in rep['regions'].items()} } MiB, peak workspace "
              f"{rep['regions_peak'].get('workspace', 0) / 2**20:.1f} MiB, device free "
              f"{rep['device_free_bytes'] / 2**30:.2f} of {rep['device_total_bytes'] / 2**30:.2f} GiB")
        print(f"[{dtype}] cuda: {rep.get('cuda')}; host allocations after load {rep['allocations_after_load']}")
        m.close() if hasattr(m, "close") else None
        del m
    print("\n dtype     audio_s  audio_tok  seq_tok   best_ms  median_ms  load_s")
    for r in rows:
        print(f" {r[0]:<9} {r[1]:>7.0f} {r[2]:>10} {r[3]:>8} {r[4] * 1e3:>9.1f} {r[5] * 1e3:>10.1f} {r[6]:>7.1f}")


if __name__ == "__main__":
    main()
