#!/usr/bin/env python3
"""Write a random-weight checkpoint folder with the real Qwen3-ForcedAligner / Qwen3-ASR architecture.

    python tools/make_random_checkpoint.py --preset Qwen3-ForcedAligner-0.6B --out /tmp/fa      # real size
    python tools/make_random_checkpoint.py --preset Qwen3-ASR-1.7B --tiny --layout hf --out /tmp/asr

For memory-plan, loader and speed tests without downloading weights; the outputs of such a model are
meaningless. The work is done by qwen3align.random_checkpoint (NumPy only, no extension needed).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from qwen3align.random_checkpoint import PRESETS, make_checkpoint  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=PRESETS, default=PRESETS[0])
    ap.add_argument("--tiny", action="store_true", help="small sizes (d_model 64, 2+2 layers), real vocabulary")
    ap.add_argument("--layout", choices=("original", "hf"), default="original")
    ap.add_argument("--dtype", choices=("bf16", "f32"), default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store-lm-head", action="store_true",
                    help="original layout, tied ASR: also store thinker.lm_head.weight (= embeddings), as the releases do")
    ap.add_argument("--max-seconds", type=float, default=4.0,
                    help="tiny aligner: the largest timestamp its head can produce")
    ap.add_argument("--config", help="an original-layout config.json to use instead of the preset's")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    config = None
    if a.config:
        with open(a.config, encoding="utf-8") as f:
            config = json.load(f)
    t = time.perf_counter()
    make_checkpoint(a.out, a.preset, tiny=a.tiny, layout=a.layout, dtype=a.dtype, seed=a.seed,
                    store_lm_head=a.store_lm_head, max_seconds=a.max_seconds, config=config)
    size = os.path.getsize(os.path.join(a.out, "model.safetensors"))
    print(f"wrote {a.out}/model.safetensors ({size / 2**20:.1f} MiB) in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
