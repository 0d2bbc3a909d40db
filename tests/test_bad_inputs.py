"""Bad inputs, table-driven (114 rows): each row is one hostile or wrong input to loading, audio, text or the API,
the typed exception it must raise and a fragment its message must contain. After every row the same
shared Models must still give the reference results of transformers 5.17 (aligner logits of en_short
within 1e-4 relative, align() of en_short's words giving expected.json's items). Edge inputs that
must WORK sit beside them, and max_device_bytes too small must leave nothing allocated."""
import gc
import json
import os
import pickle
import struct

import numpy as np
import pytest

from conftest import FIXTURES, assert_close_rel, load_case, npy
from safetensors_util import copy_fixture, read_raw, write_raw
import qwen3align as qa
from qwen3align import AudioError, InputError, ModelLoadError, OutOfMemoryError

EXP = load_case("en_short")
A16 = npy("en_short", "audio16k.npy")
FEAT = npy("en_short", "input_features.npy")
IDS = npy("en_short", "aligner_input_ids.npy")
FRAMES = EXP["mel_frames"]
WORDS = EXP["words"]
TS = 151705  # <timestamp>
PAD = 151676  # <|audio_pad|>


@pytest.fixture(scope="module")
def models():
    with qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu") as m:
        yield m


def assert_reference(m):
    """The good call after a bad one: same Models, reference numbers."""
    lg = m.aligner_logits(FEAT, FRAMES, IDS)
    assert_close_rel(lg, npy("en_short", "aligner_logits_at_timestamps.npy"), 1e-4, "en_short logits")
    res = m.align(A16, words=WORDS, sample_rate=16000)
    assert [(it.text, it.start, it.end) for it in res] == [(r["text"], r["start"], r["end"]) for r in EXP["items"]]


# ---- builders of hostile checkpoint folders (in tmp_path, from copies of the fixtures) ---------------

def folder(tmp, src="aligner"):
    return copy_fixture(os.path.join(FIXTURES, src), str(tmp / src))


def load(d, kind="aligner", **kw):
    return qa.load_models(**{kind: d}, device="cpu", **kw)


def bad_config(edit, src="aligner"):
    def run(m, tmp):
        d = folder(tmp, src)
        p = os.path.join(d, "config.json")
        c = json.load(open(p))
        edit(c)
        json.dump(c, open(p, "w"))
        load(d, "aligner" if src.startswith("aligner") else "asr")
    return run


def text_cfg(c):
    return c["thinker_config"]["text_config"]


def put(d, k, v):
    d[k] = v


def bad_file(name, content, src="aligner"):
    """Replace one file of the folder (tokenizer files are symlinks: unlink first) by raw bytes."""
    def run(m, tmp):
        d = folder(tmp, src)
        p = os.path.join(d, name)
        if os.path.lexists(p):
            os.remove(p)
        if content is not None:
            with open(p, "wb") as f:
                f.write(content(open(os.path.join(FIXTURES, src, name), "rb").read()) if callable(content)
                        else content)
        load(d, "aligner" if src.startswith("aligner") else "asr")
    return run


def bad_header(edit):
    """Rewrite the safetensors header of the aligner: edit(header) on the first tensor's entry."""
    def run(m, tmp):
        d = folder(tmp)
        p = os.path.join(d, "model.safetensors")
        header, meta, data = read_raw(p)
        edit(header[next(iter(header))])
        write_raw(p, header, data, meta)
        load(d)
    return run


def bad_index(edit):
    def run(m, tmp):
        d = folder(tmp, "asr-sharded")
        p = os.path.join(d, "model.safetensors.index.json")
        j = json.load(open(p))
        edit(j)
        json.dump(j, open(p, "w"))
        load(d, "asr")
    return run


def first_to(shard):
    def edit(j):
        k = next(iter(j["weight_map"]))
        j["weight_map"][k] = shard(j["weight_map"][k]) if callable(shard) else shard
    return edit


def other_shard(name):
    return name.replace("00001-of", "0000X-of").replace("00002-of", "00001-of").replace("0000X-of", "00002-of")


def st_bytes(fn):
    return bad_file("model.safetensors", fn)


# ---- API helpers ---------------------------------------------------------------------------------

def align(**kw):
    def run(m, tmp):
        args = dict(words=WORDS, sample_rate=16000)
        args.update(kw)
        audio = args.pop("audio", A16)
        m.align(audio, **args)
    return run


