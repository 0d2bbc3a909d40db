"""Helpers shared by the engine parity tests: load a fixture model once, read a case's inputs."""
import functools
import os

import numpy as np

from conftest import FIXTURES, load_case, npy


@functools.lru_cache(maxsize=None)
def model(layout, dtype="float32"):
    """The C Models object for a fixture checkpoint folder (aligner*, asr*), cached per layout."""
    from qwen3align._qwen3align import Models

    path = os.path.join(FIXTURES, layout)
    if layout.startswith("aligner"):
        return Models(aligner=path, dtype=dtype)
    return Models(asr=path, dtype=dtype)


def features(case):
    """(input_features [128, padded frames] float32, valid mel frames) of a case."""
    return npy(case, "input_features.npy"), load_case(case)["mel_frames"]


def top2_margin(logits):
    """Per row: largest minus second largest logit (a near-tie lets the argmax differ)."""
    part = np.sort(np.asarray(logits, np.float64), axis=-1)
    return part[..., -1] - part[..., -2]
