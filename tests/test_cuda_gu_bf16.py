"""Issue #6: the decoder MLP's gate | up GEMM writes BF16 and silu·mul reads the BF16 pairs (norm_gemm.cu mlp_staged,
act.cu silu_mul_bf16in_kernel) — half the bytes of the [T, 2F] intermediate, and the rounding transformers' bf16
Linear applies to gate and up. QA_CUDA_GU_BF16=0 (read when the backend opens) keeps the FP32 gate | up of before.

- the new kernel against float64 on the BF16 gate / up the GEMM wrote (vector and scalar widths, the joined and the
  split row layouts), and the GEMM's BF16 output against float64;
- the decoder MLP and a whole decoder layer at the aligner's and ASR-1.7B's shapes, switch off vs on (one child
  process each), within BF16 noise; with -s the MLP's µs old vs new side by side (CUDA graph replays);
- the fixture aligner / ASR models in bfloat16 and a real-size random aligner over 60 s, switch off vs on: as close
  to the float32 references as before, classes equal except near-ties.
GPU run: .venv/bin/python -m pytest -q -s tests/test_cuda_gu_bf16.py
"""
import ctypes as C
import os
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

from conftest import CASES, FIXTURES, REPO, assert_close_rel, npy, rel_err
from cuda_util import BF16, D2D, F32, Cuda, Tensor, bf16_round, cu, g, gpu_reason, rng  # noqa: F401 (fixtures)

WHY = gpu_reason()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no usable CUDA device: {WHY}")
# BF16 activations are the GPU's (the CPU shim keeps them FP32): nothing here runs on tests/cuda_shim.c
gpu_only = pytest.mark.skipif(bool(os.environ.get("QA_CUDA_LIB")), reason="GPU-only behaviour (QA_CUDA_LIB shim)")
NEW = os.environ.get("QA_CUDA_GU_BF16") != "0"  # what this process's backend runs
GEMV_MAX_ROWS = 4  # ops.cuh QA_CU_GEMV_MAX_ROWS: up to 4 rows norm_mlp runs the fused decode kernels instead
MLP_TILE = 2048  # plan.h QA_MLP_TILE: decoder.c's rows per norm_mlp call
BF16_TOL = 1e-1  # tests/test_kv_cache_dtype.py: bfloat16 fixture models vs the float32 references


def _ws_bytes():
    """cuda_scratch.h QA_CUDA_BLAS_WS_BYTES: the scratch's work area (where mlp_staged stages) follows it."""
    src = open(os.path.join(REPO, "csrc", "backend", "cuda_scratch.h")).read()
    m = re.search(r"#define QA_CUDA_BLAS_WS_BYTES \(\(size_t\)(\d+) << (\d+)\)", src)
    return int(m.group(1)) << int(m.group(2))


def from_bf16(bits):
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def silu64(v):
    return v / (1.0 + np.exp(-v))


def rms64(x, w, eps=1e-6):
    x64 = x.astype(np.float64)
    return x64 / np.sqrt((x64 ** 2).mean(1, keepdims=True) + eps) * w


def bf16_ulp(v):
    """The BF16 unit in the last place at |v| (8 significant bits)."""
    return np.exp2(np.floor(np.log2(np.maximum(np.abs(v), 1e-30))) - 7)


def bf16_ulps(a, b):
    """|a − b| in BF16 units of the larger magnitude (both BF16 values)."""
    return np.abs(a - b) / bf16_ulp(np.maximum(np.abs(a), np.abs(b)))


def assert_rounded(got, ref64, what):
    """got: a GEMM's FP32 sums rounded to BF16, ref64 the float64 sums. Each value within half a BF16 unit of ref64
    plus the FP32 accumulation error (1e-5 of the rms: absolute, it dominates for sums near zero); the values that
    differ from ref64's own rounding (the FP32 sum fell on the other side of a rounding boundary) are rare."""
    slack = 0.5 * bf16_ulp(ref64) * (1 + 1e-6) + 1e-5 * np.sqrt(np.mean(ref64 ** 2))
    bad = np.count_nonzero(np.abs(got - ref64) > slack)
    off = np.count_nonzero(got != bf16_round(ref64.astype(np.float32)))
    assert bad == 0 and off <= 2 + 2e-2 * got.size, f"{what}: {bad} values out of range, {off} of {got.size} flipped"


