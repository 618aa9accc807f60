#!/usr/bin/env bash
# Fetches the official prebuilt libduckdb.so (DuckDB v1.5.6, matching crate duckdb =1.10506.1)
# from the npm registry into a cache outside the clone, verifies it, and prints its directory.
# Compiling DuckDB's C++ instead takes 30+ minutes on 2 cores (cargo feature `bundled`).
#
# Usage: fetch-libduckdb.sh [CACHE_DIR]     (default: ~/.cache/sluice)
set -euo pipefail

VERSION=1.5.6-r.1
SHA256=1b9f82478539bb9a1d1df44bd103121a12ae52142c07158dc52b97d2ec1d69ff
PACKAGE=@duckdb/node-bindings-linux-x64
CACHE=${1:-${SLUICE_CACHE:-$HOME/.cache/sluice}}
DEST=$CACHE/duckdb-${VERSION%%-*}
TGZ=$CACHE/duckdb-node-bindings-linux-x64-$VERSION.tgz

if [ -f "$DEST/package/libduckdb.so" ]; then
  echo "$DEST/package"
  exit 0
fi
case "$(uname -sm)" in
  "Linux x86_64") ;;
  *) echo "fetch-libduckdb: only linux x86_64 has a prebuilt library here; build with --features bundled" >&2; exit 2 ;;
esac
mkdir -p "$CACHE"
if [ ! -f "$TGZ" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  command -v npm >/dev/null 2>&1 || {
    echo "fetch-libduckdb: npm is needed to fetch $PACKAGE (apt-get install npm)" >&2
    exit 2
  }
  (cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
  mv "$tmp/duckdb-node-bindings-linux-x64-$VERSION.tgz" "$TGZ"
fi
echo "$SHA256  $TGZ" | sha256sum -c --quiet - || {
  echo "fetch-libduckdb: checksum mismatch for $TGZ; removed it, run again" >&2
  rm -f "$TGZ"
  exit 1
}
mkdir -p "$DEST"
tar xzf "$TGZ" -C "$DEST" package/libduckdb.so package/LICENSE
echo "$DEST/package"
