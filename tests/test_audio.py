"""qwen3align.load_audio: decode (libsndfile) + resample (libsoxr) + mix + peak normalisation.

Reference: cases/*/audio16k.npy were resampled from input.wav (22.05 kHz) by sox; we must agree
to >= 50 dB SNR. Edge cases and bad inputs follow the issue's contract.
"""
import os
import wave

import numpy as np
import pytest

import qwen3align as qa
from audio_files import FORMATS, LIB, LOSSY, sine, wav_bytes, write_sf
from conftest import CASES, case_dir, npy
from qwen3align import _qwen3align

needs_libs = pytest.mark.skipif(not _qwen3align.HAVE_AUDIO_LIBS,
                                reason="built with QA_NO_AUDIO_LIBS: no libsndfile decoding / libsoxr resampling")


def snr_db(ref, out):
    n = min(len(ref), len(out))
    ref = ref[:n].astype(np.float64)
    err = ref - out[:n].astype(np.float64)
    return 10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-300))


def read_wav_int16(path):
    with wave.open(path) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


# ---- parity with the reference resampling ----------------------------------------------------------

@needs_libs
@pytest.mark.parametrize("case", CASES)
def test_resample_matches_sox(case):
    ref = npy(case, "audio16k.npy")
    out = qa.load_audio(os.path.join(case_dir(case), "input.wav"))
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - len(ref)) <= 1, f"{case}: {len(out)} samples, sox wrote {len(ref)}"
    s = snr_db(ref, out)
    print(f"{case}: SNR vs sox {s:.2f} dB ({len(out)} samples)")
    assert s >= 50.0, f"{case}: SNR {s:.2f} dB < 50 dB"


@needs_libs
def test_all_sources_agree():
    path = os.path.join(case_dir(CASES[0]), "input.wav")
    from_path = qa.load_audio(path)
    with open(path, "rb") as f:
        raw = f.read()
    pcm, rate = read_wav_int16(path)
    assert rate == 22050
    np.testing.assert_array_equal(qa.load_audio(raw), from_path)
    np.testing.assert_array_equal(qa.load_audio(bytearray(raw)), from_path)
    np.testing.assert_array_equal(qa.load_audio(memoryview(raw)), from_path)
    np.testing.assert_array_equal(qa.load_audio(pcm, sample_rate=rate), from_path)
    np.testing.assert_array_equal(qa.load_audio((pcm, rate)), from_path)
    np.testing.assert_array_equal(qa.load_audio(pcm.astype(">i2"), sample_rate=rate), from_path)
    from pathlib import Path
    np.testing.assert_array_equal(qa.load_audio(Path(path)), from_path)


# ---- arrays: dtypes, channels, loudness ------------------------------------------------------------

@pytest.mark.parametrize("dtype,values,expected", [
    (np.int8, [-128, 0, 64], [-1.0, 0.0, 0.5]),
    (np.int16, [-32768, 0, 16384], [-1.0, 0.0, 0.5]),
    (np.int32, [-2**31, 0, 2**30], [-1.0, 0.0, 0.5]),
    (np.int64, [-2**63, 0, 2**62], [-1.0, 0.0, 0.5]),
    (np.uint8, [0, 128, 192], [-1.0, 0.0, 0.5]),
    (np.uint16, [0, 32768, 49152], [-1.0, 0.0, 0.5]),
    (np.uint32, [0, 2**31, 3 * 2**30], [-1.0, 0.0, 0.5]),
    (np.uint64, [0, 2**63, 3 * 2**62], [-1.0, 0.0, 0.5]),
    (np.float16, [-1.0, 0.0, 0.5], [-1.0, 0.0, 0.5]),
    (np.float32, [-1.0, 0.0, 0.5], [-1.0, 0.0, 0.5]),
    (np.float64, [-1.0, 0.0, 0.5], [-1.0, 0.0, 0.5]),
])
def test_integer_full_range_scaling(dtype, values, expected):
    out = qa.load_audio(np.array(values, dtype=dtype), sample_rate=16000)
    np.testing.assert_array_equal(out, np.array(expected, dtype=np.float32))


