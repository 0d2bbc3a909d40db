"""gemv.cuh's shared-memory ring (QA_CUDA_GEMV_VARIANT=4, issue #6) against the default decode GEMV loop (1).

The variant is read once per process, so each variant runs in a child process: the ring kernels (gemv.cu's
columns, norm_gemm.cu's q/k/v and gate/up rows) must give the same bits as variant 1 at the edges of the ring
(K not a multiple of a batch's 256 chunks, fewer chunks than lanes, outputs not a multiple of the 8 warps of a
block, warps whose look-ahead runs over several outputs), and the decode step's per-op times are printed for both
(run with -s). Float64 checks of variant 4 run in tests/test_cuda.py (GEMV_VARIANTS). GPU:

    python -m pytest -q -s tests/test_cuda_gemv_ring.py
"""
import ctypes as C
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cuda_util import BF16, Cuda, Tensor, gpu_reason

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WHY = gpu_reason()
SHIM = bool(os.environ.get("QA_CUDA_LIB"))
gpu_only = pytest.mark.skipif(WHY is not None or SHIM, reason=f"needs a CUDA device (not the CPU shim): {WHY}")

# (T, K, N): the decode widths; K % 2048 != 0 (a partial last batch: 2056, 3000); K < 256 elements (fewer chunks
# than lanes: every batch a new output, the ring's look-ahead spans outputs); N not a multiple of 8 warps (1029, 7),
# a single output, and a head-like width (20000: ~19 outputs per warp of a 132-block grid)
SHAPES = [(1, 2048, 2048), (4, 2048, 1029), (1, 2056, 7), (2, 3000, 1029), (3, 200, 20000), (1, 8, 1), (1, 6144, 2048)]


