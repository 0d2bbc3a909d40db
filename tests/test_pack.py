"""Packed aligner batches (issue #6): several clips in ONE forward (Models._align_pack) give each clip
the numbers of its own forward (and of the transformers 5.17 fixtures), fit the plan of the longest
single request without allocating, and Models.align_batch on one worker uses them with the results,
order, errors and Ctrl-C of align() called item by item. Fixture models, CPU."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import qwen3align as qa
from qwen3align import longaudio
from conftest import FIXTURES, assert_close_rel, load_case, npy
from engine_util import features, model

SR = 16000
ALIGNER, ASR = os.path.join(FIXTURES, "aligner"), os.path.join(FIXTURES, "asr")
# tiny: 50 frames (less than one 100-frame chunk); en_short 551 and punct_numbers 414 (a partial last
# chunk); zh_mixed 1480 and en_long 1635 (several 104-token attention windows)
CASES = ["en_short", "tiny", "zh_mixed", "en_long", "punct_numbers"]
PACKS = [["tiny", "en_short"], ["en_short", "tiny", "zh_mixed"], ["zh_mixed", "punct_numbers", "tiny", "en_long"],
         CASES, ["tiny", "tiny", "tiny"]]


def feature_clip(case):
    feat, frames = features(case)
    return feat, frames, npy(case, "aligner_input_ids.npy")


def split(rows, counts):
    return np.split(rows, np.cumsum(counts)[:-1])


@pytest.mark.parametrize("names", PACKS, ids=lambda p: "+".join(p))
def test_packed_logits_equal_single_forwards_and_the_reference(names):
    m = model("aligner")
    logits, counts = m._align_pack([feature_clip(c) for c in names], logits=True)
    assert counts.tolist() == [len(npy(c, "aligner_raw_classes.npy")) for c in names]
    classes, probs, counts2 = m._align_pack([feature_clip(c) for c in names])
    assert counts2.tolist() == counts.tolist() and len(classes) == len(probs) == counts.sum()
    for c, lg, cl, pr in zip(names, split(logits, counts), split(classes, counts), split(probs, counts)):
        single = m.aligner_logits(*feature_clip(c))
        assert_close_rel(lg, single, 1e-5, f"{c} packed vs single")
        assert_close_rel(lg, npy(c, "aligner_logits_at_timestamps.npy"), 1e-4, f"{c} packed vs reference")
        cls1, pr1 = m._align_forward(*feature_clip(c))
        assert cl.tolist() == cls1.tolist() == npy(c, "aligner_raw_classes.npy").tolist()
        np.testing.assert_allclose(pr, pr1, rtol=1e-5, atol=1e-7)


def test_packed_from_samples_equals_single_requests_from_samples():
    """(samples, ids) clips: the backend's log-mel per clip, then the same packed forward; features and
    samples may be mixed in one pack."""
    m = model("aligner")
    names = ["punct_numbers", "tiny", "en_short"]
    clips = [(npy(c, "audio16k.npy"), npy(c, "aligner_input_ids.npy")) for c in names]
    classes, probs, counts = m._align_pack(clips)
    for (x, ids), cl, pr in zip(clips, split(classes, counts), split(probs, counts)):
        cls1, pr1 = m._align_forward_audio(x, ids)
        assert cl.tolist() == cls1.tolist()
        np.testing.assert_allclose(pr, pr1, rtol=1e-5, atol=1e-7)
    mixed = [clips[0], feature_clip("zh_mixed"), clips[1]]
    lg, counts = m._align_pack(mixed, logits=True)
    parts = split(lg, counts)
    assert_close_rel(parts[1], npy("zh_mixed", "aligner_logits_at_timestamps.npy"), 1e-4, "zh_mixed in a mixed pack")
    assert_close_rel(parts[2], m.aligner_logits_from_audio(*clips[1]), 1e-5, "tiny from samples")


def test_bfloat16_packs_follow_bfloat16_single_forwards():
    m = model("aligner", "bfloat16")
    names = ["en_short", "tiny", "zh_mixed"]
    logits, counts = m._align_pack([feature_clip(c) for c in names], logits=True)
    for c, lg in zip(names, split(logits, counts)):
        assert_close_rel(lg, m.aligner_logits(*feature_clip(c)), 1e-3, f"{c} bf16 packed vs single")


def _prompt(frames, text):
    """An aligner prompt for `frames` valid frames with `text` ids after it, every other one a timestamp."""
    n = 13 * (frames // 100) + ((frames % 100) + 7) // 8  # 13 per chunk, three stride-2 convs of the rest
    return np.array([151669] + [151676] * n + [151670] + [151705 if i % 2 else 9707 for i in range(text)], np.int32)


def test_a_pack_filled_to_the_limits_fits_the_plan_and_allocates_nothing():
    from qwen3align._qwen3align import Models

    m = Models(aligner=ALIGNER, max_audio_seconds_aligner=4.0, max_text_tokens=40)
    lim = m._align_pack_limits()
    plan = m._plan()["models"]["aligner"]
    assert (lim["frames"], lim["audio_tokens"], lim["tokens"], lim["stamps"]) == (
        plan["mel_frames"], plan["audio_tokens"], plan["seq_tokens"], plan["text_tokens"])
    assert lim["chunks"] == -(-plan["mel_frames"] // 100) == 4
    rng = np.random.default_rng(3)
    # 4 clips of one chunk each: frames, chunks, audio tokens and prompt tokens exactly at the limits
    text = [lim["tokens"] // 4 - 15] * 4
    text[0] += lim["tokens"] - sum(15 + t for t in text)
    clips = [(rng.standard_normal((128, 100)).astype(np.float32), 100, _prompt(100, t)) for t in text]
    assert sum(len(c[2]) for c in clips) == lim["tokens"]
    _, counts = m._align_pack(clips, logits=True)
    assert counts.sum() == sum(t // 2 for t in text)
    # from samples: the most samples of 100 frames each, so the per-clip log-mel work is at its largest
    samples = [(0.1 * rng.standard_normal(100 * 160 + 159)).astype(np.float32) for _ in text]
    m._align_pack([(x, c[2]) for x, c in zip(samples, clips)])
    rep = m._memory_report()
    assert rep["allocations_after_load"] == 0, rep
    assert rep["regions_peak"]["workspace"] <= rep["regions"]["workspace"], rep
    # one over any total is refused before computing, naming it
    over = [(f, fr, ids) for f, fr, ids in clips] + [clips[0]]
    with pytest.raises(qa.InputError, match="pack of 5 clips has 500 mel frames in all, the plan .* allows 400"):
        m._align_pack(over)
    two = [(rng.standard_normal((128, 60)).astype(np.float32), 60, _prompt(60, 2))] * 5  # 300 frames, 5 chunks
    with pytest.raises(qa.InputError, match="5 100-frame chunks in all, .* allows 4"):
        m._align_pack(two)
    long_text = [clips[0], (clips[1][0], 100, _prompt(100, 75))]  # 25 + 90 ids > 94
    with pytest.raises(qa.InputError, match="prompt tokens in all"):
        m._align_pack(long_text)
    with pytest.raises(qa.InputError, match="clip 1 of the pack: .*audio_pad"):
        m._align_pack([clips[0], (clips[1][0], 100, _prompt(90, 4))])
    with pytest.raises(qa.InputError, match="a pack holds 1 to 256 clips, got 0"):
        m._align_pack([])
    with pytest.raises(qa.InputError, match=r"clips\[1\] must be a tuple"):
        m._align_pack([clips[0], [1, 2]])
    assert m._memory_report()["allocations_after_load"] == 0


# -- align_batch on one worker ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one():
    with qa.load_models(aligner=ALIGNER, asr=ASR, device="cpu", max_audio_seconds=20, max_new_tokens=24) as m:
        yield m


def clip(name, reps=1):
    return np.tile(npy(name, "audio16k.npy").astype(np.float32), reps)


def batch_items():
    """Short clips with a transcript or words, one without text (ASR first), one cut into chunks."""
    en, pn, zh = load_case("en_short"), load_case("punct_numbers"), load_case("zh_mixed")
    return [{"audio": clip("en_short"), "text": en["text"], "language": "English", "sample_rate": SR},
            {"audio": clip("punct_numbers"), "words": pn["words"], "sample_rate": SR},
            {"audio": (clip("tiny"), SR), "text": "ok"},
            {"audio": clip("en_short", 6), "words": en["words"] * 6, "sample_rate": SR},
            {"audio": clip("zh_mixed"), "words": zh["words"], "language": zh["language"], "sample_rate": SR},
            {"audio": clip("punct_numbers"), "sample_rate": SR},
            {"audio": clip("en_short", 2), "text": en["text"] + " " + en["text"], "sample_rate": SR}]


def one_by_one(m, its):
    return [m.align(it["audio"], it.get("text"), it.get("language"), words=it.get("words"),
                    sample_rate=it.get("sample_rate")) for it in its]


def assert_same_alignments(out, ref):
    assert len(out) == len(ref)
    for a, b in zip(out, ref):
        assert (a.text, a.language, a.warnings, a.duration, a.chunks) == (b.text, b.language, b.warnings, b.duration,
                                                                           b.chunks)
        assert [(i.text, i.start, i.end) for i in a] == [(i.text, i.start, i.end) for i in b]
        np.testing.assert_allclose([i.confidence for i in a], [i.confidence for i in b], rtol=1e-5, atol=1e-7)


def count_packs(m):
    """Record the sizes of m's _align_pack calls (an instance attribute over the method)."""
    sizes, orig = [], m._align_pack

    def call(clips, **kw):
        sizes.append(len(clips))
        return orig(clips, **kw)

    m._align_pack = call
    return sizes


