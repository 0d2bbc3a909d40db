"""Issue 8's memory proof on a GPU: hours of audio inside a fixed arena.

Both real-size random-weight models (the checkpoints bench/gpu_bench.py wrote to its workdir) are
loaded under max_device_bytes=8 GiB; then transcribe 20 min, align the same 20 min (ASR first, then
the aligner per chunk) and align 1 h with a transcript. After each step memory_report() must show the
arena unchanged and its peak within the plan, and nvidia-smi the same process memory. Prints a
markdown section for bench/RESULTS.md (bench/gpu_run.sh keeps it in $OUT/longaudio.log).

    python3 bench/gpu_longaudio.py [--workdir /tmp/qa_bench] [--minutes 20] [--hours 1]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # bench_common, and the in-place build of qwen3align
import bench_common as bc  # noqa: E402

GiB = 1 << 30


def long_audio(seconds, seed):
    """Speech-like audio built from 60 s pieces (synth_speech of a whole hour takes minutes)."""
    import numpy as np

    piece = bc.synth_speech(60.0, seed)
    reps = int(np.ceil(seconds / 60.0))
    return np.tile(piece, reps)[: int(seconds * bc.SR)]


def step(models, name, fn, rows, plan_arena):
    t0 = time.perf_counter()
    out = fn()
    took = time.perf_counter() - t0
    rep = models.memory_report()
    mem = bc.gpu_memory_mib()
    ok = rep["arena_bytes"] == plan_arena and rep["peak_bytes"] <= rep["arena_bytes"]
    rows.append((name, f"{took:.1f}", f"{rep['peak_bytes'] / GiB:.3f}", f"{rep['arena_bytes'] / GiB:.3f}",
                 mem.get("process_mib") or mem.get("device_used_mib"), rep["allocations_after_load"],
                 "yes" if ok else "NO"))
    print(rows[-1], flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/qa_bench")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--aligner", help="checkpoint folder (default: gpu_bench's random full-size aligner)")
    ap.add_argument("--asr", help="checkpoint folder (default: gpu_bench's random full-size ASR-1.7B)")
    args = ap.parse_args()
    import qwen3align as qa

    d = os.path.join(args.workdir, "models")
    aligner = args.aligner or os.path.join(d, "Qwen3-ForcedAligner-0.6B")
    asr = args.asr or os.path.join(d, "Qwen3-ASR-1.7B")
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    limits = dict(max_audio_seconds={"aligner": 300, "asr": 300}, max_new_tokens=args.max_new_tokens,
                  max_device_bytes=8 * GiB)
    plan = qa.plan(aligner=aligner, asr=asr, device=args.device, dtype=dtype, **limits)
    models = qa.load_models(aligner=aligner, asr=asr, device=args.device, dtype=dtype, **limits)
    rows = []
    step(models, "loaded", lambda: None, rows, plan["arena_bytes"])
    x = long_audio(args.minutes * 60, 11)
    tr = step(models, f"transcribe {args.minutes:g} min", lambda: models.transcribe((x, bc.SR)), rows,
              plan["arena_bytes"])
    al = step(models, f"align {args.minutes:g} min (ASR first)", lambda: models.align((x, bc.SR)), rows,
              plan["arena_bytes"])
    xh = long_audio(args.hours * 3600, 12)
    words = bc.words_for(args.hours * 3600, 12)
    ah = step(models, f"align {args.hours:g} h with a transcript",
              lambda: models.align((xh, bc.SR), words=words, language="English"), rows, plan["arena_bytes"])
    card = (bc.nvidia_smi("name") or [[args.device]])[0][0]
    md = [f"### Long audio under max_device_bytes=8 GiB ({card}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
          f"Plan: arena {plan['arena_bytes'] / GiB:.3f} GiB (aligner 300 s, ASR 300 s + "
          f"{args.max_new_tokens} new tokens, {dtype}). Transcript of {args.minutes:g} min: "
          f"{len(tr.text)} chars in {len(tr.tokens)} tokens; {len(al)} aligned words in "
          f"{len(al.chunks or [])} chunks; {len(ah)} of {len(words)} words aligned over "
          f"{len(ah.chunks or [])} chunks in {args.hours:g} h.", "",
          "| step | seconds | arena peak (GiB) | arena (GiB) | GPU MiB (nvidia-smi) | allocations after load | peak ≤ plan |",
          "|---|---|---|---|---|---|---|"]
    md += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    print("\n".join(md))
    return 0 if all(r[-1] == "yes" for r in rows) and len(ah) == len(words) else 1


if __name__ == "__main__":
    sys.exit(main())
