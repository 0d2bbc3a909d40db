"""The JSON reader (csrc/weights/json.c) through the debug hook _json_parse: agrees with Python's json
on valid documents, refuses invalid ones with ModelLoadError, caps depth, never crashes on garbage."""
import json
import random

import pytest

from qwen3align import _qwen3align as q
import qwen3align as qa

VALID = [
    b'{}', b'[]', b'0', b'-0', b'1e3', b'-12.5E-3', b'"x"', b'true', b'false', b'null',
    b' \n\t{"a" : [1, 2, {"b": null}], "c": "\\u00e9\\n\\t\\"\\\\\\/", "d": -1.25e+2}\r\n',
    '{"ключ": "值", "emoji": "\\ud83d\\ude00 😀"}'.encode(),
    b'[9223372036854775807, -9223372036854775808, 0.1, 1E400]',
    b'{"a": 1, "a": 2}',
]

INVALID = [
    b'', b' ', b'{', b'[1,]', b'{"a":1,}', b'[1 2]', b'{"a" 1}', b'{a:1}', b"{'a':1}", b'01', b'1.', b'.5',
    b'-', b'1e', b'1e+', b'+1', b'tru', b'nul', b'"abc', b'"\\x"', b'"\\u12"', b'"\\ud800"', b'"\\udc00"',
    b'"\x01"', b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'[1] 2', b'NaN', b'Infinity', b'[' * 3 + b']' * 2,
    b'"' + b'1' * 10 + b'\\', b'1' * 200,
]


@pytest.mark.parametrize("doc", VALID)
def test_valid_documents_match_python_json(doc):
    assert q._json_parse(doc) == json.loads(doc)


@pytest.mark.parametrize("doc", INVALID)
def test_invalid_documents_raise_model_load_error(doc):
    with pytest.raises(qa.ModelLoadError, match="JSON error at byte"):
        q._json_parse(doc)


def test_depth_cap_64():
    assert q._json_parse(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(qa.ModelLoadError, match="deeper than 64"):
        q._json_parse(b"[" * 65 + b"]" * 65)
    with pytest.raises(qa.ModelLoadError, match="deeper than 64"):
        q._json_parse(b'{"a":' * 100000 + b"1" + b"}" * 100000)


def test_error_names_byte_offset():
    with pytest.raises(qa.ModelLoadError, match="at byte 6"):
        q._json_parse(b'[1, 2 3]')


def _random_value(rng, depth=0):
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.randrange(-10**12, 10**12)
    if kind == 1:
        return rng.choice([0.5, -1.25e-7, 3.0e100, 123.456])
    if kind == 2:
        return "".join(rng.choice("ab\"\\\n\t é中😀\u0001") for _ in range(rng.randrange(8)))
    if kind == 3:
        return rng.choice([None, True, False])
    if kind in (4, 5):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {f"k{i}{rng.choice('xé')}": _random_value(rng, depth + 1) for i in range(rng.randrange(5))}


def test_random_documents_round_trip():
    rng = random.Random(7)
    for _ in range(300):
        v = _random_value(rng)
        for ensure_ascii in (True, False):
            doc = json.dumps(v, ensure_ascii=ensure_ascii, indent=rng.choice([None, 1])).encode()
            assert q._json_parse(doc) == json.loads(doc)


def test_mutated_documents_never_crash():
    rng = random.Random(11)
    base = json.dumps({"a": [1, 2.5, "x\u00e9", {"b": None, "c": [True, False]}], "d": "\\u0041"}).encode()
    for _ in range(3000):
        b = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(b) + 1)
            if op == 0 and b:
                del b[min(i, len(b) - 1)]
            elif op == 1:
                b.insert(i, rng.randrange(256))
            else:
                b = b[:i]
        try:
            q._json_parse(bytes(b))
        except qa.ModelLoadError:
            pass
