#!/bin/sh
# Runs the test binaries (optimised, then ASan+UBSan) and prints one closing
# line with the totals. Exit status is non-zero if anything failed.
set -u
total_pass=0; total_fail=0; status=0
for bin in build/test_lantern build/san/test_lantern; do
    echo "== $bin"
    out=$(mktemp)
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" "$@" 2>&1 | tee "$out"
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "$bin: did not finish (crash or sanitizer abort)"; total_fail=$((total_fail + 1)); status=1; continue
    fi
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    [ "$f" = 0 ] || status=1
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ] || status=1
exit $status
