"""GPU tests of the decoder's causal attention on Hopper for short sequences (csrc/backend/cuda/attention_wgmma.cu,
issue #6): attention_wgmma_split_kernel (64-row blocks whose 128-key tiles the two consumer warpgroups split, merged
at the end with FlashAttention's rescale) against the warp-specialized 128-row kernel it stands in for where the
split kernel's grid fits one wave of the GPU. QA_CUDA_ATTN_SPLIT=1 forces the split kernel, =0 the 128-row one; unset, the
grid size picks (with QA_CUDA_ATTN unset; read when the backend opens, so each variant runs in a child process).

- both forced variants against float64 on the BF16-rounded operands (q rounded when staged, BF16 K / V): within
  tests/test_cuda.py's tensor-core bounds (1e-2 overall, 5e-2 for any (row, head)), and the split kernel's error
  no larger than 1.5x the 128-row kernel's overall, 2x its worst row (the same arithmetic, summed in another
  order) — T around the 64-row blocks and 128-key tiles, the align shapes (T 214, 247), 1277, 2000, continuations
  of a cache (q0 > 0, Tq < Tk), GQA groups of 1, 2, 4; Tq < 16 runs the FP32 kernel whatever the switch
  (backend.cu QA_TC_MIN_ROWS);
- the split kernel twice gives the same bits (a race between its producer halves and consumers would not), and
  not the 128-row kernel's where a block has two tiles (so the switch did take it); BF16 output = the rounded
  FP32 output;
- µs per call (a replayed CUDA graph of 20 calls) of both and of the default at the model's shape (16 heads, 8 kv
  heads, Dh 128, BF16 out as the decoder writes it) side by side, with which kernel the default took (run -s).
Everything skips without a usable CUDA device (and on the CPU shim: these are GPU-only kernel choices).
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_close_rel, rel_err
from cuda_util import bf16_round, gpu_reason, to_bf16_bits

WHY = gpu_reason()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"no usable CUDA device: {WHY}"),
              pytest.mark.skipif(bool(os.environ.get("QA_CUDA_LIB")), reason="GPU-only kernel choice")]

SWITCHES = ("QA_CUDA_ATTN_SPLIT", "QA_CUDA_ATTN")  # children start from an environment without them
VARIANTS = {"split": {"QA_CUDA_ATTN_SPLIT": "1"}, "old": {"QA_CUDA_ATTN_SPLIT": "0"}, "default": {}}
TOL, ROW_TOL = 1e-2, 5e-2

# (Tq, Tk, H, Hk, q0): causal, Dh 128, BF16 K / V
CASES = [
    (1, 1, 16, 8, 0),           # the FP32 kernel
    (63, 63, 16, 8, 0),         # one 64-row block, one partial tile: consumer 1 idle, no merge
    (64, 64, 16, 8, 0),
    (65, 65, 16, 8, 0),         # a second block of one row
    (127, 127, 16, 8, 0),
    (128, 128, 16, 8, 0),       # exactly one tile
    (129, 129, 16, 8, 0),       # the last block's two tiles: one per consumer, merged
    (214, 214, 16, 8, 0),       # align 10 s
    (247, 247, 16, 8, 0),
    (1277, 1277, 16, 8, 0),     # align 60 s: 10 tiles, odd and even counts per block
    (2000, 2000, 16, 8, 0),
    (100, 1037, 16, 8, 937),    # a cache: q0 > 0, Tq < Tk, Tk % 128 = 13
    (130, 1000, 16, 8, 870),    # three 64-row blocks continuing a cache
    (300, 2000, 16, 8, 1700),   # ASR prefill over a cache: 14 - 16 tiles per block
    (17, 300, 16, 8, 283),      # one partial block, 3 tiles
    (200, 200, 4, 1, 0),        # 4 query heads per kv head
    (200, 200, 4, 4, 0),        # no GQA
    (247, 247, 8, 2, 0),
]
DH = 128

CHILD = r"""
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from cuda_util import BF16, F32, Cuda, to_bf16_bits
g = Cuda(block_bytes=768 << 20)
g.be.dtype = BF16
DH = {dh!r}


def call(out, q, k, v, Tq, Tk, H, Hk, q0, od):
    g.call("attention", out, q, k, v, BF16, 0, 0, Tq, Tk, H, Hk, DH, q0, 1, 0, od)


