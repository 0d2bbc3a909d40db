"""parse_asr_output (qwen3align/frontend.py): the cases written from MODEL_FACTS §8.2 and the
reference parse_asr_output / detect_and_fix_repetitions (qwen_asr/inference/utils.py)."""
import pytest

import qwen3align as qa
from qwen3align.frontend import fix_repetitions


@pytest.mark.parametrize("raw,forced,expected", [
    ("language English<asr_text>hello", None, ("English", "hello")),
    ("  language English<asr_text> hello world \n", None, ("English", "hello world")),
    ("language chinese<asr_text>你好", None, ("Chinese", "你好")),
    ("language None<asr_text>", None, (None, "")),
    ("language None<asr_text>  stray ", None, (None, "stray")),
    ("just text, no tag", None, (None, "just text, no tag")),
    ("", None, (None, "")),
    (None, None, (None, "")),
    ("<asr_text>text", None, (None, "text")),
    ("noise\nlanguage German<asr_text>hallo", None, ("German", "hallo")),
    ("language English<asr_text>a<asr_text>b", None, ("English", "a<asr_text>b")),
    ("hello there", "English", ("English", "hello there")),
    ("hello there", "en", ("English", "hello there")),
])
def test_parse(raw, forced, expected):
    assert qa.parse_asr_output(raw, forced) == expected


def test_character_run_collapses():
    assert fix_repetitions("a" * 25) == "a"
    assert fix_repetitions("a" * 20) == "a" * 20                # not more than 20: kept
    assert fix_repetitions("x" + "a" * 21 + "y") == "xay"
    assert qa.parse_asr_output("language English<asr_text>" + "a" * 25) == ("English", "a")


def test_pattern_repeats_collapse():
    assert fix_repetitions("abc" * 25) == "abc"
    assert fix_repetitions("hi " + "abc" * 25 + " end") == "hi abc end"
    assert fix_repetitions("abc" * 19) == "abc" * 19           # fewer than 20 repetitions: kept
    assert fix_repetitions("ab" * 20 + "xy" * 20) == "abxy"
    assert qa.parse_asr_output("language English<asr_text>" + "la " * 30 + "end") == ("English", "la end")


def test_forced_language_validated():
    with pytest.raises(qa.InputError, match="unsupported language"):
        qa.parse_asr_output("hello", "Klingon")
