"""A small CPU run for `make valgrind` (memcheck): every engine path that exists today, once, on real inputs.

Audio: a fixture WAV from a path, from bytes and as an int16 array at 22.05 kHz (libsndfile decode,
libsoxr resample, channel mix), log-mel of the result; text: the real Qwen3 tokenizer loaded from
the fixtures, encode/decode of mixed-script text, word splitting, prompt ids, timestamp repair;
parsers: the JSON and safetensors debug entry points on the committed fuzz seeds (valid and hostile).
Rejections are expected for the hostile seeds; anything else that raises fails the run.
engine: the fixture aligner and ASR loaded once, one align() of a short clip from its transcript,
one align() through the long-audio path (two chunks), one transcribe() and a rejected call, then
close(): every engine file runs under memcheck, and the arena's lifetime is checked for leaks.
Run: valgrind ... .venv/bin/python tests/tools/valgrind_run.py  (see tests/tools/valgrind.sh)
"""
import glob
import os
import sys
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "..", "shared", "fixtures")
sys.path.insert(0, REPO)

import qwen3align as qa  # noqa: E402
from qwen3align import _qwen3align as _C  # noqa: E402


def audio():
    wav = os.path.join(FIXTURES, "cases", "tiny", "input.wav")
    a = qa.load_audio(wav)
    with open(wav, "rb") as f:
        b = qa.load_audio(f.read())
    with wave.open(wav) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    c = qa.load_audio(pcm, sample_rate=rate)
    assert len(a) == len(b) == len(c) > 0
    feats, frames = qa.log_mel(a)
    assert feats.shape[0] == 128 and frames > 0 and np.isfinite(feats).all()
    try:
        qa.load_audio(b"RIFF\x00\x00\x00\x00WAVEjunk")
    except qa.AudioError:
        pass
    print(f"audio: {len(a)} samples, mel {feats.shape}")


def text():
    tok = qa.Tokenizer(os.path.join(FIXTURES, "aligner"))
    s = "Hello world, it's 2026. 我们今天去公园 👋🏽 <timestamp> naïve"
    ids = tok.encode(s)
    assert tok.decode(ids) == s
    words = qa.split_words(s, language="Chinese")
    n_audio = qa.audio_token_count(500)
    pids = qa.aligner_prompt_ids(tok, words, n_audio)
    aids = qa.asr_prompt_ids(tok, n_audio, language="English", context="names: Qwen")
    fixed = qa.repair_timestamps([0.0, 800.0, 160.0, 240.0, 80.0, 400.0])
    try:
        tok.encode(b"\xff\xfe".decode("latin-1") + "\udcff")
    except (qa.InputError, UnicodeError, ValueError):
        pass
    print(f"text: {len(ids)} ids, {len(words)} words, aligner prompt {len(pids)}, asr prompt {len(aids)}, {list(fixed)}")


def parsers():
    n_ok = n_err = 0
    for kind, fn in (("json", _C._json_parse), ("safetensors", _C._safetensors_parse)):
        for path in sorted(glob.glob(os.path.join(REPO, "tests", "fuzz", "corpus", kind, "*"))):
            with open(path, "rb") as f:
                data = f.read()
            try:
                fn(data)
                n_ok += 1
            except qa.Qwen3AlignError:
                n_err += 1
    print(f"parsers: {n_ok} accepted, {n_err} rejected")


def engine():
    import json

    case = os.path.join(FIXTURES, "cases", "tiny")
    with open(os.path.join(case, "expected.json"), encoding="utf-8") as f:
        exp = json.load(f)
    x = np.load(os.path.join(case, "audio16k.npy"))
    with qa.load_models(aligner=os.path.join(FIXTURES, "aligner"), asr=os.path.join(FIXTURES, "asr"),
                        device="cpu", max_audio_seconds=2, max_new_tokens=4) as m:
        res = m.align((x, 16000), text=exp["text"], language=exp["language"])
        assert [(i.text, i.start, i.end) for i in res] == [(i["text"], i["start"], i["end"]) for i in exp["items"]]
        long = m.align((np.concatenate([x, np.zeros(8000, np.float32), x]), 16000), words=["ok", "ok"],
                       target_seconds=0.5)
        tr = m.transcribe((x, 16000), max_new_tokens=4)
        try:
            m.align((x, 16000), words=[""])
        except qa.InputError:
            pass
        assert m.memory_report()["allocations_after_load"] == 0
    print(f"engine: {len(res)} items, long audio {len(long.chunks or [])} chunks, transcript {len(tr.tokens)} tokens")


if __name__ == "__main__":
    audio()
    text()
    parsers()
    engine()
    print("valgrind_run: done")
