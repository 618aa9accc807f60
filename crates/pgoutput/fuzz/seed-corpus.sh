#!/usr/bin/env bash
# Writes every captured fixture message and frame to corpus/decode/ as one binary file each.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode
n=0
for f in ../tests/fixtures/*.hex; do
  while read -r a b; do
    hex=${b:-$a}   # message fixtures are "<lsn> <hex>", frames.hex is "<hex>"
    printf '%s' "$hex" | perl -ne 'print pack("H*", $_)' >"corpus/decode/$(basename "$f" .hex)-$n"
    n=$((n + 1))
  done <"$f"
done
echo "seeded $n inputs into corpus/decode"
