#!/usr/bin/env bash
# Runs every test suite of a build and prints one closing line
# "tests: N passed, M failed, K skipped" (doctest test cases + gradcheck cases + layer checks +
# docs checks + MPI checks + the transformers check + the run report page + the real-model study
# report on a fake results folder). A case that cannot run here (no
# ../shared/data, no CUDA device, no MPI, no venv) is counted as skipped with a line saying
# why, never as passed; under CI=true a missing ../shared/data or mpirun fails instead
# (tests/skip.h). Exit status non-zero if any suite fails. The layer checks do not depend on
# the build; the docs, MPI and transformers checks run the normal build's binaries, so they
# are left out of the sanitizer run (third argument 1).
# Usage: scripts/run-tests.sh BIN_DIR TEST_BINARY [SANITIZE]
set -uo pipefail
bin=${1:-build/bin}
test_bin=${2:-build/tests/test_all}
sanitize=${3:-0}
passed=0 failed=0 skipped=0 status=0

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit tests ($test_bin)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$test_bin" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
line=$(grep -E '^\[doctest\] test cases:' "$log" | tail -1)
p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")
# tests/skip.cpp prints "[skip] K test case(s) skipped": doctest counted those as passed.
k=$(sed -nE 's/^\[skip\] ([0-9]+) test case\(s\) skipped$/\1/p' "$log" | tail -1)
[ -n "$line" ] && [ -z "$k" ] && { echo "run-tests: no skip count from $test_bin"; status=1; failed=$((failed + 1)); }
passed=$((passed + ${p:-0} - ${k:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${k:-0}))
[ -n "$line" ] || { echo "run-tests: no doctest summary from $test_bin"; status=1; failed=$((failed + 1)); }

echo "== gradcheck"
"$bin/gradcheck" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
line=$(grep -E '^gradcheck: ' "$log" | tail -1)
p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
[ -n "$line" ] || { echo "run-tests: no gradcheck summary"; status=1; failed=$((failed + 1)); }

# suite NAME PREFIX CMD...: runs CMD and adds the counts of its "PREFIX: N passed, M failed[, K skipped]" line.
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
  grep -qE ' [0-9]+ skipped' <<<"$l" && skipped=$((skipped + $(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$l")))
  return 0
}
if [ "$sanitize" != 1 ]; then
  suite "layers (scripts/check-layers.sh)" layers bash scripts/check-layers.sh
  suite "layers self-test (scripts/check-layers.sh --self-test)" layers bash scripts/check-layers.sh --self-test
  suite "docs (scripts/check-docs.sh)" docs bash scripts/check-docs.sh
  suite "data-parallel (scripts/test-mpi.sh)" mpi bash scripts/test-mpi.sh "$bin"
  suite "Hugging Face interop (scripts/test-hf.sh)" hf bash scripts/test-hf.sh "$bin"
  suite "run report (scripts/test-report.sh)" report bash scripts/test-report.sh
  suite "real-model study report (scripts/test-study-real.sh)" study-real bash scripts/test-study-real.sh
fi

echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
