"""Test helper: write audio files in any format the installed libsndfile can write (through ctypes),
and hand-made WAV headers for hostile inputs. Only tests import this."""
import ctypes
import ctypes.util
import struct

import numpy as np

SFM_WRITE = 0x20
FORMATS = {  # name -> (major | subtype)
    "wav_pcm16": 0x010000 | 0x0002,
    "wav_pcm24": 0x010000 | 0x0003,
    "wav_pcm32": 0x010000 | 0x0004,
    "wav_u8": 0x010000 | 0x0005,
    "wav_float": 0x010000 | 0x0006,
    "wav_double": 0x010000 | 0x0007,
    "wavex_pcm16": 0x130000 | 0x0002,
    "wavex_float": 0x130000 | 0x0006,
    "flac": 0x170000 | 0x0002,
    "ogg_vorbis": 0x200000 | 0x0060,
    "ogg_opus": 0x200000 | 0x0064,
    "mp3": 0x230000 | 0x0082,
}
LOSSY = {"ogg_vorbis", "ogg_opus", "mp3"}


class SF_INFO(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def _lib():
    name = ctypes.util.find_library("sndfile")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SF_INFO)]
    lib.sf_writef_float.restype = ctypes.c_int64
    lib.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]
    lib.sf_strerror.restype = ctypes.c_char_p
    lib.sf_strerror.argtypes = [ctypes.c_void_p]
    return lib


LIB = _lib()


def write_sf(path, samples, rate, fmt):
    """Write float samples (frames,) or (frames, channels) with libsndfile in format `fmt`.
    Returns False when this libsndfile cannot write that format."""
    x = np.ascontiguousarray(samples, dtype=np.float32)
    ch = 1 if x.ndim == 1 else x.shape[1]
    info = SF_INFO(0, rate, ch, FORMATS[fmt], 0, 0)
    f = LIB.sf_open(str(path).encode(), SFM_WRITE, ctypes.byref(info))
    if not f:
        return False
    n = LIB.sf_writef_float(f, x.ctypes.data, x.shape[0])
    LIB.sf_close(f)
    assert n == x.shape[0]
    return True


def wav_bytes(data, rate, channels, fmt_tag=1, bits=16, n_frames=None):
    """A RIFF/WAVE file by hand: fmt_tag 1 = PCM, 3 = IEEE float; data is the raw sample bytes."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def sine(seconds, rate, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
