# qwen3align — the front door. `make demo` and `make test` work on a fresh Debian machine:
# they install missing Debian -dev packages (apt-get) and Python packages into .venv/, build, run.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEB_PKGS := build-essential pkg-config libopenblas-dev libsndfile1-dev libsoxr-dev libutf8proc-dev espeak-ng
PIP_PKGS := numpy pytest setuptools wheel
PIP_TEST_PKGS := pandas matplotlib srt webvtt-py textgrid "dask[distributed]" streamlit nbclient nbformat ipykernel

.PHONY: all demo test build deps debs venv bench clean test-asan valgrind

all: build

debs:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VPY):
	$(PY) -m venv $(VENV)

venv: $(VPY)
	@$(VPY) -c "import numpy, pytest, setuptools, wheel" 2>/dev/null || $(VPY) -m pip install -q $(PIP_PKGS)

deps: debs venv

build: deps
	$(VPY) setup.py -q build_ext --inplace
	@$(VPY) -c "import importlib.metadata as m; m.version('qwen3align')" 2>/dev/null || \
	  $(VPY) -m pip install -q --no-build-isolation --no-deps -e .

test: build
	@$(VPY) -c "import pandas, matplotlib, srt, webvtt, textgrid, distributed, streamlit, nbclient, nbformat, ipykernel" 2>/dev/null || $(VPY) -m pip install -q $(PIP_TEST_PKGS)
	$(VPY) -m pytest -q tests

demo: build
	$(VPY) -m qwen3align demo

bench: build
	$(VPY) bench/bench_cpu.py

# The test suite against an ASan+UBSan build of the extension (normal build restored afterwards).
test-asan: build
	VPY=$(VPY) tests/tools/test_asan.sh

# valgrind memcheck of a small CPU run (audio, log-mel, tokenizer, parsers); Python's own noise is
# suppressed by tests/valgrind-python.supp. Fails on invalid accesses and definite leaks.
valgrind: build
	@command -v valgrind >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq valgrind >/dev/null; }
	VPY=$(VPY) tests/tools/valgrind.sh

clean:
	rm -rf build qwen3align/*.so *.egg-info

include tests/fuzz/fuzz.mk
