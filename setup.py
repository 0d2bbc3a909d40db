"""Build of qwen3align._qwen3align (C engine) and, when nvcc is found, qwen3align/libqa_cuda.so.

The extension is plain C11 + OpenBLAS + libsndfile + libsoxr + utf8proc. The CUDA backend is a
separate shared library that the engine dlopen()s only when a CUDA device is asked for, so
`import qwen3align` never pays for loading cuBLAS and a CPU-only build is the same extension.
Environment:
  QA_NO_CUDA=1     skip the CUDA library even when nvcc is present
  QA_SANITIZE=1    build with AddressSanitizer + UndefinedBehaviorSanitizer (make test-asan)
  QA_DEBUG=1       -O0 -g
  QA_NO_AUDIO_LIBS=1  build without libsndfile/libsoxr (arrays at 16 kHz only; for the GPU box)
"""
import glob
import os
import shutil
import subprocess
import sys

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def c_sources():
    # Every C file of the engine, by layer; the CUDA backend is built separately (below).
    srcs = []
    for layer in ("core", "weights", "memory", "frontend", "backend/cpu", "model", "pipeline", "py"):
        srcs += sorted(glob.glob(os.path.join("csrc", layer, "*.c")))
    if os.environ.get("QA_NO_AUDIO_LIBS"):
        srcs = [s for s in srcs if not s.endswith(os.path.join("frontend", "audio_decode.c"))]
    return srcs


def flags():
    cflags = ["-std=c11", "-O3", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
              "-D_GNU_SOURCE", "-fvisibility=hidden", "-pthread"]
    ldflags = ["-pthread"]
    if os.environ.get("QA_DEBUG") or os.environ.get("QA_SANITIZE"):
        cflags = [f for f in cflags if f != "-O3"] + ["-O1", "-g", "-fno-omit-frame-pointer"]
    if os.environ.get("QA_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
        cflags += san
        ldflags += san
    return cflags, ldflags


def libraries():
    libs = ["openblas", "utf8proc", "m", "dl"]
    if not os.environ.get("QA_NO_AUDIO_LIBS"):
        libs += ["sndfile", "soxr"]
    return libs


class BuildExt(build_ext):
    """build_ext that also builds the CUDA backend library when nvcc exists (llm.c's ✓/✗ lines)."""

    def run(self):
        super().run()
        self.build_cuda()

    def build_cuda(self):
        cu = sorted(glob.glob(os.path.join(HERE, "csrc", "backend", "cuda", "*.cu")))
        nvcc = shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") and "/usr/local/cuda/bin/nvcc")
        if os.environ.get("QA_NO_CUDA"):
            print("qwen3align: ✗ CUDA backend skipped (QA_NO_CUDA set)")
            return
        if not nvcc:
            print("qwen3align: ✗ nvcc not found, building the CPU backend only")
            return
        if not cu:
            print("qwen3align: ✗ no CUDA sources, building the CPU backend only")
            return
        print(f"qwen3align: ✓ nvcc found at {nvcc}, building the CUDA backend")
        out_dir = os.path.join(self.build_lib, "qwen3align")
        if self.inplace:
            out_dir = os.path.join(HERE, "qwen3align")
        os.makedirs(out_dir, exist_ok=True)
        target = os.path.join(out_dir, "libqa_cuda.so")
        cuda_home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        arch = os.environ.get("QA_CUDA_ARCH", "-gencode=arch=compute_90,code=sm_90 "
                              "-gencode=arch=compute_90,code=compute_90").split()
        objs = []
        tmp = os.path.join(self.build_temp, "cuda")
        os.makedirs(tmp, exist_ok=True)
        for src in cu:
            obj = os.path.join(tmp, os.path.basename(src) + ".o")
            cmd = [nvcc, "-c", src, "-o", obj, "-O3", "-std=c++17", "-Xcompiler", "-fPIC,-Wall",
                   "--expt-relaxed-constexpr", "-I", os.path.join(HERE, "csrc")] + arch
            self.spawn(cmd)
            objs.append(obj)
        c_glue = [os.path.join(HERE, "csrc", "core", "status.c")]
        cmd = [nvcc, "-shared", "-o", target] + objs + c_glue + [
            "-Xcompiler", "-fPIC", "-L", os.path.join(cuda_home, "lib64"), "-lcublasLt", "-lcublas",
            "-lcudart", "-Xlinker", "-rpath=" + os.path.join(cuda_home, "lib64")] + arch
        self.spawn(cmd)


cflags, ldflags = flags()
ext = Extension(
    "qwen3align._qwen3align",
    sources=c_sources(),
    include_dirs=[numpy.get_include(), "csrc", "/usr/include/openblas"],
    libraries=libraries(),
    extra_compile_args=cflags + (["-DQA_NO_AUDIO_LIBS"] if os.environ.get("QA_NO_AUDIO_LIBS") else []),
    extra_link_args=ldflags,
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
