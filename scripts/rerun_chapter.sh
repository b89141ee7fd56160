#!/usr/bin/env bash
# Reruns one chapter with other parameters: converts the Jupytext source to a notebook and executes
# it with papermill, with checked claims in "warn" mode unless -p claims_mode is given. Usage: scripts/rerun_chapter.sh CHAPTER.md OUT.ipynb [-p NAME VALUE ...]
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
# papermill's own command line prints the whole traceback of a failing cell; a chapter that stops on
# bad input raises one error naming the parameter or column (scaling_lib.chapter), so print that in
# at most three lines and leave the traceback in the output notebook.
"$py" - "$tmp" "$out" "$(dirname "$src")" "$@" <<'PY'
import sys

import papermill as pm
from papermill.cli import _resolve_type

src, out, cwd, *rest = sys.argv[1:]
params = {}
while rest:
    flag, *rest = rest
    if flag not in ("-p", "--parameters") or len(rest) < 2:
        print(f"rerun_chapter: expected '-p NAME VALUE', got {flag!r}", file=sys.stderr)
        sys.exit(2)
    (name, value), rest = rest[:2], rest[2:]
    params[name] = _resolve_type(value)
# on other data a checked claim that does not hold shows as a warning box instead of stopping
# the chapter (scaling_lib.claims); -p claims_mode strict restores the book build's behaviour
params.setdefault("claims_mode", "warn")
try:
    pm.execute_notebook(src, out, parameters=params, cwd=cwd, progress_bar=False)
except pm.PapermillExecutionError as exc:
    print(f"rerun_chapter: the chapter stopped in cell {exc.exec_count}: {exc.ename}: {exc.evalue}"[:600],
          file=sys.stderr)
    print(f"rerun_chapter: full traceback in {out}", file=sys.stderr)
    sys.exit(1)
except Exception as exc:  # the kernel died, the notebook could not be written, ...
    print(f"rerun_chapter: {type(exc).__name__}: {exc}"[:600], file=sys.stderr)
    sys.exit(1)
PY
