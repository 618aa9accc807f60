#!/usr/bin/env bash
# Installs fakesnow, the Snowflake stand-in the tests run against, in a Python venv under the
# cache directory (default ~/.cache/sluice), unless it is there already. Prints the venv's path.
#
# Python 3.11 or later with venv; pip reaches PyPI through its ordinary client.
set -euo pipefail
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
venv=$cache/venv-fakesnow
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import fakesnow, pyarrow" 2>/dev/null; then
  echo "$venv"
  exit 0
fi
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import venv, ensurepip" 2>/dev/null; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || { echo "install-fakesnow: no python3 with venv (apt-get install python3-venv)" >&2; exit 1; }
mkdir -p "$cache"
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install -q 'fakesnow[server]==0.12.1' 'snowflake-connector-python<5' pyarrow >&2
echo "$venv"
