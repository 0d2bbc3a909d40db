#!/usr/bin/env bash
# bench/gpu_run.sh — the ONE script to run on the GPU box (H100/H200): build, test the CUDA backend,
# print a short summary. Run from anywhere; it works in the repository root.
#
# The GPU box has nvcc, python3 (PyTorch venv, numpy), no network and no Debian -dev packages, so:
#   - OpenBLAS / utf8proc (+ libgfortran5, libquadmath0) come as .deb files carried in .debs/ at the
#     repository root (made on the dev machine by bench/fetch_gpu_deps.sh); they are unpacked here into
#     .deps/ and the build finds them via QA_DEPS_PREFIX (-I, -L and an RPATH into .deps);
#   - libsndfile / libsoxr are left out (QA_NO_AUDIO_LIBS=1: audio arrays at 16 kHz only);
#   - pytest is installed from wheels in .whl/ when the interpreter lacks it.
#   - the reference fixtures must be at shared/fixtures inside the repository (or $QA_SHARED/fixtures).
# Device call:  run(command="bash bench/gpu_run.sh", carry=[".debs", "shared"])  after bench/pack_gpu.sh
#               (QA_PROFILE=1 adds the per-op profile and the memwatch trace, QA_PROFILE_ARGS=--memwatch-only the trace alone; QA_BENCH=0 skips the bench; QA_TESTS=0 the tests, QA_TEST_K a pytest -k filter for them, QA_TEST_FILES the test files (default tests/test_cuda*.py); QA_BENCH_BUDGET seconds, QA_BENCH_ARGS e.g. --quick)
# Outputs: full logs under $OUT (the device tool's folder) or bench/out; the summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/bench/out}
mkdir -p "$OUT"
PY=${PY:-python3}
export NVIDIA_TF32_OVERRIDE=0  # belt and braces: float32 parity must never use TF32
summary=()
note() { summary+=("$*"); echo "$*"; }

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>&1
nvcc --version | tail -1
$PY -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
INC=$($PY -c "import sysconfig; print(sysconfig.get_paths()['include'])")
[ -f "$INC/Python.h" ] || { note "FATAL: $INC/Python.h missing (python3-dev headers): cannot build the extension"; exit 2; }

