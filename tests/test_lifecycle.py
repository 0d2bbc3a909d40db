"""Lifecycle: load/close in a loop leaves the process RSS at its baseline (measured from /proc/self/statm
after gc), close() returns the arena at once, dropping a Models without close() frees it too, and
close() twice / context managers / use after close behave. Every loaded Models answers with the
transformers 5.17 reference (fixtures) before it is closed."""
import ctypes
import gc
import os

import pytest

from conftest import FIXTURES, load_case, npy, rel_err
import qwen3align as qa
from qwen3align._qwen3align import Models as CModels

pytestmark = pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                                reason="AddressSanitizer's quarantine keeps freed memory resident; RSS says nothing")

ALIGNER, ASR = f"{FIXTURES}/aligner", f"{FIXTURES}/asr"
TINY = load_case("tiny")
FEAT, IDS = npy("tiny", "input_features.npy"), npy("tiny", "aligner_input_ids.npy")
REF = npy("tiny", "aligner_logits_at_timestamps.npy")
MB = 1024 * 1024


def _malloc_trim():
    """glibc keeps freed heap pages for reuse (and raises its mmap threshold after a large free), so
    RSS after free() depends on the allocation history; malloc_trim(0) hands them back, making RSS
    measure memory in use. Without it a leak-free loop showed +40 MiB in one order of tests."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS is what it is
        pass


def rss_bytes():
    gc.collect()
    _malloc_trim()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def check(m):
    r = rel_err(m.aligner_logits(FEAT, TINY["mel_frames"], IDS), REF)
    assert r <= 1e-4, f"tiny logits rel err {r:.2e}"


def cycles(n, make):
    for _ in range(n):
        m = make()
        check(m)
        m.close()


def test_load_close_100_times_rss_back():
    """100 cycles of the engine's load (configs, mmapped weights, converted into one arena, a request,
    close) plus 10 of the public load_models (with both tokenizers) keep RSS at the baseline."""
    def engine():
        return CModels(aligner=ALIGNER, asr=ASR, max_audio_seconds_aligner=30, max_audio_seconds_asr=30,
                       max_new_tokens=64)

    def public():
        return qa.load_models(aligner=ALIGNER, asr=ASR, device="cpu", max_audio_seconds=30, max_new_tokens=64)

    cycles(5, engine)
    cycles(2, public)
    before = rss_bytes()
    cycles(100, engine)
    mid = rss_bytes()
    cycles(10, public)
    after = rss_bytes()
    print(f"RSS: baseline {before / MB:.1f} MiB, after 100 engine cycles {(mid - before) / MB:+.2f} MiB, "
          f"after 10 public cycles {(after - before) / MB:+.2f} MiB")
    assert mid - before < 3 * MB
    assert after - before < 3 * MB


def test_close_returns_the_arena_at_once():
    cycles(1, lambda: qa.load_models(aligner=ALIGNER, device="cpu"))  # warm caches
    before = rss_bytes()
    m = qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=300)
    arena = m.memory_report()["arena_bytes"]
    check(m)
    m.align(npy("en_long", "audio16k.npy"), words=load_case("en_long")["words"], sample_rate=16000)
    loaded = rss_bytes()
    m.close()
    closed = rss_bytes()
    print(f"arena {arena / MB:.1f} MiB; RSS loaded {(loaded - before) / MB:+.1f} MiB, "
          f"closed {(closed - before) / MB:+.1f} MiB")
    assert loaded - before > 10 * MB  # the weights (converted to float32) at least are resident
    assert closed - before < 3 * MB


def test_dropping_without_close_frees():
    cycles(1, lambda: qa.load_models(aligner=ALIGNER, device="cpu"))
    before = rss_bytes()
    for _ in range(10):
        m = qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=30)
        check(m)
        del m
    grown = rss_bytes() - before
    print(f"RSS after 10 dropped Models: {grown / MB:+.2f} MiB")
    assert grown < 3 * MB


def test_close_twice_context_manager_and_use_after_close():
    m = qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=30)
    assert not m.closed and "closed" not in repr(m)
    m.close()
    m.close()  # harmless
    assert m.closed and repr(m) == "<qwen3align.Models closed>"
    with pytest.raises(qa.InputError, match="closed"):
        check(m)
    with pytest.raises(qa.InputError, match="closed"):
        with m:
            pass
    with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=30) as m2:
        check(m2)
    assert m2.closed
    with pytest.raises(RuntimeError, match="boom"):
        with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=30) as m3:
            check(m3)
            raise RuntimeError("boom")
    assert m3.closed


def test_failed_loads_between_good_ones():
    """A failing load (bad folder, OOM) does not disturb a live Models nor the next load."""
    with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=30) as live:
        with pytest.raises(qa.ModelLoadError):
            qa.load_models(aligner=ASR, device="cpu")
        with pytest.raises(qa.OutOfMemoryError):
            qa.load_models(aligner=ALIGNER, device="cpu", max_device_bytes=4096)
        check(live)
        with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=30) as again:
            check(again)
        check(live)


def test_identical_tokenizer_files_load_one_tokenizer():
    """The aligner and ASR checkpoints ship the same tokenizer files: one instance serves both."""
    with qa.load_models(aligner=ALIGNER, asr=ASR, device="cpu") as m:
        assert m.tokenizers["aligner"] is m.tokenizers["asr"]
        assert m.tokenizers["asr"].encode("hello world") == m.tokenizers["aligner"].encode("hello world")
