"""Write the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/): small valid inputs and
hostile ones. Run from the repository root: `.venv/bin/python tests/fuzz/make_seeds.py [target...]`.
Deterministic; the files are committed (keep the whole corpus < 2 MB). Audio seeds are written with
the installed libsndfile (tests/audio_files.py) so every format it reads has a valid example."""
import json
import os
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


# ---- audio ------------------------------------------------------------------------------------------

def audio_seeds():
    from audio_files import FORMATS, wav_bytes, write_sf
    rng = np.random.default_rng(0)
    t = np.arange(400) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([tone, -tone], axis=1)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            path = os.path.join(tmp, "x")
            x = stereo if fmt in ("wav_pcm16", "flac") else tone
            if write_sf(path, x, 8000, fmt):
                with open(path, "rb") as f:
                    put("audio", f"{fmt}.bin", f.read())
    pcm = (tone * 32767).astype("<i2").tobytes()
    put("audio", "hand_pcm16_22k.wav", wav_bytes(pcm, 22050, 1))
    put("audio", "hand_float_loud.wav", wav_bytes((tone * 4).astype("<f4").tobytes(), 16000, 1, 3, 32))
    put("audio", "hand_nan.wav", wav_bytes(np.array([0, np.nan, 1], "<f4").tobytes(), 16000, 1, 3, 32))
    put("audio", "hand_rate0.wav", wav_bytes(pcm[:200], 0, 1))
    put("audio", "hand_rate_huge.wav", wav_bytes(pcm[:200], 2000000000, 1))
    put("audio", "hand_9ch.wav", wav_bytes(bytes(9 * 2 * 10), 16000, 9))
    put("audio", "hand_0ch.wav", wav_bytes(pcm[:200], 16000, 0))
    put("audio", "hand_no_samples.wav", wav_bytes(b"", 16000, 1))
    put("audio", "hand_truncated.wav", wav_bytes(pcm, 16000, 1)[:60])
    # data chunk claims 2 GiB while 200 bytes follow (a reader must not trust the header's size)
    lying = bytearray(wav_bytes(pcm[:200], 16000, 1))
    lying[40:44] = struct.pack("<I", 0x7FFFFFF0)
    put("audio", "hand_lying_size.wav", bytes(lying))
    put("audio", "hand_bits7.wav", wav_bytes(pcm[:200], 16000, 1, 1, 7))
    # sample-array path: header bytes (type, channels, rate u32) + samples
    for type_id, dtype in ((0, "<f4"), (3, "<i2"), (6, "u1"), (1, "<f8")):
        body = (rng.standard_normal(300) * (0.3 if dtype[1] == "f" else 100)).astype(dtype).tobytes()
        put("audio", f"samples_type{type_id}.bin", bytes([type_id, 2]) + struct.pack("<I", 44100) + body)
    put("audio", "samples_1k_upsample.bin", bytes([0, 1]) + struct.pack("<I", 1000) + tone[:50].tobytes())


# ---- json (and config.json) ------------------------------------------------------------------------

FIX = os.path.join(os.path.dirname(os.path.dirname(HERE)), "..", "shared", "fixtures")


def fixture(*parts):
    p = os.path.join(os.environ.get("QA_FIXTURES", FIX), *parts)
    with open(p, "rb") as f:
        return f.read()


