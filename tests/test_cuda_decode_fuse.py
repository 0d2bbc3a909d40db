"""GPU tests of the fused decode step (backend.h qkv_attention_at, API 9; issue #6): qkv_prep's per-head RMSNorm +
RoPE and the K / V row store folded into the split decode attention (attention_decode.cu, head_prep.cuh).

The fused op must give the bits of qkv_prep then attention_at — the attention output and every row of the KV cache
— at any position read from device memory, recorded in a CUDA graph or not, for the ASR-1.7B shapes (16 q heads,
8 kv heads, Dh 128) and the fixture model's (4, 2, 16); the fixture ASR's greedy ids and first logits are the same
with QA_CUDA_DECODE_FUSE=0 (the two ops, read when the backend opens: child processes) and without. With -s, the
per-layer decode sequence is timed both ways (CUDA graph replays over weight copies, as tests/decode_layer.py).

    python -m pytest -q -s tests/test_cuda_decode_fuse.py
"""
import ctypes as C
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, assert_close_rel
from cuda_util import BF16, D2D, F32, H2D, Cuda, Tensor, bf16_round, gpu_reason, to_bf16_bits

# GPU-only: the CPU backend (and so tests/cuda_shim.c's table) has no fused op
WHY = gpu_reason() or ("QA_CUDA_LIB runs the op table on the CPU shim" if os.environ.get("QA_CUDA_LIB") else None)
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"needs a CUDA device: {WHY}")

CTX, EPS, THETA = 1024, 1e-6, 1e6
POSITIONS = [0, 1, 500, 900, CTX - 1]
# (D, H, Hk, Dh, F): ASR-1.7B's decoder, the fixture ASR checkpoint's
ASR17B, FIXTURE = (2048, 16, 8, 128, 6144), (32, 4, 2, 16, 64)


@pytest.fixture(scope="module")
def cu():
    return Cuda(block_bytes=1400 << 20)


@pytest.fixture
def g(cu):
    cu.reset()
    return cu


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype.itemsize == 4 else np.uint16)


def assert_same_bits(a, b, what):
    a, b = bits(a), bits(b)
    diff = np.flatnonzero(a.ravel() != b.ravel())
    assert diff.size == 0, f"{what}: {diff.size} of {a.size} values differ, first at {diff[:8].tolist()}"


