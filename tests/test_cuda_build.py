"""The CUDA backend library is built when nvcc exists and exports exactly its entry points.

Runs on machines without a GPU: it loads libqa_cuda.so with ctypes (which loads libcudart/cuBLAS but
creates no CUDA context) and reads the table version; it never calls into the CUDA runtime.
"""
import ctypes
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

LIB = os.path.join(REPO, "qwen3align", "libqa_cuda.so")
API_H = os.path.join(REPO, "csrc", "backend", "cuda_api.h")


def nvcc():
    return shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") and "/usr/local/cuda/bin/nvcc")


pytestmark = pytest.mark.skipif(not nvcc(), reason="nvcc not found: the CUDA backend is not built on this machine")


def header_version():
    m = re.search(r"#define QA_CUDA_API_VERSION (\d+)", open(API_H).read())
    assert m, "QA_CUDA_API_VERSION missing from cuda_api.h"
    return int(m.group(1))


@pytest.mark.skipif(os.environ.get("QA_NO_CUDA") == "1", reason="QA_NO_CUDA=1: the build skipped CUDA on purpose")
def test_library_built_next_to_extension():
    assert os.path.exists(LIB), f"{LIB} missing although nvcc exists (setup.py build_cuda did not run?)"


def test_entry_point_and_table_version():
    if not os.path.exists(LIB):
        pytest.skip("libqa_cuda.so not built (QA_NO_CUDA)")
    lib = ctypes.CDLL(LIB)
    get = lib.qa_cuda_api_get
    get.restype = ctypes.POINTER(ctypes.c_int)  # the table starts with `int version`
    assert get().contents.value == header_version()


def test_only_entry_points_exported():
    if not os.path.exists(LIB):
        pytest.skip("libqa_cuda.so not built (QA_NO_CUDA)")
    if not shutil.which("nm"):
        pytest.skip("nm (binutils) not installed: cannot list the dynamic symbols")
    out = subprocess.run(["nm", "-D", "--defined-only", LIB], capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    ours = {n for n in names if n.startswith("qa_")}
    # the table, and backend.h's documented init symbol (the same function as the table's init)
    assert ours == {"qa_cuda_api_get", "qa_backend_cuda_init"}, f"unexpected exported qa_ symbols: {sorted(ours)}"


def test_library_links_cuda_runtime_and_cublas():
    if not os.path.exists(LIB):
        pytest.skip("libqa_cuda.so not built (QA_NO_CUDA)")
    if not shutil.which("ldd"):
        pytest.skip("ldd not available")
    out = subprocess.run(["ldd", LIB], capture_output=True, text=True, check=True).stdout
    for lib in ("libcudart", "libcublas"):
        lines = [line for line in out.splitlines() if lib in line]
        assert lines, f"{lib} not linked:\n{out}"
        assert all("not found" not in line for line in lines), f"{lib} not resolvable:\n{out}"