def child_outputs(path):
    """Every decode GEMV op of SHAPES under this process's QA_CUDA_GEMV_VARIANT, outputs saved to path (npz)."""
    g = Cuda(block_bytes=512 << 20)
    g.reset()
    rng = np.random.default_rng(4)
    out = {}
    for T, K, N in SHAPES:
        x = (rng.standard_normal((T, K)) * 3).astype(np.float32)
        xp, nw = g.put(x), g.tensor(rng.standard_normal(K).astype(np.float32))
        W = (rng.standard_normal((N, K)) / np.sqrt(K)).astype(np.float32)
        y = g.put(rng.standard_normal((T, N)).astype(np.float32))
        g.call("gemm", y, xp, g.tensor(W, BF16), None, T, K, N, 0, 1)  # gemv.cu, accumulating
        out[f"gemv {T} {K} {N}"] = g.get(y, (T, N))
        Ns = [N, max(1, N // 2), max(1, N // 2)]
        for joined in (False, True):  # three segments, or one over adjacent weights (q | k | v as the loader puts)
            Ws = [(rng.standard_normal((n, K)) / np.sqrt(K)).astype(np.float32) for n in Ns]
            Wt = g.joined(Ws, BF16) if joined else [g.tensor(w, BF16) for w in Ws]
            if joined:
                y0 = g.empty((T, sum(Ns)))
                ys, ldy = [y0, y0 + 4 * Ns[0], y0 + 4 * (Ns[0] + Ns[1])], sum(Ns)
            else:
                ys, ldy = [g.empty((T, n)) for n in Ns], 0
            g.call("norm_gemm", (C.c_void_p * 3)(*ys), ldy, xp, nw, 1e-6,
                   (C.POINTER(Tensor) * 3)(*[C.pointer(t) for t in Wt]), (C.c_int64 * 3)(*Ns), 3, T, K, 0)
            if joined:
                out[f"norm_gemm joined {T} {K} {N}"] = g.get(ys[0], (T, sum(Ns)))
            else:
                for i, n in enumerate(Ns):
                    out[f"norm_gemm {i} {T} {K} {N}"] = g.get(ys[i], (T, n))
        if K > 4096:
            continue
        F = N + -N % 8  # the down GEMV's K: a multiple of 8 (gemv.cu's contract), N's count of outputs otherwise
        Wg, Wu = ((rng.standard_normal((F, K)) / np.sqrt(K)).astype(np.float32) for _ in range(2))
        Wd = (rng.standard_normal((K, F)) / np.sqrt(F)).astype(np.float32)
        xm = g.put(x)
        g.call("norm_mlp", xm, nw, 1e-6, *g.joined([Wg, Wu], BF16), g.tensor(Wd, BF16), g.empty((T, 2 * F)), T, K, F)
        out[f"norm_mlp {T} {K} {F}"] = g.get(xm, (T, K))
    np.savez(path, **out)


CHILD = "import sys; sys.path.insert(0, {here!r}); import {mod}; {mod}.{fn}({arg!r})"


def _in_child(variant, mod, fn, arg):
    env = dict(os.environ, QA_CUDA_GEMV_VARIANT=str(variant))
    env.pop("QA_CUDA_PDL", None)
    run = subprocess.run([sys.executable, "-c", CHILD.format(here=HERE, mod=mod, fn=fn, arg=arg)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run.stdout


@gpu_only
def test_gemv_ring_same_bits_as_default_loop(tmp_path):
    """Variant 4 sums each output row with the chunks, order and warp reduction of variant 1: the same bits for
    gemv (accumulating), norm_gemm (three weights, and one joined), and norm_mlp (gate/up kernel + down gemv)."""
    runs = {}
    for v in (1, 4):
        path = str(tmp_path / f"v{v}.npz")
        _in_child(v, "test_cuda_gemv_ring", "child_outputs", path)
        runs[v] = np.load(path)
    assert sorted(runs[1].files) == sorted(runs[4].files) and len(runs[1].files) > 30
    for k in runs[1].files:
        assert np.isfinite(runs[1][k]).all(), k
        np.testing.assert_array_equal(runs[4][k], runs[1][k], err_msg=f"{k}: variant 4 vs 1")


@gpu_only
def test_decode_step_timing_ring_vs_default():
    """tests/decode_layer.py (each op streaming its weights from HBM: 4x the L2 per replay) under variants 1 and 4,
    PDL on: per op µs and GB/s side by side, the ms/token they add up to, and the layer's output bits equal."""
    runs = {v: json.loads(_in_child(v, "decode_layer", "main", 500).split("JSON ", 1)[1]) for v in (1, 4)}
    for name, (_, nbytes) in runs[1]["times"].items():
        cols = []
        for v, run in runs.items():
            us = run["times"][name][0]
            cols.append(f"v{v} {us:6.1f} us" + (f" {nbytes / us / 1e3:5.0f} GB/s" if nbytes else ""))
        print(f"decode {name:22s}: " + " | ".join(cols))
    for v, run in runs.items():
        t = run["times"]
        ms = (28 * t["layer (5 ops)"][0] + t["lm_head gemv"][0] + t["argmax_at"][0]) / 1e3
        print(f"decode step QA_CUDA_GEMV_VARIANT={v}: {ms:.3f} ms/token (28 layers + lm_head + argmax)")
        np.testing.assert_array_equal(run["x_graph"], run["x_eager"], err_msg=f"recorded layer, variant {v}")
    np.testing.assert_array_equal(runs[4]["x_eager"], runs[1]["x_eager"], err_msg="layer, variant 4 vs 1")


def _nvcc():
    return shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") and "/usr/local/cuda/bin/nvcc")


@pytest.mark.skipif(not _nvcc(), reason="nvcc not found")
@pytest.mark.parametrize("src", ["gemv.cu", "norm_gemm.cu"])
def test_ring_kernels_fit_beside_a_successor(src):
    """The ring kernels run 1 block of 256 threads per SM with 96 KB (+ the normalised rows) of shared memory; a PDL
    successor's block fits beside one only if it keeps <= 128 registers per thread (half the register file) and
    spills nothing (no local memory traffic in a bandwidth-bound loop). sm_90a, as the wheel's fat binary."""
    path = os.path.join(REPO, "csrc", "backend", "cuda", src)
    r = subprocess.run([_nvcc(), "-cubin", "-o", os.devnull, path, "-O3", "-std=c++17", "-I",
                        os.path.join(REPO, "csrc"), "-gencode=arch=compute_90a,code=sm_90a", "-Xptxas", "-v"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    found = [(b.split("'")[0], re.search(r"(\d+) bytes spill stores", b), re.search(r"Used (\d+) registers", b))
             for b in r.stderr.split("Compiling entry function '")[1:] if "_ring_" in b.split("'")[0]]
    assert len(found) >= 4, r.stderr[-3000:]  # T = 1..4 (and SILU 0 / 1 in norm_gemm.cu)
    for name, spills, regs in found:
        assert int(spills.group(1)) == 0 and int(regs.group(1)) <= 128, (name, spills.group(0), regs.group(0))
