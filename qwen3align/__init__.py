"""qwen3align — Qwen3-ForcedAligner-0.6B and Qwen3-ASR in C/CUDA with every byte planned.

    import qwen3align as qa
    models = qa.load_models(aligner="Qwen3-ForcedAligner-0.6B/", asr="Qwen3-ASR-1.7B/")
    result = models.align("talk.wav", text="...", language="English")
    print(result.to_srt()); print(models.memory_report())

Importing this package is cheap: nothing (not even NumPy or the C extension) is loaded until a
name below is first used.
"""
__version__ = "0.1.0"

from ._blas import configure as _configure_blas  # noqa: E402 (must run before the extension loads)

_configure_blas()

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
