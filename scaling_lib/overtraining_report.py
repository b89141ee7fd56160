"""Tables and summaries of the over-training chapter (Gadre et al. 2024 on our testbed).

``notebooks/overtraining_loss.md`` fits the over-training law (Gadre et al. 2024, eq. 4) to a
small testbed, predicts held-out runs and backtests the protocol (:mod:`scaling_lib.backtest`).
The fits stay in the chapter; this module holds what it builds from them: the run table's shape
(:func:`split_seeds`, :func:`loss_grid`, :func:`seed_spread`), parallel lines
(:func:`slope_table`, :func:`common_slope`), predictions (:func:`predictions`, :func:`stacked`,
:func:`m_star_table`), the backtest's bookkeeping (:func:`split_summary`,
:func:`extrapolation_errors`, :func:`paired_wins`), curve points against finished runs
(:func:`schedule_gaps`, :func:`curve_comparison`); the figures are in
:mod:`scaling_lib.overtraining_figures`.  Nothing here fits a law from
scratch, reads a file or names a model; every sentence of the chapter is written there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling_lib import backtest, laws, protocols
from scaling_lib.prose import short

__all__ = ["pct", "one_train_set", "SeedSplit", "split_seeds", "by_run", "table_or_note",
           "loss_grid", "seed_spread", "slope_table", "SlopeAgreement", "common_slope",
           "target_ratios", "Predictions", "predictions", "PREDICTION_COLUMNS", "stacked",
           "m_star_table", "compute_cutoffs", "scored", "of_kind", "split_summary",
           "ExtrapolationErrors", "extrapolation_errors", "paired_wins", "schedule_gaps",
           "curve_comparison", "CURVE_POINTS", "mean_errors", "Extremes", "extremes"]


def pct(x, digits=1) -> str:
    """A percentage as the prose writes it; ``n/a`` for a missing number.

    Examples
    --------
    >>> pct(1.234), pct(1.234, 2), pct(float("nan")), pct(None)
    ('1.2%', '1.23%', 'n/a', 'n/a')
    """
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}%"


# --- the run table ---------------------------------------------------------------------------

def one_train_set(table, train_set=None):
    """The runs of one training set: ``train_set``, or the first in alphabetical order.

    A table without a ``train_set`` column, or with one set only, comes back unchanged.

    Examples
    --------
    >>> t = pd.DataFrame({"train_set": ["b", "a", "b"], "loss": [1.0, 2.0, 3.0]})
    >>> one_train_set(t)["loss"].tolist(), one_train_set(t, "b")["loss"].tolist()
    ([2.0], [1.0, 3.0])
    """
    if "train_set" not in table or table["train_set"].nunique() < 2:
        return table
    chosen = train_set or sorted(table["train_set"].unique())[0]
    return table[table["train_set"] == chosen].copy()


@dataclass(frozen=True)
class SeedSplit:
    """The main grid of a run table (one seed) and the repeats with other seeds."""

    main: pd.DataFrame
    repeats: pd.DataFrame
    seed: object


def split_seeds(table, main_seed=None) -> SeedSplit:
    """Split runs into the grid of ``main_seed`` (default: the most common seed) and repeats.

    A table without a ``seed`` column is all one grid, of seed 0.

    Examples
    --------
    >>> t = pd.DataFrame({"seed": [0, 0, 1], "loss": [1.0, 2.0, 3.0]})
    >>> s = split_seeds(t)
    >>> int(s.seed), len(s.main), len(s.repeats)
    (0, 2, 1)
    """
    seeds = table["seed"] if "seed" in table else pd.Series(0, index=table.index)
    main = seeds.mode().iloc[0] if main_seed is None else main_seed
    return SeedSplit(table[seeds == main].copy(), table[seeds != main], main)


def by_run(table):
    """Index runs by shape, size (in words) and M, dropping ``run_id`` and ``N``.

    Examples
    --------
    >>> t = pd.DataFrame({"run_id": ["a"], "model": ["s1"], "N": [63192.0], "M": [20.0],
    ...                   "loss": [4.3]})
    >>> by_run(t).index.tolist()
    [('s1', '63k', '20')]
    """
    out = table.drop(columns=["run_id"], errors="ignore").copy()
    out["size"] = out["N"].map(short)
    out["M"] = out["M"].map("{:g}".format)
    keys = ["model", "size", "M"] if "model" in out else ["size", "M"]
    return out.drop(columns="N").set_index(keys)


def table_or_note(frame, note):
    """The table, or ``None`` after printing ``note`` when it has no rows or no columns.

    Examples
    --------
    >>> table_or_note(pd.DataFrame(), "nothing yet")
    nothing yet
    >>> len(table_or_note(pd.DataFrame({"a": [1]}), "nothing yet"))
    1
    """
    if len(frame) and len(frame.columns):
        return frame
    print(note)
    return None


def loss_grid(df, loss_col):
    """The (shape, M) grid of final losses, each with the first letter of its design role.

    Rows are ``"model (size)"`` by size, columns the multipliers; ``f`` fit, ``t`` target,
    ``g`` another run of the grid (:data:`scaling_lib.protocols.RECORDED_ROLES`).

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["s1", "s1"], "N": [6e4, 6e4], "M": [20.0, 40.0],
    ...                   "loss": [4.3341, 4.1789], "role": ["loss_fit", "target"]})
    >>> loss_grid(t, "loss").iloc[0].tolist()
    ['4.334 f', '4.179 t']
    """
    word = {role: w for w, role in protocols.RECORDED_ROLES.items()}
    cells = df.assign(cell=[f"{loss:.3f} {word[role][0]}"
                            for loss, role in zip(df[loss_col], df["role"])])
    g = cells.pivot_table(index=["N", "model"], columns="M", values="cell", aggfunc="first")
    g.index = [f"{m} ({short(n)})" for n, m in g.index]
    g.columns = pd.Index([f"{m:g}" for m in g.columns], name="M")
    return g.fillna("")


def seed_spread(table, loss_col):
    """Per (model, M) cell run with several seeds: ``count``, ``mean``, ``std``, ``min``,
    ``max`` of the loss and ``range (%)`` = 100 (max - min) / mean.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["s1"] * 3, "M": [20.0, 20.0, 40.0],
    ...                   "loss": [4.0, 4.2, 3.9]})
    >>> seed_spread(t, "loss")["range (%)"].round(2).tolist()
    [4.88]
    """
    spread = table.groupby(["model", "M"])[loss_col].agg(["count", "mean", "std", "min", "max"])
    spread = spread[spread["count"] > 1].copy()
    spread["range (%)"] = 100 * (spread["max"] - spread["min"]) / spread["mean"]
    return spread


# --- parallel lines --------------------------------------------------------------------------

def _with_interval(s, lo, hi):
    return [("" if np.isnan(v) else f"{v:.3f}") + ("" if np.isnan(a) else f" [{a:.3f}, {b:.3f}]")
            for v, a, b in zip(s["slope"], s[lo], s[hi])]


def slope_table(total, reducible=None):
    """The slopes of :func:`scaling_lib.backtest.slope_per_M` as ``'slope [lo, hi]'`` strings.

    Columns: ``runs``, ``total loss (t)`` and, with ``reducible``, ``L - E (t)`` and
    ``L - E (bootstrap)``; indexed by ``M``.

    Examples
    --------
    >>> s = pd.DataFrame({"n_runs": [3, 1], "slope": [-0.07, np.nan], "t_lo": [-0.09, np.nan],
    ...                   "t_hi": [-0.05, np.nan], "lo": [-0.08, np.nan], "hi": [-0.06, np.nan]},
    ...                  index=[20.0, 320.0])
    >>> slope_table(s)["total loss (t)"].tolist()
    ['-0.070 [-0.090, -0.050]', '']
    """
    shown = pd.DataFrame({"runs": total["n_runs"], "total loss (t)": _with_interval(total, "t_lo", "t_hi")})
    if reducible is not None:
        shown["L - E (t)"] = _with_interval(reducible, "t_lo", "t_hi")
        shown["L - E (bootstrap)"] = _with_interval(reducible, "lo", "hi")
    shown.index = [f"{m:g}" for m in shown.index]
    return shown.rename_axis("M")


@dataclass(frozen=True)
class SlopeAgreement:
    """The lines with a t interval: how many, their slopes' range, the values all intervals share."""

    n: int
    lo: float
    hi: float
    common_lo: float
    common_hi: float

    @property
    def parallel(self) -> bool:
        """At least two lines, and one slope inside every t interval."""
        return bool(self.n >= 2 and self.common_lo <= self.common_hi)

    @property
    def observed(self) -> str:
        """What the data show, for :meth:`scaling_lib.claims.Claims.check`."""
        share = (f"[{self.common_lo:.3f}, {self.common_hi:.3f}]" if self.common_lo <= self.common_hi
                 else "no common value")
        return f"the intervals of {self.n} lines share {share}"