outs = {{}}
d = np.load({inputs!r})
for n, case in enumerate(d["cases"]):
    Tq, Tk, H, Hk, q0 = (int(x) for x in case)
    g.reset()
    q, k, v = g.put(d["q%d" % n]), g.put(to_bf16_bits(d["k%d" % n])), g.put(to_bf16_bits(d["v%d" % n]))
    out32, out16 = g.empty((Tq, H * DH)), g.empty((Tq, H * DH), np.int16)  # poisoned: NaN, -7 (a BF16 NaN)
    call(out32, q, k, v, Tq, Tk, H, Hk, q0, F32)
    call(out16, q, k, v, Tq, Tk, H, Hk, q0, BF16)
    outs["out%d" % n] = g.get(out32, (Tq, H * DH))
    outs["bf%d" % n] = g.get(out16, (Tq, H * DH), np.uint16)
rng = np.random.default_rng(0)
for T in {lengths!r}:
    H, Hk = 16, 8
    g.reset()
    q = g.put(rng.standard_normal((T, H * DH), np.float32))
    k = g.put(to_bf16_bits(rng.standard_normal((T, Hk * DH), np.float32)))
    v = g.put(to_bf16_bits(rng.standard_normal((T, Hk * DH), np.float32)))
    out = g.empty((T, H * DH), np.int16)
    call(out, q, k, v, T, T, H, Hk, 0, BF16)  # the decoder's call: BF16 out (the o-proj's operand)
    outs["t%d" % T] = g.get(out, (T, H * DH), np.uint16)
    us = g.replay_seconds(lambda i: call(out, q, k, v, T, T, H, Hk, 0, BF16), reps=20, launches=10) * 1e6
    print("US %d %.2f" % (T, us))
