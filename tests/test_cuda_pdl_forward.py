"""GPU tests of programmatic dependent launch in the forward pass (issue #6, pdl.cuh): every kernel of the CUDA
backend (mel, conv front, norms, activations, attention, conversions) launched with PDL (the default) or the
ordinary way (QA_CUDA_PDL=0, read once per process, hence child processes). PDL changes when kernels start, never
what they compute: the outputs must be the same bits — a difference means a kernel read its predecessor's output
before its qa_pdl_wait. With -s the tests print the time of each side by side.

    pytest -s tests/test_cuda_pdl_forward.py
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, REPO
from cuda_util import gpu_reason

WHY = gpu_reason()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"no usable CUDA device: {WHY}"),
              pytest.mark.skipif(bool(os.environ.get("QA_CUDA_LIB")), reason="GPU-only behaviour (QA_CUDA_LIB shim)")]

TESTS = os.path.dirname(os.path.abspath(__file__))


def _child(code, pdl, tmp_path, tag):
    """Run code (formatted with tests, bench, fixtures, path) in a fresh process with PDL on (QA_CUDA_PDL unset)
    or off (=0); returns the arrays it saved to path and the JSON it printed after 'JSON '."""
    path = str(tmp_path / f"{tag}-{'pdl' if pdl else 'nopdl'}.npz")
    env = dict(os.environ)
    env.pop("QA_CUDA_PDL", None)
    if not pdl:
        env["QA_CUDA_PDL"] = "0"
    src = code.format(tests=TESTS, bench=os.path.join(REPO, "bench"), fixtures=FIXTURES, path=path)
    run = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and "JSON " in run.stdout, run.stdout[-2000:] + run.stderr[-3000:]
    return dict(np.load(path)), json.loads(run.stdout.split("JSON ", 1)[1])


def _assert_same(on, off, what):
    assert sorted(on) == sorted(off)
    for k in on:
        np.testing.assert_array_equal(on[k], off[k], err_msg=f"{what} {k}: PDL on vs off")


MODEL_CHILD = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, {tests!r})
sys.path.insert(0, {bench!r})
import qwen3align as qa
from qwen3align import _pipeline
from qwen3align.frontend import asr_prompt_ids, audio_token_count
from conftest import CASES, npy
import bench_common as bc


def med(fn, reps=15):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


out, times = {{}}, {{}}
for dtype in ("float32", "bfloat16"):
    with qa.load_models(aligner=os.path.join({fixtures!r}, "aligner"), asr=os.path.join({fixtures!r}, "asr"),
                        device="cuda:0", dtype=dtype, max_audio_seconds=60, max_new_tokens=16) as m:
        clips = []
        for case in CASES:  # from samples: device mel, encoder, decoder
            x, ids = npy(case, "audio16k.npy"), npy(case, "aligner_input_ids.npy")
            out[f"{{dtype}} align logits {{case}}"] = m.aligner_logits_from_audio(x, ids)
            gen, first = m.asr_generate_from_audio(x, npy(case, "asr_prompt_ids.npy"), 16, 0)
            out[f"{{dtype}} asr ids {{case}}"], out[f"{{dtype}} asr first {{case}}"] = gen, first
            clips.append((x, ids))
        logits, counts = m._align_pack(clips, logits=True)
        out[f"{{dtype}} packed logits"], out[f"{{dtype}} packed counts"] = logits, np.asarray(counts)
        tok = _pipeline._tokenizer(m, "asr")
        for secs in (10, 60):  # bench_common's audio and words
            x = bc.synth_speech(secs, secs)
            job = _pipeline._prepare_align(m, None, " ".join(bc.words_for(secs, secs)), "English", _samples16k=x)
            prompt = np.asarray(asr_prompt_ids(tok, audio_token_count(_pipeline._mel_frames(len(x)))), np.int32)
            cls, prob = m._align_forward_audio(x, job.ids)
            out[f"{{dtype}} align {{secs}} s classes"], out[f"{{dtype}} align {{secs}} s probs"] = cls, prob
            out[f"{{dtype}} prefill {{secs}} s first"] = m.asr_generate_from_audio(x, prompt, 1, 0)[1]
            times[f"{{dtype}} align {{secs}} s"] = med(lambda: m._align_forward_audio(x, job.ids))
            times[f"{{dtype}} ASR prefill {{secs}} s (+ 1 token)"] = med(lambda: m.asr_generate_from_audio(x, prompt, 1, 0))
np.savez({path!r}, **out)
print("JSON " + json.dumps(times))
"""