def test_align_batch_packs_and_equals_align_item_by_item(one):
    its = batch_items()
    ticks = []
    sizes = count_packs(one)
    try:
        out = one.align_batch(its, progress=lambda *a: ticks.append(a))
    finally:
        del one._align_pack
    assert sizes and max(sizes) >= 3, sizes  # the short clips went through shared forwards
    assert_same_alignments(out, one_by_one(one, its))
    assert out[3].chunks is not None and out[2].items
    assert ticks == [("batch", k, len(its)) for k in range(len(its) + 1)]
    rep = one.memory_report()
    assert rep["allocations_after_load"] == 0 and rep["regions_peak"]["workspace"] <= rep["regions"]["workspace"]


def test_packs_follow_the_plan_limits(one):
    """20 s of audio per forward (max_audio_seconds=20): clips of 5.5 s go 3 to a pack."""
    en = load_case("en_short")
    its = [{"audio": clip("en_short"), "words": en["words"], "sample_rate": SR}] * 7
    sizes = count_packs(one)
    try:
        out = one.align_batch(its)
    finally:
        del one._align_pack
    assert sizes == [3, 3], sizes  # the 7th clip alone takes the plain forward
    assert_same_alignments(out, one_by_one(one, its[:1]) * 7)


def test_a_failing_pack_is_redone_one_by_one(one, monkeypatch):
    """When a pack's forward fails (here: limits beyond the plan, so the engine refuses the pack) the
    clips run one by one: the same results, or the first failing clip's own error."""
    its = [it for it in batch_items() if it.get("words") or it.get("text")][:3]
    limits = one._align_pack_limits()
    monkeypatch.setattr(one, "_align_pack_limits", lambda: {k: v * 10 for k, v in limits.items()}, raising=False)
    assert_same_alignments(one.align_batch(its * 3), one_by_one(one, its * 3))