def test_channel_mean_frames_by_channels():
    left, right = sine(0.5, 16000, 440), sine(0.5, 16000, 300, 0.25)
    out = qa.load_audio(np.stack([left, right], axis=1), sample_rate=16000)
    np.testing.assert_allclose(out, (left.astype(np.float64) + right) / 2, atol=1e-7)
    mono = qa.load_audio(np.stack([left, left], axis=1), sample_rate=16000)
    np.testing.assert_array_equal(mono, left)
    np.testing.assert_array_equal(qa.load_audio(left[:, None], sample_rate=16000), left)


def test_loud_audio_scaled_to_peak_one():
    x = sine(0.25, 16000, amp=4.0)
    x[100] = -8.0
    out = qa.load_audio(x, sample_rate=16000)
    assert np.abs(out).max() == 1.0 and out[100] == -1.0
    np.testing.assert_allclose(out, x / 8.0, rtol=1e-6)
    quiet = sine(0.25, 16000, amp=0.9)
    np.testing.assert_array_equal(qa.load_audio(quiet, sample_rate=16000), quiet)


@needs_libs
def test_loud_resampled_audio_is_clipped_to_unit_range():
    out = qa.load_audio(np.sign(sine(0.5, 44100, 1000)) * 3.0, sample_rate=44100)
    assert len(out) == 8000 and np.abs(out).max() <= 1.0


@needs_libs
def test_one_sample_clip():
    out = qa.load_audio(np.array([0.25], dtype=np.float32), sample_rate=16000)
    np.testing.assert_array_equal(out, [0.25])
    out = qa.load_audio(np.array([1000], dtype=np.int16), sample_rate=22050)
    assert out.shape == (1,)
    feats, valid = qa.log_mel(out)  # padded to 8000 samples there, not here
    assert feats.shape == (128, 100) and valid == 50


@needs_libs
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_resampled_length_and_tone(rate):
    out = qa.load_audio(sine(1.0, rate, 1000), sample_rate=rate)
    assert len(out) == 16000
    ref = sine(1.0, 16000, 1000)
    assert snr_db(ref[200:-200], out[200:-200]) > 60


# ---- files: formats libsndfile reads --------------------------------------------------------------

@needs_libs
@pytest.mark.skipif(LIB is None, reason="libsndfile not loadable through ctypes to write test files")
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_file_formats(tmp_path, fmt):
    x = sine(1.0, 16000)
    path = tmp_path / f"tone.{fmt}"
    if not write_sf(path, np.stack([x, x], axis=1), 16000, fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}, so it cannot be tested")
    out = qa.load_audio(str(path))
    with open(path, "rb") as f:
        np.testing.assert_array_equal(qa.load_audio(f.read()), out)
    if fmt in LOSSY:
        assert abs(len(out) - 16000) <= 800, f"{fmt}: {len(out)} samples"
        assert 0.7 < np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(x**2)) < 1.3
    else:
        assert len(out) == 16000
        tol = 1 / 64 if fmt == "wav_u8" else 1e-4
        np.testing.assert_allclose(out, x, atol=tol)


@needs_libs
def test_float_wav_peak_above_one_is_scaled(tmp_path):
    x = sine(0.5, 16000, amp=2.0)
    path = tmp_path / "loud.wav"
    path.write_bytes(wav_bytes(x.astype("<f4").tobytes(), 16000, 1, fmt_tag=3, bits=32))
    out = qa.load_audio(str(path))
    np.testing.assert_allclose(out, x / np.abs(x).max(), rtol=1e-6)


# ---- bad input -------------------------------------------------------------------------------------

def audio_error(match):
    return pytest.raises(qa.AudioError, match=match)


@needs_libs
def test_missing_file_names_it(tmp_path):
    p = str(tmp_path / "nope.wav")
    with audio_error("nope.wav"):
        qa.load_audio(p)


