"""GPU tests of the one-kernel merge of the decode attention (issue #6): the split blocks of attention_decode.cu
(key slice x kv head) fold their partials in the last block to arrive (one arrival counter per kv head at the
scratch's end, cuda_scratch.h QA_CUDA_SYNC_BYTES, reset to 0 by that block) instead of in a second kernel;
QA_CUDA_DEC_MERGE=two keeps the two-kernel path. Both paths run the same merge code on the same partials in the
same order, so every output must be the same bits: host and device positions, FP32 and BF16 caches, eager and
replayed from a recording several times in a row (the counters go back to 0). (The vocabulary argmax folded the
same way measured 6.2 -> 6.9 us a step on an H200, slower: it keeps its fold kernel.) The variable is
read when a backend opens, so the tests open one backend with it and one without, side by side in this process;
the timing test runs tests/decode_layer.py in child processes. With -s: the decode step's µs per op and ms/token
at KV positions 500 and 900 for both paths. Skips without a usable GPU."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_close_rel
from cuda_util import BF16, F32, H2D, Cuda, _header_int, bf16_round, gpu_reason, rng, to_bf16_bits  # noqa: F401

WHY = gpu_reason()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"no usable CUDA device: {WHY}"),
              pytest.mark.skipif(bool(os.environ.get("QA_CUDA_LIB")), reason="GPU-only: QA_CUDA_LIB is the CPU shim")]

VAR = "QA_CUDA_DEC_MERGE"
SYNC_BYTES = _header_int("csrc/backend/cuda_scratch.h", "QA_CUDA_SYNC_BYTES")
MAX_KV = 4096  # 64 slices of 64 keys: the most slices (cuda_scratch.h QA_CUDA_DEC_SPLITS)
NS = (1, 31, 32, 33, 500, 900, 1024, MAX_KV)  # one slice, edges of the 32-key slices, the step's positions, the most
# ASR-1.7B; 8 query heads per kv head (8 columns per merging thread); 1 (half the block merges); head dim 16
SHAPES = [(16, 8, 128), (32, 4, 128), (4, 4, 64), (4, 2, 16)]


@pytest.fixture(scope="module")
def pair():
    """(two-kernel backend, one-kernel backend), each with its own device block."""
    saved = os.environ.pop(VAR, None)
    try:
        os.environ[VAR] = "two"
        two = Cuda(256 << 20)
        del os.environ[VAR]
        one = Cuda(256 << 20)
    finally:
        os.environ.pop(VAR, None)
        if saved is not None:
            os.environ[VAR] = saved
    return two, one


@pytest.fixture
def gg(pair):
    for c in pair:  # partials for 32 heads; no GEMM staging or im2col needed here
        c.reset(dict(max_kv=MAX_KV, max_q=16, max_heads=32, max_gemm_k=2048, max_gemm_n=2048, max_im2col=0))
    return pair


def counters(c):
    """The arrival counters of c's scratch (device.cu qa_cuda_bind_scratch: the last QA_CUDA_SYNC_BYTES, 256-byte
    aligned) as (address, uint32 array)."""
    p = c.be.scratch + ((c.be.scratch_bytes - SYNC_BYTES) & ~255)
    return p, c.get(p, SYNC_BYTES // 4, np.uint32)


def set_counters(c, first, values):
    p, _ = counters(c)
    a = np.asarray(values, np.uint32)
    c.call("copy", p + 4 * first, a.ctypes.data, a.nbytes, H2D)


def state(c, pos):
    return c.put(np.array([pos, 0, 0, 0], np.int32))


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype.itemsize == 4 else np.uint16)


def decode_ref(q, k, v, H, Hk, Dh, n):
    """float64 softmax(q k[:n]^T / sqrt(Dh)) v[:n] per query head (GQA)."""
    q, k, v = (a.astype(np.float64) for a in (q, k[:n], v[:n]))
    out = np.zeros(H * Dh)
    for h in range(H):
        kh = h // (H // Hk)
        s = k[:, kh * Dh:(kh + 1) * Dh] @ q[h * Dh:(h + 1) * Dh] / np.sqrt(Dh)
        p = np.exp(s - s.max())
        out[h * Dh:(h + 1) * Dh] = p @ v[:, kh * Dh:(kh + 1) * Dh] / p.sum()
    return out


class Inputs:
    """q, K and V (FP32 or BF16 cache) of one shape on one backend."""

    def __init__(self, c, q, k, v, kvdt, H, Hk, Dh):
        self.c, self.kvdt, self.H, self.Hk, self.Dh = c, kvdt, H, Hk, Dh
        cache = (lambda x: c.put(to_bf16_bits(x))) if kvdt == BF16 else c.put
        self.q, self.k, self.v = c.put(q), cache(k), cache(v)

    def host(self, n, od=F32):
        """attention at host position n - 1 (the decode loop's PLAIN mode): the grid of n's slices."""
        c, w = self.c, self.H * self.Dh
        out = c.empty(w) if od == F32 else c.put(np.full(w, 0xFFFF, np.uint16))  # poison: a BF16 NaN
        c.call("attention", out, self.q, self.k, self.v, self.kvdt, 0, 0, 1, n, self.H, self.Hk, self.Dh, n - 1, 1, 0,
               od)
        return c.get(out, w, np.float32 if od == F32 else np.uint16)

    def at(self, out, st):
        """attention_at with the position in device memory: the grid of MAX_KV's slices, blocks past n exit."""
        self.c.call("attention_at", out, self.q, self.k, self.v, self.kvdt, 1, MAX_KV, self.H, self.Hk, self.Dh, st)

    def device(self, n):
        out = self.c.empty(self.H * self.Dh)
        self.at(out, state(self.c, n - 1))
        return self.c.get(out, self.H * self.Dh)

    def replays(self, n0, times=3):
        """Two attention_at calls + step_advance recorded once and replayed `times` times from position n0 - 1:
        [(first, second) output of each replay] (keys n0, n0 + 1, ...)."""
        c, w = self.c, self.H * self.Dh
        a, b, st = c.empty(w), c.empty(w), state(c, n0 - 1)
        c.call("graph_begin")
        self.at(a, st)
        self.at(b, st)  # back to back: the second call's blocks count from the zero the first one left
        c.call("step_advance", st)
        c.call("graph_end", 1, st)
        got = []
        for _ in range(times):
            c.call("graph_launch", 1)
            got.append((c.get(a, w), c.get(b, w)))
        return got


@pytest.mark.parametrize("H,Hk,Dh", SHAPES)
@pytest.mark.parametrize("kvdt", [F32, BF16])
def test_decode_attention_one_kernel_equals_two(gg, rng, H, Hk, Dh, kvdt):
    """Host and device positions, eager and replayed: the one-kernel merge gives the two-kernel path's bits (FP32
    and BF16 outputs), both within the FP32 bound of the float64 reference, and leaves every counter at 0."""
    q = (rng.standard_normal(H * Dh) * 2).astype(np.float32)
    k = (rng.standard_normal((MAX_KV, Hk * Dh)) * 2).astype(np.float32)
    v = rng.standard_normal((MAX_KV, Hk * Dh)).astype(np.float32)
    kr, vr = (bf16_round(x) if kvdt == BF16 else x for x in (k, v))
    two, one = (Inputs(c, q, k, v, kvdt, H, Hk, Dh) for c in gg)
    for n in NS:
        ref = two.host(n)
        for name, got in (("two-kernel device", two.device(n)), ("one-kernel host", one.host(n)),
                          ("one-kernel device", one.device(n))):
            np.testing.assert_array_equal(bits(got), bits(ref), err_msg=f"{name} vs two-kernel host, n {n}")
        np.testing.assert_array_equal(one.host(n, BF16), two.host(n, BF16), err_msg=f"BF16 out, n {n}")
        assert_close_rel(ref, decode_ref(q, kr, vr, H, Hk, Dh, n), 1e-5, f"n {n} kv {kvdt}")
    for n0 in (1, 32, 899, MAX_KV - 2):
        eager = [two.device(n0 + r) for r in range(3)]
        for name, inp in (("two", two), ("one", one)):
            for r, (a, b) in enumerate(inp.replays(n0)):
                np.testing.assert_array_equal(bits(a), bits(eager[r]), err_msg=f"{name} replay {r} from n {n0}")
                np.testing.assert_array_equal(bits(b), bits(eager[r]), err_msg=f"{name} replay {r}, 2nd call")
    for name, c in zip(("two", "one"), gg):
        assert not counters(c)[1].any(), f"{name}-kernel backend left counters set"


def test_one_kernel_path_is_the_default_and_counts_on_its_counters(gg, rng):
    """The default backend really merges in the split kernel: with the kv heads' counters parked far from 0 no block
    is the last, so nothing is written (the poison stays); the QA_CUDA_DEC_MERGE=two backend does not read them."""
    H, Hk, Dh, n = 16, 8, 128, 700
    q = rng.standard_normal(H * Dh).astype(np.float32)
    k, v = (rng.standard_normal((MAX_KV, Hk * Dh)).astype(np.float32) for _ in range(2))
    outs = {}
    for name, c in zip(("two", "one"), gg):
        inp = Inputs(c, q, k, v, F32, H, Hk, Dh)
        set_counters(c, 0, [1 << 30] * Hk)
        parked = inp.device(n)
        set_counters(c, 0, np.zeros(SYNC_BYTES // 4, np.uint32))
        outs[name] = (parked, inp.device(n))
    two, one = outs["two"], outs["one"]
    assert np.isnan(one[0]).all(), "the default backend merged without its counters"
    np.testing.assert_array_equal(bits(two[0]), bits(two[1]), err_msg="the two-kernel path read the counters")
    np.testing.assert_array_equal(bits(one[1]), bits(two[1]))


# ---- the decode step's time, both paths ------------------------------------------------------------

CHILD = r"""
import sys
sys.path.insert(0, {tests!r})
import decode_layer
decode_layer.main({pos})
"""


def _decode_step_in_child(merge, pos):
    """tests/decode_layer.py's timings and outputs at KV position pos in a fresh process: QA_CUDA_DEC_MERGE=merge
    (None: unset, the one-kernel default), PDL and the GEMV variant at their defaults."""
    env = {k: v for k, v in os.environ.items() if k not in (VAR, "QA_CUDA_PDL", "QA_CUDA_GEMV_VARIANT")}
    if merge:
        env[VAR] = merge
    run = subprocess.run([sys.executable, "-c", CHILD.format(tests=os.path.dirname(__file__), pos=pos)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0 and "JSON " in run.stdout, run.stdout[-2000:] + run.stderr[-3000:]
    return json.loads(run.stdout.split("JSON ", 1)[1])


def _step_ms(times):  # as tests/test_cuda.py: 28 layers + lm_head + argmax (embed, final norm not counted)
    return (28 * times["layer (5 ops)"][0] + times["lm_head gemv"][0] + times["argmax_at"][0]) / 1e3


def test_decode_step_timing_one_vs_two_kernels():
    """Issue #6: one ASR-1.7B decode step's kernels (tests/decode_layer.py, random BF16 weights, replayed) at KV
    positions 500 and 900 with QA_CUDA_DEC_MERGE=two and with the default one-kernel merge. Prints µs per op side
    by side and the ms/token they add up to (run with -s). The merge changes where the partials are folded, not
    how: the layer's output must be the same bits on both paths, op by op and recorded."""
    for pos in (500, 900):
        two, one = _decode_step_in_child("two", pos), _decode_step_in_child(None, pos)
        for name, (us, _) in one["times"].items():
            us2 = two["times"][name][0]
            print(f"decode pos {pos} {name:24s}: two kernels {us2:7.1f} us | one kernel {us:7.1f} us "
                  f"({us - us2:+.1f})")
        a, b = _step_ms(two["times"]), _step_ms(one["times"])
        print(f"decode step pos {pos}: two kernels {a:.3f} ms/token | one kernel {b:.3f} ms/token ({b - a:+.3f}; "
              f"28 layers + lm_head + argmax, issue #6 target 1.5)")
        for name, run in (("two", two), ("one", one)):
            np.testing.assert_array_equal(run["x_graph"], run["x_eager"], err_msg=f"recorded layer, {name}, {pos}")
        np.testing.assert_array_equal(one["x_eager"], two["x_eager"], err_msg=f"layer one vs two kernels, pos {pos}")
