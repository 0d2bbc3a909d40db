"""Nothing leaks: 200 failing loads of hostile checkpoints (and repeated good load/close cycles) leave
the process RSS where it was."""
import gc
import json
import os

import pytest

from conftest import FIXTURES
from safetensors_util import copy_fixture, load_all, read_raw, write_raw, write_tensors
import qwen3align as qa


pytestmark = pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                                reason="AddressSanitizer's quarantine keeps freed memory resident; RSS says nothing")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bad_folders(tmp_path):
    out = []
    # a tensor of the wrong shape: fails after every file is mapped and every header parsed
    d = copy_fixture(os.path.join(FIXTURES, "asr-sharded"), str(tmp_path / "shape"))
    shard = os.path.join(d, json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
                         ["thinker.model.norm.weight"])
    ts = load_all(shard)
    dt, shape, raw = ts["thinker.model.norm.weight"]
    ts["thinker.model.norm.weight"] = (dt, [shape[0] // 2, 2], raw)
    write_tensors(shard, ts)
    out.append(d)
    # overlapping offsets in the header
    d = copy_fixture(os.path.join(FIXTURES, "aligner-hf"), str(tmp_path / "overlap"))
    p = os.path.join(d, "model.safetensors")
    header, meta, data = read_raw(p)
    k = next(n for n, v in header.items() if v["data_offsets"][0] > 0)
    header[k]["data_offsets"] = [0, header[k]["data_offsets"][1] - header[k]["data_offsets"][0]]
    write_raw(p, header, data, meta)
    out.append(d)
    # a truncated file
    d = copy_fixture(os.path.join(FIXTURES, "asr"), str(tmp_path / "trunc"))
    p = os.path.join(d, "model.safetensors")
    blob = open(p, "rb").read()
    open(p, "wb").write(blob[: len(blob) - 1000])
    out.append(d)
    return out


def test_bad_loads_do_not_leak(tmp_path):
    folders = bad_folders(tmp_path)
    kinds = ["asr", "aligner", "asr"]

    def attempt(i):
        with pytest.raises(qa.Qwen3AlignError):
            qa.load_models(**{kinds[i % 3]: folders[i % 3]}, max_audio_seconds=30)
        with pytest.raises(qa.OutOfMemoryError):
            qa.load_models(asr=folders[0], max_device_bytes=1000)

    for i in range(30):  # warm up allocator caches and the page cache
        attempt(i)
    gc.collect()
    before = rss_bytes()
    for i in range(200):
        attempt(i)
    gc.collect()
    grown = rss_bytes() - before
    print(f"RSS growth over 200 bad loads: {grown} bytes")
    assert grown < 2 * 1024 * 1024


def test_load_close_cycles_do_not_leak():
    def cycle():
        m = qa.load_models(aligner=os.path.join(FIXTURES, "aligner"), asr=os.path.join(FIXTURES, "asr"),
                           max_audio_seconds=10, max_new_tokens=16)
        m._tensor("aligner", "thinker.lm_head.weight")
        m.memory_report()
        m.close()

    for _ in range(5):
        cycle()
    gc.collect()
    before = rss_bytes()
    for _ in range(20):
        cycle()
    gc.collect()
    grown = rss_bytes() - before
    print(f"RSS growth over 20 load/close cycles: {grown} bytes")
    assert grown < 4 * 1024 * 1024