def common_slope(slopes) -> SlopeAgreement:
    """Whether one slope lies inside the t interval of every line of ``slopes`` (or None).

    Examples
    --------
    >>> s = pd.DataFrame({"slope": [-0.07, -0.06], "t_lo": [-0.09, -0.065], "t_hi": [-0.05, -0.055]})
    >>> a = common_slope(s)
    >>> a.parallel, a.observed
    (True, 'the intervals of 2 lines share [-0.065, -0.055]')
    >>> common_slope(None).parallel
    False
    """
    ok = (slopes.dropna(subset=["t_lo"]) if slopes is not None
          else pd.DataFrame(columns=["slope", "t_lo", "t_hi"], dtype=float))
    return SlopeAgreement(len(ok), ok["slope"].min(), ok["slope"].max(),
                          ok["t_lo"].max(), ok["t_hi"].min())


# --- predictions of held-out runs ------------------------------------------------------------

def target_ratios(fit_runs, targets):
    """:func:`scaling_lib.backtest.compute_ratios` indexed by the targets' ``run_id``.

    Empty when there are no fit runs or no targets.
    """
    if not (len(fit_runs) and len(targets)):
        return pd.DataFrame()
    ratios = backtest.compute_ratios(fit_runs, targets)
    ratios.index = targets["run_id"]
    return ratios