def mlp_weights(seed, D, F):
    """Random BF16-representable MLP weights (float32 arrays) and norm weight, reproducible from seed."""
    r = np.random.default_rng(seed)
    Wg, Wu = (bf16_round((r.standard_normal((F, D)) / np.sqrt(D)).astype(np.float32)) for _ in range(2))
    Wd = bf16_round((r.standard_normal((D, F)) / np.sqrt(F)).astype(np.float32))
    w = (1 + 0.1 * r.standard_normal(D)).astype(np.float32)
    return Wg, Wu, Wd, w


# (T, D, F): F = 99 odd and 100 (F % 8 != 0): the scalar kernel, gate / up rows at 2- / 8-byte offsets; 3072 (the
# aligner) and 6144 (ASR-1.7B): 16-byte loads, ld = 2F
@gpu_only
@pytest.mark.skipif(not NEW, reason="QA_CUDA_GU_BF16=0 in this process: the FP32 gate | up path")
@pytest.mark.parametrize("T,D,F", [(5, 256, 99), (37, 256, 100), (600, 1024, 3072), (300, 2048, 6144)])
@pytest.mark.parametrize("joined", [True, False])  # one GEMM of N = 2F, or one per weight into the row halves
def test_silu_mul_from_bf16_gate_up_vs_float64(g, rng, T, D, F, joined):
    """norm_mlp past the decode rows (BF16 weights): the gate | up GEMM's BF16 rows (left in gu) are its float64
    sums rounded to BF16 but for rounding-boundary cases (assert_rounded); the silu·mul kernel's BF16 output (left
    in the work area, the down GEMM's operand) is float64 silu(g)·u of exactly those rounded to BF16 (FP32 expf: at
    most 1 unit off, rarely); the residual update is that operand times Wd in FP32."""
    x = (rng.standard_normal((T, D)) * 3).astype(np.float32)
    Wg, Wu, Wd, w = mlp_weights(zlib.crc32(f"{T} {D} {F}".encode()), D, F)
    assert T * max(D, F) * 2 <= g.be.scratch_bytes - _ws_bytes(), "one row block: gu holds every row afterwards"
    xp, gu = g.put(x), g.empty((T, 2 * F))
    if joined:
        Wgt, Wut = g.joined([Wg, Wu], BF16)
    else:
        Wgt, Wut = g.apart([Wg, Wu], BF16)
    g.call("norm_mlp", xp, g.tensor(w), 1e-6, Wgt, Wut, g.tensor(Wd, BF16), gu, T, D, F)
    delta = g.get(xp, (T, D)).astype(np.float64) - x
    gub = from_bf16(g.get(gu, (T, 2 * F), np.uint16))
    gate, up = gub[:, :F], gub[:, F:]
    p = from_bf16(g.get(g.be.scratch + _ws_bytes(), (T, F), np.uint16))

    hp = g.put(x)  # the rmsnorm op's FP32 rows, rounded as mlp_staged stages them
    g.call("rmsnorm", hp, hp, g.tensor(w), T, D, 1e-6)
    h = bf16_round(g.get(hp, (T, D))).astype(np.float64)
    assert_rounded(gate, h @ Wg.T, "gate")
    assert_rounded(up, h @ Wu.T, "up")
    ulps = bf16_ulps(p, bf16_round(silu64(gate) * up).astype(np.float64))
    off = np.count_nonzero(ulps > 0)
    print(f"T={T} F={F} joined={joined}: silu·mul off by one BF16 unit at {off} of {ulps.size} values")
    assert ulps.max() <= 1 and off <= 2 + 1e-3 * ulps.size, f"silu·mul: {off} values off, max {ulps.max()} units"
    assert_close_rel(delta, p @ Wd.T, 1e-5, f"norm_mlp T={T} F={F} residual update from the staged operand")
    ref = (silu64(rms64(x, w) @ Wg.T) * (rms64(x, w) @ Wu.T)) @ Wd.T
    assert_close_rel(delta, ref, 2e-2, f"norm_mlp T={T} F={F} vs unrounded float64")


# ---- switch off vs on, one child process each -----------------------------------------------------------------

ALIGNER = dict(D=1024, H=16, Hk=8, Dh=128, F=3072)  # Qwen3-ForcedAligner-0.6B's text layer
ASR17 = dict(D=2048, H=16, Hk=8, Dh=128, F=6144)  # Qwen3-ASR-1.7B's
# (name, shape, T): 10 s / 60 s / 300 s aligns, the 60 s ASR-1.7B prefill
MLP_CASES = [("aligner", ALIGNER, 214), ("aligner", ALIGNER, 1277), ("aligner", ALIGNER, 6377),
             ("asr-1.7b", ASR17, 795)]
