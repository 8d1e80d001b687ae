#!/usr/bin/env bash
# scripts/test-report.sh — the run report renders: a small real fine-tune (a 3-step base, then
# 6 LinChain steps with --flow, --metrics, --summary and --sample-every), scripts/report.py
# on it, and a screenshot of the page by headless Chromium that must be a PNG that is not
# blank. Prints "report: N passed, M failed". Without chromium (apt-get install chromium) the
# check is skipped with a message, except under CI=true, where it fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
passed=0 failed=0
check() {  # check NAME CMD...
  local name=$1
  shift
  if "$@"; then echo "ok   $name"; passed=$((passed + 1)); else echo "FAIL $name"; failed=$((failed + 1)); fi
}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL chromium not found (scripts/install-deps.sh installs it)"
    echo "report: 0 passed, 1 failed"
    exit 1
  fi
  echo "skipped: chromium not found (apt-get install chromium); the report page was not rendered"
  echo "report: 0 passed, 0 failed"
  exit 0
fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
run="$d/linchain"
mkdir -p "$run"
flags=(--model "$d/base.safetensors" --arith sub --arith-lines 2000 --adapter linchain --rank 4 --chain 3 --seq 32
       --batch 4 --lr 1e-2 --steps 6 --eval-every 3 --seed 5)
check "base model" build/bin/train --arith add --arith-lines 2000 --dim 32 --layers 2 --heads 4 --kv-heads 2 --seq 32 \
  --batch 4 --steps 3 --out "$d/base.safetensors" >"$d/train.log" 2>&1
echo "finetune ${flags[*]}" | sed "s|$d/||g" >"$run/command.txt"
check "fine-tune with --flow" build/bin/finetune "${flags[@]}" --metrics "$run/metrics.jsonl" --flow "$run/flow.jsonl" \
  --flow-every 2 --summary "$run/summary.json" --sample-every 6 --sample-tokens 16 >"$d/ft.log" 2>&1
grep "sample @" "$d/ft.log" >"$run/samples.txt" || true
check "report.py" /usr/bin/python3 scripts/report.py "$d/report" "$run=LinChain" >"$d/report.log" 2>&1
check "page is self-contained" grep -q "data:image/png;base64," "$d/report/index.html"
timeout 60 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1400 \
  --screenshot="$d/shot.png" "file://$d/report/index.html" >"$d/chromium.log" 2>&1
check "chromium screenshot" test -s "$d/shot.png"
# Non-blank: a valid PNG whose pixels are not all one colour and include dark text and lines.
check "screenshot not blank" /usr/bin/python3 - "$d/shot.png" <<'PY'
import sys
import matplotlib.image as mpimg
im = mpimg.imread(sys.argv[1])[..., :3]
grey = im.mean(axis=2)
dark = (grey < 0.5).mean()
print(f"screenshot {im.shape[1]}x{im.shape[0]}, std {grey.std():.3f}, dark pixels {100 * dark:.1f}%")
sys.exit(0 if im.shape[0] > 100 and grey.std() > 0.05 and dark > 0.002 else 1)
PY
if [ "$failed" -gt 0 ]; then
  for f in train ft report chromium; do [ -f "$d/$f.log" ] && tail -5 "$d/$f.log"; done
fi
echo "report: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
