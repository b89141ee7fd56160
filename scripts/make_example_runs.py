"""Writes data/examples/own-runs/runs.csv: a small synthetic run table with known parameters.

Twelve runs of six sizes (10M to 320M parameters) at token multipliers M = D/N from 20 to 320,
laid out like the paper's design (Gadre et al. 2024): every size at M=20, the small ones
over-trained too. The loss is the over-training law (eq. 4 of the paper) with the parameters
TRUE below, times log-normal noise of NOISE (relative standard deviation), seeded, so the
table is the same on every machine. Usage:

    .venv/bin/python scripts/make_example_runs.py [--out data/examples/own-runs/runs.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from scaling_lib import laws, runs

TRUE = {"E": 1.8, "a": 480.0, "b": 560.0, "eta": 0.15}
"""Parameters of the over-training law the losses are drawn from."""

NOISE = 0.005
"""Relative standard deviation of the multiplicative loss noise (0.5%)."""

EVAL_SE = 0.004
"""Standard error of each loss as an evaluation on a finite set would give it (nats)."""

SEED = 2024

DESIGN = {  # shape: (N, token multipliers)
    "s1": (10e6, (20, 80, 320)),
    "s2": (20e6, (20, 80)),
    "s3": (40e6, (20, 80)),
    "s4": (80e6, (20, 40)),
    "s5": (160e6, (20, 40)),
    "s6": (320e6, (20,)),
}
"""The (N, M) points: 12 runs."""

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "data" / "examples" / "own-runs" / "runs.csv"


def make_table(seed: int = SEED) -> pd.DataFrame:
    """The example run table (schema of scaling_lib.runs), losses drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, (N, multipliers) in DESIGN.items():
        for M in multipliers:
            D = N * M
            clean = float(laws.OVERTRAINING(TRUE, N=N, M=M)[0])
            loss = clean * float(np.exp(rng.normal(0.0, NOISE)))
            rows.append({"run_id": f"{model}_M{M}", "N": N, "D": D, "M": float(M),
                         "flops": 6.0 * N * D, "testbed": "own-runs-example", "model": model,
                         "seed": 0, "loss_val": round(loss, 5),
                         "loss_val_lo": round(loss - 1.96 * EVAL_SE, 5),
                         "loss_val_hi": round(loss + 1.96 * EVAL_SE, 5),
                         "loss_val_clean": round(clean, 5)})
    table = pd.DataFrame(rows).sort_values(["flops", "run_id"], ignore_index=True)
    return runs.validate_runs(table, source="example run table")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV to write")
    parser.add_argument("--seed", type=int, default=SEED, help=f"noise seed (default {SEED})")
    args = parser.parse_args(argv)
    table = make_table(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.6g")
    print(f"wrote {len(table)} runs to {args.out}")


if __name__ == "__main__":
    main()