def json_seeds():
    for name in ("aligner", "asr", "asr-hf"):
        put("json", f"config_{name}.json", fixture(name, "config.json"))
    hf = json.loads(fixture("aligner-hf", "config.json"))
    if "id2label" in hf:  # 5000 labels: keep the seed small, the count check still runs
        hf["id2label"] = {k: hf["id2label"][k] for k in list(hf["id2label"])[:3]}
    if "label2id" in hf:
        hf["label2id"] = {k: hf["label2id"][k] for k in list(hf["label2id"])[:3]}
    put("json", "config_aligner-hf_trimmed.json", json.dumps(hf, indent=1))
    index = json.loads(fixture("asr-sharded", "model.safetensors.index.json"))
    index["weight_map"] = dict(list(index["weight_map"].items())[:12])
    put("json", "index.json", json.dumps(index, indent=1))
    put("json", "preprocessor_config.json", fixture("asr", "preprocessor_config.json"))
    hostile = {
        "empty": "",
        "ws_only": " \t\r\n",
        "scalars": '[null, true, false, 0, -0, 1.5e-3, -12E+2, 9223372036854775807, -9223372036854775808]',
        "int_overflow": "[9223372036854775808, -9223372036854775809, 1e400, -1e-400]",
        "long_number": "1" * 200,
        "leading_zero": "[01]",
        "bad_exp": "[1e]",
        "escapes": r'["\"\\\/\b\f\n\r\t", "\u00e9\u4e2d\ud83d\ude00", "\u0000nul"]',
        "lone_high": r'["\ud800"]',
        "lone_low": r'["\udc00x"]',
        "high_then_bad": r'["\ud800\u0041"]',
        "bad_escape": r'["\x41"]',
        "short_u": r'["\u12"]',
        "cjk_emoji": '{"中文": "日本語", "emoji": "😀👍🏽", "mixed": "aé中"}',
        "dup_keys": '{"a": 1, "a": 2, "b": {"a": [1, {"a": null}]}}',
        "deep_ok": "[" * 64 + "]" * 64,
        "deep_bad": "[" * 65 + "]" * 65,
        "deep_obj": '{"a":' * 70 + "1" + "}" * 70,
        "unterminated_string": '{"a": "abc',
        "unterminated_array": "[1, 2",
        "trailing": '{"a": 1} x',
        "trailing_comma": "[1, 2,]",
        "missing_colon": '{"a" 1}',
        "control_char": '["a\x01b"]'.replace("\\x01", "\x01"),
        "bad_literal": "[tru, nul]",
    }
    for name, text in hostile.items():
        put("json", f"hostile_{name}.json", text)
    put("json", "hostile_invalid_utf8.json", b'["\xff\xfe", "\xc0\x80"]'.replace(b"\\x", b"\\x"))
    put("json", "hostile_raw_bytes.json", b'{"k": "\xed\xa0\x80", "o": "\xc0\xaf", "big": "\xf4\x90\x80\x80"}')
    put("json", "hostile_truncated_utf8.json", b'["\xe4\xb8"]')
    cfg = json.loads(fixture("aligner", "config.json"))
    cfg["thinker_config"]["text_config"]["hidden_size"] = -1
    put("json", "config_negative_hidden.json", json.dumps(cfg))
    cfg = json.loads(fixture("asr", "config.json"))
    cfg["thinker_config"]["audio_config"]["d_model"] = 2 ** 40
    put("json", "config_huge_dmodel.json", json.dumps(cfg))
    cfg = json.loads(fixture("asr", "config.json"))
    cfg["support_languages"] = ["x" * 100] * 100
    put("json", "config_many_languages.json", json.dumps(cfg))


# ---- safetensors ------------------------------------------------------------------------------------

def st_file(header, data=b"", header_bytes=None, length=None):
    hb = header_bytes if header_bytes is not None else json.dumps(header).encode()
    n = len(hb) if length is None else length
    return struct.pack("<Q", n) + hb + data


def st_valid(tensors, meta=True):
    header, blobs, at = {}, [], 0
    if meta:
        header["__metadata__"] = {"format": "pt"}
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    return header, b"".join(blobs)