@dataclass(frozen=True)
class Predictions:
    """One fit's predictions of the held-out targets and of the other runs of the grid.

    Each is a :func:`scaling_lib.protocols.relative_error_table` with a ``C ratio`` column,
    the run's compute over that of the most expensive fit run (empty without runs).
    """

    targets: pd.DataFrame
    grid: pd.DataFrame


def _scored_table(result, runs, fit_runs, loss_col, interval):
    if runs.empty:
        return pd.DataFrame()
    t = protocols.relative_error_table(result, runs, loss_col, interval=interval)
    t["C ratio"] = backtest.compute_ratios(fit_runs, runs)["to_largest_fit"].to_numpy()
    return t


def predictions(result, fit_runs, targets, others, loss_col, interval=0.95) -> Predictions:
    """Predict ``targets`` and ``others`` with a law fitted on ``fit_runs`` (see :class:`Predictions`)."""
    return Predictions(_scored_table(result, targets, fit_runs, loss_col, interval),
                       _scored_table(result, others, fit_runs, loss_col, interval))


PREDICTION_COLUMNS = ["actual", "pred", "lo", "hi", "rel_err_pct", "covered", "C ratio"]
"""The columns of a prediction the chapter shows."""


def stacked(tables: Mapping):
    """Prediction tables of several objectives as one, indexed by objective then run.

    Empty (with these columns and index levels) when the first table is.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["s5"], "N": [6.4e5], "M": [40.0], "actual": [3.0],
    ...                   "pred": [3.1], "lo": [2.9], "hi": [3.3], "rel_err_pct": [3.3],
    ...                   "covered": [True], "C ratio": [10.0]})
    >>> stacked({"lsq": t, "huber_log": t}).index.tolist()
    [('lsq', 's5', '640k', '40'), ('huber_log', 's5', '640k', '40')]
    """
    if not tables or next(iter(tables.values())).empty:
        index = pd.MultiIndex.from_arrays([[]] * 4, names=["objective", "model", "size", "M"])
        return pd.DataFrame(index=index, columns=PREDICTION_COLUMNS, dtype=float)
    return pd.concat({obj: by_run(t)[PREDICTION_COLUMNS] for obj, t in tables.items()},
                     names=["objective"])


