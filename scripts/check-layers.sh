#!/usr/bin/env bash
# scripts/check-layers.sh — checks that includes follow the layers and that docs/map.md
# matches the tree. Prints one line per problem and a closing "layers: N passed, M failed"
# (one check per source file of a layer, one per folder in the map, one per source folder).
#   - No include points up: engine < ops < nn < models < tools (tests, bench, examples and
#     fuzz may use every layer). Inside models/: llama, io and text are one level and may
#     use each other; train sits above them and study above train (the gradient-flow recorder observes
#     the Trainer); train never uses study.
#   - Only engine/ (and tests/, which test the backends) includes engine/cpu/ or engine/cuda/.
#   - Every folder docs/map.md lists (a `path/` in the first column of its table) exists,
#     and every folder holding source files (.cpp .h .cu .py .sh .mk) is listed.
# Usage: scripts/check-layers.sh [ROOT]      check the tree at ROOT (default: this repo)
#        scripts/check-layers.sh --self-test  plant violations in temp copies; each must fail
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# rank PATH: sets REPLY to the layer of a repo-relative path (empty outside the layers).
rank() {
  case $1 in
    engine/*) REPLY=0 ;;
    ops/*) REPLY=1 ;;
    nn/*) REPLY=2 ;;
    models/llama/* | models/io/* | models/text/*) REPLY=3 ;;
    models/*) REPLY=4 ;;
    tools/*) REPLY=5 ;;
    *) REPLY="" ;;
  esac
}

check_tree() {
  local root=$1 passed=0 failed=0
  [[ -d $root/engine && -f $root/docs/map.md ]] || { echo "check-layers: $root has no engine/ or docs/map.md" >&2; return 2; }
  local f inc r ri bad
  while IFS= read -r f; do
    rank "$f"; r=$REPLY
    [[ -n $r ]] || continue
    bad=0
    while IFS= read -r inc; do
      rank "$inc"; ri=$REPLY
      if [[ -n $ri && $ri -gt $r ]]; then
        echo "layers: $f includes $inc (a higher layer)"; bad=1
      elif [[ $f == models/train/* && $inc == models/study/* ]]; then
        echo "layers: $f includes $inc (study sits above train)"; bad=1
      fi
      if [[ ($inc == engine/cpu/* || $inc == engine/cuda/*) && $f != engine/* ]]; then
        echo "layers: $f includes $inc (backend internals outside engine/)"; bad=1
      fi
    done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1/p' "$root/$f")
    if ((bad)); then failed=$((failed + 1)); else passed=$((passed + 1)); fi
  done < <(cd "$root" && find engine ops nn models tools -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \) | sort)

  # The map: first-column `folder/` entries of its tables.
  local listed d
  listed=$(sed -nE 's/^\| *`([^`]+)\/` *\|.*/\1/p' "$root/docs/map.md" | sort -u)
  [[ -n $listed ]] || { echo "layers: docs/map.md lists no folders"; failed=$((failed + 1)); }
  for d in $listed; do
    if [[ -d $root/$d ]]; then passed=$((passed + 1)); else echo "layers: docs/map.md lists $d/, which does not exist"; failed=$((failed + 1)); fi
  done
  while IFS= read -r d; do
    if grep -qxF "$d" <<<"$listed"; then passed=$((passed + 1)); else echo "layers: $d/ holds source files but docs/map.md does not list it"; failed=$((failed + 1)); fi
  done < <(cd "$root" && find . \( -path ./build -o -path ./shared -o -path './.*' \) -prune -o -type f \
             \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.py' -o -name '*.sh' -o -name '*.mk' \) \
             -printf '%h\n' | sed -n 's|^\./||p' | sort -u)
  echo "layers: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}

# The self-test: each case copies the layers, the map and the script's other inputs to a
# temp folder, changes one thing (FILE gets LINE appended, or the shell code LINE runs with
# $tmp set) and expects check_tree to pass (the unchanged copy) or to fail.
self_test() {
  local passed=0 failed=0 tmp
  plant() {
    local name=$1 expect=$2 file=$3 line=$4 got
    tmp=$(mktemp -d)
    # the folder skeleton, the sources and the map (all check_tree reads)
    (cd "$here" && find . \( -path ./build -o -path ./shared -o -path './.*' \) -prune -o -type d -print) | (cd "$tmp" && xargs mkdir -p)
    (cd "$here" && find . \( -path ./build -o -path ./shared -o -path './.*' \) -prune -o -type f \( -name '*.cpp' -o \
       -name '*.h' -o -name '*.cu' -o -name '*.py' -o -name '*.sh' -o -name '*.mk' -o -path ./docs/map.md \) -print |
       tar -cf - -T -) | (cd "$tmp" && tar -xf -)
    if [[ -n $file ]]; then printf '%s\n' "$line" >> "$tmp/$file"; else eval "$line"; fi
    if check_tree "$tmp" > "$tmp.log" 2>&1; then got=pass; else got=fail; fi
    if [[ $got == "$expect" ]]; then
      passed=$((passed + 1))
      echo "self-test: $name: $got as it should$([[ $got == fail ]] && echo " ($(grep -m1 -v ' passed, ' "$tmp.log"))")"
    else
      failed=$((failed + 1))
      echo "self-test: $name: $got, expected $expect"; sed 's/^/  /' "$tmp.log"
    fi
    rm -rf "$tmp" "$tmp.log"
  }
  plant "the copy as it is" pass "" ":"
  plant "engine including ops" fail engine/tensor.cpp '#include "ops/ops.h"'
  plant "ops including nn" fail ops/matmul.cpp '#include "nn/linear.h"'
  plant "nn including models" fail nn/linear.cpp '#include "models/llama/llama.h"'
  plant "models/llama including models/train" fail models/llama/llama.cpp '#include "models/train/trainer.h"'
  plant "models/train including models/study" fail models/train/trainer.cpp '#include "models/study/gradflow.h"'
  plant "models including tools" fail models/io/file_io.cpp '#include "tools/common/cli.h"'
  plant "nn including engine/cpu" fail nn/linear.cpp '#include "engine/cpu/cpu_backend.h"'
  plant "a source folder missing from the map" fail "" 'mkdir -p "$tmp/ops/extra" && touch "$tmp/ops/extra/x.cpp"'
  plant "a mapped folder that does not exist" fail "" 'printf "| \`nowhere/\` | nothing | nothing |\n" >> "$tmp/docs/map.md"'
  echo "layers: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}

if [[ ${1:-} == --self-test ]]; then
  self_test
else
  check_tree "${1:-$here}"
fi