def safetensors_seeds():
    h, d = st_valid({
        "thinker.model.norm.weight": ("BF16", [4], bytes(range(8))),
        "thinker.audio_tower.conv2d1.weight": ("F32", [2, 1, 1, 1], struct.pack("<2f", 1.0, -2.0)),
        "model.language_model.embed_tokens.weight": ("F16", [2, 2], bytes(8)),
        "score.weight": ("I64", [1], struct.pack("<q", -1)),
        "empty": ("U8", [0, 5], b""),
        "scalar": ("F64", [], struct.pack("<d", 3.5)),
    })
    put("safetensors", "valid_mixed.safetensors", st_file(h, d))
    put("safetensors", "valid_empty_header.safetensors", st_file({}))
    put("safetensors", "valid_metadata_only.safetensors", st_file({"__metadata__": {"format": "pt"}}))
    for dt in ("BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "I16", "U16", "I32", "U32", "F32", "U64"):
        size = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "I32": 4,
                "U32": 4, "F32": 4, "U64": 8}[dt]
        h, d = st_valid({"t": (dt, [3], bytes(3 * size))}, meta=False)
        put("safetensors", f"valid_{dt}.safetensors", st_file(h, d))
    # the real tiny-fixture header without its data (every entry parsed, then "outside the data buffer")
    real = fixture("aligner", "model.safetensors")
    n = struct.unpack("<Q", real[:8])[0]
    put("safetensors", "real_header_no_data.safetensors", real[:8 + n])
    one = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    hostile = {
        "short": b"\x01\x02\x03",
        "len_past_end": st_file({"a": one}, bytes(8), length=10 ** 6),
        "len_huge": st_file({"a": one}, bytes(8), length=2 ** 63 + 5),
        "len_over_cap": st_file({"a": one}, bytes(8), length=100 * 1024 * 1024 + 1),
        "len_zero": st_file(None, bytes(8), header_bytes=b""),
        "not_object": st_file(None, header_bytes=b"[1, 2]"),
        "not_json": st_file(None, header_bytes=b"{\"a\": "),
        "overlap": st_file({"a": one, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)),
        "gap": st_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)),
        "short_data": st_file({"a": one}, bytes(4)),
        "extra_data": st_file({"a": one}, bytes(12)),
        "dup_names": st_file(None, b"\0" * 16, header_bytes=json.dumps({"a": one}).encode()[:-1] + b', "a": '
                             + json.dumps({"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}).encode() + b"}"),
        "unknown_dtype": st_file({"a": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)),
        "negative_dim": st_file({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8)),
        "float_dim": st_file({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, bytes(8)),
        "shape_overflow": st_file({"a": {"dtype": "F32", "shape": [2 ** 62, 2 ** 62, 4], "data_offsets": [0, 0]}}),
        "shape_wraps_to_zero": st_file({"a": {"dtype": "F64", "shape": [2 ** 61, 8], "data_offsets": [0, 0]}}),
        "nine_dims": st_file({"a": {"dtype": "U8", "shape": [1] * 9, "data_offsets": [0, 1]}}, bytes(1)),
        "span_mismatch": st_file({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)),
        "begin_after_end": st_file({"a": {"dtype": "U8", "shape": [0], "data_offsets": [8, 0]}}, bytes(8)),
        "offsets_negative": st_file({"a": {"dtype": "U8", "shape": [8], "data_offsets": [-8, 0]}}, bytes(8)),
        "offsets_three": st_file({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8, 8]}}, bytes(8)),
        "offsets_huge": st_file({"a": {"dtype": "U8", "shape": [1], "data_offsets": [2 ** 63 - 1, 2 ** 63]}}),
        "entry_not_object": st_file({"a": [1, 2]}),
        "missing_fields": st_file({"a": {"dtype": "F32"}}),
        "metadata_not_strings": st_file({"__metadata__": {"x": [1, {"y": 2}]}, "a": one}, bytes(8)),
        "nul_in_name": st_file(None, bytes(8), header_bytes=b'{"a\\u0000b": ' + json.dumps(one).encode() + b"}"),
        "empty_name": st_file({"": one}, bytes(8)),
    }
    for name, blob in hostile.items():
        put("safetensors", f"hostile_{name}.safetensors", blob)


# ---- tokenizer -------------------------------------------------------------------------------------
# byte 0 picks the mode (fuzz_tokenizer.c): 0-3 text (word mode = byte % 3), 4 ids, 5 timestamps, 6 files

