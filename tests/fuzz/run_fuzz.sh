#!/usr/bin/env bash
# run_fuzz.sh OUT_DIR TARGET... — run libFuzzer targets (built by `make fuzz-build`) and summarise.
#
# Each target OUT_DIR/fuzz_<t> runs FUZZ_SECONDS (default 600) with FUZZ_JOBS targets at a time
# (default 2): new inputs go to OUT_DIR/work/<t>, seeds are read from tests/fuzz/corpus/<t>, crash /
# timeout / OOM reproducers land in OUT_DIR/crashes/<t>/, the log in OUT_DIR/<t>.log.
# One malloc above 512 MB counts as a crash (-malloc_limit_mb): no input of a few KB may make the
# engine trust a length it read and ask for that much.
# FUZZ_MERGE=1 merges the inputs that add coverage back into tests/fuzz/corpus/<t> (-merge=1).
# Copy a reproducer to tests/fuzz/regressions/<t>/ once fixed: `make test` replays it for ever.
set -u
OUT=$1; shift
SECONDS_EACH=${FUZZ_SECONDS:-600}
JOBS=${FUZZ_JOBS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
export LSAN_OPTIONS="suppressions=$HERE/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

run_one() {
    local t=$1 bin="$OUT/fuzz_$1" work="$OUT/work/$1" crashes="$OUT/crashes/$1" seeds="$HERE/corpus/$1"
    mkdir -p "$work" "$crashes" "$seeds"
    local dict=()
    [ -f "$HERE/$t.dict" ] && dict=(-dict="$HERE/$t.dict")
    "$bin" "$work" "$seeds" "${dict[@]}" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 -artifact_prefix="$crashes/" >"$OUT/$t.log" 2>&1
    echo $? >"$OUT/$t.rc"
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        "$bin" -merge=1 "$seeds" "$work" >>"$OUT/$t.merge.log" 2>&1
    fi
}

pids=()
for t in "$@"; do
    echo "fuzzing $t for ${SECONDS_EACH}s (log: $OUT/$t.log)"
    run_one "$t" &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
done
wait "${pids[@]}"

status=0
printf '\n%-12s %8s %12s %8s %8s %s\n' target seconds execs cov ft crashes
for t in "$@"; do
    log="$OUT/$t.log"
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$')
    [ -z "$execs" ] && execs=$(echo "$last" | grep -oE '^#[0-9]+' | tr -d '#')
    cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+')
    ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | grep -oE '[0-9]+')
    secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+')
    n_crash=$(find "$OUT/crashes/$t" -type f | wc -l)
    printf '%-12s %8s %12s %8s %8s %s\n' "$t" "${secs:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$n_crash"
    if [ "$n_crash" -gt 0 ] || [ "$(cat "$OUT/$t.rc")" != 0 ]; then
        status=1
        find "$OUT/crashes/$t" -type f | sed 's/^/    reproducer: /'
        grep -m1 -E 'ERROR: |fuzz invariant failed|runtime error' "$log" | sed 's/^/    /'
    fi
done
exit $status