class Layer:
    """One decoder layer's device buffers and weights, the ops as csrc/model/decoder.c enqueues them for a decode
    step at the device position state[0]: fused (qkv_attention_at) or as two ops (qkv_prep, attention_at)."""

    def __init__(self, g, rng, shape, wdt, kvdt, copies=1, norms_only=False):
        self.g, self.rng, self.wdt, self.kvdt = g, rng, wdt, kvdt
        self.D, self.H, self.HK, self.DH, self.F = shape
        self.QD, self.KD = self.H * self.DH, self.HK * self.DH
        self.W = self.QD + 2 * self.KD
        self.weights = [dict(q_norm=self._norm(self.DH), k_norm=self._norm(self.DH)) if norms_only else self._weights()
                        for _ in range(copies)]
        self.x0 = (rng.standard_normal((1, self.D)) * 0.5).astype(np.float32)
        self.x, self.x_start = g.put(self.x0), g.put(self.x0)
        self.qkv, self.q, self.a = g.empty((1, self.W)), g.empty((1, self.QD)), g.empty((1, self.QD))
        self.k, self.v = self.qkv + 4 * self.QD, self.qkv + 4 * (self.QD + self.KD)
        self.gu = g.empty((1, 2 * self.F))
        self.state_host = np.zeros(4, np.int32)
        self.state = g.put(self.state_host)
        self.cache0 = [self._cache_rows() for _ in range(2 * copies)]  # K, V of each copy
        self.caches = {mode: [g.put(c) for c in self.cache0] for mode in ("fused", "two ops")}

    def _w(self, n, k):
        return self.rng.standard_normal((n, k), dtype=np.float32) / np.float32(np.sqrt(k))

    def _norm(self, n):
        return self.g.tensor((1 + 0.1 * self.rng.standard_normal(n)).astype(np.float32))

    def _cache_rows(self):
        rows = self.rng.standard_normal((CTX, self.KD)).astype(np.float32)
        return to_bf16_bits(rows) if self.kvdt == BF16 else rows

    def _weights(self):  # q/k/v and gate/up adjacent, as the loader places them
        g, D, F = self.g, self.D, self.F
        q, k, v = g.joined([self._w(self.QD, D), self._w(self.KD, D), self._w(self.KD, D)], self.wdt)
        gw, uw = g.joined([self._w(F, D), self._w(F, D)], self.wdt)
        return dict(q=q, k=k, v=v, o=g.tensor(self._w(D, self.QD), self.wdt), g=gw, u=uw,
                    d=g.tensor(self._w(D, F), self.wdt), in_norm=self._norm(D), post_norm=self._norm(D),
                    q_norm=self._norm(self.DH), k_norm=self._norm(self.DH))

    def set_pos(self, pos):
        self.state_host[0] = pos
        self.g.call("copy", self.state, self.state_host.ctypes.data, self.state_host.nbytes, H2D)

    def kv(self, mode, i=0):
        return self.caches[mode][2 * i], self.caches[mode][2 * i + 1]

    def cache(self, mode, i=0):
        dt, shape = (np.uint16 if self.kvdt == BF16 else np.float32), (CTX, self.KD)
        return [self.g.get(p, shape, dt) for p in self.kv(mode, i)]

    # ---- the ops ----------------------------------------------------------------------------------

    def project(self, L):
        Ws = (C.POINTER(Tensor) * 3)(*[C.pointer(L[n]) for n in "qkv"])
        self.g.call("norm_gemm", (C.c_void_p * 3)(self.qkv, self.k, self.v), self.W, self.x, L["in_norm"], EPS, Ws,
                    (C.c_int64 * 3)(self.QD, self.KD, self.KD), 3, 1, self.D, 0)

    def two_ops(self, L, i=0):
        kc, vc = self.kv("two ops", i)
        self.g.call("qkv_prep", self.q, self.qkv, self.W, kc, vc, self.kvdt, self.k, self.v, self.W, L["q_norm"],
                    L["k_norm"], 1, self.H, self.HK, self.DH, 0, self.state, CTX, THETA, EPS)
        self.g.call("attention_at", self.a, self.q, kc, vc, self.kvdt, 1, CTX, self.H, self.HK, self.DH, self.state)

    def fused(self, L, i=0):
        kc, vc = self.kv("fused", i)
        self.g.call("qkv_attention_at", self.a, self.qkv, self.k, self.v, L["q_norm"], L["k_norm"], kc, vc,
                    self.kvdt, CTX, self.H, self.HK, self.DH, self.state, THETA, EPS)

    def attend(self, mode, L, i=0):
        (self.fused if mode == "fused" else self.two_ops)(L, i)

    def layer(self, mode, i=0):
        L = self.weights[i]
        self.project(L)
        self.attend(mode, L, i)
        self.g.call("gemm", self.x, self.a, L["o"], None, 1, self.QD, self.D, 0, 1)
        self.g.call("norm_mlp", self.x, L["post_norm"], EPS, L["g"], L["u"], L["d"], self.gu, 1, self.D, self.F)

    def layer_from_start(self, mode):
        self.g.call("copy", self.x, self.x_start, 4 * self.D, D2D)
        self.layer(mode)


