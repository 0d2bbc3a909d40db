"""Concurrency: threads sharing one Models (calls serialise on its lock and release the GIL) and two
Models in one process all give the transformers 5.17 reference results (fixtures), with bad calls
mixed in that must not disturb the others."""
import threading
import time

import pytest

from conftest import FIXTURES, load_case, npy, rel_err
import qwen3align as qa

THREADS = 8
CALLS = 50
TS_CASES = ["tiny", "en_short", "punct_numbers"]


class Case:
    """Inputs and references of one fixture case (read once, shared read-only by the threads)."""

    def __init__(self, name):
        exp = load_case(name)
        self.name = name
        self.words = exp["words"]
        self.frames = exp["mel_frames"]
        self.items = [(r["text"], r["start"], r["end"]) for r in exp["items"]]
        self.language, self.context = exp["asr_language"], exp["asr_context"]
        self.audio = npy(name, "audio16k.npy")
        self.feat = npy(name, "input_features.npy")
        self.ids = npy(name, "aligner_input_ids.npy")
        self.logits = npy(name, "aligner_logits_at_timestamps.npy")
        self.greedy = npy(name, "asr_greedy_ids.npy").tolist()


@pytest.fixture(scope="module")
def cases():
    return {n: Case(n) for n in TS_CASES}


@pytest.fixture(scope="module")
def models():
    with qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu") as m:
        yield m


def call_logits(m, c):
    r = rel_err(m.aligner_logits(c.feat, c.frames, c.ids), c.logits)
    assert r <= 1e-4, f"{c.name} logits rel err {r:.2e}"


def call_align(m, c):
    res = m.align(c.audio, words=c.words, sample_rate=16000)
    assert [(it.text, it.start, it.end) for it in res] == c.items, f"{c.name} align items differ"


def call_transcribe(m, c):
    # 4 greedy tokens (prefix of the reference's 12; the fixtures have no EOS among them)
    t = m.transcribe(c.audio, language=c.language, context=c.context, sample_rate=16000, max_new_tokens=4)
    assert list(t.tokens) == c.greedy[:4], f"{c.name} tokens {t.tokens} != {c.greedy[:4]}"


def call_bad(m, c):
    with pytest.raises(qa.InputError):
        m.align(c.audio, words=["ok", ""], sample_rate=16000)


KINDS = [call_logits, call_align, call_transcribe, call_logits, call_align, call_bad]


def run_threads(n, target):
    errors, done = [], [0] * n

    def body(k):
        try:
            target(k, done)
        except BaseException as e:  # noqa: BLE001 — reported by the main thread
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    ts = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "a thread hung"
    assert not errors, "\n".join(errors[:5])
    return done


def test_eight_threads_share_one_models(models, cases):
    names = list(cases)

    def target(k, done):
        for i in range(CALLS):
            KINDS[(i + k) % len(KINDS)](models, cases[names[(i * 7 + k) % len(names)]])
            done[k] += 1

    done = run_threads(THREADS, target)
    assert done == [CALLS] * THREADS
    assert models.memory_report()["allocations_after_load"] >= 0
    call_align(models, cases["en_short"])


def test_two_models_in_one_process(cases):
    """An aligner-only and an ASR-only Models, each shared by two threads, interleaved; then one is
    closed and the other still answers."""
    a = qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", max_audio_seconds=30)
    b = qa.load_models(asr=f"{FIXTURES}/asr", aligner=f"{FIXTURES}/aligner-hf", device="cpu", max_audio_seconds=30)
    try:
        plan = [(a, call_logits), (a, call_align), (b, call_transcribe), (b, call_align)]
        names = list(cases)

        def target(k, done):
            for i in range(12):
                m, fn = plan[(i + k) % len(plan)]
                fn(m, cases[names[(i + 2 * k) % len(names)]])
                done[k] += 1

        assert run_threads(4, target) == [12] * 4
        a.close()
        with pytest.raises(qa.InputError, match="closed"):
            call_logits(a, cases["tiny"])
        call_align(b, cases["en_short"])
        call_transcribe(b, cases["tiny"])
    finally:
        a.close()
        b.close()


def test_close_waits_for_a_running_call(cases):
    """close() from another thread waits for the call in flight (which completes with the reference
    result); calls after it raise InputError instead of touching freed memory."""
    m = qa.load_models(asr=f"{FIXTURES}/asr", device="cpu")
    c = cases["en_short"]
    out, started = {}, threading.Event()

    def long_call():
        started.set()
        out["ids"] = m.asr_generate(c.feat, c.frames, npy("en_short", "asr_prompt_ids.npy"), 300, 300)[0]

    t = threading.Thread(target=long_call)
    t.start()
    started.wait()
    time.sleep(0.2)  # the call (about a second) is inside the engine now
    t0 = time.monotonic()
    m.close()
    waited = time.monotonic() - t0
    t.join()
    assert m.closed
    print(f"close() waited {waited:.2f} s for the running call")
    assert len(out["ids"]) == 300 and out["ids"][:12].tolist() == c.greedy
    with pytest.raises(qa.InputError, match="closed"):
        call_transcribe(m, c)


def test_reinit_waits_for_a_running_call(cases):
    """__init__ again on a live Models (a reload) waits for the call in flight instead of freeing the
    arena under it (this crashed the interpreter); a failed reload leaves it closed, a good one works."""
    m = qa.load_models(asr=f"{FIXTURES}/asr", device="cpu")
    c = cases["en_short"]
    out, started = {}, threading.Event()

    def long_call():
        started.set()
        out["ids"] = m.asr_generate(c.feat, c.frames, npy("en_short", "asr_prompt_ids.npy"), 300, 300)[0]

    t = threading.Thread(target=long_call)
    t.start()
    started.wait()
    time.sleep(0.2)
    try:
        with pytest.raises(qa.ModelLoadError):
            m.__init__(aligner=f"{FIXTURES}/asr")  # wrong kind: fails after the running call ended
        t.join()
        assert len(out["ids"]) == 300 and out["ids"][:12].tolist() == c.greedy
        assert m.closed
        m.__init__(asr=f"{FIXTURES}/asr")
        call_transcribe(m, cases["tiny"])
    finally:
        t.join()
        m.close()


def test_gil_is_released_during_compute(models, cases):
    """A pure-Python counter thread keeps running while the main thread is inside a long engine call."""
    c = cases["en_short"]
    stop, ticks = threading.Event(), [0]

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        before = ticks[0]
        models.asr_generate(c.feat, c.frames, npy("en_short", "asr_prompt_ids.npy"), 60, 60)
        during = ticks[0] - before
    finally:
        stop.set()
        t.join()
    print(f"{during} counter ticks during the engine call")
    assert during > 1000