LAYER_CASES = [("aligner", ALIGNER, 1277), ("asr-1.7b", ASR17, 795)]
UNROUNDED = {("aligner", 214), ("asr-1.7b", 795)}  # float64 references of the MLP (the others: seconds of numpy)

OPS_CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_cuda_gu_bf16 import run_cases
np.savez({path!r}, **run_cases())
"""


def _x0(seed, T, D):
    return np.random.default_rng(seed + 1).standard_normal((T, D)).astype(np.float32)


def run_cases():
    """In the child: the MLP cases' residual updates and µs per MLP (norm_mlp tiles as decoder.c runs them), and the
    layer cases' residual updates (one decoder layer as decoder.c enqueues it, the bfloat16 engine's attention)."""
    g = Cuda(block_bytes=1 << 30)
    out = {}
    for kind, cases in (("mlp", MLP_CASES), ("layer", LAYER_CASES)):
        for name, s, T in cases:
            g.reset()
            D, F = s["D"], s["F"]
            seed = zlib.crc32(f"{name} {T}".encode())
            Wg, Wu, Wd, w = mlp_weights(seed, D, F)
            L = dict(zip("gu", g.joined([Wg, Wu], BF16)), d=g.tensor(Wd, BF16), post=g.tensor(w))
            x0 = _x0(seed, T, D)
            x, x0p, gu = g.put(x0), g.put(x0), g.empty((min(T, MLP_TILE), 2 * F))

            def mlp():
                for r0 in range(0, T, MLP_TILE):
                    g.call("norm_mlp", x + 4 * r0 * D, L["post"], 1e-6, L["g"], L["u"], L["d"], gu,
                           min(MLP_TILE, T - r0), D, F)

            step = mlp if kind == "mlp" else _layer(g, s, T, x, seed, mlp)
            g.be.dtype = BF16  # a bfloat16 engine: attention on tensor cores
            try:
                step()
                out[f"{kind} {name} {T}"] = g.get(x, (T, D)) - x0
                if kind == "mlp":
                    g.call("copy", x, x0p, x0.nbytes, D2D)
                    out[f"us {name} {T}"] = np.array(g.replay_seconds(lambda i: mlp(), 10) * 1e6)
            finally:
                g.be.dtype = F32
    return out


def _layer(g, s, T, x, seed, mlp):
    """One decoder layer over x (decoder.c attn_block + mlp_block, no KV cache): norm_gemm into q | k | v, qkv_prep
    (BF16 K / V), causal attention writing the o-proj's BF16 operand, gemm_bf16x onto x, then the MLP."""
    D, H, Hk, Dh = s["D"], s["H"], s["Hk"], s["Dh"]
    QD, KD = H * Dh, Hk * Dh
    W = QD + 2 * KD
    r = np.random.default_rng(seed + 2)

    def w(n, k):
        return (r.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)

    Wqkv = g.joined([w(QD, D), w(KD, D), w(KD, D)], BF16)
    Wo = g.tensor(w(D, QD), BF16)
    norm = {n: g.tensor((1 + 0.1 * r.standard_normal(c)).astype(np.float32)) for n, c in (("in", D), ("qn", Dh),
                                                                                          ("kn", Dh))}
    qkv, q = g.empty((T, W)), g.empty((T, QD))
    kc, vc = g.empty((T, KD), np.float16), g.empty((T, KD), np.float16)

    def layer():
        g.call("norm_gemm", (C.c_void_p * 3)(qkv, qkv + 4 * QD, qkv + 4 * (QD + KD)), W, x, norm["in"], 1e-6,
               (C.POINTER(Tensor) * 3)(*[C.pointer(t) for t in Wqkv]), (C.c_int64 * 3)(QD, KD, KD), 3, T, D, 0)
        g.call("qkv_prep", q, qkv, W, kc, vc, BF16, qkv + 4 * QD, qkv + 4 * (QD + KD), W, norm["qn"], norm["kn"], T,
               H, Hk, Dh, 0, None, T, 1e6, 1e-6)
        od = g.be.gemm_in_dtype(g.addr, C.byref(Wo), T)
        g.call("attention", qkv, q, kc, vc, BF16, 0, 0, T, T, H, Hk, Dh, 0, 1, 0, od)
        if od == BF16:
            g.call("gemm_bf16x", x, qkv, Wo, None, T, QD, D, 1)
        else:
            g.call("gemm", x, qkv, Wo, None, T, QD, D, 0, 1)
        mlp()

    return layer


