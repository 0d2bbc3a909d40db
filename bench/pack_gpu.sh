#!/usr/bin/env bash
# bench/pack_gpu.sh — run on the DEV machine before a GPU run. Fills the git-ignored folders that the
# device call carries (the whole call may move at most 64 MiB):
#   .debs/    OpenBLAS + utf8proc packages (bench/fetch_gpu_deps.sh)
#   shared/   what the GPU tests and bench read: fixtures aligner/ and asr/ (original layout) and the
#             cases' .npy/.json (no .wav), the three real configs — all without the tokenizer files,
#             which bench/gpu_run.sh restores from qwen3align/data/ (they are identical everywhere)
# Then: run(command="bash bench/gpu_run.sh", carry=[".debs", "shared"])
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${QA_SHARED_SRC:-../shared}
[ -d .debs ] && ls .debs/*.deb >/dev/null 2>&1 || bash bench/fetch_gpu_deps.sh
rm -rf shared && mkdir -p shared/fixtures/cases shared/models
# QA_PACK_MODELS: which fixture checkpoints to carry (default the original layout; e.g. "aligner-hf asr-hf" or
# "asr-sharded" for the other layouts' GPU parity tests — all of them at once exceed the 64 MiB)
for m in ${QA_PACK_MODELS:-aligner asr}; do
  mkdir -p shared/fixtures/$m
  cp "$SRC/fixtures/$m/config.json" "$SRC/fixtures/$m/preprocessor_config.json" "$SRC/fixtures/$m"/model*.safetensors* \
    shared/fixtures/$m/
done
cp "$SRC/fixtures/index.json" shared/fixtures/
for c in "$SRC"/fixtures/cases/*/; do
  n=$(basename "$c"); mkdir -p shared/fixtures/cases/$n
  cp "$c"/*.npy "$c"/*.json shared/fixtures/cases/$n/
done
for m in "$SRC"/models/*/; do
  n=$(basename "$m"); mkdir -p shared/models/$n
  cp "$m"/config.json "$m"/generation_config.json "$m"/preprocessor_config.json shared/models/$n/
done
du -sh .debs shared
echo "tracked + untracked files: $(git ls-files -co --exclude-standard | xargs du -cb 2>/dev/null | tail -1)"
