"""qwen3align — Qwen3-ForcedAligner-0.6B and Qwen3-ASR in C/CUDA with every byte planned.

    import qwen3align as qa
    models = qa.load_models(aligner="Qwen3-ForcedAligner-0.6B/", asr="Qwen3-ASR-1.7B/")
    result = models.align("talk.wav", text="...", language="English")
    print(result.to_srt()); print(models.memory_report())

Importing this package is cheap: nothing (not even NumPy or the C extension) is loaded until a
name below is first used.
"""
__version__ = "0.1.0"


def _choose_openblas_core():
    """Pick OpenBLAS's kernel family when its CPU detection would not.

    Debian's OpenBLAS 0.3.21 does not know recent Xeons (e.g. Sapphire/Emerald Rapids) and falls
    back to its generic PRESCOTT kernels, 3x slower for sgemm. OpenBLAS reads OPENBLAS_CORETYPE when
    the extension loads it, so it is set here, before anything loads the extension, and only when
    the user has not set it. Reading /proc/cpuinfo costs well under a millisecond.
    """
    import os

    if "OPENBLAS_CORETYPE" in os.environ or not os.path.exists("/proc/cpuinfo"):
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
            else:
                return
    except OSError:
        return
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_choose_openblas_core()

# public name -> submodule that defines it (PEP 562 lazy attributes)
_EXPORTS = {
    "load_models": "models",
    "Models": "models",
    "plan": "memory",
    "MemoryPlan": "memory",
    "MemoryReport": "memory",
    "Qwen3AlignError": "errors",
    "ModelLoadError": "errors",
    "OutOfMemoryError": "errors",
    "AudioError": "errors",
    "InputError": "errors",
    "load_audio": "audio",
    "log_mel": "audio",
    "Tokenizer": "frontend",
    "split_words": "frontend",
    "audio_token_count": "frontend",
    "aligner_prompt_ids": "frontend",
    "asr_prompt_ids": "frontend",
    "repair_timestamps": "frontend",
    "parse_asr_output": "frontend",
    "AlignItem": "results",
    "Alignment": "results",
    "Transcription": "results",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'qwen3align' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"qwen3align.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
