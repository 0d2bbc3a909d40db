"""GPU tests of the device-side decode loop (issue #6, backend.h API 9 graph_begin_loop, decode_mode LOOP): the
recorded ASR decode step as the body of a CUDA conditional WHILE node, one launch per block of
pipeline/asr.c QA_ASR_LOOP_BLOCK steps that stops after an EOS, against the host loop it replaces
(QA_CUDA_DECODE_LOOP=host: the same recording launched once per token, blocks of 8). Both run the same kernels
in the same order, so ids and first logits must be equal to the bit: EOS inside a block, min_new_tokens /
max_new_tokens around the block sizes, a request after a cancelled and after a failed one. The variable is read
when the backend opens, so each mode runs in a child process. With -s: ms per token end to end, host vs device
loop, on the fixture ASR model (tiny: its steps are launch-bound, so the host round trips weigh more than at
full size; the real-size numbers come from bench/). Skips without a usable GPU."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, npy
from cuda_util import gpu_reason

WHY = gpu_reason()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"no usable CUDA device: {WHY}"),
              pytest.mark.skipif(bool(os.environ.get("QA_CUDA_LIB")), reason="GPU-only: QA_CUDA_LIB is the CPU shim")]

LOOP_BLOCK = 32  # pipeline/asr.c QA_ASR_LOOP_BLOCK
HOST_BLOCK = 8   # pipeline/asr.c QA_ASR_BLOCK
MODES = ("host", None)  # QA_CUDA_DECODE_LOOP=host, unset (the device loop)

# (case, max_new_tokens, min_new_tokens): 1 (no forward at all), 2 (one), both blocks' edges, more than a block
RUNS = [("en_short", 1, 0), ("en_short", 1, 1), ("tiny", 2, 0), ("en_short", 2, 2),
        ("zh_mixed", HOST_BLOCK + 1, 3), ("en_long", LOOP_BLOCK - 1, 0), ("punct_numbers", LOOP_BLOCK, LOOP_BLOCK),
        ("en_short", LOOP_BLOCK + 1, 5), ("tiny", 2 * LOOP_BLOCK, 0), ("zh_mixed", 2 * LOOP_BLOCK + 1, 40),
        ("en_long", 100, 100)]

CHILD = r"""
import json, os, signal, sys, threading, numpy as np
sys.path.insert(0, {tests!r})
from conftest import npy
from engine_util import features, generate_twice
from qwen3align._qwen3align import Models
m = Models(asr={folder!r}, device="cuda:0", dtype={dtype!r}, max_new_tokens={cap})
info = {{}}
if {cancel!r}:
    # a long request (min_new = max_new: no EOS) interrupted between two blocks, then a request that fails its checks
    feat, frames = features("en_short")
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        m.asr_generate(feat, frames, npy("en_short", "asr_prompt_ids.npy"), {cap}, {cap})
        info["interrupted"] = False
    except KeyboardInterrupt:
        info["interrupted"] = True
    timer.cancel()
    try:
        m.asr_generate(feat, frames, npy("en_short", "asr_prompt_ids.npy"), {cap} + 1, 0)
        info["failed"] = False
    except Exception as ex:
        info["failed"] = type(ex).__name__
out = generate_twice(m, {runs!r})
info["graphs"] = int(m._memory_report()["cuda"]["graph_instantiations"])
np.savez({path!r}, **out)
print("INFO", json.dumps(info))
"""


def _env(loop):
    env = {k: v for k, v in os.environ.items() if k not in ("QA_CUDA_GRAPH", "QA_CUDA_DECODE_LOOP", "QA_CUDA_PROFILE")}
    if loop is not None:
        env["QA_CUDA_DECODE_LOOP"] = loop
    return env


def _child(code, loop, timeout=300):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(loop),
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def _generate(tmp_path, loop, folder, dtype, runs, cap=100, cancel=False):
    """asr_generate results of runs in a child whose backend opened with QA_CUDA_DECODE_LOOP=loop (None: unset),
    and what the child saw (INFO: graph instantiations, whether the cancel / failure happened)."""
    path = str(tmp_path / f"gen-{loop}-{dtype}-{cap}-{int(cancel)}.npz")
    code = CHILD.format(tests=os.path.dirname(__file__), folder=folder, dtype=dtype, runs=runs, path=path, cap=cap,
                        cancel=cancel)
    stdout = _child(code, loop)
    info = json.loads(stdout.split("INFO ", 1)[1].splitlines()[0])
    return dict(np.load(path)), info


def _assert_same(a, b, runs, what):
    for i, run in enumerate(runs):
        assert a[f"ids{i}"].tolist() == b[f"ids{i}"].tolist(), f"{what} {run}: ids differ"
        np.testing.assert_array_equal(a[f"first{i}"], b[f"first{i}"], err_msg=f"{what} {run}: first logits")


def _fixture(layout="asr"):
    folder = os.path.join(FIXTURES, layout)
    if not os.path.isdir(folder):
        pytest.skip(f"fixture checkpoint {layout}/ not present under {FIXTURES}")
    return folder


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_device_loop_equals_host_loop(tmp_path, dtype):
    """The same ids and first logits, bit for bit, for max_new_tokens 1, 2, around both block sizes and past a
    block, with and without min_new_tokens; each mode instantiates one graph (the loop, or the step)."""
    folder = _fixture()
    host, hi = _generate(tmp_path, "host", folder, dtype, RUNS)
    loop, li = _generate(tmp_path, None, folder, dtype, RUNS)
    assert hi["graphs"] == 1 and li["graphs"] == 1, (hi, li)
    _assert_same(host, loop, RUNS, f"{dtype} device loop vs host loop")
    for i, (_, max_new, _) in enumerate(RUNS):
        assert len(host[f"ids{i}"]) == max_new  # the random fixture never picks EOS by itself


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_device_loop_stops_at_an_eos_inside_a_block(tmp_path, dtype):
    """A checkpoint that picks EOS (engine_util.eos_checkpoint): the loop ends on the device after the step that
    picked it, inside a block, and min_new_tokens (EOS suppressed on the device) moves it the same way as the host
    loop, also across the loop's block edge."""
    from engine_util import eos_checkpoint

    _fixture()
    folder = eos_checkpoint(str(tmp_path / "asr-eos"), npy("en_short", "asr_greedy_ids.npy")[3])
    runs = [("en_short", 100, n) for n in (0, 1, 5, 9, 12, 17, LOOP_BLOCK - 1, LOOP_BLOCK, LOOP_BLOCK + 1, 70)]
    runs += [("en_short", n, 0) for n in (1, 2, 3)]
    host, _ = _generate(tmp_path, "host", folder, dtype, runs)
    loop, _ = _generate(tmp_path, None, folder, dtype, runs)
    _assert_same(host, loop, runs, f"{dtype} eos device loop vs host loop")
    lengths = [len(host[f"ids{i}"]) for i in range(len(runs))]
    print(f"{dtype}: lengths with EOS {lengths}")
    if dtype == "float32":  # the CPU run of this checkpoint stops at 2, 2, 12, 12, 12, 19, ... (BF16 may differ)
        assert any(0 < n % LOOP_BLOCK and n < 100 for n in lengths), lengths


