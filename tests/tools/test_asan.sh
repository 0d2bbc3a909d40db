#!/usr/bin/env bash
# test_asan.sh [pytest args] — the test suite against an ASan + UBSan build of the extension (make test-asan).
#
# The extension is rebuilt with gcc -fsanitize=address,undefined (setup.py QA_SANITIZE=1) in its own
# build-temp and build-lib folders (setuptools copies build-lib's .so into the package on every
# later `build_ext --inplace`, so sharing build/lib would leak the ASan build into `make test`);
# the normal extension is saved first and put back afterwards, whatever happens, so `make test`
# keeps working without a full rebuild. The Python interpreter is not built with ASan,
# so the ASan runtime must be the first library loaded: LD_PRELOAD=libasan (+ libubsan).
# ASAN_OPTIONS: detect_leaks=0 (CPython and NumPy keep memory until exit by design; our leaks are
# covered by tests/test_leaks.py, valgrind and the fuzz targets' LeakSanitizer), verify_asan_link_order=0
# (child processes the tests start inherit LD_PRELOAD and may link differently),
# allocator_may_return_null=1 (tests that ask for absurd sizes expect OutOfMemoryError, not an abort).
# PYTHONMALLOC=malloc routes Python objects through ASan's malloc too, so a binding that touches a
# freed object or buffer is caught. Any ASan or UBSan report aborts the test process: pytest then fails.
set -u
VPY=${VPY:-.venv/bin/python}
SO=$(ls qwen3align/_qwen3align*.so 2>/dev/null | head -1)
SAVE=build/asan-saved
mkdir -p "$SAVE" build
[ -n "$SO" ] && cp -p "$SO" "$SAVE/"

restore() {
    if [ -n "$SO" ] && [ -f "$SAVE/$(basename "$SO")" ]; then
        cp -p "$SAVE/$(basename "$SO")" "$SO"
        echo "test-asan: restored the normal extension ($SO)"
    else
        echo "test-asan: no normal extension was built before; run 'make build'"
    fi
}
trap restore EXIT

QA_SANITIZE=1 QA_NO_CUDA=1 "$VPY" setup.py -q build_ext --inplace --force --build-temp build/temp-asan --build-lib build/lib-asan \
    >build/asan-build.log 2>&1 || { tail -30 build/asan-build.log; exit 1; }
SO_ASAN=$(ls qwen3align/_qwen3align*.so | head -1)
if ! nm -D "$SO_ASAN" | grep -q __asan_report_load; then
    echo "test-asan: $SO_ASAN is not instrumented (no __asan_report_* imports)"; exit 1
fi
LIBASAN=$(gcc -print-file-name=libasan.so)
LIBUBSAN=$(gcc -print-file-name=libubsan.so)
echo "test-asan: extension built with ASan+UBSan; preloading $LIBASAN"
LD_PRELOAD="$LIBASAN $LIBUBSAN" \
ASAN_OPTIONS="detect_leaks=0:verify_asan_link_order=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" PYTHONMALLOC=malloc \
    "$VPY" -m pytest -q -p no:cacheprovider "${@:-tests}"