def test_fixture_models_same_bits_with_and_without_pdl(tmp_path):
    """The fixture aligner from samples (device mel + encoder + decoder: timestamp logits), the fixture ASR (prefill
    + 16 decode steps: ids and first logits), a packed align of every case, and the 10 / 60 s synthetic requests of
    bench_common, float32 and bfloat16: the same bits with PDL and without. Prints the median wall time of an align
    (_align_forward_audio) and of an ASR prefill (asr_generate_from_audio with one new token) of 10 and 60 s on the
    fixture models (tiny: their time is mostly launches and kernel boundaries, what PDL shortens)."""
    for layout in ("aligner", "asr"):
        if not os.path.isdir(os.path.join(FIXTURES, layout)):
            pytest.skip(f"fixture checkpoint {layout}/ not present under {FIXTURES}")
    on, t_on = _child(MODEL_CHILD, True, tmp_path, "models")
    off, t_off = _child(MODEL_CHILD, False, tmp_path, "models")
    for k in t_on:
        print(f"fixture {k}: {t_on[k]:.3f} ms with PDL, {t_off[k]:.3f} ms without ({t_off[k] - t_on[k]:+.3f} ms)")
    _assert_same(on, off, "fixture models")


LAYER_CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from cuda_util import BF16, Cuda
from test_cuda import ConvFront, _DecLayer, _EncLayer

g = Cuda(block_bytes=768 << 20)
g.be.dtype = BF16  # a bfloat16 model's backend, as test_cuda._handoff_backend
out, times = {{}}, {{}}
for T in (214, 1277, 7500):
    rng = np.random.default_rng(T)
    for name, cls in (("encoder", _EncLayer), ("decoder", _DecLayer)):
        g.reset()
        layer = cls(g, np.random.default_rng(T + 1), T)
        x0 = (rng.standard_normal((T, 1024)) * 2).astype(np.float32)
        x = g.put(x0)
        layer(x)
        out[f"{{name}} {{T}}"] = g.get(x, (T, 1024))
        times[f"{{name}} layer T={{T}}"] = 1e6 * g.replay_seconds(lambda i: layer(x), 5)
for chunks in (60, 300):  # the conv front of 60 / 300 s (tower sizes, BF16 weights)
    g.reset()
    f = ConvFront(g, np.random.default_rng(chunks), BF16, chunks * 100, C_=480, E=1024)
    f.run()
    out[f"conv front {{chunks}}"] = g.get(f.out, (f.N * 13, f.E))
    times[f"conv front {{chunks}} chunks"] = 1e6 * g.replay_seconds(lambda i: f.run())
g.be.mem_free(g.addr, g.block)
g.be.destroy(g.addr)
np.savez({path!r}, **out)
print("JSON " + json.dumps(times))
"""


def test_full_size_layers_and_conv_front_same_bits_and_timing_with_and_without_pdl(tmp_path):
    """One aligner encoder layer and one decoder layer at their real sizes (test_cuda._EncLayer / _DecLayer: random
    BF16 weights, a bfloat16 backend) for T = 214 / 1277 / 7500 rows (~2 / 12 / 75 s of audio), op by op with and
    without PDL: the same bits; the conv front of 60 and 300 chunks (test_cuda.ConvFront) too. Prints µs per layer
    (a CUDA graph of 5 layers replayed: the recorded launches keep their programmatic edges) and per conv front
    call, with PDL and without."""
    on, t_on = _child(LAYER_CHILD, True, tmp_path, "layers")
    off, t_off = _child(LAYER_CHILD, False, tmp_path, "layers")
    for k in t_on:
        print(f"{k}: {t_on[k]:.1f} us with PDL, {t_off[k]:.1f} us without ({t_off[k] - t_on[k]:+.1f} us)")
    _assert_same(on, off, "layers")
    for k in on:
        assert np.isfinite(on[k]).all(), k