@needs_libs
def test_not_audio_names_file(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not a RIFF file at all, just text\n" * 20)
    with audio_error("notes.wav.*not a readable audio file"):
        qa.load_audio(str(p))
    with audio_error("<bytes>"):
        qa.load_audio(b"garbage" * 100)


@needs_libs
def test_empty_inputs(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with audio_error("empty.wav.*empty"):
        qa.load_audio(str(p))
    with audio_error("empty"):
        qa.load_audio(b"")
    with audio_error("no audio samples"):
        qa.load_audio(np.zeros(0, np.float32), sample_rate=16000)
    with audio_error("no audio samples"):
        qa.load_audio(np.zeros((0, 2), np.float32), sample_rate=16000)


@needs_libs
def test_header_without_samples(tmp_path):
    p = tmp_path / "hollow.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    with audio_error("hollow.wav.*no audio samples"):
        qa.load_audio(str(p))


@pytest.mark.parametrize("rate", [0, -16000, 10, 1e9, float("nan"), float("inf")])
def test_bad_rates(rate):
    with audio_error("sample rate"):
        qa.load_audio(np.zeros(100, np.float32), sample_rate=rate)


@needs_libs
def test_zero_hz_wav_header(tmp_path):
    p = tmp_path / "zero_hz.wav"
    p.write_bytes(wav_bytes(np.zeros(100, "<i2").tobytes(), 0, 1))
    with audio_error("zero_hz.wav"):
        qa.load_audio(str(p))


@needs_libs
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = sine(0.1, 16000)
    x[7] = bad
    with audio_error("sample 7"):
        qa.load_audio(x, sample_rate=16000)
    with audio_error("sample 7"):
        qa.load_audio(x.astype(np.float64), sample_rate=44100)
    p = tmp_path / "nan.wav"
    p.write_bytes(wav_bytes(x.astype("<f4").tobytes(), 16000, 1, fmt_tag=3, bits=32))
    with audio_error("nan.wav.*sample 7"):
        qa.load_audio(str(p))


def test_huge_float64_is_not_finite_in_float32():
    with audio_error("sample 1"):
        qa.load_audio(np.array([0.0, 1e300]), sample_rate=16000)


@pytest.mark.parametrize("channels", [0, 9, 64])
def test_channel_counts(channels):
    with audio_error(f"{channels} channels"):
        qa.load_audio(np.zeros((1000, channels), np.float32), sample_rate=16000)


@needs_libs
def test_too_many_channels_in_file(tmp_path):
    p = tmp_path / "nine.wav"
    p.write_bytes(wav_bytes(np.zeros(9 * 100, "<i2").tobytes(), 16000, 9))
    with audio_error("nine.wav.*9 channels"):
        qa.load_audio(str(p))


def test_3d_array_names_shape():
    with audio_error(r"\(2, 3, 4\)"):
        qa.load_audio(np.zeros((2, 3, 4), np.float32), sample_rate=16000)


@pytest.mark.parametrize("dtype", [object, np.complex64, np.complex128, bool, "U3"])
def test_non_audio_dtypes(dtype):
    with audio_error("dtype"):
        qa.load_audio(np.zeros(10, dtype=dtype), sample_rate=16000)


def test_argument_errors():
    with pytest.raises(qa.InputError, match="sample_rate"):
        qa.load_audio(np.zeros(10, np.float32))
    with pytest.raises(qa.InputError, match="disagrees"):
        qa.load_audio((np.zeros(10, np.float32), 16000), sample_rate=8000)
    with pytest.raises(qa.InputError, match="only for arrays"):
        qa.load_audio("x.wav", sample_rate=16000)
    with pytest.raises(qa.InputError, match="number"):
        qa.load_audio(np.zeros(10, np.float32), sample_rate="16k")
    assert issubclass(qa.AudioError, ValueError)


@pytest.mark.skipif(_qwen3align.HAVE_AUDIO_LIBS, reason="only in a build without audio libraries")
def test_without_audio_libs_16k_arrays_still_work():
    x = sine(0.1, 16000)
    np.testing.assert_array_equal(qa.load_audio(x, sample_rate=16000), x)
    with audio_error("libsoxr"):
        qa.load_audio(x, sample_rate=22050)
    with audio_error("libsndfile"):
        qa.load_audio(b"RIFF")


def test_request_path_uses_ready_arrays_as_is_and_loads_everything_else():
    """request_samples (align/transcribe's intake): a 1-D float32 16 kHz array that load_audio would return
    unchanged is used without a copy; everything else goes through load_audio (same values, same errors)."""
    from qwen3align.audio import request_samples

    rng = np.random.default_rng(5)
    x = (rng.standard_normal(48000) * 0.2).clip(-1, 1).astype(np.float32)
    assert request_samples(x, 16000) is x
    np.testing.assert_array_equal(qa.load_audio(x, sample_rate=16000), x)
    loud = x * 3
    got = request_samples(loud, 16000)
    assert got is not loud
    np.testing.assert_array_equal(got, qa.load_audio(loud, sample_rate=16000))
    assert np.abs(got).max() == 1.0
    for other in (x.astype(np.float64), x[::2], x.reshape(-1, 1), x.astype(">f4")):
        got = request_samples(other, 16000)
        assert got is not other
        np.testing.assert_array_equal(got, qa.load_audio(other, sample_rate=16000))
    for bad, word in ((np.nan, "NaN"), (np.inf, "infinite")):
        y = x.copy()
        y[1234] = bad
        with pytest.raises(qa.AudioError, match=f"sample 1234 is {word}"):
            request_samples(y, 16000)
    with pytest.raises(qa.AudioError, match="no audio samples"):
        request_samples(np.zeros(0, np.float32), 16000)


def test_ready_array_scan_at_every_position_of_its_blocks():
    """audio.c scans 16 samples per step with one integer maximum of |x|'s bits (and a scalar tail): a
    NaN, an infinity or a value just above 1 anywhere (first sample, inside a block, block edges, the
    tail) makes the array not ready, and load_audio names that sample; +-1.0, -0.0 and subnormals keep
    it ready."""
    from qwen3align.audio import request_samples

    one_up = np.nextafter(np.float32(1), np.float32(2))
    for n in (1, 15, 16, 17, 47, 48, 50):
        x = np.linspace(-0.5, 0.5, n, dtype=np.float32)
        assert _qwen3align._samples16k(x) is x
        for i in sorted({0, 1, 15, 16, 17, n // 2, n - 2, n - 1} & set(range(n))):
            for v in (1.0, -1.0, -0.0, np.float32(1e-45)):
                y = x.copy()
                y[i] = v
                assert _qwen3align._samples16k(y) is y, (n, i, v)
            for v in (np.nan, -np.nan, np.inf, -np.inf, one_up, -one_up):
                y = x.copy()
                y[i] = v
                assert _qwen3align._samples16k(y) is None, (n, i, v)
            for v, word in ((np.nan, "NaN"), (-np.inf, "infinite")):
                y = x.copy()
                y[i] = v
                with pytest.raises(qa.AudioError, match=f"sample {i} is {word}"):
                    request_samples(y, 16000)
    assert _qwen3align._samples16k(np.zeros(0, np.float32)) is None


def test_peak_normalisation_divides_by_the_peak_exactly():
    """The reference clips after dividing by the peak; for finite samples x / peak stays within [-1, 1]
    (audio.c runs its one divide-and-clip pass only when the peak is above 1 or a value is not finite)."""
    rng = np.random.default_rng(6)
    for scale in (1.0000002, 1.5, 3.0, 1e30):
        x = (rng.uniform(-1, 1, 100000) * scale).astype(np.float32)
        x[17] = -np.float32(scale)  # the peak, on the negative side
        out = qa.load_audio(x, sample_rate=16000)
        assert np.abs(out).max() == 1.0
        np.testing.assert_array_equal(out, x / np.float32(scale))
