"""Prompt ids (csrc/frontend/prompts.c) against each case's aligner_input_ids.npy / asr_prompt_ids.npy,
and the audio token count against expected.json and the examples of MODEL_FACTS §4."""
import os

import pytest

import qwen3align as qa
from conftest import CASES, FIXTURES, load_case, npy

AUDIO_START, AUDIO_PAD, AUDIO_END, TIMESTAMP = 151669, 151676, 151670, 151705


@pytest.fixture(scope="module")
def tok():
    return qa.Tokenizer(os.path.join(FIXTURES, "asr"))


@pytest.mark.parametrize("name", CASES)
def test_audio_token_count_of_cases(name):
    case = load_case(name)
    assert qa.audio_token_count(case["mel_frames"]) == case["n_audio_tokens"]


@pytest.mark.parametrize("frames,tokens", [
    (50, 7), (100, 13), (800, 104), (1500, 195), (3000, 390), (18000, 2340), (30000, 3900),
    (3009, 392), (8932, 1161), (17630, 2292), (0, 0), (1, 1), (8, 1), (9, 2), (99, 13), (101, 14),
])
def test_audio_token_count_examples(frames, tokens):
    # MODEL_FACTS §4: 13 per full 100-frame chunk + ceil(rest / 8); [GOLD] 30.092 s -> 392, 8932 -> 1161.
    assert qa.audio_token_count(frames) == tokens


@pytest.mark.parametrize("name", CASES)
def test_aligner_prompt_matches_reference(tok, name):
    case = load_case(name)
    ids = qa.aligner_prompt_ids(tok, case["words"], case["n_audio_tokens"])
    assert ids == npy(name, "aligner_input_ids.npy").tolist()
    assert ids.count(TIMESTAMP) == 2 * len(case["words"])
    assert ids.count(AUDIO_PAD) == case["n_audio_tokens"]


@pytest.mark.parametrize("name", CASES)
def test_asr_prompt_matches_reference(tok, name):
    case = load_case(name)
    ids = qa.asr_prompt_ids(tok, case["n_audio_tokens"], case["asr_language"], case["asr_context"])
    assert ids == npy(name, "asr_prompt_ids.npy").tolist()


def test_asr_prompt_structure_and_codes(tok):
    # MODEL_FACTS §8.1: empty-context prefix and suffix ids
    ids = qa.asr_prompt_ids(tok, 3)
    assert ids == [151644, 8948, 198, 151645, 198, 151644, 872, 198, 151669] + [AUDIO_PAD] * 3 + \
        [151670, 151645, 198, 151644, 77091, 198]
    forced = qa.asr_prompt_ids(tok, 3, "English")
    assert forced[:len(ids)] == ids and forced[-1] == 151704
    assert qa.asr_prompt_ids(tok, 3, "en") == forced == qa.asr_prompt_ids(tok, 3, "ENGLISH")
    assert qa.asr_prompt_ids(tok, 3, "Arabic")[-1] == 151704  # ASR languages are 30, not the aligner's 11


def test_prompt_errors(tok):
    with pytest.raises(qa.InputError, match="no words to align"):
        qa.aligner_prompt_ids(tok, [], 5)
    with pytest.raises(qa.InputError, match="word 1 is empty"):
        qa.aligner_prompt_ids(tok, ["a", ""], 5)
    with pytest.raises(qa.InputError, match="word 0"):
        qa.aligner_prompt_ids(tok, ["a<timestamp>"], 5)
    with pytest.raises(qa.InputError, match="list of str"):
        qa.aligner_prompt_ids(tok, "hello", 5)
    with pytest.raises(qa.InputError, match="words\\[1\\]"):
        qa.aligner_prompt_ids(tok, ["a", 3], 5)
    with pytest.raises(qa.InputError, match="n_audio_tokens"):
        qa.aligner_prompt_ids(tok, ["a"], -1)
    with pytest.raises(qa.InputError, match="Tokenizer"):
        qa.aligner_prompt_ids("not a tokenizer", ["a"], 5)
    with pytest.raises(qa.InputError, match="context contains an audio token"):
        qa.asr_prompt_ids(tok, 5, None, "hi <|audio_pad|>")
    with pytest.raises(qa.InputError, match="unsupported language 'Klingon'"):
        qa.asr_prompt_ids(tok, 5, "Klingon")
    with pytest.raises(qa.InputError, match="valid_frames"):
        qa.audio_token_count(-1)