np.savez({outputs!r}, **outs)
print("SPLIT DONE")
"""

LENGTHS = (130, 214, 247, 780, 1277, 2000, 2600, 3200, 3900, 6377)  # 2000 .. 3900: 1.9 .. 3.8 waves of 128-row blocks


def inputs(n, case):
    Tq, Tk, H, Hk, q0 = case
    rng = np.random.default_rng(1000 + n)
    q = (rng.standard_normal((Tq, H * DH)) * 2).astype(np.float32)  # sharp softmax
    k = (rng.standard_normal((Tk, Hk * DH)) * 2).astype(np.float32)
    v = rng.standard_normal((Tk, Hk * DH)).astype(np.float32)
    return q, k, v


def reference(q, k, v, H, Hk, q0):
    """float64 causal attention, query i at position q0 + i, kv head h / (H / Hk), scale 1 / sqrt(Dh)."""
    Tq, Tk = q.shape[0], k.shape[0]
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    mask = np.arange(Tk)[None, :] <= q0 + np.arange(Tq)[:, None]
    out = np.zeros((Tq, H * DH))
    for h in range(H):
        kh = h // (H // Hk)
        s = q[:, h * DH:(h + 1) * DH] @ k[:, kh * DH:(kh + 1) * DH].T / math.sqrt(DH)
        s = np.where(mask, s, -np.inf)
        p = np.exp(s - s.max(1, keepdims=True))
        out[:, h * DH:(h + 1) * DH] = (p / p.sum(1, keepdims=True)) @ v[:, kh * DH:(kh + 1) * DH]
    return out


def worst_row(got, ref, H):
    """The largest relative error of one (row, head) and where: a mask error confined to a few rows near a
    block or tile boundary cannot hide in the overall norm."""
    Tq = ref.shape[0]
    d = (got.astype(np.float64) - ref).reshape(Tq, H, DH)
    rows = np.linalg.norm(d, axis=2) / np.maximum(np.linalg.norm(ref.reshape(Tq, H, DH), axis=2), 1e-30)
    at = np.unravel_index(int(np.argmax(rows)), rows.shape)
    return float(rows[at]), at


def run_child(tmp_path, name, tag):
    """The CASES and the timings in a child process opened with VARIANTS[name]'s switches: its outputs (npz) and
    {T: µs per call}."""
    src, dst = str(tmp_path / "in.npz"), str(tmp_path / f"out_{name}_{tag}.npz")
    if not os.path.exists(src):
        arrays = {"cases": np.array(CASES)}
        for n, case in enumerate(CASES):
            arrays.update(zip(("q%d" % n, "k%d" % n, "v%d" % n), inputs(n, case)))
        np.savez(src, **arrays)
    code = CHILD.format(tests=os.path.dirname(__file__), dh=DH, inputs=src, outputs=dst, lengths=LENGTHS)
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(VARIANTS[name])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "SPLIT DONE" in run.stdout, run.stdout[-2000:] + run.stderr[-3000:]
    us = {int(line.split()[1]): float(line.split()[2]) for line in run.stdout.splitlines() if line.startswith("US ")}
    return dict(np.load(dst)), us


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attn_split")
    return {"split": run_child(tmp, "split", 0), "split2": run_child(tmp, "split", 1),
            "old": run_child(tmp, "old", 0), "default": run_child(tmp, "default", 0)}


@pytest.mark.parametrize("n", range(len(CASES)), ids=[f"Tq{c[0]}-Tk{c[1]}-H{c[2]}-Hk{c[3]}-q0{c[4]}" for c in CASES])
def test_split_against_float64(results, n):
    Tq, Tk, H, Hk, q0 = CASES[n]
    q, k, v = inputs(n, CASES[n])
    kr, vr = bf16_round(k), bf16_round(v)
    split, old = results["split"][0]["out%d" % n], results["old"][0]["out%d" % n]
    what = f"Tq={Tq} Tk={Tk} H={H} Hk={Hk} q0={q0}"
    if Tq < 16:  # backend.cu: the FP32 kernel (q unrounded), exact on the BF16 K / V, for both switches
        ref = reference(q, kr, vr, H, Hk, q0)
        assert_close_rel(split, ref, 1e-5, "fp32 kernel " + what)
        np.testing.assert_array_equal(split, old, err_msg=what)
        return
    ref = reference(bf16_round(q), kr, vr, H, Hk, q0)
    errs = {}
    for name, got in (("split", split), ("old", old)):
        assert_close_rel(got, ref, TOL, f"{name} {what}")
        row, at = worst_row(got, ref, H)
        assert row <= ROW_TOL, f"{name} {what}: (row, head) {at} relative error {row:.3e} > {ROW_TOL:.0e}"
        errs[name] = (rel_err(got, ref), row)
    print(f"{what}: vs float64 split {errs['split'][0]:.3e} (worst row {errs['split'][1]:.3e}), "
          f"128-row {errs['old'][0]:.3e} (worst row {errs['old'][1]:.3e}), bit-equal {np.array_equal(split, old)}")
    assert errs["split"][0] <= 1.5 * errs["old"][0] + 1e-5, (what, errs)
    assert errs["split"][1] <= 2 * errs["old"][1] + 1e-3, (what, errs)  # one row: noisier than the norm
    np.testing.assert_array_equal(results["split2"][0]["out%d" % n], split, err_msg=f"split twice {what}")
    for name, got in (("split", split), ("old", old)):
        np.testing.assert_array_equal(results[name][0]["bf%d" % n], to_bf16_bits(got),
                                      err_msg=f"{name} {what}: BF16 out is not the rounded FP32 out")
    # blocks with two tiles or more: the split kernel's merge reorders the sums, so the switch did take it
    if q0 + Tq > 128:
        assert not np.array_equal(split, old), f"{what}: QA_CUDA_ATTN_SPLIT=1 gave the 128-row kernel's bits"


def test_split_timing_and_default_choice(results):
    """µs per call at the model's shape, both kernels and the default side by side; the default's bits are one
    of the two kernels' (which one printed); the split kernel's and the 128-row kernel's outputs agree."""
    H, Hk = 16, 8
    print(f"\ncausal attention H={H} Hk={Hk} Dh={DH} BF16 K/V, BF16 out: us per call (CUDA graph of 20 calls)")
    print("T".rjust(6) + "128-row".rjust(10) + "split".rjust(10) + "ratio".rjust(8) + "blocks".rjust(13)
          + "default".rjust(10) + "  default took")
    for T in LENGTHS:
        split, old, default = (results[name][0]["t%d" % T] for name in ("split", "old", "default"))
        took = "split" if np.array_equal(default, split) else "128-row" if np.array_equal(default, old) else "?"
        blocks = f"{H * -(-T // 128)}/{H * -(-T // 64)}"
        ratio = results["split"][1][T] / results["old"][1][T]
        print(str(T).rjust(6) + "".join(f"{results[name][1][T]:10.2f}" for name in ("old", "split"))
              + f"{ratio:8.2f}" + blocks.rjust(13) + f"{results['default'][1][T]:10.2f}  {took}")
        assert took != "?", f"T={T}: the default gave neither kernel's bits"
        as_f32 = [(b.astype(np.uint32) << 16).view(np.float32).astype(np.float64) for b in (split, old)]
        assert_close_rel(as_f32[0], as_f32[1], 1e-2, f"split vs 128-row T={T}")
