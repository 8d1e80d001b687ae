#!/usr/bin/env bash
# Runs every test suite of a build and prints one closing line "tests: N passed, M failed"
# (doctest test cases + gradcheck cases). Exit status non-zero if any suite fails.
# Usage: scripts/run-tests.sh BIN_DIR TEST_BINARY
set -uo pipefail
bin=${1:-build/bin}
test_bin=${2:-build/tests/test_all}
passed=0 failed=0 status=0

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit tests ($test_bin)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$test_bin" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
line=$(grep -E '^\[doctest\] test cases:' "$log" | tail -1)
p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
[ -n "$line" ] || { echo "run-tests: no doctest summary from $test_bin"; status=1; failed=$((failed + 1)); }

echo "== gradcheck"
"$bin/gradcheck" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
line=$(grep -E '^gradcheck: ' "$log" | tail -1)
p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
[ -n "$line" ] || { echo "run-tests: no gradcheck summary"; status=1; failed=$((failed + 1)); }

echo "tests: $passed passed, $failed failed"
exit $status