def transcribe(**kw):
    def run(m, tmp):
        args = dict(sample_rate=16000, max_new_tokens=4)
        args.update(kw)
        m.transcribe(args.pop("audio", A16), **args)
    return run


def logits(feat=None, frames=None, ids=None):
    def run(m, tmp):
        m.aligner_logits(FEAT if feat is None else feat(), FRAMES if frames is None else frames,
                         IDS if ids is None else ids())
    return run


def ids_with(fn):
    def make():
        x = IDS.astype(np.int64).copy()
        return fn(x)
    return make


def replace_first(x, old, new):
    x[np.nonzero(x == old)[0][0]] = new
    return x


def closed(call):
    def run(m, tmp):
        other = qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", max_audio_seconds=10)
        other.close()
        call(other)
    return run


def aligner_only(call):
    def run(m, tmp):
        with qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", max_audio_seconds=10) as other:
            call(other)
    return run


def write_wav_header_only(tmp):
    p = tmp / "header_only.wav"
    # RIFF/WAVE, fmt chunk of 16-bit mono 16 kHz, a data chunk that claims 1 MB but holds nothing
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    p.write_bytes(b"RIFF" + struct.pack("<I", 36 + 2**20) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                  + b"data" + struct.pack("<I", 2**20))
    return str(p)