def test_request_after_a_cancelled_and_a_failed_one(tmp_path):
    """Ctrl-C during a long device-loop request (between two blocks: the stream is idle there), then a request
    that fails its checks: the next requests give the host loop's results from a fresh process."""
    folder = _fixture()
    cap = 30000  # ~a few s of tiny steps: the SIGINT 0.2 s in lands mid-request
    loop, li = _generate(tmp_path, None, folder, "float32", RUNS, cap=cap, cancel=True)
    assert li["interrupted"] is True and li["failed"] == "InputError", li
    host, _ = _generate(tmp_path, "host", folder, "float32", RUNS, cap=cap)
    _assert_same(host, loop, RUNS, "after cancel + failure, device loop vs host loop")


TIMING_CHILD = r"""
import json, sys, time, numpy as np
sys.path.insert(0, {tests!r})
from conftest import npy
from engine_util import features
import qwen3align as qa
N = {n}
with qa.load_models(asr={folder!r}, device="cuda:0", dtype="bfloat16", max_audio_seconds=30, max_new_tokens=N) as m:
    before = m.memory_report()
    feat, frames = features("en_short")
    prompt = npy("en_short", "asr_prompt_ids.npy")

    def best(k, reps=5):
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            m.asr_generate(feat, frames, prompt, k, k)  # min_new = max_new: EOS cannot stop it early
            t.append(time.perf_counter() - t0)
        return min(t)

    t1, tn = best(1), best(N)
    for k in (1, 2, 31, 32, 33, 100):
        m.asr_generate(feat, frames, prompt, k, 0)
    after = m.memory_report()
print("INFO", json.dumps(dict(ms_per_token=(tn - t1) / (N - 1) * 1e3, t1_ms=t1 * 1e3, tn_ms=tn * 1e3,
                              graphs=after["cuda"]["graph_instantiations"],
                              graphs_after_load=after["cuda"]["graph_instantiations_after_load"],
                              allocs_after_load=after["allocations_after_load"],
                              cuda_allocs_after_load=after["cuda"]["allocations_after_load"],
                              graph_bytes=after["cuda"]["graph_bytes"],
                              free_before=before["device_free_bytes"], free_after=after["device_free_bytes"])))
"""


def test_device_loop_ms_per_token_and_nothing_after_load():
    """load_models' warm-up records the loop (one instantiation, none after load, no allocation, device memory
    unchanged by requests), and ms per token end to end: asr_generate with N vs 1 new tokens, min_new_tokens = N,
    host loop vs device loop, BF16 fixture model (run with -s; the full-size numbers come from bench/)."""
    folder = _fixture()
    n = 512
    got = {}
    for loop in MODES:
        code = TIMING_CHILD.format(tests=os.path.dirname(__file__), folder=folder, n=n)
        got[loop] = json.loads(_child(code, loop).split("INFO ", 1)[1].splitlines()[0])
    for loop, r in got.items():
        assert r["graphs"] == 1 and r["graphs_after_load"] == 0, (loop, r)
        assert r["allocs_after_load"] == 0 and r["cuda_allocs_after_load"] == 0, (loop, r)
        assert r["free_after"] == r["free_before"], (loop, r)
    h, d = got["host"], got[None]
    print(f"\nASR decode, fixture model bf16, {n} vs 1 new tokens: host loop {h['ms_per_token']:.4f} ms/token, "
          f"device loop {d['ms_per_token']:.4f} ms/token ({h['ms_per_token'] / d['ms_per_token']:.2f}x); "
          f"{n} tokens {h['tn_ms']:.2f} vs {d['tn_ms']:.2f} ms, 1 token {h['t1_ms']:.2f} vs {d['t1_ms']:.2f} ms; "
          f"graph exec bytes host {h['graph_bytes']} device {d['graph_bytes']}")