def tokenizer_seeds():
    cases = json.loads(fixture("text_cases.json"))
    for i, c in enumerate(cases):
        put("tokenizer", f"text_case{i:02d}.txt", bytes([i % 4 if i % 4 != 3 else 0]) + c["text"].encode())
        put("tokenizer", f"ids_case{i:02d}.bin", bytes([4]) + np.array(c["ids"], "<i4").tobytes()) if i < 8 else None
    texts = {
        "cjk": "我们今天去公园。中文测试，标点！",
        "japanese": "日本語のテキストです。カタカナとひらがな",
        "korean": "안녕하세요 세계 한국어 테스트",
        "emoji": "Hi 👋🏽 family 👨‍👩‍👧 flags 🇫🇷 ok",
        "added_tokens": "<|im_start|>system\n<|im_end|><timestamp><asr_text><|audio_pad|>x<|audio_start|>",
        "partial_added": "<|im_sta <timestam <|audio_pad| <|",
        "whitespace": "a  \t\t b\n\n\n   c \u3000 d\u00a0e   ",
        "contractions": "I'm you'RE he's they'll we'VE don't 'S",
        "numbers": "1234567 3.14159 1,000,000 ١٢٣ ½ ²",
        "combining": "e\u0301 a\u0308 \u1100\u1161 n\u0303",
        "rtl": "مرحبا بالعالم שלום",
        "nul": "a\u0000b",
    }
    for i, (name, t) in enumerate(texts.items()):
        put("tokenizer", f"text_{name}.txt", bytes([i % 4 if i % 4 != 3 else 1]) + t.encode())
    put("tokenizer", "text_invalid_utf8.txt", b"\x00ok \xff\xfe \xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 end")
    put("tokenizer", "text_truncated_utf8.txt", b"\x02\xe4\xb8")
    put("tokenizer", "text_korean_mode.txt", b"\x02" + texts["korean"].encode())
    put("tokenizer", "text_japanese_mode.txt", b"\x01" + texts["japanese"].encode())
    put("tokenizer", "ids_special_and_bad.bin", bytes([4]) + np.array(
        [151643, 151644, 151645, 151669, 151676, 151670, 151705, 151704, 151706, 152063, 2 ** 31 - 1, -1, 0, 220],
        "<i4").tobytes())
    put("tokenizer", "ids_partial_utf8.bin", bytes([4]) + np.array([94, 242, 243, 100], "<i4").tobytes())
    put("tokenizer", "ts_simple.bin", bytes([5]) + np.array([0, 80, 160, 80, 320, 0, 400, 480], "<f8").tobytes())
    put("tokenizer", "ts_bad.bin", bytes([5]) + np.array([0, np.nan, np.inf, -80, 2.0 ** 60], "<f8").tobytes())
    put("tokenizer", "ts_long_runs.bin", bytes([5]) + np.array([800, 10, 20, 30, 40, 900, 5, 1000, 2, 1], "<f8").tobytes())
    vocab = {"H": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7, "He": 8, "ll": 9, "llo": 10,
             "Hello": 11, "Ġw": 12}
    merges = "#version: 0.2\nH e\nl l\nll o\nHe llo\nĠ w\n"
    config = {"added_tokens_decoder": {"20": {"content": "<|endoftext|>", "special": True},
                                       "21": {"content": "<timestamp>", "special": False}}}
    files = [json.dumps(vocab).encode(), merges.encode(), json.dumps(config).encode()]
    put("tokenizer", "files_tiny.bin", bytes([6]) + b"\0".join(files))
    bad = {
        "files_dup_id": [b'{"a": 0, "b": 0}', files[1], files[2]],
        "files_merge_unknown": [files[0], b"#version: 0.2\nx y\n", files[2]],
        "files_merge_three": [files[0], b"H e l\n", files[2]],
        "files_no_added": [files[0], files[1], b"{}"],
        "files_negative_id": [b'{"a": -1}', files[1], files[2]],
        "files_huge_id": [b'{"a": 99999999999}', files[1], files[2]],
        "files_empty": [b"", b"", b""],
        "files_not_object": [b"[1]", files[1], b"[2]"],
        "files_added_bad": [files[0], files[1], b'{"added_tokens_decoder": {"x": 1, "22": {"content": ""}}}'],
    }
    for name, parts in bad.items():
        put("tokenizer", f"{name}.bin", bytes([6]) + b"\0".join(parts))


def main():
    targets = sys.argv[1:] or ["audio", "json", "safetensors", "tokenizer"]
    for t in targets:
        fn = globals().get(f"{t}_seeds")
        if fn:
            fn()


if __name__ == "__main__":
    main()
