"""The aligner's non-finite-sample check runs in the upload (pipeline/inputs.h scan_at_upload: one pass over
the samples instead of a validation pass and a copy): its errors must be those of the check it replaced,
in the same order against every other check — the first non-finite sample named, before an id or plan
error of the same clip, and a pack's earlier clip before a later clip's error or the pack's totals."""
import numpy as np
import pytest

import qwen3align as qa
from conftest import FIXTURES, npy
from engine_util import model

TS = 151705


def clip(case, bad_at=None, value=np.nan):
    x = np.array(npy(case, "audio16k.npy"), np.float32)
    if bad_at is not None:
        x[bad_at] = value
    return x, npy(case, "aligner_input_ids.npy").astype(np.int32)


def test_a_non_finite_sample_anywhere_is_named_by_the_upload():
    """Samples are scanned in chunks of 262,144 (1 MiB): in the first, at both sides of a chunk edge, last."""
    m = model("aligner")
    tok = qa.Tokenizer(f"{FIXTURES}/aligner")
    x = (0.1 * np.random.default_rng(3).standard_normal(20 * 16000)).astype(np.float32)
    ids = np.array(qa.aligner_prompt_ids(tok, ["one", "two"], qa.audio_token_count(len(x) // 160)), np.int32)
    n = len(x)
    for at, value, word in ((0, np.nan, "NaN"), (262143, np.inf, "infinite"), (262144, -np.inf, "infinite"),
                            (n - 1, np.nan, "NaN")):
        y = x.copy()
        y[at] = value
        for call in (m._align_forward_audio, m.aligner_logits_from_audio):
            with pytest.raises(qa.AudioError, match=f"sample {at} is {word}; audio must be finite"):
                call(y, ids)
    # and the models stay usable, with the results of before
    np.testing.assert_array_equal(m._align_forward_audio(x, ids)[0], m._align_forward_audio(x.copy(), ids)[0])


def test_the_samples_come_before_the_prompt_checks():
    m = model("aligner")
    x, ids = clip("en_short", bad_at=5)
    bad_id, no_ts, long_ids = ids.copy(), ids[ids != TS], np.concatenate([ids] * 400)
    bad_id[-1] = 10**7
    pads = ids[ids != 151676]
    for wrong in (bad_id, no_ts, long_ids, pads):
        with pytest.raises(qa.AudioError, match="sample 5 is NaN"):
            m._align_forward_audio(x, wrong)
    # the frame limit came first before the deferral too
    with pytest.raises(qa.InputError, match="max_audio_seconds"):
        m._align_forward_audio(np.full(16000 * 400, np.nan, np.float32), ids)


def test_a_pack_names_its_first_non_finite_clip_in_order():
    m = model("aligner")
    good, bad = clip("tiny"), clip("tiny", bad_at=7)
    _, no_ts = clip("en_short")
    no_ts = (clip("en_short")[0], no_ts[no_ts != TS])
    with pytest.raises(qa.AudioError, match="clip 1 of the pack: log_mel: sample 7 is NaN"):
        m._align_pack([good, bad, good])  # found by the upload of clip 1
    with pytest.raises(qa.AudioError, match="clip 1 of the pack: log_mel: sample 7 is NaN"):
        m._align_pack([good, bad, no_ts])  # before clip 2's prompt error
    with pytest.raises(qa.InputError, match="clip 1 of the pack: input_ids contain no <timestamp>"):
        m._align_pack([good, no_ts, bad])  # clip 1's error came first
    with pytest.raises(qa.AudioError, match="clip 2 of the pack: log_mel: sample 7 is NaN"):
        m._align_pack([good, good, bad, (bad[0], no_ts[1])])
    big = clip("en_long")
    with pytest.raises(qa.InputError, match="a pack of"):  # the pack's totals, all clips finite
        m._align_pack([big] * 40)
    with pytest.raises(qa.AudioError, match="clip 3 of the pack: log_mel: sample 7 is NaN"):
        m._align_pack([big] * 3 + [bad] + [big] * 36)
