"""The safetensors header validator (csrc/weights/safetensors.c) on in-memory images via the debug
hook _safetensors_parse: accepts the fixtures, refuses each kind of hostile header with a message."""
import json
import os
import struct

import pytest

from conftest import FIXTURES
from qwen3align import _qwen3align as q
import qwen3align as qa


def image(header, data=b"", raw_header=None, length=None):
    hb = raw_header if raw_header is not None else json.dumps(header).encode()
    n = len(hb) if length is None else length
    return struct.pack("<Q", n) + hb + data


def t(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


@pytest.mark.parametrize("folder", ["aligner", "aligner-hf", "asr", "asr-hf"])
def test_fixture_files_parse(folder):
    blob = open(os.path.join(FIXTURES, folder, "model.safetensors"), "rb").read()
    out = q._safetensors_parse(blob)
    n = struct.unpack("<Q", blob[:8])[0]
    ref = json.loads(blob[8:8 + n])
    ref.pop("__metadata__")
    assert set(out) == set(ref)
    for name, (dtype, shape, offs) in out.items():
        assert (dtype, list(shape), list(offs)) == (ref[name]["dtype"], ref[name]["shape"], ref[name]["data_offsets"])


def test_minimal_valid_and_all_dtypes():
    hdr = {"__metadata__": {"format": "pt"}}
    at, offsets = 0, {}
    sizes = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
    for i, (dt, s) in enumerate(sizes.items()):
        hdr[f"t{i}"] = t(dt, [2, 3], at, at + 6 * s)
        offsets[f"t{i}"] = (dt, (2, 3), (at, at + 6 * s))
        at += 6 * s
    hdr["empty"] = t("F32", [0, 4], at, at)
    hdr["scalar"] = t("F32", [], at, at + 4)
    out = q._safetensors_parse(image(hdr, b"\0" * (at + 4)))
    for name, want in offsets.items():
        assert out[name] == want
    assert out["scalar"][1] == () and out["empty"][1] == (0, 4)


HOSTILE = {
    "too short": (b"\x01\x00", "too short"),
    "header length over cap": (struct.pack("<Q", 200 * 1024 * 1024) + b"{}", "100 MB cap"),
    "header length past end": (image({}, length=50), "past the end of the file"),
    "header not json": (image(None, raw_header=b"{not json}"), "not valid JSON"),
    "header not object": (image([1, 2]), "not a JSON object"),
    "entry not object": (image({"a": 3}), "'a'.*not an object"),
    "missing fields": (image({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4), "'a'.*needs dtype"),
    "unknown dtype": (image({"a": t("F31", [1], 0, 4)}, b"\0" * 4), "'a'.*unknown dtype 'F31'"),
    "negative dim": (image({"a": t("F32", [-1], 0, 4)}, b"\0" * 4), "'a'.*non-negative"),
    "float dim": (image({"a": t("F32", [1.5], 0, 4)}, b"\0" * 4), "'a'.*non-negative"),
    "shape overflow": (image({"a": t("F32", [2**40, 2**40], 0, 4)}, b"\0" * 4), "'a'.*overflows"),
    "span mismatch": (image({"a": t("F32", [2], 0, 4)}, b"\0" * 4), "'a'.*2 elements of F32 need 8 bytes"),
    "offsets reversed": (image({"a": t("F32", [0], 4, 0)}, b"\0" * 4), "'a'.*begin <= end"),
    "offsets outside file": (image({"a": t("F32", [4], 0, 16)}, b"\0" * 8), "'a'.*outside the data buffer"),
    "overlap": (image({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, b"\0" * 12), "'b'.*overlap.*'a'"),
    "gap": (image({"a": t("F32", [1], 0, 4), "b": t("F32", [1], 8, 12)}, b"\0" * 12), "'b'.*gap"),
    "trailing data": (image({"a": t("F32", [1], 0, 4)}, b"\0" * 8), "cover 4 bytes but the data buffer has 8"),
    "duplicate": (image(None, raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                         b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
                        data=b"\0" * 8), "'a'.*duplicate"),
    "too many dims": (image({"a": t("F32", [1] * 9, 0, 4)}, b"\0" * 4), "'a'.*9 dimensions"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_headers_are_refused(case):
    blob, pattern = HOSTILE[case]
    with pytest.raises(qa.ModelLoadError, match=pattern):
        q._safetensors_parse(blob)


def test_unsorted_offsets_are_fine_when_they_tile():
    hdr = {"b": t("F32", [1], 4, 8), "a": t("F32", [1], 0, 4)}
    assert set(q._safetensors_parse(image(hdr, b"\0" * 8))) == {"a", "b"}


def test_truncations_of_a_fixture_never_crash():
    blob = open(os.path.join(FIXTURES, "asr", "model.safetensors"), "rb").read()
    for cut in list(range(0, 64)) + list(range(64, 9000, 97)) + [len(blob) - 1]:
        with pytest.raises(qa.ModelLoadError):
            q._safetensors_parse(blob[:cut])
