"""align_batch / transcribe_batch on several CPU workers (load_models(workers=2)): the one-by-one
results in the same order, the first failing item's own error, one workspace (and KV cache) per
worker in the arena with plan == use and no allocation after load, requests that really overlap
(the engine's max-concurrency counter), and Ctrl-C that stops every worker. Fixture models."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import qwen3align as qa
from qwen3align import _qwen3align as C
from qwen3align import longaudio
from conftest import FIXTURES, load_case, npy

SR = 16000
ALIGNER, ASR = os.path.join(FIXTURES, "aligner"), os.path.join(FIXTURES, "asr")
LOAD = dict(aligner=ALIGNER, asr=ASR, device="cpu", max_audio_seconds=20, max_new_tokens=24)


@pytest.fixture(scope="module")
def two():
    with qa.load_models(**LOAD, workers=2) as m:
        yield m


def clip(name, reps=1, seconds=None):
    a = np.tile(npy(name, "audio16k.npy").astype(np.float32), reps)
    return a[: int(seconds * SR)] if seconds else a


def items():
    """Short clips with a transcript or words, one without text (ASR first), one long enough to be
    cut into chunks (max_audio_seconds=20)."""
    en, pn = load_case("en_short"), load_case("punct_numbers")
    return [{"audio": clip("en_short"), "text": en["text"], "language": "English", "sample_rate": SR},
            {"audio": clip("punct_numbers"), "words": pn["words"], "sample_rate": SR},
            {"audio": (clip("tiny"), SR), "text": "ok"},
            {"audio": clip("en_short", 6), "words": en["words"] * 6, "sample_rate": SR},
            {"audio": clip("punct_numbers"), "sample_rate": SR},
            {"audio": clip("en_short", 2), "text": en["text"] + " " + en["text"], "sample_rate": SR}]


def one_by_one(m, its):
    return [m.align(it["audio"], it.get("text"), it.get("language"), words=it.get("words"),
                    sample_rate=it.get("sample_rate")) for it in its]


def test_align_batch_equals_one_by_one_in_order(two):
    its = items()
    ticks = []
    out = two.align_batch(its, progress=lambda *a: ticks.append(a))
    ref = one_by_one(two, its)
    assert out == ref  # Alignment equality: every item's text, start, end and confidence
    assert [len(r) for r in out] == [len(r) for r in ref] and out[3].chunks is not None
    assert ticks == [("batch", k, len(its)) for k in range(len(its) + 1)]
    assert C._blas_threads() == BLAS_AT_IMPORT  # the batch gave OpenBLAS's threads back


def test_transcribe_batch_equals_one_by_one_in_order(two):
    audios = [clip("en_short"), clip("tiny"), clip("punct_numbers", 4), clip("zh_mixed")]
    out = two.transcribe_batch(audios, sample_rate=SR, max_new_tokens=16)
    ref = [two.transcribe(a, sample_rate=SR, max_new_tokens=16) for a in audios]
    assert [(t.text, t.language, t.tokens) for t in out] == [(t.text, t.language, t.tokens) for t in ref]


def test_a_bad_item_raises_what_the_one_by_one_call_raises(two):
    its = items()[:3] + [{"audio": clip("tiny"), "text": "ok", "language": "Klingon", "sample_rate": SR}]
    with pytest.raises(qa.InputError) as single:
        one_by_one(two, its[3:])
    with pytest.raises(qa.InputError) as batch:
        two.align_batch(its)
    assert str(batch.value) == str(single.value)
    # two bad items: the first one's error, as a loop over the items would raise
    no_words = {"audio": clip("tiny"), "words": [], "sample_rate": SR}
    with pytest.raises(qa.InputError, match="words=\\[\\] is empty"):
        two.align_batch([its[0], no_words, its[1], its[3]])
    with pytest.raises(qa.AudioError):
        two.transcribe_batch([clip("tiny"), b"not audio"], sample_rate=[SR, None])
    assert two.align_batch(its[:2]) == one_by_one(two, its[:2])  # still usable


def test_two_workspaces_in_the_arena_plan_equals_use(two):
    p = qa.plan(**LOAD, workers=2)
    r = two.memory_report()
    assert two.workers == 2 and r["limits"]["workers"] == 2 and p["limits"] == r["limits"]
    assert list(r["regions"]) == ["weights/aligner", "weights/asr", "kv/asr", "kv/asr/1", "mel/tables", "workspace",
                                 "workspace/1"]
    assert r["regions"] == p["regions"] and r["arena_bytes"] == p["arena_bytes"] == sum(p["regions"].values())
    assert r["regions"]["workspace/1"] == r["regions"]["workspace"] and r["regions"]["kv/asr/1"] == r["regions"]["kv/asr"]
    one = qa.plan(**LOAD)  # the weights are shared: a worker costs one workspace + one KV cache
    assert p["arena_bytes"] - one["arena_bytes"] == r["regions"]["workspace"] + r["regions"]["kv/asr"]
    two.align_batch(items()[:4])
    r = two.memory_report()
    assert r["regions_peak"]["workspace"] > 0 and r["regions_peak"]["workspace/1"] > 0  # both workers ran
    assert all(r["regions_peak"][k] <= r["regions"][k] for k in r["regions"])
    assert r["allocations_after_load"] == 0
    assert "workspace/1" in str(r) and "workers 2" in str(r)


def test_workers_argument():
    with pytest.raises(qa.InputError, match="workers"):
        qa.plan(aligner=ALIGNER, workers=0)
    with pytest.raises(qa.InputError, match="CUDA"):
        qa.plan(aligner=ALIGNER, device="cuda", workers=2)  # planning for a GPU needs no GPU
    assert qa.plan(aligner=ALIGNER, device="cuda", workers="auto")["limits"]["workers"] == 1
    auto = qa.plan(aligner=ALIGNER, device="cpu", workers="auto")["limits"]["workers"]
    assert auto == max(1, min(16, len(os.sched_getaffinity(0)) // 2))


def racing_align_forward(m, n=2):
    """Replace m._align_forward by one that waits until n threads arrive, so that their engine
    calls start together; returns the original."""
    orig = m._align_forward
    barrier = threading.Barrier(n, timeout=10)

    def call(*a, **kw):
        barrier.wait()
        return orig(*a, **kw)

    m._align_forward = call
    return orig


def test_two_workers_compute_at_the_same_time(two):
    """The engine counts the requests inside it; two items released together by a barrier overlap
    on two workers (each takes tens of ms), and never on one worker."""
    its = [{"audio": clip("en_short", 3), "words": load_case("en_short")["words"] * 3, "sample_rate": SR}] * 2
    racing_align_forward(two)
    try:
        seen = []
        for _ in range(3):  # a scheduler hiccup longer than a request could hide the overlap once
            two._max_concurrent()
            two.align_batch(its)
            seen.append(two._max_concurrent())
            if seen[-1] == 2:
                break
        assert seen[-1] == 2, seen
    finally:
        del two._align_forward
    with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=20) as one:
        racing_align_forward(one)
        ts = [threading.Thread(target=one.align, args=(its[0]["audio"],), kwargs={"words": its[0]["words"],
                                                                                  "sample_rate": SR})
              for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert one._max_concurrent() == 1  # one worker: the second call waited for it


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="Python runs signal handlers on the main thread only")
def test_ctrl_c_stops_every_worker_and_leaves_the_models_usable():
    with qa.load_models(**dict(LOAD, max_new_tokens=1024), workers=2) as m:
        ctrl_c_in_batches(m)


def ctrl_c_in_batches(two):
    # 4 items of 1024 generated tokens each: several seconds per item on the fixture ASR
    audios = [clip("en_short")] * 4
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            longaudio.transcribe_batch(two, audios, sample_rate=SR, language="English")
    finally:
        timer.cancel()
        timer.join()
    took = time.monotonic() - t0
    assert took < 0.3 + 1.0, f"the batch (and its workers: it joins them) stopped {took - 0.3:.2f} s after SIGINT"
    assert not [t for t in threading.enumerate() if t.name.startswith("qwen3align-batch")]
    assert C._blas_threads() == BLAS_AT_IMPORT
    exp = load_case("tiny")
    t = two.transcribe(clip("tiny"), sample_rate=SR, language=exp["asr_language"], context=exp["asr_context"], max_new_tokens=12)
    assert list(t.tokens) == npy("tiny", "asr_greedy_ids.npy").tolist()[: len(t.tokens)]
    # a progress callback that raises stops the batch the same way (the first item is short)
    raised = []

    def stop(stage, done, total):
        if done == 1:
            raised.append(time.monotonic())
            raise KeyboardInterrupt

    def run(i):  # the batch driver with a first item that ends after 4 tokens
        return two.transcribe(audios[i], sample_rate=SR, language="English", max_new_tokens=4 if i == 0 else None)

    with pytest.raises(KeyboardInterrupt):
        longaudio._run_batch(two, len(audios), run, stop)
    assert raised and time.monotonic() - raised[0] < 1.0
    assert two.align_batch(items()[:2]) == one_by_one(two, items()[:2])


BLAS_AT_IMPORT = C._blas_threads()
