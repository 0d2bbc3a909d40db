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


def generate_twice(m, runs):
    """For each (case, max_new, min_new) of runs: m.asr_generate's ids and first logits, run twice (the second replays
    the recording) and required equal; returned as {"ids<i>": ids, "first<i>": first}."""
    out = {}
    for i, (case, max_new, min_new) in enumerate(runs):
        feat, frames = features(case)
        ids, first = m.asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), max_new, min_new)
        ids2, first2 = m.asr_generate(feat, frames, npy(case, "asr_prompt_ids.npy"), max_new, min_new)  # replayed
        assert ids.tolist() == ids2.tolist() and (first == first2).all(), (case, max_new, min_new)
        out[f"ids{i}"], out[f"first{i}"] = ids, first
    return out


def mixed_request(m, rng, i, secs, max_new):
    """Request i of a mixed sequence on a loaded Models: secs of noise at 16 kHz, every third one transcribed
    (1 to max_new - 1 new tokens), the others aligned with up to 3 words a second."""
    audio = (rng.standard_normal(int(secs * 16000)) * 0.1).astype(np.float32)
    if i % 3 == 2:
        m.transcribe(audio, sample_rate=16000, max_new_tokens=int(rng.integers(1, max_new)))
    else:
        words = ["w%d" % j for j in range(int(rng.integers(1, max(2, 3 * secs))))]
        m.align(audio, words=words, language="English", sample_rate=16000)


def top2_margin(logits):
    """Per row: largest minus second largest logit (a near-tie lets the argmax differ)."""
    part = np.sort(np.asarray(logits, np.float64), axis=-1)
    return part[..., -1] - part[..., -2]


def eos_checkpoint(dst, token, eos=151643, scale=4.0):
    """A copy of the fixture ASR checkpoint in dst that stops early: the <|endoftext|> row of the tied
    embedding / lm_head becomes scale x the row of `token`, so EOS wins at the steps where that token's
    logit is large (the random fixture never picks EOS by itself). <|endoftext|> is never an input, so
    nothing else changes. Returns the folder."""
    from safetensors_util import copy_fixture, load_all, write_tensors

    folder = copy_fixture(os.path.join(FIXTURES, "asr"), dst)
    path = os.path.join(folder, "model.safetensors")
    tensors = load_all(path)
    name = "thinker.model.embed_tokens.weight"
    dtype, shape, raw = tensors[name]
    assert dtype == "BF16"
    table = np.frombuffer(raw, "<u2").reshape(shape).copy()
    row = (table[int(token)].astype(np.uint32) << 16).view(np.float32) * np.float32(scale)  # exact: a power of 2
    table[eos] = (row.view(np.uint32) >> 16).astype(np.uint16)
    tensors[name] = (dtype, shape, table.tobytes())
    write_tensors(path, tensors)
    return folder
