"""split_words (csrc/frontend/words.c + qwen3align/frontend.py) against the reference word lists of
fixtures/text_cases.json (transformers 5.17 split_words_for_alignment) and the documented fallbacks."""
import json
import os

import pytest

import qwen3align as qa
from conftest import CASES, FIXTURES, load_case

TEXT_CASES = json.load(open(os.path.join(FIXTURES, "text_cases.json"), encoding="utf-8"))
ROWS = [(c["text"], lang, words) for c in TEXT_CASES for lang, words in c["words"].items()]


@pytest.mark.parametrize("text,lang,words", ROWS, ids=[f"{ascii(t)[:24]}-{l}" for t, l, _ in ROWS])
def test_words_match_reference(text, lang, words):
    language = None if lang == "default" else lang
    if not words:
        with pytest.raises(qa.InputError, match="no words to align"):
            qa.split_words(text, language)
    else:
        assert qa.split_words(text, language) == words


@pytest.mark.parametrize("name", CASES)
def test_case_words(name):
    case = load_case(name)
    assert qa.split_words(case["text"], case["language"]) == case["words"]


def test_iso_codes_and_case_insensitive_names():
    text = "Ça va très bien, 今天 OK"
    want = qa.split_words(text, "French")
    for lang in ("fr", "FR", "french", " French ", "en", "zh", "yue", "de", "es", "it", "pt", "ru"):
        assert qa.split_words(text, lang) == want


@pytest.mark.parametrize("lang", ["Klingon", "Arabic", "ar", "Thai", "", "xx"])
def test_unsupported_language_lists_supported(lang):
    with pytest.raises(qa.InputError, match="supported: Cantonese, Chinese, English"):
        qa.split_words("hello", lang)


def test_korean_keeps_whitespace_words_whole():
    # HF 5.17: soynlp LTokenizer() without scores returns each whitespace word as is, then cleans it.
    assert qa.split_words("한국어 텍스트입니다", "Korean") == ["한국어", "텍스트입니다"]
    assert qa.split_words("漢字語, 단어!", "ko") == ["漢字語", "단어"]
    assert qa.split_words("漢字語, 단어!") == ["漢", "字", "語", "단어"]


def test_japanese_fallback_splits_ideographs_and_script_changes():
    assert qa.split_words("日本語のテキストです。", "Japanese") == ["日", "本", "語", "の", "テキスト", "です"]
    assert qa.split_words("ラーメンを2杯 ok", "ja") == ["ラーメン", "を", "2", "杯", "ok"]


def test_no_words_and_bad_text():
    for text in ("", "   ", "!!! ... —", "\u0301\u200b"):
        with pytest.raises(qa.InputError, match="no words to align"):
            qa.split_words(text)
    with pytest.raises(qa.InputError):
        qa.split_words(b"bytes")
    with pytest.raises(qa.InputError, match="surrogate"):
        qa.split_words("a\udc80b")


def test_punctuation_dropped_without_split_and_python_whitespace():
    assert qa.split_words("50-minute can't x\u3000y\x1cz\u00a0w") == ["50minute", "can't", "x", "y", "z", "w"]
