"""Replay every fuzz seed (tests/fuzz/corpus/<target>/) and crash reproducer (tests/fuzz/regressions/<target>/)
through the fuzz targets' own code path, built without libFuzzer: tests/fuzz/fuzz_<target>.c +
replay_main.c with the system C compiler and ASan + UBSan (`make fuzz-replay-build`, incremental).
A sanitizer report, a broken invariant (__builtin_trap) or a leak in our code fails the test.
The long fuzzing runs are `make fuzz` (clang + libFuzzer), not part of `make test`."""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import FIXTURES, REPO

FUZZ = os.path.join(REPO, "tests", "fuzz")
TARGETS = sorted(os.path.basename(p)[len("fuzz_"):-2] for p in glob.glob(os.path.join(FUZZ, "fuzz_*.c")))
CC = os.environ.get("REPLAY_CC", "cc")
TOKENIZER_DIR = os.path.join(FIXTURES, "aligner")


def sanitizer_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # under `make test-asan` the Python process preloads libasan; the replay binaries link it
    # max_allocation_size_mb: a hostile header must not make the engine ask for gigabytes (libFuzzer
    # reports such inputs as out-of-memory; the replay must fail on them too).
    env["ASAN_OPTIONS"] = "abort_on_error=1:detect_leaks=1:max_allocation_size_mb=2048"
    env["LSAN_OPTIONS"] = f"suppressions={os.path.join(FUZZ, 'lsan.supp')}:print_suppressions=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env["QA_TOKENIZER_DIR"] = TOKENIZER_DIR  # fuzz_tokenizer loads the real Qwen3 tokenizer once
    return env


# Libraries a target links besides libc/libm (headers checked, like the build would need them).
NEEDS = {"audio": ("sndfile.h", "soxr.h"), "tokenizer": ("utf8proc.h",)}


def missing_headers(target):
    return [h for h in NEEDS.get(target, ()) if not os.path.exists(os.path.join("/usr/include", h))]


@pytest.fixture(scope="module")
def replay_bins():
    """Build every buildable target at once (make -j2: ~10 s the first time, then incremental)."""
    if not shutil.which(CC) or not shutil.which("make"):
        pytest.skip(f"no C compiler '{CC}' or make on PATH: cannot build the replay binaries")
    outs = [os.path.join("build", "fuzz-replay", f"replay_{t}") for t in TARGETS if not missing_headers(t)]
    r = subprocess.run(["make", "-s", "-j2", f"REPLAY_CC={CC}"] + outs, cwd=REPO, capture_output=True, text=True,
                       timeout=300, env=sanitizer_env())
    assert r.returncode == 0, f"building the replay binaries failed:\n{r.stdout}\n{r.stderr}"
    return os.path.join(REPO, "build", "fuzz-replay")


def inputs(target):
    dirs = [os.path.join(FUZZ, "corpus", target), os.path.join(FUZZ, "regressions", target)]
    return [d for d in dirs if os.path.isdir(d) and os.listdir(d)]


def count_files(dirs):
    return sum(1 for d in dirs for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)) and not f.startswith("."))


def test_every_target_has_seeds():
    assert set(TARGETS) >= {"audio", "json", "safetensors"}, TARGETS
    for t in TARGETS:
        assert count_files(inputs(t)) >= 5, f"fuzz target {t} has fewer than 5 seed inputs in tests/fuzz/corpus/{t}"


def test_committed_corpus_is_small():
    total = sum(os.path.getsize(os.path.join(dp, f)) for sub in ("corpus", "regressions")
                for dp, _, fs in os.walk(os.path.join(FUZZ, sub)) for f in fs)
    assert total < 2 * 1024 * 1024, f"committed fuzz corpus is {total} bytes; minimise it (run_fuzz.sh -merge=1)"


@pytest.mark.parametrize("target", TARGETS)
def test_replay_corpus_and_regressions(replay_bins, target):
    if missing_headers(target):
        pytest.skip(f"fuzz target {target} needs {', '.join(missing_headers(target))} (e.g. a QA_NO_AUDIO_LIBS machine)")
    if target == "tokenizer" and not os.path.exists(os.path.join(TOKENIZER_DIR, "vocab.json")):
        pytest.skip(f"fuzz_tokenizer needs the fixture tokenizer in {TOKENIZER_DIR}")
    dirs = inputs(target)
    r = subprocess.run([os.path.join(replay_bins, f"replay_{target}")] + dirs, cwd=REPO, capture_output=True,
                       text=True, timeout=120, env=sanitizer_env())
    tail = "\n".join(r.stderr.splitlines()[-40:])
    assert r.returncode == 0, f"replay_{target} failed (rc {r.returncode}); last lines:\n{tail}"
    assert f"replayed {count_files(dirs)} files" in r.stdout, r.stdout
