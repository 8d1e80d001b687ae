#!/usr/bin/env bash
# scripts/check-tokenizers.sh — acceptance check for the tokenizers: every text file under
# ../shared/data (everything but the .bin/.gguf/.model binaries), whole, encoded by
# build/bin/tokenize and by HF `tokenizers` (from the venv of scripts/make-venv.sh) with
# SmolLM2's tokenizer.json, the SmolLM2 GGUF's own vocabulary, and Llama-2's tokenizer.json;
# prints one line per (tokenizer, file) and exits non-zero on any difference or failed round trip.
# CG_CHECK_ONLY=WORD limits it to the tokenizers whose label holds WORD (smollm2, GGUF, llama2).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/make-venv.sh --path)
[ -x "$venv/bin/python" ] || { echo "check-tokenizers.sh: no venv at $venv (scripts/make-venv.sh)" >&2; exit 2; }
[ -d ../shared/data ] || { echo "check-tokenizers.sh: ../shared/data is absent" >&2; exit 2; }
[ -x build/bin/tokenize ] || make -s build/bin/tokenize
mapfile -t files < <(find ../shared/data -type f ! -name '*.bin' ! -name '*.gguf' ! -name '*.model' | sort)
exec "$venv/bin/python" tests/reference/real_models_ref.py compare-tokenizers build/bin/tokenize "${files[@]}"
