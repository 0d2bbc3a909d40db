"""Audio in: any source -> float32 mono 16 kHz samples, and the log-mel features of such samples.

Decoding (libsndfile), resampling (libsoxr, high quality, linear phase), channel mixing and
validation happen in C (csrc/frontend/audio.c); this module only picks the entry point from the
type of the source.

Sources accepted by `load_audio`:
  * a path (str or os.PathLike): WAV (PCM 8-32 bit, float, WAVE_FORMAT_EXTENSIBLE), FLAC,
    OGG/Vorbis/Opus, MP3 — whatever the installed libsndfile reads;
  * bytes / bytearray / memoryview: the contents of such a file;
  * a NumPy array (1-D, or 2-D frames x channels, at most 8 channels) with `sample_rate=`;
  * a tuple `(array, sample_rate)`.
Integer arrays are scaled by their dtype's full range: signed x / 2**(bits-1) (int16 / 32768),
unsigned (x - 2**(bits-1)) / 2**(bits-1) (uint8 is centred at 128). Float arrays are taken as is.
Then, like the reference loader: mean over channels, resample to 16 kHz, and if the peak exceeds 1
divide by the peak; clip to [-1, 1].
"""
import os

import numpy as np

from . import _qwen3align as _C
from .errors import InputError

__all__ = ["load_audio", "log_mel", "SAMPLE_RATE"]

SAMPLE_RATE = 16000


def load_audio(source, sample_rate=None):
    """Return float32 mono samples at 16 kHz in [-1, 1] from a path, file bytes, or an array.

    `sample_rate` is required for an array (and must match the rate of an `(array, rate)` tuple);
    files carry their own rate. Raises AudioError (a ValueError) naming the source when the audio
    cannot be decoded or used, InputError for a wrong kind of argument.
    """
    if isinstance(source, (str, os.PathLike)):
        if sample_rate is not None:
            raise InputError("load_audio: sample_rate= is only for arrays; a file carries its own rate")
        return _C._load_audio_file(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if sample_rate is not None:
            raise InputError("load_audio: sample_rate= is only for arrays; file bytes carry their own rate")
        return _C._load_audio_bytes(source)
    if isinstance(source, tuple):
        if len(source) != 2:
            raise InputError(f"load_audio: a tuple source must be (array, sample_rate), got {len(source)} items")
        source, rate = source
        if sample_rate is not None and sample_rate != rate:
            raise InputError(f"load_audio: sample_rate={sample_rate!r} disagrees with the tuple's rate {rate!r}")
        sample_rate = rate
    if sample_rate is None:
        raise InputError("load_audio: an array needs sample_rate= (or pass (array, sample_rate))")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise InputError(f"load_audio: sample_rate must be a number, got {type(sample_rate).__name__}")
    return _C._load_audio_array(np.asarray(source), float(sample_rate))


def _samples16k(audio, sample_rate):
    """load_audio(audio, sample_rate), except that an array which already is what it returns (1-D
    float32 at 16 kHz within [-1, 1]) is used as is: load_audio would return the same values, and
    the pipeline's second look at a clip (longaudio, then the one-forward path) would otherwise cost a
    copy and a pass over it (~17 ms per 60 s). max/min instead of abs().max() avoid a temporary as
    large as the recording; NaN fails both, so load_audio reports it."""
    if (isinstance(audio, np.ndarray) and audio.ndim == 1 and audio.dtype == np.float32
            and sample_rate == SAMPLE_RATE and audio.size and audio.max() <= 1.0 and audio.min() >= -1.0):
        return np.ascontiguousarray(audio)
    return load_audio(audio, sample_rate=sample_rate)


def log_mel(audio16k):
    """Log-mel features of 16 kHz mono samples (the reference Qwen3-ASR feature extractor).

    Returns `(features, valid_frames)`: float32 [128, T] with T = valid_frames rounded up to a
    multiple of 100 (the padding columns are 0.0), valid_frames = max(len, 8000) // 160.
    """
    return _C.log_mel(audio16k)
