"""Build of qwen3align._qwen3align (C engine) and, when nvcc is found, qwen3align/libqa_cuda.so.

The extension is plain C11 + OpenBLAS + libsndfile + libsoxr + utf8proc. The CUDA backend is a
separate shared library that the engine dlopen()s only when a CUDA device is asked for, so
`import qwen3align` never pays for loading cuBLAS and a CPU-only build is the same extension.
Environment:
  QA_NO_CUDA=1     skip the CUDA library even when nvcc is present
  QA_SANITIZE=1    build with AddressSanitizer + UndefinedBehaviorSanitizer (make test-asan)
  QA_DEBUG=1       -O0 -g
  QA_NO_AUDIO_LIBS=1  build without libsndfile/libsoxr (arrays at 16 kHz only; for the GPU box)
  QA_DEPS_PREFIX=/p   also look for OpenBLAS/utf8proc headers and libraries under a folder made by
                   `dpkg -x` of their .deb files (the GPU box has no -dev packages; bench/gpu_run.sh)
  QA_CUDA_ARCH="..."  nvcc -gencode flags (default: sm_90 code + compute_90 PTX)
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
    for layer in ("core", "weights", "memory", "frontend", "backend", "backend/cpu", "model", "pipeline", "py"):
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


def deps_prefix():
    """Include/library folders of a dpkg -x prefix (QA_DEPS_PREFIX), or empty lists.

    A .deb unpacked with dpkg -x has no alternatives symlinks (/usr/include/openblas), so name the
    openblas-pthread folders directly. The libraries get an RPATH (not RUNPATH: --disable-new-dtags)
    so that libopenblas's own dependency libgfortran.so.5 is found in the prefix too."""
    root = os.environ.get("QA_DEPS_PREFIX")
    if not root:
        return [], [], []
    multi = "x86_64-linux-gnu"
    inc = [os.path.join(root, "usr", "include"),
           os.path.join(root, "usr", "include", multi, "openblas-pthread")]
    lib = [os.path.join(root, "usr", "lib", multi),
           os.path.join(root, "usr", "lib", multi, "openblas-pthread")]
    link = ["-Wl,--disable-new-dtags"] + ["-Wl,-rpath," + d for d in lib]
    return inc, lib, link


SM90A = ["-gencode=arch=compute_90a,code=sm_90a"]
SM90A_SOURCES = ("attention_wgmma.cu",)


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
        # Everything hidden except the one entry point (qa_cuda_api_get, marked visible in device.cu).
        headers = glob.glob(os.path.join(HERE, "csrc", "backend", "cuda", "*.*h")) + glob.glob(
            os.path.join(HERE, "csrc", "*", "*.h")) + glob.glob(os.path.join(HERE, "csrc", "backend", "*.h"))
        newest_header = max([os.path.getmtime(h) for h in headers] + [os.path.getmtime(__file__)])
        for src in cu:
            obj = os.path.join(tmp, os.path.basename(src) + ".o")
            objs.append(obj)
            if (not self.force and os.path.exists(obj)
                    and os.path.getmtime(obj) > max(os.path.getmtime(src), newest_header)):
                continue  # nvcc is slow; rebuild an object only when its source or a header changed
            # wgmma / setmaxnreg exist only in the arch-specific sm_90a target; that file's kernel runs only
            # on compute capability 9.0 devices (attention_wgmma.cu checks), whatever QA_CUDA_ARCH says
            src_arch = SM90A if os.path.basename(src) in SM90A_SOURCES else arch
            cmd = [nvcc, "-c", src, "-o", obj, "-O3", "-std=c++17", "-Xcompiler",
                   "-fPIC,-Wall,-fvisibility=hidden", "--expt-relaxed-constexpr", "-Werror", "all-warnings",
                   "-I", os.path.join(HERE, "csrc")] + src_arch
            self.spawn(cmd)
        for c_src in ("status.c", "alloc.c"):  # the core the backend shares with the engine
            obj = os.path.join(tmp, c_src + ".o")
            self.spawn(["gcc", "-c", os.path.join(HERE, "csrc", "core", c_src), "-o", obj, "-std=c11", "-O2",
                        "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"])
            objs.append(obj)
        c_glue = []
        cmd = [nvcc, "-shared", "-o", target] + objs + c_glue + [
            "-Xcompiler", "-fPIC", "-L", os.path.join(cuda_home, "lib64"), "-lcublasLt",
            "-lcudart", "-Xlinker", "-rpath=" + os.path.join(cuda_home, "lib64")] + arch
        self.spawn(cmd)


cflags, ldflags = flags()
dep_inc, dep_lib, dep_link = deps_prefix()
ext = Extension(
    "qwen3align._qwen3align",
    sources=c_sources(),
    include_dirs=[numpy.get_include(), "csrc"] + dep_inc + ["/usr/include/openblas"],
    library_dirs=dep_lib,
    libraries=libraries(),
    extra_compile_args=cflags + (["-DQA_NO_AUDIO_LIBS"] if os.environ.get("QA_NO_AUDIO_LIBS") else []),
    extra_link_args=ldflags + dep_link,
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
