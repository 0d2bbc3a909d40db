"""Ctrl-C during long engine calls: SIGINT sent ~0.3 s into a call raises KeyboardInterrupt within about
a second (the engine polls a cancellation hook between layers and decode steps while the GIL is
released), and the next call on the same Models gives the reference result (transformers 5.17
fixtures). Also: a thread waiting for a Models busy in another thread is interruptible, and the
long-audio chunk loop stops."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from conftest import FIXTURES, assert_close_rel, load_case, npy
import qwen3align as qa

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="Python runs signal handlers on the main thread only")

DELAY = 0.3   # seconds into the call when SIGINT arrives
BOUND = 1.0   # KeyboardInterrupt must follow the signal within this


@pytest.fixture(scope="module")
def models():
    with qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu") as m:
        yield m


def interrupted(call):
    """Run call() with SIGINT sent after DELAY; return the seconds from signal to KeyboardInterrupt."""
    sent = []

    def fire():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(DELAY, fire)
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
        timer.join()
    end = time.monotonic()
    assert sent, f"the call ended after {end - t0:.2f} s, before the signal: make it longer"
    took = end - sent[0]
    print(f"KeyboardInterrupt {took * 1000:.0f} ms after SIGINT")
    assert took < BOUND, f"KeyboardInterrupt came {took:.2f} s after SIGINT"
    return took


def check_reference(m):
    """The Models still answers like transformers: aligner logits and 12 greedy ASR tokens."""
    exp = load_case("en_short")
    logits = m.aligner_logits(npy("en_short", "input_features.npy"), exp["mel_frames"],
                              npy("en_short", "aligner_input_ids.npy"))
    assert_close_rel(logits, npy("en_short", "aligner_logits_at_timestamps.npy"), 1e-4, "logits after interrupt")
    ids, _ = m.asr_generate(npy("en_short", "input_features.npy"), exp["mel_frames"],
                            npy("en_short", "asr_prompt_ids.npy"), 12, 12)
    assert ids.tolist() == npy("en_short", "asr_greedy_ids.npy").tolist()


def test_interrupt_long_transcribe(models):
    a16 = npy("en_short", "audio16k.npy")
    # 1024 forced tokens take several seconds on the fixture ASR
    feat, frames = qa.log_mel(a16)
    prompt = npy("en_short", "asr_prompt_ids.npy")
    interrupted(lambda: models.asr_generate(feat, frames, prompt, 1024, 1024))
    check_reference(models)
    interrupted(lambda: models.transcribe(a16, sample_rate=16000, max_new_tokens=1024))
    check_reference(models)


def test_interrupt_long_align(models):
    # one aligner forward over ~5 minutes of audio and 1,100 words (several seconds, no chunking)
    exp = load_case("en_short")
    audio = np.tile(npy("en_short", "audio16k.npy"), 55)[: 16000 * 299]
    interrupted(lambda: models.align(audio, words=exp["words"] * 100, sample_rate=16000))
    check_reference(models)
    res = models.align(npy("en_short", "audio16k.npy"), words=exp["words"], sample_rate=16000)
    assert [(it.text, it.start, it.end) for it in res] == [(r["text"], r["start"], r["end"]) for r in exp["items"]]


def test_interrupt_while_waiting_for_a_busy_models(models):
    """The main thread queued behind a worker's long call still answers Ctrl-C; the worker finishes."""
    feat, frames = npy("en_short", "input_features.npy"), load_case("en_short")["mel_frames"]
    prompt = npy("en_short", "asr_prompt_ids.npy")
    out = {}

    def worker():
        out["ids"] = models.asr_generate(feat, frames, prompt, 400, 400)[0]

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.05)
    try:
        interrupted(lambda: models.asr_generate(feat, frames, prompt, 12, 12))
    finally:
        t.join()
    ref = npy("en_short", "asr_greedy_ids.npy").tolist()
    assert len(out["ids"]) == 400 and out["ids"][:12].tolist() == ref  # the worker was not disturbed
    check_reference(models)


def test_interrupt_long_audio_chunks():
    """The long-audio driver (chunks of at most max_audio_seconds) stops on Ctrl-C, then works again."""
    from qwen3align import longaudio

    with qa.load_models(asr=f"{FIXTURES}/asr", device="cpu", max_audio_seconds=10, max_new_tokens=256) as m:
        audio = np.tile(npy("en_short", "audio16k.npy"), 8)  # 44 s -> several chunks of many tokens each
        interrupted(lambda: longaudio.transcribe(m, audio, sample_rate=16000, language="English"))
        exp = load_case("tiny")
        t = m.transcribe(npy("tiny", "audio16k.npy"), sample_rate=16000, language=exp["asr_language"],
                         context=exp["asr_context"], max_new_tokens=12)
        assert list(t.tokens) == npy("tiny", "asr_greedy_ids.npy").tolist()[: len(t.tokens)]


def test_other_signal_handlers_run_during_a_call(models):
    """Python signal handlers run while the engine computes: one that raises (a timeout via SIGALRM)
    stops the call with its own exception; one that returns lets the call finish with the reference."""
    feat, frames = npy("en_short", "input_features.npy"), load_case("en_short")["mel_frames"]
    prompt = npy("en_short", "asr_prompt_ids.npy")

    def timeout(signum, frame):
        raise TimeoutError("request took too long")

    old = signal.signal(signal.SIGALRM, timeout)
    try:
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, DELAY)
        with pytest.raises(TimeoutError, match="too long"):
            models.asr_generate(feat, frames, prompt, 1024, 1024)
        assert time.monotonic() - t0 < DELAY + BOUND
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

    seen = []
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(time.monotonic()))
    try:
        timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        timer.start()
        ids, _ = models.asr_generate(feat, frames, prompt, 300, 300)
        done = time.monotonic()
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert seen and seen[0] < done, "the handler should run inside the call, not after it"
    assert len(ids) == 300 and ids[:12].tolist() == npy("en_short", "asr_greedy_ids.npy").tolist()
    check_reference(models)
