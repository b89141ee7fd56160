"""The command line: fit, predict and backtest a scaling law on a run table of your own.

::

    python -m scaling_lib laws
    python -m scaling_lib fit TABLE --law overtraining --target loss_val [--boot 200] [--json]
    python -m scaling_lib predict TABLE --law overtraining --target loss_val --at N=1e9,M=20
    python -m scaling_lib backtest TABLE --law overtraining --target loss_val

``TABLE`` is anything :func:`scaling_lib.runs.load_runs` reads: a run-table
CSV, a testbed folder holding ``runs.csv``, or a published open_lm
``exp_data/`` folder. The law reads its inputs from the columns named like
them (``N`` and ``M`` for the over-training law); ``--input NAME=COLUMN``
reads one from another column (``--input L=loss_val`` for the error law).

Which runs are fitted: every row of the table, unless ``--fit-query EXPR``
selects some (a :meth:`pandas.DataFrame.query` expression on the table's
columns, e.g. ``--fit-query "N < 1e8 and M <= 80"``). For ``backtest`` the
query selects the runs the splits are made from, fitted and predicted.

Bad input (a missing file or column, an unknown law, fewer runs than the
law has parameters, a malformed ``--at``) prints one or two lines on stderr
naming the file, column or run, and exits with status 2; ``--debug`` shows
the traceback instead. A fit that converges from no start exits with 1.
The command line never imports torch.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys

import numpy as np
import pandas as pd

from scaling_lib import backtest, diagnostics, laws, runs
from scaling_lib import fit as fitting
from scaling_lib.prose import wrap

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "LAWS", "UsageError", "default_cutoffs",
           "main", "parse_at"]

PROG = "python -m scaling_lib"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
"""Exit statuses: success, a fit that did not converge (or an internal error), bad input."""

LAWS = {law.name: law for law in laws.ALL_LAWS}
"""The laws the command line knows, by name."""

DEFAULT_PREDICT_BOOT = fitting.DEFAULT_N_BOOT
"""Bootstrap refits behind a prediction interval unless ``--boot`` says otherwise."""


class UsageError(Exception):
    """Bad input to the command line; the message names the file, column or run."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are short and leave the exit to :func:`main`."""

    def error(self, message):
        raise UsageError(f"{message}\n  see: {self.prog} --help")


# --- input helpers ---------------------------------------------------------------------------


def _law(name: str) -> laws.Law:
    if name not in LAWS:
        close = difflib.get_close_matches(name, LAWS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown law {name!r}; the laws are {', '.join(LAWS)}{hint} "
                         f"(`{PROG} laws` lists them)")
    return LAWS[name]


def _pairs(items, option: str) -> dict:
    """``["L=loss_val", ...]`` as ``{"L": "loss_val"}``."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"{option} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _need_column(df, column: str, role: str, where: str) -> None:
    if column in df.columns:
        return
    names = [str(c) for c in df.columns]
    kind = column.split("_", 1)[0] + "_" if "_" in column else None
    same = [c for c in names if kind and c.startswith(kind) and not c.endswith(("_lo", "_hi"))]
    close = same or difflib.get_close_matches(column, names, n=3, cutoff=0.6)
    shown = ", ".join(close[:8]) + (f" (+{len(close) - 8} more)" if len(close) > 8 else "")
    hint = f"; it has {shown}" if close else f"; it has {len(names)} other columns"
    raise UsageError(f"{where}: no column {column!r} ({role}){hint}")


def _input_columns(law: laws.Law, given: dict, df, where: str) -> dict:
    """``{law_input: column}`` for a fit: the law's input names unless ``--input`` renames them."""
    unknown = [k for k in given if k not in law.inputs]
    if unknown:
        raise UsageError(f"--input {unknown[0]}=...: law {law.name} has no input {unknown[0]!r}; "
                         f"its inputs are {', '.join(law.inputs)}")
    mapping = {name: given.get(name, name) for name in law.inputs}
    for name, column in mapping.items():
        role = f"input {name} of law {law.name}"
        if column == name and name not in given and column not in df.columns:
            raise UsageError(f"{where}: no column {column!r} ({role}); "
                             f"name the column with --input {name}=COLUMN")
        _need_column(df, column, role, where)
    return mapping


