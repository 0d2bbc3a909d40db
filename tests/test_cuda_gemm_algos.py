"""Issue 6: matmul.cu's cuBLASLt algorithm choice (csrc/backend/cuda_mm_buckets.h), old buckets against new.

    python -m pytest -s -q tests/test_cuda_gemm_algos.py

- test_gemm_algorithm_choice builds bench/gemm_algos.cu with nvcc and prints, for the models' GEMM shapes at the
  benchmark requests' row counts, the time and TFLOP/s of the algorithm planned under the old and the new bucket
  table, of the heuristic's first choice at the exact row count and of the best of its candidates (with its tile
  config), then what the GEMMs of one align 10 / 60 / 300 s and one ASR prefill of 60 s sum to under each.
- the new buckets: parity of the float32 fixture models with the references, and no kernel planned after load
  whatever the request length (the warm-up visits every new bucket).
- test_old_vs_new_requests: fresh processes with QA_CUDA_MM_BUCKETS=old and =new load the models (the fixture
  ones, or real-size checkpoints from $QA_GEMM_MODELS: folders Qwen3-ForcedAligner-0.6B / Qwen3-ASR-1.7B as
  tools/make_random_checkpoint.py writes them) and print load time, planned products, device memory after
  load and align / ASR prefill wall times side by side.
Everything skips without a usable GPU.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest

from conftest import CASES, FIXTURES, REPO, assert_close_rel, npy
from cuda_util import gpu_reason
from engine_util import mixed_request

WHY = gpu_reason()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"no usable CUDA device: {WHY}"),
              pytest.mark.skipif(bool(os.environ.get("QA_CUDA_LIB")), reason="GPU-only (QA_CUDA_LIB is a shim)")]

MLP_TILE = 2048  # csrc/memory/plan.h QA_MLP_TILE: the MLPs' GEMMs see at most this many rows
ROWS = (130, 214, 780, 795, 1277, 3900, 6377)
# name: (N, K, beta, bias, rows cap) as the models issue them: y[T, N] = x[T, K] W^T (+ bias) (+ y), BF16 x and W,
# FP32 y; q/k/v and gate/up joined (norm_gemm / ln_gemm), the residual adds beta 1 (o-proj, down, fc2)
SHAPES = {
    "aligner.qkv": (4096, 1024, 0, 0, None), "aligner.o": (1024, 2048, 1, 0, None),
    "aligner.gate_up": (6144, 1024, 0, 0, MLP_TILE), "aligner.down": (1024, 3072, 1, 0, MLP_TILE),
    "asr.qkv": (4096, 2048, 0, 0, None), "asr.o": (2048, 2048, 1, 0, None),
    "asr.gate_up": (12288, 2048, 0, 0, MLP_TILE), "asr.down": (2048, 6144, 1, 0, MLP_TILE),
    "enc.qkv": (3072, 1024, 0, 1, None), "enc.o": (1024, 1024, 1, 1, None),
    "enc.fc1": (4096, 1024, 0, 1, MLP_TILE), "enc.fc2": (1024, 4096, 1, 1, MLP_TILE),
    "enc.proj1": (1024, 1024, 0, 1, None), "enc.proj2_asr": (2048, 1024, 0, 1, None),
}
CONV_OUT = ("enc.conv_out", (1024, 7680, 0, 0), (130, 208))  # 16-chunk tiles of 13 rows
# one request's GEMMs: (shape prefix, layers, rows)
REQUESTS = {
    "align 10 s": [("enc.", 24, 130), ("aligner.", 28, 214)],
    "align 60 s": [("enc.", 24, 780), ("aligner.", 28, 1277)],
    "align 300 s": [("enc.", 24, 3900), ("aligner.", 28, 6377)],
    "ASR prefill 60 s": [("enc.", 24, 780), ("asr.", 28, 795)],
}


def nvcc():
    return shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") and "/usr/local/cuda/bin/nvcc")


def row_blocks(rows, cap):
    """The row counts one product of `rows` rows is issued at (MLP tiles of cap rows, then the rest)."""
    if not cap or rows <= cap:
        return [rows]
    return [cap] * (rows // cap) + ([rows % cap] if rows % cap else [])


def enum_names(header, prefix):
    return {int(v): k for k, v in re.findall(rf"{prefix}(\w+)\s*=\s*(\d+)", open(header).read())}


def cfg_name(cfg, names):
    """a<id>,t<tile>,s<stages>,k<splitk>,w<swizzle>,c<cluster>,o<custom> -> readable."""
    f = {k[0]: int(k[1:]) for k in cfg.split(",")}
    tile, stages, cluster = (names[n].get(f[c], str(f[c])) for n, c in (("tile", "t"), ("stages", "s"),
                                                                        ("cluster", "c")))
    return f"algo {f['a']} tile {tile} stages {stages} splitK {f['k']} swz {f['w']} cluster {cluster} opt {f['o']}"


def test_gemm_algorithm_choice(tmp_path):
    if not nvcc():
        pytest.skip("nvcc not found")
    exe = str(tmp_path / "gemm_algos")
    src = [os.path.join(REPO, p) for p in ("bench/gemm_algos.cu", "csrc/backend/cuda/cuda_check.cu",
                                           "csrc/core/status.c")]
    subprocess.run([nvcc(), "-O2", "-std=c++17", "-o", exe] + src + ["-lcublasLt"], check=True)
    argv = []
    for name, (n, k, beta, bias, cap) in SHAPES.items():
        rows = sorted({r for t in ROWS for r in row_blocks(t, cap)})
        argv += [name, str(n), str(k), str(beta), str(bias)] + [str(r) for r in rows] + ["--"]
    name, (n, k, beta, bias), rows = CONV_OUT
    argv += [name, str(n), str(k), str(beta), str(bias)] + [str(r) for r in rows]
    out = subprocess.run([exe] + argv, check=True, capture_output=True, text=True, timeout=240).stdout
    header = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(nvcc()))), "include", "cublasLt.h")
    names = {n: enum_names(header, p) if os.path.exists(header) else {} for n, p in
             (("tile", "CUBLASLT_MATMUL_TILE_"), ("stages", "CUBLASLT_MATMUL_STAGES_"),
              ("cluster", "CUBLASLT_CLUSTER_SHAPE_"))}
    pat = re.compile(r"case (\S+) m (\d+) k (\d+) rows (\d+) beta (\S+) bias (\d) \| old (\S+) (\S+) "
                     r"\| new (\S+) (\S+) \| first (\S+) (\S+) \| best (\S+) (\S+) \| candidates (\d+)")
    res = {}
    print("\n" + out.splitlines()[0])
    print(f"{'shape':16} {'rows':>5} | {'old bucket':>15} | {'new bucket':>15} | {'exact first':>15} | "
          f"{'best':>15} | best config (old's, new's where they differ)")
    for line in out.splitlines()[1:]:
        m = pat.match(line)
        assert m, line
        nm, M, K, T = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        us = [float(m.group(i)) for i in (7, 9, 11, 13)]
        cfgs = [m.group(i) for i in (8, 10, 12, 14)]
        assert all(u > 0 for u in us), line
        res[nm, T] = us
        tf = [2.0 * M * K * T / (u * 1e-6) / 1e12 for u in us]
        cols = " | ".join(f"{u:7.1f}us {t:5.0f}T" for u, t in zip(us, tf))
        extra = "".join(f"  ({w}: {cfg_name(cfgs[i], names)})" for i, w in ((0, "old"), (1, "new"))
                        if cfgs[i] != cfgs[3] and (i == 0 or cfgs[1] != cfgs[0]))
        print(f"{nm:16} {T:5d} | {cols} | {cfg_name(cfgs[3], names)}{extra}")
    expected = sum(len({r for t in ROWS for r in row_blocks(t, s[4])}) for s in SHAPES.values()) + len(CONV_OUT[2])
    assert len(res) == expected, (len(res), expected)
    print("\nThe layers' GEMMs of one request (layers x shapes at its rows), ms: old / new / exact first / best")
    for req, parts in REQUESTS.items():
        tot = np.zeros(4)
        for prefix, layers, rows in parts:
            for nm, s in SHAPES.items():
                if nm.startswith(prefix) and not nm.startswith("enc.proj"):
                    for r in row_blocks(rows, s[4]):
                        tot += layers * np.array(res[nm, r]) * 1e-3
        print(f"  {req:18} " + " / ".join(f"{t:6.2f}" for t in tot) + f"   (new - old {tot[1] - tot[0]:+.2f} ms)")


# ---- the new buckets on the fixture models ---------------------------------------------------------------------


def _fixture(layout):
    path = os.path.join(FIXTURES, layout)
    if not os.path.isdir(path):
        pytest.skip(f"fixture checkpoint {layout}/ not present under {FIXTURES}")
    return path


@pytest.fixture(scope="module")
def new_buckets():
    if os.environ.get("QA_CUDA_MM_BUCKETS") == "old":
        pytest.skip("QA_CUDA_MM_BUCKETS=old: these check the new buckets")


@pytest.fixture(scope="module")
def f32_models(new_buckets):
    import qwen3align as qa

    m = qa.load_models(aligner=_fixture("aligner"), asr=_fixture("asr"), device="cuda:0", dtype="float32",
                       max_audio_seconds=30)
    yield m
    m.close()


@pytest.mark.parametrize("case", CASES)
def test_new_buckets_parity(f32_models, case):
    """float32 on the GPU still matches the references with the new buckets' algorithms (the summation order is
    the only thing an algorithm changes)."""
    from conftest import load_case

    m = f32_models
    feat, frames = npy(case, "input_features.npy"), load_case(case)["mel_frames"]
    out = m.aligner_logits(feat, frames, npy(case, "aligner_input_ids.npy"))
    assert_close_rel(out, npy(case, "aligner_logits_at_timestamps.npy"), 1e-4, f"new buckets {case} logits")
    np.testing.assert_array_equal(out.argmax(1), npy(case, "aligner_raw_classes.npy"))
    ids, first = m.asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), 12, 12)
    assert_close_rel(first, npy(case, "asr_first_logits.npy"), 1e-4, f"new buckets {case} first logits")
    assert ids.tolist() == npy(case, "asr_greedy_ids.npy").tolist()
    assert m.memory_report()["cuda"]["gemm_plans_after_load"] == 0


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_new_buckets_load_no_kernel_after_load(new_buckets, dtype):
    """tests/test_cuda.py's test_requests_of_any_length_load_no_kernel_after_load with lengths spread over every
    new bucket (12.5 audio tokens a second; up to ~3 words a second), plus packed batches."""
    import qwen3align as qa

    rng = np.random.default_rng(zlib.crc32(b"buckets" + dtype.encode()))
    with qa.load_models(aligner=_fixture("aligner"), asr=_fixture("asr"), device="cuda:0", dtype=dtype,
                        max_audio_seconds=120, max_new_tokens=8) as m:
        before = m.memory_report()
        secs = [0.3, 2, 5.2, 7, 10.3, 13, 15.5, 19, 21, 29, 31, 40, 42, 60, 62, 80, 83, 110, 119.5]
        for i, s in enumerate(secs):
            mixed_request(m, rng, i, s, 8)
        m.align_batch([{"audio": (rng.standard_normal(int(s * 16000)) * 0.1).astype(np.float32), "sample_rate": 16000,
                        "words": ["a"] * int(3 * s), "language": "English"} for s in (3, 9, 17, 33)])
        after = m.memory_report()
    cu = after["cuda"]
    assert cu["gemm_plans"] == before["cuda"]["gemm_plans"] and cu["gemm_plans_after_load"] == 0, cu
    assert after["allocations_after_load"] == 0 and cu["allocations_after_load"] == 0, after
    assert after["device_free_bytes"] == before["device_free_bytes"]
    print(f"\n{dtype}: {cu['gemm_plans']} planned products after load (new buckets)")


# ---- old against new: load and requests in fresh processes -------------------------------------------------------

CHILD = r"""
import json, os, sys, time
import numpy as np
import qwen3align as qa
aligner, asr = sys.argv[1], sys.argv[2]
out = {}


