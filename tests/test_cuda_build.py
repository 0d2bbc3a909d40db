"""The CUDA backend library is built when nvcc exists and exports exactly its entry points.

Runs on machines without a GPU: it loads libqa_cuda.so with ctypes (which loads libcudart/cuBLAS but
creates no CUDA context) and reads the table version; it never calls into the CUDA runtime.
"""
import ctypes
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import FIXTURES, REPO

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


def test_library_links_cuda_runtime_and_cublaslt():
    if not os.path.exists(LIB):
        pytest.skip("libqa_cuda.so not built (QA_NO_CUDA)")
    if not shutil.which("ldd"):
        pytest.skip("ldd not available")
    out = subprocess.run(["ldd", LIB], capture_output=True, text=True, check=True).stdout
    for lib in ("libcudart", "libcublasLt"):
        lines = [line for line in out.splitlines() if lib in line]
        assert lines, f"{lib} not linked:\n{out}"
        assert all("not found" not in line for line in lines), f"{lib} not resolvable:\n{out}"
    # every product goes through cuBLASLt with a planned algorithm (matmul.cu); plain cuBLAS would pick
    # kernels per shape again, and its handle alone costs device memory
    assert "libcublas.so" not in out, out


def source_arch(src):
    """nvcc's target flags for a CUDA source as setup.py builds it here: its SM90A_SOURCES (wgmma) get sm_90a,
    the others sm_90."""
    names = re.search(r"SM90A_SOURCES = \(([^)]*)\)", open(os.path.join(REPO, "setup.py")).read()).group(1)
    if os.path.basename(src) in re.findall(r'"([^"]+)"', names):
        return ["-gencode=arch=compute_90a,code=sm_90a"]
    return ["-arch=sm_90"]