echo "== dependencies from .debs/"
if ls .debs/*.deb >/dev/null 2>&1; then
  rm -rf .deps && mkdir -p .deps
  # dpkg -x when present, else a tiny ar + tar reader (a .deb is an ar archive holding data.tar.*)
  if command -v dpkg >/dev/null; then
    for f in .debs/*.deb; do dpkg -x "$f" .deps || { note "FATAL: dpkg -x $f failed"; exit 2; }; done
  else
    $PY - <<'PYEOF' || { note "FATAL: cannot unpack .debs"; exit 2; }
import glob, io, tarfile
for deb in sorted(glob.glob(".debs/*.deb")):
    data = open(deb, "rb").read()
    assert data[:8] == b"!<arch>\n", deb
    off = 8
    while off < len(data):
        name, size = data[off:off + 16].decode().strip().rstrip("/"), int(data[off + 48:off + 58])
        body = data[off + 60:off + 60 + size]
        if name.startswith("data.tar"):
            tarfile.open(fileobj=io.BytesIO(body)).extractall(".deps")
        off += 60 + size + (size & 1)
PYEOF
  fi
  export QA_DEPS_PREFIX=$ROOT/.deps
  export LD_LIBRARY_PATH=$ROOT/.deps/usr/lib/x86_64-linux-gnu:$ROOT/.deps/usr/lib/x86_64-linux-gnu/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "unpacked $(ls .debs/*.deb | wc -l) packages into .deps (QA_DEPS_PREFIX)"
else
  echo "no .debs/: using the system's OpenBLAS / utf8proc"
fi

if ! $PY -c "import pytest" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --find-links .whl pytest || { note "FATAL: pytest wheels did not install"; exit 2; }
  else
    note "FATAL: pytest missing and no .whl/ wheels carried"; exit 2
  fi
fi

echo "== shared/: tokenizer files back into the carried folders (bench/pack_gpu.sh left them out)"
for d in shared/fixtures/*/ shared/models/*; do
  [ -f "$d/config.json" ] || continue
  [ -d "$d" ] && cp qwen3align/data/vocab.json qwen3align/data/merges.txt qwen3align/data/tokenizer_config.json "$d"/
done

echo "== build (QA_NO_AUDIO_LIBS=1)"
t0=$(date +%s)
if ! QA_NO_AUDIO_LIBS=1 $PY setup.py -q build_ext --inplace --force >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"; note "FATAL: build failed (log: $OUT/build.log)"; exit 1
fi
note "build: ok in $(( $(date +%s) - t0 )) s; $(grep -m1 'nvcc found\|nvcc not found' "$OUT/build.log")"
ldd qwen3align/_qwen3align*.so | grep -E "openblas|utf8proc|not found" | sed 's/^/  /'

rc_cuda=0; rc_cpu=0
if [ "${QA_TESTS:-1}" = 1 ]; then
  echo "== CUDA tests"
  t0=$(date +%s)
  $PY -m pytest -q -s -rfEs -p no:cacheprovider ${QA_TEST_FILES:-tests/test_cuda*.py} ${QA_TEST_K:+-k "$QA_TEST_K"} \
    >"$OUT/test_cuda.log" 2>&1
  rc_cuda=$?
  note "tests/test_cuda*.py: $(tail -1 "$OUT/test_cuda.log") ($(( $(date +%s) - t0 )) s, exit $rc_cuda)"
  grep -E "^(FAILED|ERROR|SKIPPED)" "$OUT/test_cuda.log" | head -30 | sed 's/^/  /'

  echo "== CPU parity on this box (sanity of the build)"
  $PY -m pytest -q -p no:cacheprovider tests/test_encoder.py tests/test_decoder.py tests/test_asr.py \
    -k "not hf and not sharded and not end_to_end" >"$OUT/test_cpu.log" 2>&1
  rc_cpu=$?
  note "CPU parity: $(tail -1 "$OUT/test_cpu.log") (exit $rc_cpu)"
else
  note "tests skipped (QA_TESTS=0)"
fi

echo "== evidence: the largest relative errors the GPU tests printed"
[ -f "$OUT/test_cuda.log" ] && grep -E ": rel err " "$OUT/test_cuda.log" | sed 's/,$//' \
  | awk '{for (i = 1; i < NF; i++) if ($i == "err") { v = $(i + 1); sub(",", "", v); print v, $0 }}' \
  | sort -g | tail -10 | cut -d' ' -f2- | sed 's/^/  /'

if [ "${QA_PROFILE:-0}" = 1 ]; then
  echo "== what a CUDA context costs (bench/cuda_context_probe.cu)"
  if nvcc -O2 -o "$OUT/ctxprobe" bench/cuda_context_probe.cu -lcublas -lcublasLt >"$OUT/ctxprobe.log" 2>&1; then
    "$OUT/ctxprobe" >>"$OUT/ctxprobe.log" 2>&1; rm -f "$OUT/ctxprobe"
  fi
  summary+=("$(grep CTXPROBE "$OUT/ctxprobe.log" || tail -5 "$OUT/ctxprobe.log")")
  echo "== per-op CUDA profile of the benchmark requests (bench/gpu_profile.py; QA_PROFILE=1 runs it)"
  t0=$(date +%s)
  timeout ${QA_PROFILE_BUDGET:-300} $PY bench/gpu_profile.py --out "$OUT" ${QA_PROFILE_ARGS:-} >"$OUT/profile_run.log" 2>&1; rc_p=$?
  note "profile: exit $rc_p in $(( $(date +%s) - t0 )) s (table in $OUT/profile.log)"
  summary+=("$(cat "$OUT/profile.log" 2>/dev/null || tail -20 "$OUT/profile_run.log")")
fi

if [ "${QA_BENCH:-1}" = 1 ]; then
  echo "== benchmark: parity, memory and speed vs transformers (bench/gpu_bench.py; QA_BENCH=0 skips)"
  t0=$(date +%s)
  timeout $(( ${QA_BENCH_BUDGET:-300} + 30 )) $PY bench/gpu_bench.py --budget ${QA_BENCH_BUDGET:-300} ${QA_BENCH_ARGS:-} >"$OUT/bench.log" 2>&1; rc_b=$?
  note "benchmark: exit $rc_b in $(( $(date +%s) - t0 )) s (log in $OUT/bench.log)"
  summary+=("$(tail -40 "$OUT/bench.log")")
fi

if [ "${QA_LONG:-1}" = 1 ]; then
  echo "== long audio under max_device_bytes=8 GiB (bench/gpu_longaudio.py; QA_LONG=0 skips)"
  t0=$(date +%s)
  for p in Qwen3-ForcedAligner-0.6B Qwen3-ASR-1.7B; do  # gpu_bench's checkpoints, or our generator's
    [ -d /tmp/qa_bench/models/$p ] || $PY tools/make_random_checkpoint.py --preset $p --out /tmp/qa_bench/models/$p >>"$OUT/longaudio.log" 2>&1
  done
  timeout 300 $PY bench/gpu_longaudio.py >"$OUT/longaudio.log" 2>&1; rc_l=$?
  note "long audio: exit $rc_l in $(( $(date +%s) - t0 )) s"
  summary+=("$(sed -n '/^### Long audio/,$p' "$OUT/longaudio.log")")
fi

echo
echo "================ SUMMARY ================"
printf '%s\n' "${summary[@]}"
[ $rc_cuda -eq 0 ] && [ $rc_cpu -eq 0 ]
