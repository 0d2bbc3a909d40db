"""Audio tower parity: encoder + projector output against transformers 5.17 (aligner_audio_embeds.npy)."""
import numpy as np
import pytest

from conftest import CASES, assert_close_rel, load_case, npy
from engine_util import features, model

LAYOUTS = ["aligner", "aligner-hf"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_audio_embeddings_match_reference(layout, case):
    feat, frames = features(case)
    out = model(layout).audio_embeddings(feat, frames)
    ref = npy(case, "aligner_audio_embeds.npy")
    assert out.shape == (load_case(case)["n_audio_tokens"], ref.shape[1])
    assert_close_rel(out, ref, 1e-4, f"{layout}/{case} audio embeddings")


def test_bfloat16_storage_gives_same_embeddings():
    # the fixture weights are BF16 in the file, so BF16 storage converted per tile is lossless
    feat, frames = features("en_short")
    a = model("aligner").audio_embeddings(feat, frames)
    b = model("aligner", "bfloat16").audio_embeddings(feat, frames)
    assert_close_rel(b, a, 1e-6, "bf16 vs f32 storage")


def test_features_validation():
    from qwen3align import InputError

    feat, frames = features("en_short")
    m = model("aligner")
    with pytest.raises(InputError, match="mel bins"):
        m.audio_embeddings(feat[:64], frames)
    with pytest.raises(InputError, match="valid_frames"):
        m.audio_embeddings(feat, feat.shape[1] + 1)
    with pytest.raises(InputError, match="valid_frames"):
        m.audio_embeddings(feat, 0)
    with pytest.raises(InputError, match="2-D"):
        m.audio_embeddings(feat[0], frames)
    with pytest.raises(InputError, match="model must be"):
        m.audio_embeddings(feat, frames, model="whisper")
    with pytest.raises(InputError, match="no asr model"):
        m.audio_embeddings(feat, frames, model="asr")


def test_audio_beyond_plan_limit_names_it():
    from qwen3align import InputError
    from qwen3align._qwen3align import Models

    from conftest import FIXTURES

    m = Models(aligner=f"{FIXTURES}/aligner", max_audio_seconds_aligner=2.0)
    feat, frames = features("en_short")  # 5.5 s
    with pytest.raises(InputError, match="max_audio_seconds"):
        m.audio_embeddings(feat, frames)
    out = m.audio_embeddings(feat[:, :200], 200)  # 2 s fits
    assert out.shape[0] == 26 and np.isfinite(out).all()
