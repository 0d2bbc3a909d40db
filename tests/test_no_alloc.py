"""After load, requests take memory only from the arena: the host allocation counter does not move, and
the workspace peak of a request at the plan's limits is exactly what the plan computed."""
import numpy as np
import pytest

from conftest import FIXTURES, npy
from engine_util import features


def test_requests_allocate_nothing_after_load():
    from qwen3align._qwen3align import Models

    m = Models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr")
    for case in ("en_short", "tiny", "zh_mixed"):
        feat, frames = features(case)
        m.audio_embeddings(feat, frames)
        m.aligner_logits(feat, frames, npy(case, "aligner_input_ids.npy"))
        m._align_forward(feat, frames, npy(case, "aligner_input_ids.npy"))
        m.asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), 12, 12)
    rep = m._memory_report()
    assert rep["allocations_after_load"] == 0, rep
    assert rep["regions_peak"]["workspace"] <= rep["regions"]["workspace"]


def _audio_prompt(cfg, frames, extra):
    """An aligner-style prompt for `frames` valid frames with `extra` text ids (half timestamps)."""
    n13 = 13 * (frames // 100) + ((frames % 100) + 7) // 8
    text = [151705 if i % 2 else 9707 for i in range(extra)]
    return np.array([151669] + [151676] * n13 + [151670] + text, np.int32)


def _limit_samples(frames):
    """Random audio of frames * 160 + 159 samples: the longest clip with `frames` mel frames."""
    return (0.1 * np.random.default_rng(2).standard_normal(frames * 160 + 159)).astype(np.float32)


def test_workspace_peak_equals_plan_at_the_limits():
    from qwen3align._qwen3align import Models

    m = Models(aligner=f"{FIXTURES}/aligner", max_audio_seconds_aligner=4.0, max_text_tokens=40)
    plan = m._plan()["models"]["aligner"]
    frames = plan["mel_frames"]
    ids = _audio_prompt(None, frames, plan["text_tokens"])
    assert len(ids) == plan["seq_tokens"]
    feat = np.random.default_rng(0).standard_normal((128, frames)).astype(np.float32)
    m._align_forward(feat, frames, ids)
    # from samples: the most samples that still give `frames` (the plan's qa_plan_workspace_mel); with
    # these tiny models the samples + log_mel work outweigh the audio tower, so this request is the peak
    m._align_forward_audio(_limit_samples(frames), ids)
    rep = m._memory_report()
    assert rep["regions_peak"]["workspace"] == rep["regions"]["workspace"], rep


def test_asr_workspace_peak_equals_plan_at_the_limits():
    from qwen3align._qwen3align import Models

    m = Models(asr=f"{FIXTURES}/asr", max_audio_seconds_asr=3.0, max_new_tokens=4, max_text_tokens=20)
    plan = m._plan()["models"]["asr"]
    frames = plan["mel_frames"]
    n_audio = plan["audio_tokens"]
    ids = np.array([151644, 8948, 198] + [151676] * n_audio + [198] * (plan["seq_tokens"] - n_audio - 3), np.int32)
    feat = np.random.default_rng(1).standard_normal((128, frames)).astype(np.float32)
    out, first = m.asr_generate(feat, frames, ids, 4, 4)
    assert len(out) == 4 and first.shape == (152064,)
    out, first = m.asr_generate_from_audio(_limit_samples(frames), ids, 4, 4)
    assert len(out) == 4 and first.shape == (152064,)
    rep = m._memory_report()
    assert rep["regions_peak"]["workspace"] == rep["regions"]["workspace"], rep
    assert rep["allocations_after_load"] == 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_asr_decoder_peak_equals_plan_with_a_long_prompt(dtype):
    """A short clip with a long text context makes the decoder's prefill the workspace peak (q, the attention
    output holding the k / v projections; K / V go to the cache of the compute dtype): planned == used."""
    from qwen3align._qwen3align import Models

    m = Models(asr=f"{FIXTURES}/asr", max_audio_seconds_asr=0.5, max_new_tokens=2, max_text_tokens=3000,
               dtype=dtype)
    plan = m._plan()["models"]["asr"]
    frames, n_audio = plan["mel_frames"], plan["audio_tokens"]
    ids = np.array([151644, 8948, 198] + [151676] * n_audio + [198] * (plan["seq_tokens"] - n_audio - 3), np.int32)
    feat = np.random.default_rng(3).standard_normal((128, frames)).astype(np.float32)
    out, _ = m.asr_generate(feat, frames, ids, 2, 2)
    assert len(out) == 2
    rep = m._memory_report()
    assert rep["regions_peak"]["workspace"] == rep["regions"]["workspace"], rep
    m.close()


def test_scoped_counter_sees_an_engine_allocation():
    """The counter behind allocations_after_load is live: one allocation in an engine scope moves it."""
    from qwen3align import _qwen3align as C

    assert C._alloc_scope_probe() == 1


def test_public_align_and_transcribe_allocate_nothing_after_load():
    """100 mixed align/transcribe calls of different lengths through the public API: the engine
    takes every buffer from the arena (the frontend's input-sized buffers are outside its scope)."""
    import qwen3align as qa
    from conftest import load_case

    cases = ["en_short", "tiny", "zh_mixed", "punct_numbers", "en_long"]
    audio = {c: npy(c, "audio16k.npy") for c in cases}
    with qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu",
                        max_audio_seconds=30, max_new_tokens=16) as m:
        before = m.memory_report()
        for i in range(100):
            c = cases[i % len(cases)]
            if i % 4 == 3:
                m.transcribe((audio[c], 16000), max_new_tokens=4)
            else:
                exp = load_case(c)
                m.align((audio[c], 16000), words=exp["words"], language=exp["language"])
        after = m.memory_report()
    assert before["allocations_after_load"] == 0
    assert after["allocations_after_load"] == 0, after
    assert after["arena_bytes"] == before["arena_bytes"]