def rope_inv(Dh):  # qa_cu_rope_inv: float32 frequencies from a double pow
    return np.array([1.0 / np.float32(THETA ** np.float64(np.float32(2 * i) / np.float32(Dh))) for i in range(Dh // 2)],
                    np.float32)


def reference(raw, qw, kw, kc, vc, pos, shape, kvdt):
    """float64 qkv_prep + causal attention of one row at pos over cache rows [0, pos) and the new row."""
    _, H, HK, DH, _ = shape
    QD, KD = H * DH, HK * DH
    ang = (rope_inv(DH) * np.float32(pos)).astype(np.float64)
    cs, sn = np.cos(ang), np.sin(ang)

    def prep(x, w):
        x = x.astype(np.float64)
        x = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + EPS) * w
        a, b = x[..., :DH // 2], x[..., DH // 2:]
        return np.concatenate([a * cs - b * sn, b * cs + a * sn], -1)

    def as_f32(rows):
        return (rows.astype(np.uint32) << 16).view(np.float32) if kvdt == BF16 else rows

    rnd = bf16_round if kvdt == BF16 else (lambda r: r)
    q = prep(raw[:QD].reshape(H, DH), qw)
    knew = rnd(prep(raw[QD:QD + KD].reshape(HK, DH), kw).astype(np.float32))
    vnew = rnd(raw[QD + KD:].reshape(HK, DH))
    K = np.concatenate([as_f32(kc)[:pos].reshape(pos, HK, DH), knew[None]]).astype(np.float64)
    V = np.concatenate([as_f32(vc)[:pos].reshape(pos, HK, DH), vnew[None]]).astype(np.float64)
    out = np.empty((H, DH))
    for h in range(H):
        s = K[:, h // (H // HK)] @ q[h] / np.sqrt(DH)
        p = np.exp(s - s.max())
        out[h] = p @ V[:, h // (H // HK)] / p.sum()
    return out.ravel()


@pytest.mark.parametrize("kvdt", [BF16, F32], ids=["bf16-cache", "f32-cache"])
@pytest.mark.parametrize("shape", [ASR17B, FIXTURE], ids=["asr-1.7b", "fixture"])
def test_fused_step_attention_same_bits_as_qkv_prep_then_attention_at(g, shape, kvdt):
    """The op alone, at each position (state[0] in device memory): out and both caches bit-equal to qkv_prep +
    attention_at's; only row pos of the caches is written; and near a float64 reference (a gross-error check:
    bit equality is the contract)."""
    rng = np.random.default_rng(6)
    lay = Layer(g, rng, shape, F32, kvdt, norms_only=True)
    L = lay.weights[0]
    qw = g.get(L["q_norm"].data, (lay.DH,)).astype(np.float64)
    kw = g.get(L["k_norm"].data, (lay.DH,)).astype(np.float64)
    for pos in POSITIONS:
        raw = rng.standard_normal(lay.W).astype(np.float32)
        g.call("copy", lay.qkv, raw.ctypes.data, raw.nbytes, H2D)
        lay.set_pos(pos)
        before = lay.cache("fused")
        outs = {}
        for mode in ("two ops", "fused"):
            lay.attend(mode, L)
            outs[mode] = g.get(lay.a, (lay.QD,))
        what = f"H {lay.H} Hk {lay.HK} Dh {lay.DH} kv {'bf16' if kvdt == BF16 else 'f32'} pos {pos}"
        assert_same_bits(outs["fused"], outs["two ops"], f"{what}: attention output")
        after, other = lay.cache("fused"), lay.cache("two ops")
        for name, a, b, c0 in zip("KV", after, other, before):
            assert_same_bits(a, b, f"{what}: {name} cache")
            changed = np.flatnonzero((bits(a) != bits(c0)).any(1))
            assert set(changed.tolist()) <= {pos}, f"{what}: {name} rows {changed[:8].tolist()} written"
        ref = reference(raw, qw, kw, *before, pos, shape, kvdt)
        assert_close_rel(outs["fused"], ref, 2e-3 if kvdt == BF16 else 1e-4, f"{what}: vs float64")


@pytest.mark.parametrize("shape,wdt,kvdt", [(ASR17B, BF16, BF16), (FIXTURE, BF16, BF16), (FIXTURE, F32, F32)],
                         ids=["asr-1.7b-bf16", "fixture-bf16", "fixture-f32"])
def test_fused_decode_layer_same_bits_eager_and_recorded(g, shape, wdt, kvdt):
    """A whole decoder layer (norm_gemm, the attention, o-proj, norm_mlp) at positions 0, 1, 500, 900, 1023 in
    turn, each mode on its own copy of the caches: the residual row and the caches bit-equal between the fused op
    and the two ops, run op by op and replayed from one recording per mode (the position read when it runs)."""
    lay = Layer(g, np.random.default_rng(7), shape, wdt, kvdt)
    what = f"layer H {lay.H} Hk {lay.HK} Dh {lay.DH} w {'bf16' if wdt == BF16 else 'f32'}"

    def check(pos, how, run):
        xs = {}
        for mode in ("two ops", "fused"):
            lay.set_pos(pos)
            run(mode)
            xs[mode] = g.get(lay.x, (1, lay.D))
        assert np.isfinite(xs["fused"]).all(), f"{what} {how} pos {pos}"
        assert_same_bits(xs["fused"], xs["two ops"], f"{what} {how} pos {pos}: residual row")
        for name, a, b in zip("KV", lay.cache("fused"), lay.cache("two ops")):
            assert_same_bits(a, b, f"{what} {how} pos {pos}: {name} cache")

    for pos in POSITIONS:
        check(pos, "eager", lay.layer_from_start)
    slots = {"two ops": 0, "fused": 1}
    for mode, slot in slots.items():
        g.call("graph_begin")
        lay.layer_from_start(mode)
        g.call("graph_end", slot, lay.x_start)
    for pos in POSITIONS[::-1]:
        check(pos, "recorded", lambda mode: g.call("graph_launch", slots[mode]))


COPIES, REPS = 3, 24


def test_fused_decode_layer_timing(g):
    """-s: µs per call of the ASR-1.7B decode layer and of its attention part, fused vs two ops, at positions 500 and
    900 (CUDA graph replays of REPS calls over COPIES sets of weights and caches, so weights stream from HBM)."""
    lay = Layer(g, np.random.default_rng(8), ASR17B, BF16, BF16, copies=COPIES)

    def us(body):
        body(0)  # outside the recording: scratch binding, lazy kernel loading
        return g.replay_seconds(lambda i: body(i % COPIES), REPS) * 1e6

    rows = []
    for pos in (500, 900):
        lay.set_pos(pos)
        t = {}
        for mode in ("two ops", "fused"):
            t["attention " + mode] = us(lambda i, m=mode: lay.attend(m, lay.weights[i], i))
            t["layer " + mode] = us(lambda i, m=mode: lay.layer(m, i))
        rows.append((pos, t))
    print()
    for pos, t in rows:
        print(f"ASR-1.7B decode, pos {pos}: q/k/v prep + attention {t['attention two ops']:.2f} µs (qkv_prep + "
              f"attention_at) -> {t['attention fused']:.2f} µs (qkv_attention_at); layer {t['layer two ops']:.2f} -> "
              f"{t['layer fused']:.2f} µs ({28 * (t['layer two ops'] - t['layer fused']) / 1e3:.3f} ms/token over 28 "
              f"layers)")
    for _, t in rows:
        assert all(np.isfinite(v) and v > 0 for v in t.values()), t


# ---- the fixture ASR end to end: QA_CUDA_DECODE_FUSE=0 vs the default (child processes) -------------------------

GEN_RUNS = [("en_short", 2, 2), ("zh_mixed", 11, 5), ("punct_numbers", 12, 12), ("en_short", 40, 40)]
GEN_CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
from conftest import npy
from engine_util import features
from qwen3align._qwen3align import Models
m = Models(asr={folder!r}, device="cuda:0", dtype={dtype!r}, max_new_tokens=40)
out = {{}}
for i, (case, max_new, min_new) in enumerate({runs!r}):
    feat, frames = features(case)
    out[f"ids{{i}}"], out[f"first{{i}}"] = m.asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), max_new,
                                                          min_new)
np.savez({path!r}, **out)
m.close()  # QA_CUDA_PROFILE's table is printed when the backend closes
"""


def generate(tmp_path, dtype, fuse, profile=False):
    """asr_generate's ids and first logits in a fresh process (the variables are read when the backend opens) with
    QA_CUDA_DECODE_FUSE unset (fuse) or "0"; profile: QA_CUDA_PROFILE=1 (the device-state loop without graphs, the
    per-op table on stderr). Returns (arrays, stderr)."""
    path = str(tmp_path / f"gen-{dtype}-{int(fuse)}-{int(profile)}.npz")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_CUDA_")}
    if not fuse:
        env["QA_CUDA_DECODE_FUSE"] = "0"
    if profile:
        env["QA_CUDA_PROFILE"] = "1"
    code = GEN_CHILD.format(tests=os.path.dirname(__file__), folder=os.path.join(FIXTURES, "asr"), dtype=dtype,
                            runs=GEN_RUNS, path=path)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return dict(np.load(path)), run.stderr


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_asr_same_ids_and_logits_with_and_without_fused_step(tmp_path, dtype):
    """The recorded decode step with the fused op (default) and with qkv_prep + attention_at (QA_CUDA_DECODE_FUSE=0):
    the same greedy ids and first logits, bit for bit."""
    if not os.path.isdir(os.path.join(FIXTURES, "asr")):
        pytest.skip(f"fixture checkpoint asr/ not present under {FIXTURES}")
    on, _ = generate(tmp_path, dtype, True)
    off, _ = generate(tmp_path, dtype, False)
    for i, run in enumerate(GEN_RUNS):
        assert on[f"ids{i}"].tolist() == off[f"ids{i}"].tolist(), f"{dtype} {run}: ids differ"
        assert_same_bits(on[f"first{i}"], off[f"first{i}"], f"{dtype} {run}: first logits")
        assert len(on[f"ids{i}"]) == run[1]  # the random fixture never picks EOS by itself


def test_asr_profile_shows_which_step_ran(tmp_path):
    """QA_CUDA_PROFILE's per-op table (the step loop without graphs): the fused op by default, qkv_prep +
    attention_at under QA_CUDA_DECODE_FUSE=0 — so the switch reaches decoder.c — with the same ids."""
    if not os.path.isdir(os.path.join(FIXTURES, "asr")):
        pytest.skip(f"fixture checkpoint asr/ not present under {FIXTURES}")
    on, err_on = generate(tmp_path, "bfloat16", True, profile=True)
    off, err_off = generate(tmp_path, "bfloat16", False, profile=True)
    assert "be_qkv_attention_at" in err_on and "be_attention_at" not in err_on, err_on[-3000:]
    assert "be_attention_at" in err_off and "be_qkv_attention_at" not in err_off, err_off[-3000:]
    for i, run in enumerate(GEN_RUNS):
        assert on[f"ids{i}"].tolist() == off[f"ids{i}"].tolist(), f"profiled {run}: ids differ"
