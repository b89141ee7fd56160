#!/usr/bin/env bash
# One prepared GPU session (at most 8 minutes of wall time): checks the CUDA path of the
# trainer (bf16 autocast, torch.compile, fused AdamW, resume from a checkpoint), prints
# tokens/s and MFU of the largest gpu-small shape, and trains a small testbed sized to the
# minutes left, writing its run table and records under OUT.  See benchmarks/gpu_run.py.
#
#   benchmarks/gpu_run.sh OUT [--corpus-cache DIR] [--budget-s 450]
#   benchmarks/gpu_run.sh OUT --dry-run        # the same script, tiny sizes, on the CPU (< 60 s)
#
# The Python is $PYTHON if set, else the repository's .venv if present, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $0 OUT [--dry-run] [--corpus-cache DIR] [--budget-s SECONDS]" >&2
    exit 2
fi
OUT=$1
shift
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$OUT"
# hard stop at 8 minutes whatever happens inside (the script itself keeps to --budget-s)
timeout --signal=TERM --kill-after=10 480 "$PY" -u benchmarks/gpu_run.py "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
