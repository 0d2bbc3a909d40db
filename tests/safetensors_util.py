"""A tiny independent safetensors reader/writer for tests (NumPy only; BF16 handled as uint16 bits).

Used to check loaded tensors against the files' values and to build hostile checkpoints in tmp_path
(rewrite a fixture's header or data and see the loader refuse it).
"""
import json
import os
import shutil
import struct

import numpy as np

NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return n, header


def read_raw(path):
    """(header dict without __metadata__, metadata, data bytes) of a file."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    return header, meta, blob[8 + n:]


def tensor_f32(path, name, _raw=None):
    """The stored values of one tensor as float64 (exactly representable from BF16/F16/F32)."""
    header, _, data = _raw or read_raw(path)
    info = header[name]
    b, e = info["data_offsets"]
    raw = data[b:e]
    if info["dtype"] == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        vals = bits.view(np.float32)
    else:
        vals = np.frombuffer(raw, dtype=NP[info["dtype"]])
    return vals.astype(np.float64).reshape(info["shape"])


def all_f64(path):
    """{name: float64 array} of every tensor in a file."""
    raw = read_raw(path)
    return {k: tensor_f32(path, k, raw) for k in raw[0]}


def write_raw(path, header, data, meta=None, header_bytes=None):
    """Write a file from a header dict and a data blob exactly as given (no validation)."""
    h = dict(header)
    if meta is not None:
        h["__metadata__"] = meta
    hb = header_bytes if header_bytes is not None else json.dumps(h).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        f.write(data)


def write_tensors(path, tensors):
    """Write {name: (dtype_str, shape, raw bytes)} as a valid file (offsets in order)."""
    header, blobs, at = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    write_raw(path, header, b"".join(blobs), meta={"format": "pt"})


def load_all(path):
    """{name: (dtype, shape, raw bytes)} in header order."""
    header, _, data = read_raw(path)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def copy_fixture(src, dst):
    """Copy a fixture folder (config + weights only; tokenizer files are linked) to dst (writable)."""
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        s, d = os.path.join(src, f), os.path.join(dst, f)
        if f.endswith((".json", ".safetensors")):
            shutil.copyfile(s, d)
            os.chmod(d, 0o644)
        else:
            os.symlink(s, d)
    return dst