def _load(table: str):
    try:
        return runs.load_runs(table)
    except (FileNotFoundError, runs.RunTableError) as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:  # a file that exists but cannot be read
        raise UsageError(f"{table}: cannot read ({exc.strerror or exc})") from exc


def _select(df, query: str | None, where: str):
    if not query:
        return df
    try:
        out = df.query(query)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise UsageError(f"--fit-query {query!r} on {where}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, pd.DataFrame):
        raise UsageError(f"--fit-query {query!r} on {where} did not select rows")
    if out.empty:
        raise UsageError(f"--fit-query {query!r} selects no run of {where}")
    return out


def _enough_runs(df, law: laws.Law, where: str, query: str | None) -> None:
    if len(df) < law.n_params:
        chosen = f"selected by --fit-query {query!r}" if query else "in the table"
        raise UsageError(f"{where}: {len(df)} run(s) {chosen}, but law {law.name} has "
                         f"{law.n_params} parameters ({', '.join(law.param_names)}); "
                         f"fit at least {law.n_params} runs")


def _prepared(args):
    """The law, the selected runs and the input mapping of a fit, bad input turned into UsageError."""
    law = _law(args.law)
    df = _load(args.table)
    _need_column(df, args.target, "--target", args.table)
    mapping = _input_columns(law, _pairs(args.input, "--input"), df, args.table)
    df = _select(df, args.fit_query, args.table)
    _enough_runs(df, law, args.table, args.fit_query)
    return law, df, mapping


def _fit(args, law, df, mapping, n_boot):
    try:
        # prediction intervals never narrower than the noise between repeat seeds, when the
        # table has them
        floor = diagnostics.seed_noise(df, args.target) if args.target in df else None
        result = fitting.fit(law, df, target=args.target, inputs=mapping, objective=args.objective,
                             seed=args.seed, n_boot=0, noise_floor=floor)
        if n_boot and result.success:
            result.bootstrap(n_boot)
    except (ValueError, RuntimeError) as exc:
        hint = ""
        if "NaN" in str(exc) and args.target in str(exc) and not args.fit_query:
            hint = f"\n  to fit only the runs with a value: --fit-query \"{args.target} == {args.target}\""
        raise UsageError(f"{args.table}: {exc}{hint}") from exc
    return result


def _warnings(result) -> list:
    return [str(w) for w in getattr(result, "warnings", None) or []]


def parse_at(text: str, law: laws.Law) -> dict:
    """One ``--at`` value, ``"N=1e9,M=20"``, as ``{input: value}`` for ``law``.

    The names are the law's input names. For laws of ``N`` and ``M`` (or
    ``N`` and ``D``) the other spelling of the budget is accepted too and
    converted with ``M = D / N``.

    Examples
    --------
    >>> parse_at("N=1e9,M=20", laws.OVERTRAINING)
    {'N': 1000000000.0, 'M': 20.0}
    >>> parse_at("N=1e9, D=2e10", laws.OVERTRAINING)
    {'N': 1000000000.0, 'M': 20.0}
    """
    values = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise UsageError(f"--at {text!r}: expected NAME=VALUE pairs separated by commas, "
                             f"e.g. {','.join(f'{n}=...' for n in law.inputs)}")
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"--at {text!r}: {name}={raw!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"--at {text!r}: {name} must be a positive finite number, got {raw}")
        if name in values:
            raise UsageError(f"--at {text!r}: {name} is given twice")
        values[name] = value
    allowed = set(law.inputs)
    budget = "N" in allowed and bool({"D", "M"} & allowed)
    if budget:
        allowed |= {"D", "M"}
    unknown = [n for n in values if n not in allowed]
    if unknown:
        raise UsageError(f"--at {text!r}: law {law.name} has no input {unknown[0]!r}; "
                         f"give {', '.join(law.inputs)}")
    if budget and {"D", "M"} <= set(values):
        if not math.isclose(values["M"], values["D"] / values["N"], rel_tol=1e-3):
            raise UsageError(f"--at {text!r}: M is not D / N; give two of N, D and M")
    elif budget and "N" in values:
        if "D" in values:
            values["M"] = values["D"] / values["N"]
        elif "M" in values:
            values["D"] = values["M"] * values["N"]
    missing = [n for n in law.inputs if n not in values]
    if missing:
        raise UsageError(f"--at {text!r}: law {law.name} needs {', '.join(missing)} "
                         f"(give {','.join(f'{n}=...' for n in law.inputs)})")
    return {n: values[n] for n in law.inputs}


def default_cutoffs(flops, n_params: int, n_splits: int = 3) -> list:
    """Compute cut-offs of the default leave-larger-out backtest.

    ``n_splits`` cut-offs spaced evenly in log compute, from the compute of
    the ``n_params + 1``-th cheapest run (the smallest fit set with one
    residual degree of freedom) to the second-largest compute in the table
    (only the most expensive run or runs are predicted). Each split fits
    the runs at or below its cut-off and predicts the others.

    Examples
    --------
    >>> default_cutoffs([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], n_params=2, n_splits=2)
    [4.0, 16.0]
    """
    c = np.sort(np.asarray(flops, dtype=float))
    distinct = np.unique(c)
    if len(c) <= n_params + 1 or len(distinct) < 2:
        raise UsageError(f"a backtest needs more than {n_params + 1} runs of at least two "
                         f"computes; got {len(c)} run(s)")
    lo, hi = c[n_params], distinct[-2]
    if lo >= hi:
        return [float(lo)] if (c > lo).any() else []
    return [float(x) for x in np.geomspace(lo, hi, max(int(n_splits), 1))]


# --- the subcommands ---------------------------------------------------------------------------


def _header(args, df):
    query = f" selected by --fit-query {args.fit_query!r}" if args.fit_query else ""
    return f"runs       {len(df)} of {args.table}{query}"


def cmd_fit(args, out) -> int:
    law, df, mapping = _prepared(args)
    result = _fit(args, law, df, mapping, args.boot)
    warnings = _warnings(result)
    if args.json:
        summary = result.summary()
        summary["warnings"] = warnings
        summary["table"] = str(args.table)
        summary["fit_query"] = args.fit_query
        print(json.dumps(summary, indent=2), file=out)
    else:
        report = result.report()
        print(_header(args, df), file=out)
        print(wrap(report, width=88), file=out)
        if not args.boot:
            print("  (--boot N adds 95% intervals from N bootstrap refits over runs)", file=out)
        for text in warnings:
            if text not in report:
                print(f"warning: {text}", file=out)
    if not result.success:
        print(f"{PROG} fit: the fit of law {law.name} converged from no start", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _fmt(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def cmd_predict(args, out) -> int:
    law = _law(args.law)
    points = [parse_at(text, law) for text in args.at]
    if not 0.0 < args.interval < 1.0:
        raise UsageError(f"--interval must lie strictly between 0 and 1, got {args.interval:g}")
    law, df, mapping = _prepared(args)
    n_boot = DEFAULT_PREDICT_BOOT if args.boot is None else args.boot
    if n_boot < 2:
        raise UsageError(f"--boot {n_boot}: an interval needs at least 2 bootstrap refits")
    result = _fit(args, law, df, mapping, n_boot)
    if not result.success:
        print(f"{PROG} predict: the fit of law {law.name} converged from no start", file=sys.stderr)
        return EXIT_FAILED
    new = pd.DataFrame([{mapping[n]: p[n] for n in law.inputs} for p in points])
    try:
        pred = result.predict(new, interval=args.interval)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"{args.table}: {exc}") from exc
    table = pd.DataFrame(points)
    if "N" in table and ({"D", "M"} & set(table.columns)) and "flops" in df:
        tokens = table["D"] if "D" in table else table["N"] * table["M"]
        table["flops"] = 6.0 * table["N"] * tokens
        table["C/C_fit"] = table["flops"] / df["flops"].astype(float).max()
    table = pd.concat([table, pred.reset_index(drop=True)], axis=1)
    level = f"{100 * args.interval:g}%"
    if args.json:
        summary = result.summary()
        summary["warnings"] = _warnings(result)
        print(json.dumps({"fit": summary, "interval": args.interval,
                          "predictions": table.to_dict(orient="records")}, indent=2), file=out)
        return EXIT_OK
    print(f"law        {law.name} fitted to {args.target} ({args.objective}): "
          + ", ".join(f"{k}={v:.4g}" for k, v in result.params.items()), file=out)
    print(_header(args, df), file=out)
    floor = "" if result.noise_floor is None else f", never below the seed noise {result.noise_floor:.2%}"
    print(f"interval   {level}, from {n_boot} parametric refits with the fit's residual noise"
          f"{floor}, widened with the extrapolation in compute", file=out)
    for text in _warnings(result):
        print(f"warning: {text}", file=out)
    if "C/C_fit" in table:
        print("C/C_fit    the new run's compute 6 N D over the largest fitted run's", file=out)
    table = table.rename(columns={"lo": f"lo {level}", "hi": f"hi {level}"})
    print(file=out)
    print(table.to_string(index=False, float_format=_fmt), file=out)
    return EXIT_OK


def cmd_backtest(args, out) -> int:
    law, df, mapping = _prepared(args)
    work = df.copy()
    for name, column in mapping.items():  # run_backtest reads the law's inputs by their own names
        work[name] = work[column]
    try:
        if args.split == "shapes":
            splits = backtest.shape_splits(work)
            how = ("by shapes: fit the k smallest sizes at M=20 plus the smallest at M=320, "
                   "predict the larger sizes")
        else:
            if args.cutoffs:
                cutoffs = [float(x) for x in args.cutoffs.split(",")]
            else:
                cutoffs = default_cutoffs(work["flops"], law.n_params, args.n_splits)
            splits = backtest.compute_splits(work, cutoffs)
            unique, seen = [], set()
            for split in splits:
                if split.fit_ids not in seen:
                    seen.add(split.fit_ids)
                    unique.append(split)
            splits = unique
            how = ("by compute: fit the runs at or below each cut-off C, predict the more "
                   "expensive ones")
        if not splits:
            raise UsageError(f"{args.table}: no {args.split} split leaves runs to fit and to predict")
        table = backtest.run_backtest(work, splits, args.target, law=law, objectives=(args.objective,))
    except ValueError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{args.table}: {exc}") from exc
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(f"backtest   law {law.name} fitted to {args.target} ({args.objective})", file=out)
    print(f"splits     {how}", file=out)
    print(_header(args, df), file=out)
    print("C/C_fit    a predicted run's compute over the largest fitted run's", file=out)
    print(file=out)
    cols = ["split", "n_fit", "status", "run_id"] + [c for c in ("N", "M") if c in table]
    shown = table[cols + ["to_largest_fit", "actual", "pred", "rel_err_pct"]].rename(
        columns={"to_largest_fit": "C/C_fit", "rel_err_pct": "err %"})
    print(shown.to_string(index=False, float_format=_fmt), file=out)
    per = table.groupby("split", sort=False).agg(
        n_fit=("n_fit", "first"), n_pred=("run_id", "size"), status=("status", "first"),
        max_C_ratio=("to_largest_fit", "max"), median_err_pct=("rel_err_pct", "median"),
        max_err_pct=("rel_err_pct", "max"))
    print(file=out)
    print(per.reset_index().to_string(index=False, float_format=_fmt), file=out)
    if args.csv:
        print(f"\nthe full table (parameters of every fit too): {args.csv}", file=out)
    return EXIT_OK


def _bounds(lo, hi) -> str:
    return f"[{lo:g}, {'inf' if math.isinf(hi) else f'{hi:g}'}]"


def cmd_laws(args, out) -> int:
    for law in laws.ALL_LAWS:
        print(law.name, file=out)
        print(f"  {law.description}", file=out)
        print(f"  LaTeX       {law.latex()}", file=out)
        print(f"  inputs      {', '.join(law.inputs)}", file=out)
        params = ", ".join(f"{n} {_bounds(*b)}" for n, b in zip(law.param_names, law.bounds))
        print(f"  parameters  {params}", file=out)
        print(f"  fitted in   {law.fit_space} space", file=out)
        print(file=out)
    print("A law reads each input from the column of the same name; --input NAME=COLUMN reads it "
          "from another.", file=out)
    return EXIT_OK


# --- the parser --------------------------------------------------------------------------------


def _fit_options(p, boot_help):
    p.add_argument("table", metavar="TABLE",
                   help="run table: a CSV, a folder holding runs.csv, or a published exp_data/ folder")
    p.add_argument("--law", required=True, metavar="NAME",
                   help=f"the law to fit: {', '.join(LAWS)} (see `{PROG} laws`)")
    p.add_argument("--target", required=True, metavar="COLUMN", help="the column fitted, e.g. loss_val")
    p.add_argument("--input", action="append", metavar="NAME=COLUMN",
                   help="read the law's input NAME from COLUMN (default: the column named NAME); "
                        "repeatable")
    p.add_argument("--fit-query", metavar="EXPR",
                   help="fit only the runs this pandas query selects, e.g. \"N < 1e8 and M <= 80\" "
                        "(default: every row)")
    p.add_argument("--objective", choices=fitting.OBJECTIVES, default="lsq",
                   help="lsq: least squares (Gadre et al. 2024); huber_log: Huber loss of log "
                        "residuals (Hoffmann et al. 2022). Default: lsq")
    p.add_argument("--boot", type=int, metavar="N", help=boot_help)
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m scaling_lib``."""
    parser = _Parser(prog=PROG, description="Fit, predict and backtest scaling laws on a run table.",
                     epilog="Bad input exits with status 2 and a short message; --debug shows "
                            "the traceback.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    debug = dict(action="store_true", help="show the traceback of an error")

    p = sub.add_parser("fit", help="fit a law and print its report",
                       description="Fit a law to the runs of a table and print the fit report "
                                   "with its warnings.")
    _fit_options(p, "bootstrap refits over runs for 95%% intervals of the parameters (default: 0, none)")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead")
    p.add_argument("--debug", **debug)
    p.set_defaults(func=cmd_fit, boot=0)

    p = sub.add_parser("predict", help="predict new runs with intervals",
                       description="Fit a law and predict new runs, with bootstrap intervals.")
    _fit_options(p, f"bootstrap refits behind the intervals (default: {DEFAULT_PREDICT_BOOT})")
    p.add_argument("--at", action="append", required=True, metavar="N=...,M=...",
                   help="a new run as the law's inputs, e.g. N=1e9,M=20 (N=...,D=... also works "
                        "for laws of N and M); repeatable")
    p.add_argument("--interval", type=float, default=0.95,
                   help="central probability of the interval (default: 0.95)")
    p.add_argument("--json", action="store_true", help="print the fit summary and predictions as JSON")
    p.add_argument("--debug", **debug)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("backtest", help="fit on smaller runs, predict larger ones",
                       description="Leave-larger-out backtest: for each split, fit the cheaper runs "
                                   "and predict the more expensive ones. Default: --split compute "
                                   "with 3 cut-offs spaced evenly in log compute, from the one that "
                                   "leaves the law's parameter count plus one runs to fit to the one "
                                   "that leaves only the most expensive run(s) to predict. "
                                   "--fit-query selects the runs the splits are made from.")
    _fit_options(p, argparse.SUPPRESS)
    p.add_argument("--split", choices=("compute", "shapes"), default="compute",
                   help="compute: cut-offs in FLOPs (default); shapes: the k smallest sizes at "
                        "M=20 plus the smallest at M=320, the paper's design")
    p.add_argument("--n-splits", type=int, default=3, metavar="K",
                   help="number of compute cut-offs (default: 3)")
    p.add_argument("--cutoffs", metavar="C1,C2,...", help="explicit compute cut-offs in FLOPs")
    p.add_argument("--csv", metavar="PATH", help="also write the full backtest table to PATH")
    p.add_argument("--debug", **debug)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("laws", help="list the laws with their formulas and parameters",
                       description="List the laws with their formulas, inputs and parameter bounds.")
    p.add_argument("--debug", **debug)
    p.set_defaults(func=cmd_laws)
    return parser


def main(argv=None, out=None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Examples
    --------
    >>> main(["laws"]) == EXIT_OK  # doctest: +ELLIPSIS
    overtraining
    ...
    True
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout if out is None else out
    debug = "--debug" in argv
    parser = build_parser()
    command = next((a for a in argv if a in ("fit", "predict", "backtest", "laws")), None)
    prog = f"{PROG} {command}" if command else PROG
    try:
        args = parser.parse_args(argv)
        return args.func(args, out)
    except BrokenPipeError:  # output piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if debug:
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  rerun with --debug for the traceback", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
