# fuzz.mk — fuzz targets of the engine's parsers (included by the Makefile).
#
#   make fuzz-build        build every tests/fuzz/fuzz_<t>.c with clang -fsanitize=fuzzer,address,undefined
#   make fuzz              build, then run each target FUZZ_SECONDS (default 600) on a copy of its corpus,
#                          FUZZ_JOBS at a time (default 2); prints a summary (execs, cov, crashes)
#   make fuzz-replay-build the same targets with $(REPLAY_CC) + ASan/UBSan + replay_main.c (no libFuzzer);
#                          tests/test_fuzz_regressions.py runs them on corpus/ and regressions/
# The targets are compiled against the engine C files directly (no Python). clang and the libFuzzer
# runtime (Debian: clang, libclang-rt-14-dev) are installed on demand here only, not for `make test`.
FUZZ_DIR := tests/fuzz
FUZZ_OUT := build/fuzz
REPLAY_OUT := build/fuzz-replay
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 2
FUZZ_CC ?= clang
REPLAY_CC ?= cc
FUZZ_DEB_PKGS := clang libclang-rt-14-dev
FUZZ_TARGETS := $(patsubst $(FUZZ_DIR)/fuzz_%.c,%,$(wildcard $(FUZZ_DIR)/fuzz_*.c))

FUZZ_BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Icsrc -I$(FUZZ_DIR) \
  -I/usr/include/openblas -Wall -Wextra -Wno-unused-parameter
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined

# Engine sources and libraries of each target.
FUZZ_CORE := csrc/core/status.c csrc/core/alloc.c
FUZZ_SRC_audio := $(FUZZ_CORE) csrc/frontend/audio.c csrc/frontend/audio_decode.c csrc/frontend/resample.c \
  csrc/frontend/mel.c csrc/frontend/fft.c
FUZZ_LIBS_audio := -lsndfile -lsoxr -lm
FUZZ_SRC_json := $(FUZZ_CORE) csrc/weights/json.c csrc/weights/config.c
FUZZ_LIBS_json := -lm
FUZZ_SRC_safetensors := $(FUZZ_CORE) csrc/weights/json.c csrc/weights/safetensors.c
FUZZ_LIBS_safetensors := -lm
FUZZ_SRC_tokenizer := $(FUZZ_CORE) csrc/weights/json.c csrc/frontend/tokenizer.c csrc/frontend/tokenizer_files.c \
  csrc/frontend/bpe.c csrc/frontend/pretokenize.c csrc/frontend/utf8.c csrc/frontend/words.c csrc/frontend/prompts.c \
  csrc/frontend/timestamps.c
FUZZ_LIBS_tokenizer := -lutf8proc -lm

.PHONY: fuzz fuzz-build fuzz-replay-build fuzz-debs
.SECONDEXPANSION:

fuzz-debs:
	@missing=""; for p in $(FUZZ_DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(FUZZ_OUT)/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(FUZZ_DIR)/fuzz_common.h $$(FUZZ_SRC_$$*) | fuzz-debs
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_BASE_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $< $(FUZZ_SRC_$*) $(FUZZ_LIBS_$*)

$(REPLAY_OUT)/replay_%: $(FUZZ_DIR)/fuzz_%.c $(FUZZ_DIR)/fuzz_common.h $(FUZZ_DIR)/replay_main.c $$(FUZZ_SRC_$$*)
	@mkdir -p $(REPLAY_OUT)
	$(REPLAY_CC) $(FUZZ_BASE_CFLAGS) -Werror $(FUZZ_SAN) -o $@ $< $(FUZZ_DIR)/replay_main.c \
	  $(FUZZ_SRC_$*) $(FUZZ_LIBS_$*)

fuzz-build: $(addprefix $(FUZZ_OUT)/fuzz_,$(FUZZ_TARGETS))

fuzz-replay-build: $(addprefix $(REPLAY_OUT)/replay_,$(FUZZ_TARGETS))

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) $(FUZZ_DIR)/run_fuzz.sh $(FUZZ_OUT) $(FUZZ_TARGETS)
