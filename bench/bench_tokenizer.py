"""Tokenizer throughput on English text (MB/s of UTF-8 input) and load time.

    .venv/bin/python bench/bench_tokenizer.py [checkpoint folder]

Text: the English licence texts of /usr/share/common-licenses (or the fixture transcripts when they
are absent), repeated to about 4 MB. Prints load seconds, encode MB/s (one call over the whole text
and one call per line) and decode MB/s. Target (issue 3): encode >= 5 MB/s, load < 0.3 s.
"""
import glob
import json
import os
import sys
import time

import qwen3align as qa

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "shared", "fixtures")


def english_text(target=4 << 20):
    parts = []
    for p in ("GPL-3", "GPL-2", "Apache-2.0", "GFDL-1.3", "Artistic", "LGPL-3", "MPL-2.0"):
        path = os.path.join("/usr/share/common-licenses", p)
        if os.path.isfile(path):
            parts.append(open(path, encoding="utf-8", errors="replace").read())
    if not parts:
        for d in glob.glob(os.path.join(FIXTURES, "cases", "*", "expected.json")):
            parts.append(json.load(open(d, encoding="utf-8"))["text"])
    base = "\n".join(parts)
    return (base * (target // max(len(base), 1) + 1))[:target]


def best_of(fn, runs=3):
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(FIXTURES, "aligner")
    Tokenizer = qa.Tokenizer  # imports the extension (and NumPy) outside the timed load
    t = time.perf_counter()
    tok = Tokenizer(folder)
    load_s = time.perf_counter() - t
    text = english_text()
    mb = len(text.encode("utf-8")) / 1e6
    lines = text.splitlines()
    ids = tok.encode(text)
    enc_s = best_of(lambda: tok.encode(text))
    line_s = best_of(lambda: [tok.encode(line) for line in lines])
    dec_s = best_of(lambda: tok.decode(ids))
    print(f"tokenizer load: {load_s:.3f} s ({folder})")
    print(f"text: {mb:.2f} MB, {len(ids)} tokens ({mb * 1e6 / len(ids):.2f} bytes/token)")
    print(f"encode (one call):    {mb / enc_s:7.2f} MB/s")
    print(f"encode (per line):    {mb / line_s:7.2f} MB/s ({len(lines)} calls)")
    print(f"decode:               {mb / dec_s:7.2f} MB/s")


if __name__ == "__main__":
    main()