# (id, action(models, tmp_path), exception type, message fragment)
ROWS = [
    # -- loading: config.json
    ("config-layers-1e12", bad_config(lambda c: put(text_cfg(c), "num_hidden_layers", 10**12)), ModelLoadError,
     "num_hidden_layers' = 1000000000000 is out of range"),
    ("config-layers-str", bad_config(lambda c: put(text_cfg(c), "num_hidden_layers", "2")), ModelLoadError,
     "num_hidden_layers' is not an integer"),
    ("config-hidden-float", bad_config(lambda c: put(text_cfg(c), "hidden_size", 32.5)), ModelLoadError,
     "hidden_size' is not an integer"),
    ("config-vocab-2**62", bad_config(lambda c: put(text_cfg(c), "vocab_size", 2**62)), ModelLoadError,
     "vocab_size' = 4611686018427387904 is out of range"),
    ("config-heads-0", bad_config(lambda c: put(text_cfg(c), "num_attention_heads", 0)), ModelLoadError,
     "num_attention_heads' = 0 is out of range"),
    ("config-kv-heads-3", bad_config(lambda c: put(text_cfg(c), "num_key_value_heads", 3)), ModelLoadError,
     "not a multiple of num_key_value_heads 3"),
    ("config-text-config-list", bad_config(lambda c: put(c["thinker_config"], "text_config", [1, 2])),
     ModelLoadError, "text_config' is missing or not an object"),
    ("config-rope-theta-str", bad_config(lambda c: put(text_cfg(c), "rope_theta", "big")), ModelLoadError,
     "rope_theta' is not a positive number"),
    ("config-encoder-layers-null", bad_config(lambda c: put(c["thinker_config"]["audio_config"], "encoder_layers",
                                                              None)), ModelLoadError, "encoder_layers' is not an integer"),
    ("config-classify-num-1e12", bad_config(lambda c: put(c["thinker_config"], "classify_num", 10**12)),
     ModelLoadError, "classify_num' = 1000000000000 is out of range"),
    ("config-not-json", bad_file("config.json", b"{not json"), ModelLoadError, "config.json: JSON error"),
    ("config-array", bad_file("config.json", b"[]"), ModelLoadError, "config.json: not a JSON object"),
    ("config-not-utf8", bad_file("config.json", b"\xff\xfe{}"), ModelLoadError, "config.json: JSON error"),
    ("config-nesting-100k", bad_file("config.json", b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"),
     ModelLoadError, "nesting deeper than"),
    ("config-missing", bad_file("config.json", None), ModelLoadError, "missing config.json"),
    ("folder-missing", lambda m, tmp: load(str(tmp / "nope")), ModelLoadError, "does not exist"),
    ("asr-as-aligner", lambda m, tmp: load(f"{FIXTURES}/asr", "aligner"), ModelLoadError,
     "but was passed as aligner="),
    # -- loading: safetensors
    ("st-truncated", st_bytes(lambda b: b[: len(b) // 2]), ModelLoadError, "outside the data buffer"),
    ("st-5-bytes", st_bytes(lambda b: b[:5]), ModelLoadError, "too short for a safetensors header"),
    ("st-empty", st_bytes(b""), ModelLoadError, "too short for a safetensors header"),
    ("st-header-len-2**63", st_bytes(lambda b: struct.pack("<Q", 2**63) + b[8:]), ModelLoadError,
     "exceeds the 100 MB cap"),
    ("st-header-len-past-eof", st_bytes(lambda b: struct.pack("<Q", len(b)) + b[8:]), ModelLoadError,
     "runs past the end of the file"),
    ("st-header-garbage", st_bytes(lambda b: struct.pack("<Q", 16) + b'{"a": garbage!!}' + b"\0" * 64),
     ModelLoadError, "header is not valid JSON"),
    ("st-lying-offsets", bad_header(lambda t: put(t, "data_offsets", [0, 10**12])), ModelLoadError,
     "data_offsets [0, 1000000000000] outside the data buffer"),
    ("st-lying-shape", bad_header(lambda t: put(t, "shape", [10**9, 10**9])), ModelLoadError,
     "elements of BF16 need"),
    ("st-unknown-dtype", bad_header(lambda t: put(t, "dtype", "Q7")), ModelLoadError, "unknown dtype 'Q7'"),
    ("st-missing", bad_file("model.safetensors", None), ModelLoadError, "no model.safetensors"),
    # -- loading: sharded index
    ("index-missing-shard", bad_index(first_to("model-00009-of-00009.safetensors")), ModelLoadError,
     "model-00009-of-00009.safetensors"),
    ("index-path-escape", bad_index(first_to("../../../etc/passwd")), ModelLoadError, "invalid shard name"),
    ("index-weight-map-list", bad_index(lambda j: put(j, "weight_map", [1])), ModelLoadError, "no weight_map object"),
    ("index-wrong-shard", bad_index(first_to(other_shard)), ModelLoadError, "missing tensor"),
    ("index-not-json", bad_file("model.safetensors.index.json", b"{", "asr-sharded"), ModelLoadError, "JSON error"),
    # -- loading: tokenizer files
    ("vocab-not-json", bad_file("vocab.json", b"{oops"), ModelLoadError, "vocab.json: line 1 column 2"),
    ("vocab-array", bad_file("vocab.json", b"[1, 2]"), ModelLoadError, "vocab.json: the top level is not a JSON object"),
    ("vocab-id-str", bad_file("vocab.json", b'{"a": "x"}'), ModelLoadError, "token 'a' (entry 1) has no valid id"),
    ("vocab-id-huge", bad_file("vocab.json", b'{"a": 99999999999}'), ModelLoadError, "has no valid id"),
    ("vocab-missing", bad_file("vocab.json", None), ModelLoadError, "vocab.json: cannot open"),
    ("merges-one-field", bad_file("merges.txt", b"#version: 0.2\nabc\n"), ModelLoadError,
     "merges.txt line 2: expected two symbols"),
    ("merges-unknown-symbol", bad_file("merges.txt", b"#version: 0.2\nzzzzqqq yyyyy\n"), ModelLoadError,
     "symbol 'zzzzqqq' is not in vocab.json"),
    ("merges-empty", bad_file("merges.txt", b""), ModelLoadError, "merges.txt: no merges"),
    ("tokenizer-config-not-json", bad_file("tokenizer_config.json", b"{"), ModelLoadError,
     "tokenizer_config.json: line 1 column 2"),
    # -- loading: arguments
    ("load-max-new-tokens-1e12", lambda m, tmp: qa.load_models(asr=f"{FIXTURES}/asr", device="cpu",
                                                                max_new_tokens=10**12), InputError, "max_new_tokens"),
    ("load-max-audio-nan", lambda m, tmp: qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu",
                                                          max_audio_seconds=float("nan")), InputError,
     "max_audio_seconds must be a positive number"),
    ("load-max-device-bytes-str", lambda m, tmp: qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu",
                                                                 max_device_bytes="lots"), InputError, "byte count"),
    ("load-path-surrogate", lambda m, tmp: qa.load_models(aligner="/tmp/\udcff", device="cpu"), InputError,
     "not valid Unicode"),
    ("load-device-tpu", lambda m, tmp: qa.load_models(aligner=f"{FIXTURES}/aligner", device="tpu"), InputError,
     "device must be"),
    ("load-dtype-int8", lambda m, tmp: qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu", dtype="int8"),
     InputError, "dtype must be"),
    ("load-nothing", lambda m, tmp: qa.load_models(), InputError, "give at least one"),
    ("load-max-device-bytes-1000", lambda m, tmp: qa.load_models(aligner=f"{FIXTURES}/aligner", device="cpu",
                                                                  max_device_bytes=1000), OutOfMemoryError,
     "but cpu has 1000 bytes"),
    # -- audio
    ("audio-nan", align(audio=np.full(16000, np.nan, np.float32)), AudioError, "is NaN; audio must be finite"),
    ("audio-inf", align(audio=np.r_[A16[:100], np.inf].astype(np.float32)), AudioError, "sample 100 is infinite"),
    ("audio-empty", align(audio=np.zeros(0, np.float32)), AudioError, "no audio samples"),
    ("audio-0-channels", align(audio=np.zeros((16000, 0), np.float32)), AudioError, "0 channels, expected 1 to 8"),
    ("audio-64-channels", align(audio=np.zeros((16000, 64), np.float32)), AudioError, "64 channels, expected 1 to 8"),
    ("audio-3d", align(audio=np.zeros((10, 10, 10), np.float32)), AudioError, "(10, 10, 10)"),
    ("audio-object", align(audio=np.array([object()] * 100)), AudioError, "dtype object is not audio samples"),
    ("audio-complex", align(audio=A16.astype(np.complex64)), AudioError, "dtype complex64 is not audio samples"),
    ("audio-str", align(audio=np.array(["a"] * 100)), AudioError, "is not audio samples"),
    ("audio-rate-0", align(sample_rate=0), AudioError, "sample rate 0 Hz"),
    ("audio-rate-nan", align(sample_rate=float("nan")), AudioError, "sample rate nan Hz"),
    ("audio-rate-1e12", align(sample_rate=10**12), AudioError, "expected 1000 to 768000 Hz"),
    ("audio-no-rate", align(sample_rate=None), InputError, "needs sample_rate="),
    ("audio-bytes-garbage", align(audio=b"garbage" * 100, sample_rate=None), AudioError,
     "not a readable audio file"),
    ("audio-bytes-empty", align(audio=b"", sample_rate=None), AudioError, "no bytes"),
    ("audio-file-missing", align(audio="/nonexistent/x.wav", sample_rate=None), AudioError, "cannot open audio file"),
    ("audio-directory", align(audio="/tmp", sample_rate=None), AudioError, "is a directory"),
    ("audio-wav-header-only", lambda m, tmp: m.align(write_wav_header_only(tmp), words=WORDS), AudioError,
     "header_only.wav"),
    ("features-longer-than-plan",  # one forward never exceeds the plan (align() chunks long audio)
     aligner_only(lambda o: o.aligner_logits(np.zeros((128, 1200), np.float32), 1200, IDS)), InputError,
     "max_audio_seconds"),
    # -- text
    ("text-empty", align(words=None, text=""), InputError, "no words to align"),
    ("text-only-punctuation", align(words=None, text="!!! ... ,,, ??? — «»"), InputError, "no words to align"),
    ("text-whitespace", align(words=None, text=" \n\t "), InputError, "no words to align"),
    ("text-1MB", align(words=None, text="word " * 200000), InputError, "the plan allows"),
    ("text-1MB-one-word", align(words=None, text="a" * 1000000), InputError, "the plan allows"),
    ("text-1M-cjk-chars", align(words=None, text="中" * 1000000, language="Chinese"), InputError, "the plan allows"),
    ("text-bytes-not-utf8", align(words=None, text=b"\xff\xfe\x80"), InputError, "text must be a str"),
    ("text-lone-surrogate", align(words=None, text="hello \ud800 world"), InputError, "lone surrogate U+D800"),
    ("words-lone-surrogate", align(words=["hello", "\udc80"]), InputError, "words[1] contains a lone surrogate"),
    ("words-empty-string", align(words=["hello", ""]), InputError, "non-empty strings"),
    ("words-whitespace-string", align(words=["hello", "  "]), InputError, "non-empty strings"),
    ("words-empty-list", align(words=[]), InputError, "words=[] is empty"),
    ("words-a-str", align(words="hello"), InputError, "non-empty strings"),
    ("words-ints", align(words=[1, 2]), InputError, "non-empty strings"),
    ("text-and-words", align(text="hello"), InputError, "not both"),
    ("language-unsupported", align(words=None, text="hello", language="Klingon"), InputError,
     "unsupported language 'Klingon' for the forced aligner"),
    ("language-asr-only", align(words=None, text="hello", language="Arabic"), InputError,
     "for the forced aligner"),
    ("language-int", align(words=None, text="hello", language=5), InputError, "language must be a str"),
    ("transcribe-language-unsupported", transcribe(language="Klingon"), InputError,
     "unsupported language 'Klingon' for Qwen3-ASR"),
    ("context-not-str", transcribe(context=5), InputError, "context must be a str"),
    ("context-lone-surrogate", transcribe(context="\ud800"), InputError, "context contains a lone surrogate"),
    ("context-1MB", transcribe(context="word " * 200000), InputError, "the plan allows"),
    # -- API use
    ("transcribe-max-new-0", transcribe(max_new_tokens=0), InputError, "1 <= max_new_tokens"),
    ("transcribe-max-new-above-plan", transcribe(max_new_tokens=10**30), InputError,
     "exceeds the plan's max_new_tokens 1024"),
    ("transcribe-max-new-str", transcribe(max_new_tokens="x"), InputError, "max_new_tokens must be an integer"),
    ("logits-features-1d", logits(feat=lambda: FEAT[0]), InputError, "2-D array"),
    ("logits-features-nan", logits(feat=lambda: np.where(np.arange(FEAT.shape[1]) == 7, np.nan, FEAT)), InputError,
     "features[0, 7] = nan"),
    ("logits-features-complex", logits(feat=lambda: FEAT.astype(np.complex64)), InputError, "real-valued"),
    ("logits-features-64-bins", logits(feat=lambda: FEAT[:64]), InputError, "64 mel bins, the model expects 128"),
    ("logits-frames-negative", logits(frames=-1), InputError, "valid_frames -1 must be in [1, 600]"),
    ("logits-frames-too-many", logits(frames=601), InputError, "valid_frames 601"),
    ("logits-ids-float", logits(ids=lambda: IDS.astype(np.float32)), InputError, "1-D integer array"),
    ("logits-ids-2d", logits(ids=lambda: IDS[None]), InputError, "1-D integer array"),
    ("logits-ids-beyond-int32", logits(ids=ids_with(lambda x: replace_first(x, TS, 2**40))), InputError,
     "is not a token id"),
    ("logits-ids-outside-vocab", logits(ids=ids_with(lambda x: replace_first(x, TS, 200000))), InputError,
     "outside the vocabulary"),
    ("logits-ids-no-timestamp", logits(ids=ids_with(lambda x: x[x != TS])), InputError, "no <timestamp> id"),
    ("logits-ids-pad-count", logits(ids=ids_with(lambda x: replace_first(x, PAD, 11))), InputError,
     "<|audio_pad|> ids"),
    ("audio-embeddings-model-bogus", lambda m, tmp: m.audio_embeddings(FEAT, FRAMES, "bogus"), InputError,
     "model must be 'aligner' or 'asr'"),
    ("asr-generate-min-above-max", lambda m, tmp: m.asr_generate(FEAT, FRAMES, npy("en_short", "asr_prompt_ids.npy"),
                                                                 4, 5), InputError, "min_new_tokens"),
    ("after-close-align", closed(lambda o: o.align(A16, words=WORDS, sample_rate=16000)), InputError,
     "Models is closed"),
    ("after-close-logits", closed(lambda o: o.aligner_logits(FEAT, FRAMES, IDS)), InputError, "Models is closed"),
    ("after-close-report", closed(lambda o: o.memory_report()), InputError, "Models is closed"),
    ("after-close-with", closed(lambda o: o.__enter__()), InputError, "Models is closed"),
    ("transcribe-without-asr", aligner_only(lambda o: o.transcribe(A16, sample_rate=16000)), InputError,
     "transcribe() needs the ASR model"),
    ("align-without-text-or-asr", aligner_only(lambda o: o.align(A16, sample_rate=16000)), InputError,
     "align() without text= needs the ASR model"),
    ("pickle", lambda m, tmp: pickle.dumps(m), TypeError, "cannot pickle 'Models'"),
]


def test_enough_rows():
    assert len(ROWS) >= 30
    assert len({r[0] for r in ROWS}) == len(ROWS), "row ids must be unique"


@pytest.mark.parametrize("action,exc,fragment", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(models, tmp_path, action, exc, fragment):
    with pytest.raises(exc) as ei:
        action(models, tmp_path)
    msg = str(ei.value)
    print(f"{exc.__name__}: {msg[:200]}")
    assert fragment in msg, f"{fragment!r} not in {msg!r}"
    if exc is not TypeError:
        assert isinstance(ei.value, qa.Qwen3AlignError)
    assert_reference(models)


# ---- edge inputs that must work -------------------------------------------------------------------

def check_items(res, words, duration):
    assert [it.text for it in res] == list(words)
    for it in res:
        assert np.isfinite([it.start, it.end]).all() and 0.0 <= it.start <= it.end, it
        assert 0.0 <= it.confidence <= 1.0
    starts = [it.start for it in res]
    assert starts == sorted(starts)
    assert res.duration == pytest.approx(duration)


def items(res):
    return [(it.text, it.start, it.end) for it in res]


def test_edge_one_sample(models):
    res = models.align(np.array([0.25], np.float32), words=WORDS, sample_rate=16000)
    check_items(res, WORDS, 1 / 16000)
    assert_reference(models)


def test_edge_silence(models):
    check_items(models.align(np.zeros(16000, np.float32), words=WORDS, sample_rate=16000), WORDS, 1.0)
    t = models.transcribe(np.zeros(16000, np.float32), sample_rate=16000, max_new_tokens=4)
    assert len(t.tokens) <= 4
    assert_reference(models)


def test_edge_very_loud_equals_peak_normalised(models):
    """Audio beyond [-1, 1] is divided by its peak (reference loader): 1e6x louder = peak-normalised."""
    loud = models.align(A16 * 1e6, words=WORDS, sample_rate=16000)
    norm = models.align(A16 / np.abs(A16).max(), words=WORDS, sample_rate=16000)
    assert items(loud) == items(norm)
    assert_reference(models)


def test_edge_eight_channels(models):
    """8 identical channels mix down to the mono clip: the reference items come out."""
    res = models.align(np.repeat(A16[:, None], 8, axis=1), words=WORDS, sample_rate=16000)
    assert items(res) == [(r["text"], r["start"], r["end"]) for r in EXP["items"]]


def test_edge_single_word(models):
    res = models.align(A16, words=["Hello"], sample_rate=16000)
    check_items(res, ["Hello"], len(A16) / 16000)
    res = models.align(A16, text="Hello", language="English", sample_rate=16000)
    check_items(res, ["Hello"], len(A16) / 16000)
    assert_reference(models)


def test_edge_int16_and_tuple_sources(models):
    pcm = np.clip(np.round(A16 * 32768), -32768, 32767).astype(np.int16)
    check_items(models.align((pcm, 16000), words=WORDS), WORDS, len(A16) / 16000)


# ---- max_device_bytes too small leaves nothing behind ---------------------------------------------

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""), reason="ASan's quarantine keeps freed memory resident")
def test_oom_leaves_nothing_allocated(models):
    def attempt(cap):
        with pytest.raises(OutOfMemoryError) as ei:
            qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu", max_device_bytes=cap)
        e = ei.value
        assert e.needed_bytes > cap and e.available_bytes == cap, (e.needed_bytes, e.available_bytes)
        return e.needed_bytes

    for _ in range(5):
        needed = attempt(1000)
    gc.collect()
    before = rss_bytes()
    for i in range(40):
        attempt(1000 if i % 2 else needed - 1)  # far below, and one byte short of the plan
    gc.collect()
    grown = rss_bytes() - before
    print(f"RSS growth over 40 OOM loads: {grown} bytes (the plan needs {needed} bytes)")
    assert grown < 1024 * 1024
    with qa.load_models(aligner=f"{FIXTURES}/aligner", asr=f"{FIXTURES}/asr", device="cpu",
                        max_device_bytes=needed) as m:  # exactly enough: loads and gives the reference
        assert_reference(m)
    assert_reference(models)