def load(kind, path):
    t = time.perf_counter()
    m = qa.load_models(**{kind: path}, device="cuda:0")
    out[f"{kind} load s"] = time.perf_counter() - t
    rep = m.memory_report()
    out[f"{kind} gemm plans"] = rep["cuda"]["gemm_plans"]
    out[f"{kind} device used MiB"] = (rep["device_total_bytes"] - rep["device_free_bytes"]) >> 20
    return m


def median_ms(call):  # one warm-up call, then the median of 5
    call()
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


rng = np.random.default_rng(1)
m = load("aligner", aligner)
for s in (10, 60, 300):
    audio = (rng.standard_normal(s * 16000) * 0.1).astype(np.float32)
    words = ["a"] * int(2.5 * s)
    out[f"align {s} s ms"] = median_ms(lambda: m.align((audio, 16000), words=words, language="English"))
out["aligner plans after load"] = m.memory_report()["cuda"]["gemm_plans_after_load"]
m.close()
m = load("asr", asr)
for s in (10, 60):
    audio = (rng.standard_normal(s * 16000) * 0.1).astype(np.float32)
    out[f"ASR prefill {s} s ms"] = median_ms(lambda: m.transcribe((audio, 16000), max_new_tokens=1))
out["asr plans after load"] = m.memory_report()["cuda"]["gemm_plans_after_load"]
m.close()
print("RESULT " + json.dumps(out))
"""


def test_old_vs_new_requests():
    real = os.environ.get("QA_GEMM_MODELS")
    if real:
        aligner, asr = (os.path.join(real, p) for p in ("Qwen3-ForcedAligner-0.6B", "Qwen3-ASR-1.7B"))
    else:
        aligner, asr = _fixture("aligner"), _fixture("asr")
    res = {}
    for mode in ("old", "new"):
        env = dict(os.environ, QA_CUDA_MM_BUCKETS=mode)
        r = subprocess.run([sys.executable, "-c", CHILD, aligner, asr], env=env, capture_output=True, text=True,
                           timeout=300, cwd=REPO)
        assert r.returncode == 0, r.stderr[-3000:]
        res[mode] = json.loads(r.stdout.split("RESULT ", 1)[1])
    print(f"\n{'real-size' if real else 'fixture'} models, QA_CUDA_MM_BUCKETS old -> new (wall times: median of 5)")
    for k in res["old"]:
        print(f"  {k:26} {res['old'][k]:10.2f} -> {res['new'][k]:10.2f}")
    for mode in res:
        assert res[mode]["aligner plans after load"] == 0 and res[mode]["asr plans after load"] == 0, res[mode]