def m_star_table(fits: Mapping, n_boot: int):
    """The law's own optimum ``M* = (b/a)^(1/(2 eta))`` (eq. 10) of each fit, with a bootstrap.

    ``fits`` maps a row label to a fitted over-training law (``None``: no row); the result is
    indexed by ``fit``, with ``M*`` and the 95% percentile interval ``lo``, ``hi`` over the
    successful replicates of :meth:`scaling_lib.fit.FitResult.bootstrap` (``n_boot`` of them).
    """
    rows = []
    for label, res in fits.items():
        if res is None:
            continue
        reps = res.bootstrap(n_boot)
        reps = reps[reps["success"]]
        ms = np.array([laws.optimal_multiplier(r) for _, r in reps.iterrows()])
        lo, hi = np.nanpercentile(ms, [2.5, 97.5]) if np.isfinite(ms).any() else (np.nan,) * 2
        rows.append({"fit": label, "M*": laws.optimal_multiplier(res.params), "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["fit", "M*", "lo", "hi"]).set_index("fit")


# --- the backtest ----------------------------------------------------------------------------

def compute_cutoffs(df, n_params: int, n_splits: int, flops_column="flops"):
    """Compute cut-offs from the ``(n_params + 1)``-th cheapest run to the 2nd most expensive.

    Examples
    --------
    >>> df = pd.DataFrame({"flops": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    >>> compute_cutoffs(df, 2, 3).tolist()
    [3.0, 5.0, 7.0]
    >>> compute_cutoffs(df.head(4), 2, 3)
    []
    """
    flops = np.sort(df[flops_column].unique())
    if len(flops) <= n_params + 2:
        return []
    where = np.linspace(n_params, len(flops) - 2, n_splits)
    return flops[np.unique(where.astype(int))]


def scored(bt):
    """The rows of a :func:`scaling_lib.backtest.run_backtest` table whose fit is ``ok``."""
    return bt[bt["status"] == "ok"] if len(bt) else bt


def of_kind(bt, kind: str):
    """The rows of a backtest table from splits of one kind (``shapes``, ``compute``)."""
    return bt[bt["kind"] == kind] if len(bt) else bt


def split_summary(bt):
    """Per split: fit runs, predicted runs, the largest compute ratio, mean and max error by objective.

    Examples
    --------
    >>> bt = pd.DataFrame({"split": ["k3"] * 4, "objective": ["lsq", "lsq", "huber", "huber"],
    ...                    "status": "ok", "n_fit": 4, "run_id": ["a", "b", "a", "b"],
    ...                    "to_largest_fit": [2.0, 5.0, 2.0, 5.0], "rel_err_pct": [1.0, 3.0, 2.0, 2.0]})
    >>> split_summary(bt).loc["k3", ["pred", "mean % (lsq)", "max % (huber)"]].tolist()
    [2.0, 2.0, 2.0]
    """
    ok = scored(bt)
    if ok.empty:
        return pd.DataFrame()
    g = ok.groupby(["split", "objective"], sort=False)
    err = g["rel_err_pct"].agg(["mean", "max"]).unstack("objective")
    err.columns = [f"{stat} % ({obj})" for stat, obj in err.columns]
    size = ok.groupby("split", sort=False).agg(fit=("n_fit", "first"), pred=("run_id", "nunique"),
                                               max_ratio=("to_largest_fit", "max"))
    return size.join(err)


@dataclass(frozen=True)
class ExtrapolationErrors:
    """Median relative errors (%) of runs below and beyond the largest fit run's compute, and
    the rank correlation of the error with the log of the compute ratio beyond it (NaN with
    fewer than three such runs)."""

    median_cheaper: float
    median_beyond: float
    rho: float


def extrapolation_errors(ok_bt) -> ExtrapolationErrors:
    """Summarise scored backtest predictions by extrapolation (see :class:`ExtrapolationErrors`).

    Examples
    --------
    >>> bt = pd.DataFrame({"to_largest_fit": [0.5, 2.0, 4.0, 8.0],
    ...                    "rel_err_pct": [1.0, 2.0, 3.0, 5.0]})
    >>> extrapolation_errors(bt)
    ExtrapolationErrors(median_cheaper=1.0, median_beyond=3.0, rho=1.0)
    """
    far = ok_bt["to_largest_fit"] > 1
    err = ok_bt["rel_err_pct"]
    rho = (err[far].corr(np.log(ok_bt.loc[far, "to_largest_fit"]), method="spearman")
           if far.sum() > 2 else np.nan)
    return ExtrapolationErrors(float(err[~far].median()), float(err[far].median()), float(rho))


def paired_wins(ok_bt, better: str, than: str):
    """Predictions (split, run) where objective ``better`` misses by less than ``than``, and
    how many predictions both objectives scored.

    Examples
    --------
    >>> bt = pd.DataFrame({"split": ["k"] * 4, "run_id": ["a", "a", "b", "b"],
    ...                    "objective": ["lsq", "hub", "lsq", "hub"], "rel_err_pct": [1.0, 2.0, 3.0, 1.0]})
    >>> paired_wins(bt, "hub", "lsq")
    (1, 2)
    """
    if ok_bt.empty:
        return 0, 0
    paired = ok_bt.pivot_table(index=["split", "run_id"], columns="objective", values="rel_err_pct")
    both = paired.reindex(columns=[better, than]).dropna()
    return int((both[better] < both[than]).sum()), len(both)


# --- curve points ----------------------------------------------------------------------------

def schedule_gaps(df, pts, loss_col):
    """The longest run of each shape, read on its curve at each shorter run's D, against that run.

    ``pts`` are curve points (:func:`scaling_lib.backtest.curve_points`) or None.  Columns:
    ``model``, ``long run M``, ``M``, ``finished`` (the shorter run's loss), ``mid-run`` (the
    longest run's curve interpolated in log D) and ``gap`` = mid-run - finished.

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["s1", "s1"], "run_id": ["long", "short"],
    ...                    "D": [400.0, 200.0], "M": [40.0, 20.0], "loss": [3.0, 3.4]})
    >>> pts = pd.DataFrame({"parent_run": ["long"] * 2, "D": [100.0, 300.0], "loss": [4.0, 3.2]})
    >>> schedule_gaps(df, pts, "loss")[["M", "mid-run", "gap"]].round(3).values.tolist()
    [[20.0, 3.495, 0.095]]
    """
    rows = []
    for model, of_shape in (df.groupby("model") if pts is not None else ()):
        longest = of_shape.loc[of_shape["D"].idxmax()]
        curve = pts[pts["parent_run"] == longest["run_id"]].sort_values("D")
        x = np.log(np.r_[curve["D"], longest["D"]])
        y = np.r_[curve[loss_col], longest[loss_col]]
        for _, r in of_shape[of_shape["D"] < longest["D"]].iterrows():
            if np.log(r["D"]) >= x[0]:
                mid = np.interp(np.log(r["D"]), x, y)
                rows.append({"model": model, "long run M": longest["M"], "M": r["M"],
                             "finished": r[loss_col], "mid-run": mid, "gap": mid - r[loss_col]})
    return pd.DataFrame(rows, columns=["model", "long run M", "M", "finished", "mid-run", "gap"])


CURVE_POINTS = ("final only", "final + curves")
"""The two fit sets of :func:`curve_comparison`."""


def curve_comparison(bt_final, bt_curves):
    """Per split and objective: the fitted ``eta`` and mean error ``err`` without and with curves.

    ``bt_final`` and ``bt_curves`` are :func:`scaling_lib.backtest.run_backtest` tables of the
    same splits, on final losses only and with curve points added.  Columns ``(eta | err,
    final only | final + curves)``; no rows when ``bt_curves`` is empty.
    """
    columns = [(c, p) for c in ("eta", "err") for p in CURVE_POINTS]
    if not len(bt_curves):
        return pd.DataFrame(columns=pd.MultiIndex.from_tuples(columns), dtype=float)
    both = pd.concat([bt_final.assign(points=CURVE_POINTS[0]), bt_curves.assign(points=CURVE_POINTS[1])])
    cmp = (scored(both).groupby(["value", "split", "objective", "points"])
           .agg(eta=("eta", "first"), err=("rel_err_pct", "mean"))
           .unstack("points").droplevel("value"))
    return cmp.reindex(columns=columns)


def mean_errors(curve_cmp, extra, objective="lsq"):
    """Mean errors of one objective over the splits fitted every way: the ``err`` columns of a
    :func:`curve_comparison` beside ``extra``, a mean error per split of a third fit set.

    Examples
    --------
    >>> idx = pd.MultiIndex.from_tuples([("k3", "lsq"), ("k1", "lsq")], names=["split", "objective"])
    >>> cmp = pd.DataFrame({("err", "final only"): [2.0, np.nan],
    ...                     ("err", "final + curves"): [6.0, 9.0]}, index=idx)
    >>> mean_errors(cmp, pd.Series({"k3": 3.0, "k1": 4.0}), "lsq").tolist()
    [2.0, 6.0, 3.0]
    """
    err = curve_cmp["err"]
    if len(err):
        err = err.xs(objective, level="objective")
    return err.assign(extra=pd.Series(extra, dtype=float)).dropna().mean()


@dataclass(frozen=True)
class Extremes:
    """The largest and smallest value of a series and their index labels (NaN, None if empty)."""

    largest: float
    largest_at: object
    smallest: float
    smallest_at: object


def extremes(values) -> Extremes:
    """Where a series is largest and smallest (first occurrence).

    Examples
    --------
    >>> extremes(pd.Series([2.0, 5.0, 1.0], index=["a", "b", "c"]))
    Extremes(largest=5.0, largest_at='b', smallest=1.0, smallest_at='c')
    >>> extremes(pd.Series(dtype=float)).largest_at is None
    True
    """
    values = pd.Series(values, dtype=float).dropna()
    if values.empty:
        return Extremes(np.nan, None, np.nan, None)
    return Extremes(float(values.max()), values.idxmax(), float(values.min()), values.idxmin())