def test_kernel_stacks_fit_the_lowered_stack_limit():
    """device.cu lowers cudaLimitStackSize to QA_CUDA_STACK_BYTES (the default 1 KiB per thread reserves
    ~264 MiB on an H200); every kernel's frame, as ptxas reports it for sm_90, must fit."""
    import concurrent.futures as cf
    import glob
    import re

    limit = int(re.search(r"#define QA_CUDA_STACK_BYTES (\d+)",
                          open(os.path.join(REPO, "csrc", "backend", "cuda", "cuda_ctx.cuh")).read()).group(1))

    def frames(src):
        r = subprocess.run([nvcc(), "-cubin", "-o", os.devnull, src, "-O3", "-std=c++17", "-I",
                            os.path.join(REPO, "csrc"), "-Xptxas", "-v"] + source_arch(src),
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return [(os.path.basename(src), int(n)) for n in re.findall(r"(\d+) bytes stack frame", r.stderr)]

    sources = sorted(glob.glob(os.path.join(REPO, "csrc", "backend", "cuda", "*.cu")))
    with cf.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as ex:
        found = [f for fs in ex.map(frames, sources) for f in fs]
    assert len(found) > 40, found  # every kernel reported
    assert max(n for _, n in found) <= limit, [f for f in found if f[1] > limit]


def test_wgmma_attention_kernel_builds_without_spills_or_serialization():
    """attention_wgmma.cu's three kernels (sm_90a) hold S, O and P of a 64-row warpgroup in registers (160 of
    them; the warp-specialized one's and its split variant's producers have 24 registers): a change that spills, or
    that makes ptxas serialize the wgmma pipeline (it then says "wgmma.mma_async instructions are serialized"),
    shows here rather than as a slow kernel on the GPU."""
    src = os.path.join(REPO, "csrc", "backend", "cuda", "attention_wgmma.cu")
    r = subprocess.run([nvcc(), "-cubin", "-o", os.devnull, src, "-O3", "-std=c++17", "-I",
                        os.path.join(REPO, "csrc"), "-Xptxas", "-v"] + source_arch(src),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.findall(r"(\d+) bytes spill stores", r.stderr) == ["0", "0", "0"], r.stderr[-3000:]  # all three
    assert "serialized" not in r.stderr, r.stderr[-3000:]


def test_mma_attention_kernels_do_not_spill():
    """attention_mma.cu's kernels hold S, O and the softmax state in registers; the 128-row tiling sits near
    the 255-register cap of two blocks per SM (issue 6), so a change that spills shows here, not as a slow
    kernel on the GPU."""
    import re

    src = os.path.join(REPO, "csrc", "backend", "cuda", "attention_mma.cu")
    r = subprocess.run([nvcc(), "-cubin", "-o", os.devnull, src, "-O3", "-std=c++17", "-I",
                        os.path.join(REPO, "csrc"), "-arch=sm_90", "-Xptxas", "-v"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    kernels = re.findall(r"Compiling entry function '(\w+)'", r.stderr)
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", r.stderr)]
    assert len(kernels) == 6 and len(spills) == 6, r.stderr[-3000:]  # Dh 64 / 128 x (FP32, BF16, BF16 128 rows)
    assert max(spills) == 0, [k for k, n in zip(kernels, spills) if n]


LAYOUT_C = r"""
#include <stddef.h>
#include <stdio.h>
#include "backend/cuda_api.h"
#define P(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))
int main(void) {
    printf("qa_backend %zu\nqa_err %zu\nqa_tensor %zu\nqa_cuda_api %zu\nqa_cuda_probe %zu\nqa_cuda_mem_stats %zu\n",
           sizeof(qa_backend), sizeof(qa_err), sizeof(qa_tensor), sizeof(qa_cuda_api), sizeof(qa_cuda_probe),
           sizeof(qa_cuda_mem_stats));
    P(qa_backend, scratch_bytes); P(qa_backend, gemm); P(qa_backend, attention); P(qa_backend, argmax);
    P(qa_backend, argmax_at); P(qa_backend, graph_ready); P(qa_backend, decode_mode); P(qa_cuda_mem_stats, graph_bytes);
    P(qa_err, file); P(qa_err, available); P(qa_tensor, shape); P(qa_cuda_api, upload); P(qa_cuda_api, mem_query);
    P(qa_cuda_api, host_alloc); P(qa_cuda_api, upload_rows); P(qa_cuda_api, upload_convert);
    P(qa_cuda_probe, total_mem); P(qa_cuda_mem_stats, pinned_bytes);
    return 0;
}
"""


def test_ctypes_mirror_matches_the_c_layout(tmp_path):
    """tests/cuda_util.py mirrors the C structs for the GPU tests: check sizes/offsets here, no GPU needed."""
    import ctypes as C

    import cuda_util as U

    if not shutil.which("gcc"):
        pytest.skip("gcc not available")
    src = tmp_path / "layout.c"
    src.write_text(LAYOUT_C)
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-std=c11", "-I", os.path.join(REPO, "csrc"), str(src), "-o", str(exe)], check=True)
    got = dict(line.rsplit(" ", 1) for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                                              check=True).stdout.splitlines())
    mirror = {"qa_backend": U.Backend, "qa_err": U.Err, "qa_tensor": U.Tensor, "qa_cuda_api": U.Api,
              "qa_cuda_probe": U.Probe, "qa_cuda_mem_stats": U.MemStats}
    for key, val in got.items():
        struct, _, field = key.partition(".")
        cls = mirror[struct]
        mine = getattr(cls, field).offset if field else C.sizeof(cls)
        assert mine == int(val), f"{key}: ctypes {mine}, C {val}"


def _run_models_cuda(pkg_root):
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import qwen3align._qwen3align as q\n"
            "try:\n    q.Models(aligner=%r, device='cuda:0')\n    print('LOADED')\n"
            "except Exception as ex:\n    print(type(ex).__name__, ex)\n") % (pkg_root, os.path.join(FIXTURES, "aligner"))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout


def test_missing_cuda_library_is_a_clear_input_error(tmp_path):
    """An extension built without libqa_cuda.so next to it says "CUDA backend not built" (no crash)."""
    if not os.path.exists(FIXTURES):
        pytest.skip("fixtures not present")
    pkg = tmp_path / "qwen3align"
    shutil.copytree(os.path.join(REPO, "qwen3align"), pkg, ignore=shutil.ignore_patterns("libqa_cuda.so"))
    out = _run_models_cuda(str(tmp_path))
    assert out.startswith("InputError") and "CUDA backend not built" in out, out


def test_no_gpu_is_a_clear_input_error():
    from cuda_util import gpu_reason

    if not os.path.exists(LIB) or not os.path.exists(FIXTURES):
        pytest.skip("libqa_cuda.so or fixtures not present")
    why = gpu_reason()
    if why is None:
        pytest.skip("a GPU is visible here: tests/test_cuda.py covers loading on it")
    out = _run_models_cuda(REPO)
    assert out.startswith("InputError") and ("CUDA" in out or "cuda" in out), out


def test_op_tests_dry_run_on_the_cpu_shim(tmp_path):
    """tests/test_cuda.py's op tests (harness, ctypes calls, float64 references) run on the CPU backend through
    tests/cuda_shim.c, so a broken reference or call is found here instead of on the GPU's clock."""
    if not shutil.which("gcc"):
        pytest.skip("gcc not available")
    lib = tmp_path / "libqa_cuda_shim.so"
    cpu = sorted(glob.glob(os.path.join(REPO, "csrc", "backend", "cpu", "*.c")))
    core = [os.path.join(REPO, "csrc", "core", f) for f in ("status.c", "alloc.c")]
    core += [os.path.join(REPO, "csrc", "frontend", f) for f in ("mel.c", "fft.c")]  # the CPU log_mel op
    core += [os.path.join(REPO, "csrc", "weights", f) for f in ("convert.c", "safetensors.c", "json.c")]
    deps = []  # the GPU box's OpenBLAS lives in the QA_DEPS_PREFIX folder (bench/gpu_run.sh)
    if os.environ.get("QA_DEPS_PREFIX"):
        usr = os.path.join(os.environ["QA_DEPS_PREFIX"], "usr")
        blas = os.path.join(usr, "lib", "x86_64-linux-gnu", "openblas-pthread")
        deps = ["-I", os.path.join(usr, "include", "x86_64-linux-gnu", "openblas-pthread"), "-L", blas,
                "-Wl,-rpath," + blas]
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-std=c11", "-D_GNU_SOURCE", "-I", os.path.join(REPO, "csrc"),
                    "-I/usr/include/openblas"] + deps + ["-o", str(lib), os.path.join(REPO, "tests", "cuda_shim.c")]
                   + cpu + core + ["-lopenblas", "-lm", "-pthread"], check=True)
    env = dict(os.environ, QA_CUDA_LIB=str(lib))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          os.path.join(REPO, "tests", "test_cuda.py")], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout, out.stdout[-2000:]


def test_cuda_probe_and_auto_device():
    """_cuda_probe reports devices or says why not; 'auto' picks CUDA only when the probe finds a device."""
    import qwen3align as qa
    from qwen3align import _qwen3align
    from qwen3align import models as qm

    try:
        info = _qwen3align._cuda_probe(0)
    except qa.InputError as ex:
        assert "CUDA" in str(ex) or "cuda" in str(ex), ex
        assert qm._resolve_device("auto") == "cpu"
        with pytest.raises(qa.InputError, match="CUDA"):
            qm._resolve_device("cuda:0")
        return
    assert info["device_count"] >= 1 and info["driver_version"] >= info["runtime_version"] > 0, info
    assert qm._resolve_device("auto") == "cuda:0"
