#!/usr/bin/env bash
# scripts/mutate.sh — mutation testing: applies each plausible one-line bug of
# scripts/mutations.txt to a scratch copy of the working tree, rebuilds it (CUDA=0, with
# ccache when present; only the mutated file recompiles, and only the binaries its tests run), runs the tests that line names,
# and reports per mutation whether it was caught and by which test, then a markdown table.
# Slow (a rebuild and a test run per mutation); not part of make test or CI. Run it before a
# release and put its table in docs/design-notes.md.
# Usage: scripts/mutate.sh [LIST (default scripts/mutations.txt)] [REPORT.md]
# Exit status 1 if any mutation survived or could not be applied.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
list=$(realpath "${1:-scripts/mutations.txt}")
report=${2:+$(realpath -m "$2")}
[ -f "$list" ] || { echo "mutate: no such list $list" >&2; exit 2; }
cxx=g++
command -v ccache >/dev/null && cxx="ccache g++"
jobs=${JOBS:-2}
timeout_s=${MUTATE_TIMEOUT:-600}

top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
# The copy sits beside a link to ../shared, so the tests that read ../shared/data run (a
# missing data file is a skip, and a skipped test would let every mutation it guards survive).
scratch=$top/chaingrad
mkdir "$scratch"
[ -d ../shared ] && ln -s "$(realpath ../shared)" "$top/shared"
echo "mutate: copying the tree to $scratch and building it once"
tar --exclude=./build --exclude=./.git --exclude=./.venv -cf - . | tar -xf - -C "$scratch"
# the normal build's outputs (not build/san, build/portable, ...): objects newer than the
# copied sources, so nothing rebuilds
mkdir -p "$scratch/build"
for d in obj bin tests examples; do [ -d "build/$d" ] && cp -a "build/$d" "$scratch/build/"; done
cd "$scratch" || exit 2
# Only what the selectors run is rebuilt: the test binary and the tools (docs= needs everything).
build() { make -j"$jobs" CUDA=0 CXX="$cxx" "$@" >"$top/build.log" 2>&1; }
build all || { echo "mutate: the unmutated tree does not build:"; tail -20 "$top/build.log"; exit 2; }

rows=() survived=0 n=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  file=$(awk -F' [|] ' '{print $1}' <<<"$line")
  tests=$(awk -F' [|] ' '{print $2}' <<<"$line")
  desc=$(awk -F' [|] ' '{print $3}' <<<"$line")
  sedx=$(awk -F' [|] ' '{for (i = 4; i <= NF; i++) printf "%s%s", $i, (i < NF ? " | " : "")}' <<<"$line")
  n=$((n + 1))
  echo "== [$n] $file: $desc"
  cp -p "$file" "$top/orig"
  sed -i -e "$sedx" "$file"
  if cmp -s "$file" "$top/orig"; then
    echo "   NOT APPLIED: the sed script no longer matches $file"
    rows+=("| $n | \`$file\` | $desc | not applied (update the list) |")
    survived=$((survived + 1))
    continue
  fi
  touch "$file"
  result="" caught_by=""
  targets=(build/tests/test_all tools)  # tools: the tool tests run build/bin/*, gradcheck among them
  case " $tests" in *" docs="*) targets=(all) ;; esac
  if ! build "${targets[@]}"; then
    result="caught"; caught_by="the build"
  else
    for sel in $tests; do
      kind=${sel%%=*} arg=${sel#*=}
      case "$kind" in
        tc) out=$(OMP_NUM_THREADS=2 timeout "$timeout_s" build/tests/test_all -tc="$arg" 2>&1); rc=$? ;;
        gradcheck) out=$(timeout "$timeout_s" build/bin/gradcheck --op "$arg" 2>&1); rc=$? ;;
        docs) out=$(timeout "$timeout_s" bash scripts/check-docs.sh "$arg" 2>&1); rc=$? ;;
        *) echo "mutate: unknown selector $sel" >&2; rc=0; out="" ;;
      esac
      if [ "$rc" -ne 0 ]; then
        result="caught"
        case "$kind" in
          tc) # the test cases with an ERROR (doctest prints "TEST CASE:  NAME" above each report)
              names=$(awk '/^TEST CASE: /{sub(/^TEST CASE: +/, ""); tc=$0} /: (FATAL )?ERROR: /{if (!(tc in seen)) {seen[tc]; printf "%s%s", (n++ ? "; " : ""), tc}}' <<<"$out" | cut -c1-160)
              caught_by="test_all: ${names:-exit $rc}" ;;
          gradcheck) caught_by="gradcheck --op $arg: $(grep -E '^gradcheck: ' <<<"$out" | tail -1)" ;;
          docs) caught_by="check-docs $arg: $(grep -E '^FAIL' <<<"$out" | head -1 | cut -c1-80)" ;;
        esac
        break
      fi
    done
    [ -n "$result" ] || { result="SURVIVED"; caught_by="($tests all pass)"; survived=$((survived + 1)); }
  fi
  echo "   $result by $caught_by"
  rows+=("| $n | \`$file\` | $desc | $result: $caught_by |")
  cp -p "$top/orig" "$file"
  touch "$file"
done <"$list"

{
  echo "| # | file | mutation | result |"
  echo "| --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "mutate: $n mutations, $((n - survived)) caught, $survived survived or not applied"
} | tee "$top/report.md"
[ -n "$report" ] && cp "$top/report.md" "$report"
[ "$survived" -eq 0 ]