def test_errors_are_those_of_the_first_failing_item(one):
    its = batch_items()[:3]
    klingon = {"audio": clip("tiny"), "text": "ok", "language": "Klingon", "sample_rate": SR}
    with pytest.raises(qa.InputError) as single:
        one_by_one(one, [klingon])
    with pytest.raises(qa.InputError) as batch:
        one.align_batch(its + [klingon] + its)
    assert str(batch.value) == str(single.value)
    no_words = {"audio": clip("tiny"), "words": [], "sample_rate": SR}
    with pytest.raises(qa.InputError, match="words=\\[\\] is empty"):
        one.align_batch([its[0], no_words, its[1], klingon])
    # too many words for the plan: the engine's own message, as align() raises it
    many = {"audio": clip("tiny"), "words": ["word"] * 300, "sample_rate": SR}
    with pytest.raises(qa.InputError) as single:
        one_by_one(one, [many])
    with pytest.raises(qa.InputError) as batch:
        one.align_batch([its[0], its[1], many, its[2]])
    assert str(batch.value) == str(single.value) and "max_text_tokens" in str(single.value)
    assert_same_alignments(one.align_batch(its), one_by_one(one, its))  # still usable
    assert not pack_threads()


def test_an_item_that_alone_exceeds_a_limit_keeps_the_single_path():
    """A clip over a pack total by itself (here the prompt tokens of max_text_tokens) runs as align()
    runs it, between the packs, in order."""
    with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=20, max_text_tokens=120) as m:
        en = load_case("en_short")
        short = {"audio": clip("en_short"), "words": en["words"], "sample_rate": SR}
        many = {"audio": clip("tiny"), "words": ["word"] * 70, "sample_rate": SR}  # 140 + ids > 120
        with pytest.raises(qa.InputError, match="max_text_tokens"):
            m.align_batch([short, short, many, short])
        its = [short, {"audio": clip("tiny"), "words": ["a", "b"], "sample_rate": SR}, short]
        assert_same_alignments(m.align_batch(its), one_by_one(m, its))


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="Python runs signal handlers on the main thread only")
def test_ctrl_c_stops_a_packed_batch_and_leaves_the_models_usable(one):
    en = load_case("en_short")
    its = [{"audio": clip("en_short"), "words": en["words"], "sample_rate": SR}] * 90  # 30 packs of 3
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            longaudio.align_batch(one, its)
    finally:
        timer.cancel()
        timer.join()
    assert time.monotonic() - t0 < 0.3 + 1.0
    assert not pack_threads()  # the forwards in flight were cancelled and joined
    lg = one.aligner_logits(*feature_clip("en_short"))
    assert_close_rel(lg, npy("en_short", "aligner_logits_at_timestamps.npy"), 1e-4, "after Ctrl-C")

    def stop(stage, done, total):  # a progress callback that raises stops the batch the same way
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        one.align_batch(its[:30], progress=stop)
    assert not pack_threads()
    assert_same_alignments(one.align_batch(its[:4]), one_by_one(one, its[:1]) * 4)


def pack_threads():
    return [t for t in threading.enumerate() if t.name == "qwen3align-pack"]
