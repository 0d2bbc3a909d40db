"""Tokenizer (csrc/frontend/tokenizer.c, bpe.c, pretokenize.c) against the reference ids and text of
fixtures/text_cases.json (transformers 5.17 / tokenizers), plus file validation and error paths."""
import json
import os
import random
import shutil
import threading
import unicodedata

import pytest

import qwen3align as qa
from conftest import CASES, FIXTURES, load_case, npy

TEXT_CASES = json.load(open(os.path.join(FIXTURES, "text_cases.json"), encoding="utf-8"))


@pytest.fixture(scope="module")
def tok():
    return qa.Tokenizer(os.path.join(FIXTURES, "aligner"))


@pytest.mark.parametrize("case", TEXT_CASES, ids=[ascii(c["text"])[:30] for c in TEXT_CASES])
def test_encode_decode_match_reference(tok, case):
    assert tok.encode(case["text"]) == case["ids"]
    assert tok.decode(case["ids"]) == case["decoded"]
    assert tok.encode(case["text"].encode("utf-8")) == case["ids"]


@pytest.mark.parametrize("name", CASES)
def test_decode_greedy_asr_ids(tok, name):
    # The random model emits ids past the last token (151706..152063): the reference skips them.
    assert tok.decode(npy(name, "asr_greedy_ids.npy").tolist()) == load_case(name)["asr_greedy_text"]


def test_every_checkpoint_folder_loads_the_same_tokenizer(tok):
    other = qa.Tokenizer(os.path.join(FIXTURES, "asr-hf"))
    text = "".join(c["text"] for c in TEXT_CASES)
    assert other.encode(text) == tok.encode(text)
    assert other.n_ids == tok.n_ids == 151706


def test_skip_special_tokens_keeps_asr_text_and_timestamp(tok):
    ids = tok.encode("<|im_start|>assistant\nlanguage English<asr_text>hi<timestamp><|im_end|><|endoftext|>")
    assert ids[0] == 151644 and 151704 in ids and 151705 in ids
    assert tok.decode(ids, skip_special_tokens=True) == "assistant\nlanguage English<asr_text>hi<timestamp>"
    assert tok.decode(ids) == "<|im_start|>assistant\nlanguage English<asr_text>hi<timestamp><|im_end|><|endoftext|>"


def test_added_tokens_by_content(tok):
    expected = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|audio_start|>": 151669,
                "<|audio_end|>": 151670, "<|audio_pad|>": 151676, "<asr_text>": 151704, "<timestamp>": 151705}
    for content, i in expected.items():
        assert tok.token_to_id(content) == i
        assert tok.encode(content) == [i]
    assert tok.token_to_id("no such token") is None


def test_invalid_utf8_in_decode_becomes_replacement_char(tok):
    # byte-level symbols: a printable byte stands for itself, byte 0xAD for U+0143 (U+0100 + 67)
    e4, b8, ad = tok.token_to_id("\u00e4"), tok.token_to_id("\u00b8"), tok.token_to_id("\u0143")
    assert tok.decode([e4]) == "\ufffd"                      # a lone lead byte
    assert tok.decode([e4, b8]) == "\ufffd"                  # a truncated 3-byte sequence: one U+FFFD
    assert tok.decode([b8, e4, b8, ad]) == b"\xb8\xe4\xb8\xad".decode("utf-8", "replace") == "\ufffd\u4e2d"
    assert tok.decode([b8, b8, tok.encode("a")[0]]) == "\ufffd\ufffda"


def test_random_byte_sequences_decode_like_python_replace(tok):
    byte_id = {}
    for b in range(256):
        cp = b if (33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255) else None
        byte_id[b] = cp
    others = [b for b in range(256) if byte_id[b] is None]
    for n, b in enumerate(others):
        byte_id[b] = 256 + n
    ids_of = {b: tok.token_to_id(chr(cp)) for b, cp in byte_id.items()}
    assert all(i is not None for i in ids_of.values())
    rng = random.Random(7)
    pool = list(range(0x80, 0x100)) + [0x41, 0x20, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xED, 0xA0]
    for _ in range(500):
        data = bytes(rng.choice(pool) for _ in range(rng.randint(1, 10)))
        assert tok.decode([ids_of[b] for b in data]) == data.decode("utf-8", "replace"), data


