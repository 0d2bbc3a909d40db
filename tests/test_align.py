"""Aligner forward parity: raw argmax classes identical to transformers 5.17 (rows with a reference top-2
margin below 1e-4 are allowed to differ), and the confidence is the softmax probability of the class."""
import numpy as np
import pytest

from conftest import CASES, npy
from engine_util import features, model, top2_margin

LAYOUTS = ["aligner", "aligner-hf"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_raw_classes_identical(layout, case):
    feat, frames = features(case)
    classes, probs = model(layout)._align_forward(feat, frames, npy(case, "aligner_input_ids.npy"))
    ref = npy(case, "aligner_raw_classes.npy")
    ref_logits = npy(case, "aligner_logits_at_timestamps.npy")
    assert classes.dtype == np.int32 and classes.shape == ref.shape
    differ = np.nonzero(classes != ref)[0]
    near_tie = top2_margin(ref_logits)[differ] < 1e-4
    print(f"{layout}/{case}: {len(differ)} of {len(ref)} classes differ")
    assert near_tie.all(), f"classes differ at rows {differ[~near_tie].tolist()}"
    # confidence = softmax(reference logits)[class], computed here in float64 from the reference
    x = ref_logits.astype(np.float64)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, p[np.arange(len(ref)), ref], rtol=1e-4, atol=1e-7)


def test_asr_model_is_not_an_aligner():
    from qwen3align import InputError

    feat, frames = features("tiny")
    with pytest.raises(InputError, match="aligner"):
        model("asr").aligner_logits(feat, frames, npy("tiny", "aligner_input_ids.npy"))
