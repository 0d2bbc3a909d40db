import subprocess
import sys


def test_import_is_light_and_fast():
    code = (
        "import time, sys; t=time.perf_counter(); import qwen3align; dt=time.perf_counter()-t; "
        "heavy=[m for m in ('numpy','qwen3align._qwen3align','torch') if m in sys.modules]; "
        "print(dt); print(','.join(heavy))"
    )
    best = min(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[0])
        for _ in range(3)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[1] == "", f"import qwen3align loaded heavy modules: {out[1]}"
    assert best < 0.15, f"import qwen3align took {best:.3f} s"


def test_errors_hierarchy():
    import qwen3align as qa

    assert issubclass(qa.ModelLoadError, qa.Qwen3AlignError)
    assert issubclass(qa.OutOfMemoryError, MemoryError)
    assert issubclass(qa.AudioError, ValueError)
    assert issubclass(qa.InputError, ValueError)
    assert qa.__version__