def test_warm_up_ladder_stays_inside_any_plan():
    """The CUDA warm-up (qwen3align/models.py _warm_up: requests of every size bucket) clips its rungs to
    the plan: it runs on plans far smaller and larger than its rungs, allocates nothing, and its largest
    aligner prompt fills the plan's sequence exactly (so the largest GEMM bucket the plan allows is seen)."""
    import qwen3align as qa
    from qwen3align.models import _warm_up, _warm_up_ids

    for limits in ({"max_audio_seconds": 0.5, "max_text_tokens": 8}, {"max_audio_seconds": 7},
                   {"max_audio_seconds": 200, "max_new_tokens": 4}):
        m = qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu", **limits)
        _warm_up(m, m.tokenizers)
        assert m.memory_report()["allocations_after_load"] == 0
        plan = m._plan()
        seq = plan["models"]["aligner"]["seq_tokens"]
        n_audio = plan["models"]["aligner"]["audio_tokens"]
        ids = _warm_up_ids(m.tokenizers["aligner"], n_audio, None, plan)
        assert seq - 3 <= len(ids) <= seq, (limits, len(ids), seq)
        m.close()


@pytest.mark.parametrize("table", ["new", "old"])
def test_warm_up_visits_every_reachable_bucket(monkeypatch, table):
    """Issue 6: for plans of many sizes, the warm-up's requests give every varying GEMM dimension each bucket
    (csrc/backend/cuda_mm_buckets.h, as QA_CUDA_MM_BUCKETS selects) that a request within the plan can reach:
    encoder rows (audio tokens), conv_out rows (16-chunk tiles of 13), decoder rows (prompt ids) and the
    aligner head's <timestamp> rows; and nothing past the plan."""
    import qwen3align as qa
    from qwen3align import _qwen3align
    from qwen3align.frontend import audio_token_count
    from qwen3align.models import _bucket, _most_words, _warm_up_requests

    monkeypatch.setenv("QA_CUDA_MM_BUCKETS", table)
    bounds = _qwen3align._cuda_gemm_buckets()
    assert (len(bounds) == 15) == (table == "new") and bounds == tuple(sorted(bounds))
    tok = qa.Tokenizer(f"{FIXTURES}/aligner")

    def span(lo, hi):
        return set(range(_bucket(bounds, lo), _bucket(bounds, hi) + 1))

    for kind in ("aligner", "asr"):
        for secs in (0.5, 7, 33, 120, 300):
            plan = _qwen3align._plan(**{kind: f"{FIXTURES}/{kind}"}, **{f"max_audio_seconds_{kind}": secs})
            pm = plan["models"][kind]
            reqs = _warm_up_requests(kind, tok, plan, bounds)
            seen = {d: set() for d in ("enc", "conv", "dec", "head")}
            for samples, ids in reqs:
                frames = max(samples, 8000) // 160
                n = audio_token_count(frames)
                assert samples <= 16000 * secs + 1 and int((ids == 151676).sum()) == n
                assert len(ids) <= pm["seq_tokens"]
                chunks = (frames + 99) // 100
                seen["enc"].add(_bucket(bounds, n))
                seen["conv"] |= {_bucket(bounds, 13 * g) for g in [16] * (chunks // 16) + [chunks % 16] if g}
                seen["dec"].add(_bucket(bounds, len(ids)))
                if kind == "aligner":
                    ts = int((ids == 151705).sum())
                    assert ts <= pm["text_tokens"]
                    seen["head"].add(_bucket(bounds, ts))
            chunks = (pm["mel_frames"] + 99) // 100
            want = {"enc": span(7, pm["audio_tokens"]), "conv": span(13, 13 * min(16, chunks)),
                    "dec": span(min(len(ids) for _, ids in reqs), pm["seq_tokens"])}
            if kind == "aligner":
                want["head"] = span(2, 2 * _most_words(tok, 7, plan))
            for d, w in want.items():
                assert seen[d] == w, (kind, secs, d, sorted(seen[d]), sorted(w))