def test_roundtrip_is_nfc(tok):
    rng = random.Random(3)
    alphabet = ("abcXYZ019 \n\t'-.,!?<>|_" "éèçñüßøÅ" "e\u0301a\u0308" "中文日本語한국어" "Привет" "😀👍🏽❤️"
                "\u00a0\u2003\u3000\u200b" "½²①" "\u0928\u093f")
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert tok.decode(tok.encode(s)) == unicodedata.normalize("NFC", s)


def test_long_word_is_fast_and_correct(tok):
    ids = tok.encode("a" * 20000)
    assert tok.decode(ids) == "a" * 20000
    assert len(ids) < 20000


def test_threads_share_a_tokenizer(tok):
    texts = [c["text"] * 50 for c in TEXT_CASES]
    want = [tok.encode(t) for t in texts]
    errors = []

    def work():
        for t, w in zip(texts, want):
            if tok.encode(t) != w:
                errors.append(t)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_bad_text_raises_input_error(tok):
    with pytest.raises(qa.InputError, match="offset 3"):
        tok.encode(b"abc\xff")
    with pytest.raises(qa.InputError, match="surrogate U\\+D800 at index 2"):
        tok.encode("ab\ud800c")
    with pytest.raises(qa.InputError):
        tok.encode(12)
    with pytest.raises(qa.InputError, match="negative"):
        tok.decode([1, -1])
    with pytest.raises(qa.InputError):
        tok.decode([[1, 2]])
    assert tok.decode([]) == "" and tok.encode("") == []


def _folder_with(tmp_path, name, content):
    d = tmp_path / "ckpt"
    shutil.copytree(os.path.join(FIXTURES, "aligner"), d,
                    ignore=shutil.ignore_patterns("*.safetensors"))
    for p in d.iterdir():
        os.chmod(p, 0o644)
    if content is None:
        (d / name).unlink()
    else:
        (d / name).write_bytes(content)
    return str(d)


def _merges(lines):
    return ("#version: 0.2\n" + "\n".join(lines) + "\n").encode("utf-8")


@pytest.mark.parametrize("name,content,match", [
    ("vocab.json", None, "vocab.json"),
    ("vocab.json", b'{"a": 0,\n "b": ', "vocab.json: line 2 column"),
    ("vocab.json", b'["a", "b"]', "vocab.json: the top level is not a JSON object"),
    ("vocab.json", b'{"a": -1}', "vocab.json: token 'a'"),
    ("vocab.json", b'{"a": 1.5}', "vocab.json: token 'a'"),
    ("vocab.json", b'{"a": 0, "b": 0}', "vocab.json: id 0 is given to two tokens"),
    ("vocab.json", b'{"a": 0}', "vocab.json"),
    ("merges.txt", None, "merges.txt"),
    ("merges.txt", _merges(["\u0120 t", "a b c"]), "merges.txt line 3"),
    ("merges.txt", _merges(["\u0120 t", "zz\u4e00 t"]), "merges.txt line 3: symbol"),
    ("merges.txt", _merges(["\u0120", "x y"]), "merges.txt line 2"),
    ("tokenizer_config.json", None, "tokenizer_config.json"),
    ("tokenizer_config.json", b'{"added_tokens_decoder": 5}', "tokenizer_config.json: no \"added_tokens_decoder\""),
    ("tokenizer_config.json", b'{"added_tokens_decoder": {"x": {"content": "<a>"}}}', "key 'x' is not an id"),
    ("tokenizer_config.json", b'{"added_tokens_decoder": {"151700": {"content": ""}}}', "non-empty"),
    ("tokenizer_config.json", b'{"added_tokens_decoder": {"151700": {"content": "<a>", "special": 1}}}',
     "special"),
    ("tokenizer_config.json", b'{"added_tokens_decoder": {"0": {"content": "<a>"}}}', "id 0 is given to two"),
])
def test_malformed_files_raise_model_load_error(tmp_path, name, content, match):
    folder = _folder_with(tmp_path, name, content)
    with pytest.raises(qa.ModelLoadError, match=match):
        qa.Tokenizer(folder)


def test_missing_folder():
    with pytest.raises(qa.ModelLoadError, match="vocab.json"):
        qa.Tokenizer("/nonexistent/folder")