def _child_npz(tmp_path, template, name, gu_bf16):
    """The arrays a child script (template) saves, run with QA_CUDA_GU_BF16=gu_bf16 (read once per process)."""
    path = str(tmp_path / f"{name}-{gu_bf16}.npz")
    code = template.format(tests=os.path.dirname(__file__), path=path)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, QA_CUDA_GU_BF16=gu_bf16))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return dict(np.load(path))


def _ops_in_child(tmp_path, gu_bf16):
    return _child_npz(tmp_path, OPS_CHILD, "ops", gu_bf16)


@gpu_only
def test_decoder_mlp_and_layer_switch_off_vs_on_with_timing(tmp_path):
    """The decoder MLP at T = 214 / 1277 / 6377 (aligner) and 795 (ASR-1.7B), and a whole decoder layer, with
    QA_CUDA_GU_BF16=0 (FP32 gate | up) and =1: the residual updates differ by the BF16 rounding of g and u (~1e-3
    of the update) — within the 2e-2 BF16 bound of tests/test_cuda.py, as is each against the unrounded float64
    MLP. Prints µs per MLP old / new (-s): the number to decide the default on."""
    old, new = _ops_in_child(tmp_path, "0"), _ops_in_child(tmp_path, "1")
    rows = []
    for name, s, T in MLP_CASES:
        key = f"mlp {name} {T}"
        assert np.isfinite(new[key]).all()
        assert_close_rel(new[key], old[key], 2e-2, f"MLP {name} T={T}: QA_CUDA_GU_BF16=1 vs 0")
        if (name, T) in UNROUNDED:
            seed = zlib.crc32(f"{name} {T}".encode())
            Wg, Wu, Wd, w = mlp_weights(seed, s["D"], s["F"])
            h = rms64(_x0(seed, T, s["D"]), w)
            ref = (silu64(h @ Wg.T) * (h @ Wu.T)) @ Wd.T
            e_old, e_new = rel_err(old[key], ref), rel_err(new[key], ref)
            print(f"MLP {name} T={T} vs unrounded float64: FP32 gate | up {e_old:.3e}, BF16 {e_new:.3e}")
            assert e_new <= 2e-2 and e_old <= 2e-2, (e_old, e_new)
        rows.append((name, T, float(old[f"us {name} {T}"]), float(new[f"us {name} {T}"])))
    for name, s, T in LAYER_CASES:
        key = f"layer {name} {T}"
        assert np.isfinite(new[key]).all()
        assert_close_rel(new[key], old[key], 2e-2, f"decoder layer {name} T={T}: QA_CUDA_GU_BF16=1 vs 0")
    print("decoder MLP (norm + gate|up GEMM + silu·mul + down), µs per MLP, CUDA graph replays:")
    for name, T, a, b in rows:
        print(f"  {name:9s} T={T:5d}: FP32 gate|up {a:9.1f}   BF16 gate|up {b:9.1f}   {a / b:.3f}x  "
              f"(x28 layers: {28 * (a - b) / 1000:+.3f} ms)")


MODELS_CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
from conftest import CASES, FIXTURES, npy
from engine_util import features
from qwen3align._qwen3align import Models
out = {{}}
al = Models(aligner=FIXTURES + "/aligner", device="cuda:0", dtype="bfloat16")
asr = Models(asr=FIXTURES + "/asr", device="cuda:0", dtype="bfloat16", max_new_tokens=16)
for case in CASES:
    feat, frames = features(case)
    out["aligner " + case] = al.aligner_logits(feat, frames, npy(case, "aligner_input_ids.npy"))
    ids, first = asr.asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), 12, 12)
    out["asr ids " + case], out["asr first " + case] = ids, first
