"""Text model parity: aligner logits at <timestamp> rows (audio tower + Qwen3 layers + final norm + score
head) against transformers 5.17, and input validation of the prompt ids."""
import numpy as np
import pytest

from conftest import CASES, assert_close_rel, npy
from engine_util import features, model

LAYOUTS = ["aligner", "aligner-hf"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_aligner_logits_match_reference(layout, case):
    feat, frames = features(case)
    ids = npy(case, "aligner_input_ids.npy")
    out = model(layout).aligner_logits(feat, frames, ids)
    assert_close_rel(out, npy(case, "aligner_logits_at_timestamps.npy"), 1e-4, f"{layout}/{case} logits")


def test_ids_any_integer_dtype():
    feat, frames = features("tiny")
    ids = npy("tiny", "aligner_input_ids.npy")
    a = model("aligner").aligner_logits(feat, frames, ids.astype(np.int64))
    b = model("aligner").aligner_logits(feat, frames, list(ids))
    np.testing.assert_array_equal(a, b)


def test_prompt_validation():
    from qwen3align import InputError

    feat, frames = features("en_short")
    ids = npy("en_short", "aligner_input_ids.npy")
    m = model("aligner")
    with pytest.raises(InputError, match="audio_pad"):
        m.aligner_logits(feat, frames - 100, ids)  # 4.5 s of frames, prompt made for 5.5 s
    with pytest.raises(InputError, match="vocabulary"):
        bad = ids.copy()
        bad[-3] = 10**6
        m.aligner_logits(feat, frames, bad)
    with pytest.raises(InputError, match="not a token id"):
        m.aligner_logits(feat, frames, np.r_[ids, -1])
    with pytest.raises(InputError, match="integer"):
        m.aligner_logits(feat, frames, ids.astype(np.float32))
    with pytest.raises(InputError, match="timestamp"):
        m.aligner_logits(feat, frames, ids[ids != 151705])
