"""Pick OpenBLAS's kernels from the CPU's feature flags before the extension loads OpenBLAS.

OpenBLAS (DYNAMIC_ARCH builds, e.g. Debian's) chooses its kernels from the CPUID family/model. On
virtual machines that report an unknown model it falls back to "Prescott" (SSE3): sgemm then runs
at ~14 GFLOPS instead of ~80 on an AVX-512 core (bench/RESULTS.md). The feature flags are reported
correctly, so we map them to the matching kernel family through OPENBLAS_CORETYPE, which OpenBLAS
reads once when it is loaded (with the extension). A value already in the environment wins.
"""
import os


def _flags():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def configure():
    if "OPENBLAS_CORETYPE" in os.environ or os.uname().machine != "x86_64":
        return
    flags = _flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"} <= flags:
        core = "Cooperlake"
    elif {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        core = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        core = "Haswell"
    else:
        return
    os.environ["OPENBLAS_CORETYPE"] = core
