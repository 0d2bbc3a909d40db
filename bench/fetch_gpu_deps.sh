#!/usr/bin/env bash
# bench/fetch_gpu_deps.sh — run on the DEV machine (network, Debian bookworm) before a GPU run: fills
#   .debs/  runtime + dev packages of OpenBLAS and utf8proc (+ libgfortran5, libquadmath0 that
#           libopenblas needs), unpacked on the GPU box by bench/gpu_run.sh into .deps/ (QA_DEPS_PREFIX)
#   .whl/   pytest and its dependencies (pure-Python wheels), installed there when python3 lacks pytest
# Both folders are git-ignored: pass them to the device tool as carry: [".debs", ".whl"] (~14 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs .whl
(cd .debs && apt-get download libopenblas0-pthread libopenblas-pthread-dev libopenblas-dev libopenblas0 \
    libutf8proc2 libutf8proc-dev libgfortran5 libquadmath0)
PY=${PY:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
$PY -m pip download -q pytest -d .whl --only-binary=:all: --python-version 3.12 --platform any
du -sh .debs .whl
