#!/usr/bin/env bash
# valgrind.sh — memcheck of a small CPU run (tests/tools/valgrind_run.py) for `make valgrind`.
#
# Fails (exit 1) on any invalid read/write, use of uninitialised memory, bad free or definitely lost
# block that is not CPython's / NumPy's own (tests/valgrind-python.supp). PYTHONMALLOC=malloc makes
# every Python object a malloc block, so valgrind sees the binding's object handling too.
# --read-inline-info=no: frames are real functions, so the obj: patterns of the suppressions (which
# never match inlined pseudo-frames) tell the interpreter's code from ours.
# Log: build/valgrind.log (the full report, with suppression stanzas for anything new).
set -u
VPY=${VPY:-.venv/bin/python}
LOG=build/valgrind.log
mkdir -p build
PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 --read-inline-info=no \
    --suppressions=tests/valgrind-python.supp --gen-suppressions=all --log-file="$LOG" \
    "$VPY" tests/tools/valgrind_run.py
rc=$?
grep -E "ERROR SUMMARY|definitely lost:|indirectly lost:" "$LOG" | sed 's/^==[0-9]*== */valgrind: /'
if [ $rc -ne 0 ]; then
    echo "valgrind: FAILED (exit $rc); first reports from $LOG:"
    grep -m3 -A20 -E "Invalid (read|write)|uninitialised|definitely lost in|Mismatched|Invalid free" "$LOG"
fi
exit $rc
