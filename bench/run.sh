#!/usr/bin/env bash
# Reproduce the benchmarks with one command:  bash bench/run.sh [python -m bench options]
#
# Creates (once) two virtual environments next to this script and runs `python -m bench`:
#   bench/.venv        the project with its [bench] extra (atlassian-python-api, mcp SDK,
#                      pyinstrument), where the runner and the clients are measured;
#   bench/.peers-venv  mcp-atlassian, pinned by the [bench-mcp-peer] extra in pyproject.toml.
#                      It needs atlassian-python-api<5 and mcp<2, which conflict with the
#                      first environment, so it runs as a separate process (as agents run it).
# They are reinstalled when pyproject.toml changes. Override the interpreter with PYTHON=...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-python3}"
venv="${HARBOR_BENCH_VENV:-$here/.venv}"
peers="${HARBOR_BENCH_PEERS_VENV:-$here/.peers-venv}"
stamp="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.bench-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "bench: installing the project with its [bench] extra into $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$root[bench]"
  echo "$stamp" > "$venv/.bench-stamp"
fi

pin="$("$venv/bin/python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]
print(" ".join(extras["bench-mcp-peer"]))
PY
)"
if [ ! -x "$peers/bin/mcp-atlassian" ] || [ "$(cat "$peers/.bench-stamp" 2>/dev/null)" != "$pin" ]; then
  echo "bench: installing $pin into $peers" >&2
  "$python" -m venv "$peers"
  "$peers/bin/python" -m pip install --quiet --upgrade pip
  # shellcheck disable=SC2086 # the pin list is word-split on purpose
  "$peers/bin/python" -m pip install --quiet $pin
  echo "$pin" > "$peers/.bench-stamp"
fi

cd "$root"
export HARBOR_BENCH_PEERS_VENV="$peers"
exec "$venv/bin/python" -m bench "$@"
