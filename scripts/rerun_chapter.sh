#!/usr/bin/env bash
# Reruns one chapter with other parameters: converts the Jupytext source to a notebook and executes
# it with papermill. Usage: scripts/rerun_chapter.sh CHAPTER.md OUT.ipynb [-p NAME VALUE ...]
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 notebooks/CHAPTER.md OUT.ipynb [-p NAME VALUE ...]" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$1"; out="$2"; shift 2
[ -f "$src" ] || { echo "rerun_chapter: no chapter at $src" >&2; exit 2; }
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
tmp=$(mktemp --suffix=.ipynb)
trap 'rm -f "$tmp"' EXIT
"$py" -m jupytext --quiet --to ipynb --output "$tmp" "$src"
"$py" -m papermill --cwd "$(dirname "$src")" "$tmp" "$out" "$@"