np.savez({path!r}, **out)
"""


def _models_in_child(tmp_path, gu_bf16):
    return _child_npz(tmp_path, MODELS_CHILD, "models", gu_bf16)


def _near_ties_only(new, old, what, tie):
    """Rows whose argmax differs are near-ties of old: top-2 margin below tie (a number, or one per row)."""
    from engine_util import top2_margin

    differ = np.nonzero(new.argmax(-1) != old.argmax(-1))[0]
    print(f"{what}: classes differ at {len(differ)} of {len(old)} rows")
    tie = np.broadcast_to(tie, top2_margin(old).shape)
    assert (top2_margin(old)[differ] < tie[differ]).all(), f"{what}: classes differ at clear rows {differ.tolist()}"


@gpu_only
def test_fixture_models_bf16_switch_off_vs_on(tmp_path):
    """The fixture aligner and ASR models in bfloat16 with QA_CUDA_GU_BF16=0 and =1 (child processes): aligner and
    first ASR logits within the bfloat16 bound of the float32 references (tests/test_kv_cache_dtype.py; both errors
    printed), aligner classes equal except near-ties; ASR greedy ids agreement printed (-s)."""
    if not all(os.path.isdir(os.path.join(FIXTURES, f)) for f in ("aligner", "asr")):
        pytest.skip("fixture checkpoints not present")
    old, new = _models_in_child(tmp_path, "0"), _models_in_child(tmp_path, "1")
    same_ids = 0
    for case in CASES:
        for kind, ref in (("aligner", npy(case, "aligner_logits_at_timestamps.npy")),
                          ("asr first", npy(case, "asr_first_logits.npy"))):
            a, b = old[f"{kind} {case}"], new[f"{kind} {case}"]
            e_old, e_new = rel_err(a, ref), rel_err(b, ref)
            print(f"{kind} {case} vs float32: FP32 gate | up {e_old:.3e}, BF16 {e_new:.3e}")
            assert e_new <= BF16_TOL, (kind, case, e_old, e_new)
        _near_ties_only(new[f"aligner {case}"], old[f"aligner {case}"], f"aligner {case}", 0.1)
        same_ids += new[f"asr ids {case}"].tolist() == old[f"asr ids {case}"].tolist()
    print(f"ASR greedy ids equal in {same_ids} of {len(CASES)} cases (bfloat16 random fixture: ties flip)")


ALIGN_CHILD = r"""
import sys
import numpy as np
sys.path.insert(0, {repo!r})
import qwen3align as qa
from qwen3align._pipeline import _prepare_align
rng = np.random.default_rng(0)
audio = (rng.standard_normal(60 * 16000) * 0.1).astype(np.float32)
words = ["w%d" % i for i in range(150)]
with qa.load_models(aligner={ckpt!r}, device="cuda:0", dtype="bfloat16", max_audio_seconds=70) as m:
    job = _prepare_align(m, audio, words=words, language="English", sample_rate=16000)
    np.save({out!r}, m.aligner_logits_from_audio(job.x, job.ids))
print("LOGITS DONE")
"""


@gpu_only
def test_real_size_aligner_60s_switch_off_vs_on(tmp_path):
    """The real-size aligner (random weights; ~1100 decoder rows, so its MLP runs the staged BF16 path at the real
    F = 3072) over 60 s in bfloat16, QA_CUDA_GU_BF16=0 vs 1 (child processes): logits within the 2e-2 of
    test_cuda.py's bfloat16 kernel comparisons, classes equal except near-ties (top-2 margin within 8x the row's rms
    difference)."""
    from qwen3align.random_checkpoint import make_checkpoint

    ckpt = make_checkpoint(str(tmp_path / "aligner"), "Qwen3-ForcedAligner-0.6B")
    got = {}
    for v in ("0", "1"):
        out = str(tmp_path / f"logits-{v}.npy")
        run = subprocess.run([sys.executable, "-c", ALIGN_CHILD.format(repo=REPO, ckpt=ckpt, out=out)],
                             capture_output=True, text=True, timeout=600, env=dict(os.environ, QA_CUDA_GU_BF16=v))
        assert "LOGITS DONE" in run.stdout, run.stdout[-2000:] + run.stderr[-3000:]
        got[v] = np.load(out).astype(np.float64)
    assert np.isfinite(got["1"]).all()
    assert_close_rel(got["1"], got["0"], 2e-2, "real-size aligner 60 s logits, QA_CUDA_GU_BF16=1 vs 0")
    noise = np.sqrt(((got["1"] - got["0"]) ** 2).mean(-1))  # random weights: no fixed logit scale; per row
    _near_ties_only(got["1"], got["0"], "real-size aligner 60 s", 8 * noise)
