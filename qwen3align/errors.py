"""The exception classes of qwen3align (created by the C extension, re-exported here).

    Qwen3AlignError            base of everything below
    ├── ModelLoadError         checkpoint folder / config / tokenizer / tensor problems
    ├── OutOfMemoryError       the plan does not fit (also a MemoryError); .needed_bytes, .available_bytes
    ├── AudioError             audio that cannot be decoded or used (also a ValueError)
    └── InputError             bad arguments, text, language, limits, closed Models (also a ValueError)
"""
from ._qwen3align import (  # noqa: F401
    AudioError,
    InputError,
    ModelLoadError,
    OutOfMemoryError,
    Qwen3AlignError,
)

__all__ = ["Qwen3AlignError", "ModelLoadError", "OutOfMemoryError", "AudioError", "InputError"]
