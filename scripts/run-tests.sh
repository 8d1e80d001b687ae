#!/usr/bin/env bash
# Runs every test suite of a build and prints one closing line "tests: N passed, M failed"
# (doctest test cases + gradcheck cases + docs checks + MPI checks + the report page). Exit status non-zero
# if any suite fails. The docs and MPI checks run the normal build's binaries, so they are
# left out of the sanitizer run (third argument 1).
# Usage: scripts/run-tests.sh BIN_DIR TEST_BINARY [SANITIZE]
set -uo pipefail
bin=${1:-build/bin}
test_bin=${2:-build/tests/test_all}
sanitize=${3:-0}
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

# suite NAME PREFIX CMD...: runs CMD and adds the counts of its "PREFIX: N passed, M failed" line.
suite() {
  local name=$1 prefix=$2
  shift 2
  echo "== $name"
  "$@" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  local l
  l=$(grep -E "^$prefix: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
  if [ -z "$l" ]; then
    echo "run-tests: no summary from $name"
    status=1
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$l")))
  failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$l")))
}
if [ "$sanitize" != 1 ]; then
  suite "docs (scripts/check-docs.sh)" docs bash scripts/check-docs.sh
  suite "data-parallel (scripts/test-mpi.sh)" mpi bash scripts/test-mpi.sh
  suite "run report (scripts/test-report.sh)" report bash scripts/test-report.sh
fi

echo "tests: $passed passed, $failed failed"
exit $status
