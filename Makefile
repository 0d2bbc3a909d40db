# qwen3align — the front door. `make demo` and `make test` work on a fresh Debian machine:
# they install missing Debian -dev packages (apt-get) and Python packages into .venv/, build, run.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEB_PKGS := build-essential pkg-config libopenblas-dev libsndfile1-dev libsoxr-dev libutf8proc-dev espeak-ng
PIP_PKGS := numpy pytest setuptools wheel
PIP_TEST_PKGS := pandas matplotlib srt webvtt-py textgrid streamlit nbclient nbformat ipykernel

.PHONY: all demo test build deps debs venv bench clean test-asan fuzz

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
	@$(VPY) -c "import pandas, matplotlib, srt, webvtt, textgrid, streamlit, nbclient, nbformat, ipykernel" 2>/dev/null || $(VPY) -m pip install -q $(PIP_TEST_PKGS)
	$(VPY) -m pytest -q tests

demo: build
	$(VPY) -m qwen3align demo

bench: build
	$(VPY) bench/bench_cpu.py

test-asan: deps
	QA_SANITIZE=1 QA_NO_CUDA=1 $(VPY) setup.py -q build_ext --inplace --force
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  $(VPY) -m pytest -q -x tests
	$(VPY) setup.py -q build_ext --inplace --force

clean:
	rm -rf build qwen3align/*.so *.egg-info
