#!/usr/bin/env bash
# Creates the Python venv of PyPI packages that the reference, interop and benchmark scripts
# use (torch 2, transformers, peft, gguf, tokenizers, safetensors). The C++ build and the unit
# tests never need it: they read small committed goldens. Idempotent: an existing venv whose
# packages import is left alone. Prints the venv's path on its last line. The default place is
# outside the repo, so that every clone (CI's fresh one too) shares one venv.
# Usage: scripts/make-venv.sh            (the venv goes to $CG_VENV, default
#                                         ${XDG_CACHE_HOME:-~/.cache}/chaingrad/venv)
#        scripts/make-venv.sh --path     (print where the venv is or would be; create nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/chaingrad/venv}
if [ "${1:-}" = --path ]; then
  echo "$venv"
  exit 0
fi
mkdir -p "$(dirname "$venv")"
pkgs=(torch transformers peft gguf tokenizers safetensors numpy jinja2)
check='import torch, transformers, peft, gguf, tokenizers, safetensors, numpy, jinja2'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "make-venv: $venv ready"
  echo "$venv"
  exit 0
fi
# Debian's interpreter, so the venv does not depend on whichever python3 comes first on PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
"$py" -m venv "$venv" || { echo "make-venv: cannot create a venv (apt-get install python3-venv)" >&2; exit 2; }
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "${pkgs[@]}"
"$venv/bin/python" -c "$check"
echo "make-venv: $venv ready"
echo "$venv"
