#!/usr/bin/env bash
# scripts/test-study-real.sh — the report step of `make study-real` on a fake results folder
# (scripts/study_real.py --self-test: 3 fake seeds with one planted effect; checks the marked
# section is replaced and the rest of the doc kept, the table, the verdict's wording, the
# pilot label with one seed, and that a second budget into the same folder exits 2).
# Prints "study-real: N passed, M failed". Needs /usr/bin/python3 with numpy + matplotlib.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c "import numpy, matplotlib" 2>/dev/null; then
  if [ "${CI:-}" = true ]; then  # under CI a missing dependency fails, never reads as a pass
    echo "study-real: 0 passed, 1 failed (no numpy/matplotlib for /usr/bin/python3: run scripts/install-deps.sh)"
    exit 1
  fi
  echo "study-real: 0 passed, 0 failed, 1 skipped (no numpy/matplotlib for /usr/bin/python3)"
  exit 0
fi
/usr/bin/python3 scripts/study_real.py --self-test 2>&1 | grep -v "^study_real: wrote"
exit "${PIPESTATUS[0]}"
