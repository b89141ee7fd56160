"""The plumbing of the compute-optimal chapter: tables, the monotone envelope, backtests, figures.

``notebooks/compute_optimal.md`` keeps its fits visible and calls this module for the rest: the
design join, the warmup and learning-rate tables, the backtest that picks the advisor's law
(:func:`law_backtest`), the laws' and the sweep's ``M*`` (:func:`multiplier_table`), the
advisor's table (:func:`advice_table`), the paper-against-testbed table (:func:`paper_table`),
the figures, and approach 1 (Hoffmann et al. 2022) as :func:`monotone_envelope`. No torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from scaling_lib import advisor, laws, plotting
from scaling_lib import compute_optimal as co
from scaling_lib import fit as _fit
from scaling_lib.prose import sci, short

__all__ = [
    "HOFFMANN_TABLE2", "LawCandidate", "advice_table", "bars", "interval", "join_design",
    "law_backtest", "lr_table", "Sweep", "approach_table", "warmup_phrases", "monotone_envelope", "multiplier_table", "paper_table",
    "plot_advisor", "plot_conventions", "plot_envelope", "plot_exponents", "plot_isoflop",
    "plot_lr", "plot_warmup", "shape_shares", "span", "warmup_pairs",
]

HOFFMANN_TABLE2 = {"approach 1": 0.50, "approach 2": 0.49, "approach 3": 0.46}
"""Hoffmann et al. (2022, Table 2; ``hoffmann2022training``): the exponent ``a`` of
``N* ~ C^a`` from their three approaches. Published values, not results of this library."""

HOFFMANN_TOKENS_PER_PARAM = 20.0
"""Hoffmann et al. (2022): about 20 training tokens per parameter at the compute optimum."""


def interval(est, lo, hi, digits: int = 2) -> str:
    """``'0.52 [0.47, 0.58]'``, or the estimate alone when the interval is not finite.

    Examples
    --------
    >>> interval(0.5234, 0.47, 0.581), interval(0.5, float("nan"), 1.0)
    ('0.52 [0.47, 0.58]', '0.50')
    """
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def bars(est, lo, hi) -> np.ndarray:
    """Error-bar lengths ``[below, above]``; zero where an interval does not contain its estimate.

    Examples
    --------
    >>> bars([1.0], [0.5], [0.9]).tolist()
    [[0.5], [0.0]]
    """
    est, lo, hi = (np.asarray(v, dtype=float) for v in (est, lo, hi))
    return np.clip([est - lo, hi - est], 0, None)


def span(lo, hi, fmt: str = "{}") -> str:
    """``'5'`` for equal ends, ``'3 to 5'`` otherwise.

    Examples
    --------
    >>> span(3, 5), span(0.4, 0.4, "{:.0%}")
    ('3 to 5', '40%')
    """
    lo, hi = fmt.format(lo), fmt.format(hi)
    return lo if lo == hi else f"{lo} to {hi}"


@dataclass(frozen=True)
class Sweep:
    """A run table joined with its design: ``runs`` (with ``budget``, ``purpose``, ...) and
    ``missing`` (the run ids of the design that the table lacks)."""

    runs: pd.DataFrame
    missing: list


def join_design(table: pd.DataFrame, plan: pd.DataFrame | None, source: str = "the run table") -> Sweep:
    """Join a design's columns onto a run table by ``run_id``.

    Parameters
    ----------
    table : pandas.DataFrame
    plan : pandas.DataFrame or None
        :func:`scaling_lib.isoflop.design_frame` of a design; ``None`` when the table has the columns.
    source : str
        Named in the error message.

    Raises
    ------
    ValueError
        A run of the table that the design does not list.

    Examples
    --------
    >>> t = pd.DataFrame({"run_id": ["a"], "loss": [3.0]})
    >>> s = join_design(t, pd.DataFrame({"run_id": ["a", "b"], "purpose": ["isoflop"] * 2}))
    >>> s.runs["purpose"].tolist(), s.missing
    (['isoflop'], ['b'])
    >>> join_design(t, pd.DataFrame({"run_id": ["b"], "purpose": ["isoflop"]}))
    Traceback (most recent call last):
    ...
    ValueError: the run table: runs ['a'] are not in the design
    """
    if plan is None:
        return Sweep(table.copy(), [])
    df = table.merge(plan, on="run_id", how="left", validate="one_to_one")
    stray = df.loc[df["purpose"].isna(), "run_id"].tolist()
    if stray:
        raise ValueError(f"{source}: runs {stray} are not in the design")
    return Sweep(df, sorted(set(plan["run_id"]) - set(table["run_id"])))


def shape_shares(main: pd.DataFrame) -> pd.DataFrame:
    """Per model shape: ``d_model``, ``N``, ``N_ne``, ``N_emb``, ``head`` and the shares of ``N``.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["m"], "d_model": [8], "N": [100.0], "N_ne": [20.0], "N_emb": [40.0]})
    >>> shape_shares(t)[["head", "N_ne share", "head share"]].values.tolist()
    [[40.0, 0.2, 0.4]]
    """
    shapes = (main.drop_duplicates("model").sort_values("N")
              .set_index("model")[["d_model", "N", "N_ne", "N_emb"]].copy())
    shapes["head"] = shapes["N"] - shapes["N_ne"] - shapes["N_emb"]
    shapes["N_ne share"] = shapes["N_ne"] / shapes["N"]
    shapes["head share"] = shapes["head"] / shapes["N"]
    return shapes


def monotone_envelope(curves: pd.DataFrame, n_levels: int = 200, c_range=None, run_col: str = "run_id",
                      tokens_col: str = "tokens", target: str = "loss", n_col: str = "N") -> pd.DataFrame:
    """Approach 1 done as a lower envelope: the lowest loss reachable with *at most* each compute.

    At each of ``n_levels`` log-spaced compute levels ``C``, every curve is interpolated
    (linearly in ``ln D``) at ``D = C / (6 N)``, or taken at its last point when it ended before
    ``C``; the lowest of them is the envelope. A curve that ended is still a way of spending at
    most ``C``, so the envelope never rises with compute and never lies above a curve, unlike
    :func:`scaling_lib.curves.envelope`, which only compares the curves that are running at ``C``
    (it rises where the finished runs drop out, and at its last level only one run remains).

    Parameters
    ----------
    curves : pandas.DataFrame
        One row per evaluation: ``run_col``, ``n_col``, ``tokens_col``, ``target``.
    n_levels : int
        Compute levels (a dense grid, so that a line through them follows the curves).
    c_range : (float, float), optional
        Lowest and highest level; by default the compute of the first and of the last point of
        any curve.

    Returns
    -------
    pandas.DataFrame
        ``C``, ``loss``, ``run_id``, ``N``, ``D`` (the tokens of the best run there) and
        ``n_covering`` (curves that have started by ``C``).

    Raises
    ------
    ValueError
        ``n_levels < 2`` or an empty table.

    Examples
    --------
    >>> cur = pd.DataFrame({"run_id": ["small"] * 2 + ["big"] * 2, "N": [1.0] * 2 + [100.0] * 2,
    ...                     "tokens": [1.0, 1e4, 1.0, 1e4], "loss": [3.0, 2.5, 4.0, 1.0]})
    >>> env = monotone_envelope(cur, n_levels=5)
    >>> env["run_id"].tolist(), bool(env["loss"].is_monotonic_decreasing)
    (['small', 'small', 'small', 'big', 'big'], True)
    """
    if n_levels < 2:
        raise ValueError(f"monotone_envelope needs n_levels >= 2, got {n_levels}")
    if curves.empty:
        raise ValueError("monotone_envelope: no curves")
    arrays = []
    for run, g in curves.groupby(run_col, sort=True):
        g = g.sort_values(tokens_col)
        arrays.append((run, float(g[n_col].iloc[0]), g[tokens_col].to_numpy(float), g[target].to_numpy(float)))
    lo, hi = c_range if c_range is not None else (min(6 * n * t[0] for _, n, t, _ in arrays),
                                                  max(6 * n * t[-1] for _, n, t, _ in arrays))
    rows, best = [], None  # the best so far: a level's envelope includes every smaller level's
    for C in np.geomspace(lo, hi, n_levels):
        covering = 0
        for run, n, t, y in arrays:
            d = min(C / (6.0 * n), t[-1])
            if d < t[0] * (1 - 1e-12):
                continue
            covering += 1
            loss = float(np.interp(np.log(d), np.log(t), y))
            if best is None or loss < best["loss"]:
                best = {"loss": loss, "run_id": run, "N": n, "D": d}
        if best is not None:
            rows.append({"C": C, **best, "n_covering": covering})
    return pd.DataFrame(rows, columns=["C", "loss", "run_id", "N", "D", "n_covering"])


def warmup_pairs(df: pd.DataFrame, main: pd.DataFrame, loss_col: str) -> pd.DataFrame:
    """Each long-warmup run (``purpose == "warmup"``) beside its main-grid twin of the same shape and budget.

    Returns
    -------
    pandas.DataFrame
        The twin's columns, the long run's with the suffix ``_long``, ``warmup_frac_long``
        (the long warmup's share of the run) and ``loss_change`` (long minus main grid).

    Examples
    --------
    >>> main = pd.DataFrame({"model": ["m"], "budget": [1.0], "N": [1.0], "steps": [100], "warmup": [10],
    ...                      "loss": [3.0], "purpose": ["isoflop"]})
    >>> longw = main.assign(warmup=[50], loss=[3.2], purpose=["warmup"])
    >>> warmup_pairs(pd.concat([main, longw]), main, "loss")[["warmup_frac_long", "loss_change"]].round(2).values.tolist()
    [[0.5, 0.2]]
    """
    longw = df[df["purpose"] == "warmup"]
    pairs = (longw.merge(main, on=["model", "budget"], suffixes=("_long", ""))
             .sort_values(["budget", "N"]))
    pairs["warmup_frac_long"] = pairs["warmup_long"] / pairs["steps_long"]
    pairs["loss_change"] = pairs[f"{loss_col}_long"] - pairs[loss_col]
    return pairs


def warmup_phrases(pairs: pd.DataFrame, threshold: float) -> pd.Series:
    """The numbers the warmup section's prose quotes, formatted, for the runs a long warmup helped or hurt.

    A run is helped (hurt) when its ``loss_change`` (:func:`warmup_pairs`) is below ``-threshold``
    (above ``threshold``).

    Returns
    -------
    pandas.Series
        ``warm_counts``, ``helped_steps``, ``helped_warmup``, ``helped_fall``, ``hurt_steps``,
        ``hurt_frac``, ``hurt_rise`` (``nan`` where no run is helped or hurt), and the counts
        ``n_helped``, ``n_hurt``.

    Examples
    --------
    >>> pairs = pd.DataFrame({"loss_change": [-0.5, 0.2, 0.0], "steps": [90, 500, 300],
    ...                       "warmup": [9, 50, 30], "warmup_frac_long": [2.2, 0.4, 0.67]})
    >>> warmup_phrases(pairs, 0.1)[["warm_counts", "helped_fall", "hurt_frac"]].tolist()
    ['hurt 1 and helped 1 of the 3 runs', '0.50', '40%']
    """
    hurt = pairs[pairs["loss_change"] > threshold]
    helped = pairs[pairs["loss_change"] < -threshold]
    frac = hurt["warmup_frac_long"]
    return pd.Series({
        "warm_counts": f"hurt {len(hurt)} and helped {len(helped)} of the {len(pairs)} runs",
        "helped_steps": span(helped["steps"].min(), helped["steps"].max()),
        "helped_warmup": span(helped["warmup"].min(), helped["warmup"].max()),
        "helped_fall": f"{-helped['loss_change'].min():.2f}",
        "hurt_steps": span(hurt["steps"].min(), hurt["steps"].max()),
        "hurt_frac": span(frac.min(), frac.max(), "{:.0%}"),
        "hurt_rise": f"{hurt['loss_change'].max():.2f}",
        "n_helped": len(helped), "n_hurt": len(hurt)})


def approach_table(a1, a2, a3_exponents: pd.DataFrame) -> pd.DataFrame:
    """The exponent ``a`` of the three approaches with their intervals.

    Parameters
    ----------
    a1, a2 : PowerTrend
        Approach 1 (the envelope's line) and approach 2 (``optimum_exponents(...).a``).
    a3_exponents : pandas.DataFrame
        :attr:`scaling_lib.approach3.Approach3.exponents`.

    Examples
    --------
    >>> from scaling_lib.optimum_fits import PowerTrend
    >>> t = PowerTrend(0.5, 1.0, 0.4, 0.6, 4, 0.95, "t", 0)
    >>> e3 = pd.DataFrame({"estimate": [0.3], "lo": [0.2], "hi": [0.9]}, index=["a"])
    >>> approach_table(t, t, e3)["a"].tolist()
    [0.5, 0.5, 0.3]
    """
    return pd.DataFrame({
        "a": [a1.exponent, a2.exponent, a3_exponents.loc["a", "estimate"]],
        "a_lo": [a1.exponent_lo, a2.exponent_lo, a3_exponents.loc["a", "lo"]],
        "a_hi": [a1.exponent_hi, a2.exponent_hi, a3_exponents.loc["a", "hi"]],
        "interval": ["t, envelope points", "bootstrap", "bootstrap"],
    }, index=pd.Index(["1: envelope", "2: IsoFLOP", "3: parametric"], name="approach"))


def lr_table(df: pd.DataFrame, main: pd.DataFrame, loss_col: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The learning-rate sweep: its runs with their main-grid twins, and the best rate per shape.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The ``lr_sweep`` runs with the main-grid runs of the same shape and budget; per model (by
        ``N``) :func:`scaling_lib.compute_optimal.optimal_lr` with ``lr_rule``, ``loss_rule``, ``gain``.
    """
    swept = df[df["purpose"] == "lr_sweep"]
    keys = swept[["model", "budget"]].drop_duplicates()
    lr_runs = pd.concat([swept, main.merge(keys, on=["model", "budget"])])
    best = co.optimal_lr(lr_runs, group="model", lr_col="lr", target=loss_col).set_index("group")
    rule = lr_runs[lr_runs["lr_scale"] == 1].set_index("model")
    best["lr_rule"] = rule["lr"]
    best["loss_rule"] = rule[loss_col]
    best["gain"] = best["loss_rule"] - best["loss_opt"]
    return lr_runs, best.sort_values("N")


# ----------------------------------------------------------------------------- laws for the advisor


@dataclass(frozen=True)
class LawCandidate:
    """A law and a fitting objective that the advisor could use.

    Examples
    --------
    >>> LawCandidate("approach 3", laws.CHINCHILLA, "huber_log").objective
    'huber_log'
    """

    name: str
    law: object
    objective: str = "lsq"


def _rmse(law, params, runs: pd.DataFrame, target: str) -> float:
    pred = law(params, **{k: runs[k].to_numpy(float) for k in law.inputs})
    return float(np.sqrt(np.mean((pred - runs[target].to_numpy(float)) ** 2)))


def law_backtest(runs: pd.DataFrame, candidates, target: str, group: str = "budget") -> pd.DataFrame:
    """Each candidate law fitted to all runs, and refitted with one group (budget) held out at a time.

    The criterion is ``held_out_rmse``: the root mean square, over the groups, of the RMSE on
    the runs of a group predicted by the fit to the other groups.

    Returns
    -------
    pandas.DataFrame
        Index: the candidates' names; ``rmse`` (fit to all runs), ``held_out_rmse``, one column
        ``held_out <group value>`` per group, and ``fit`` (the :class:`scaling_lib.fit.FitResult`
        on all runs).

    Raises
    ------
    ValueError
        Fewer than two groups.

    Examples
    --------
    >>> p = {"E": 2.0, "A": 300.0, "alpha": 0.4, "B": 900.0, "beta": 0.4}
    >>> N = np.repeat([1e4, 3e4, 1e5, 3e5], 3)
    >>> D = N * np.tile([5.0, 20.0, 80.0], 4)
    >>> runs = pd.DataFrame({"N": N, "D": D, "budget": np.repeat([1, 2, 3, 4], 3),
    ...                      "loss": laws.CHINCHILLA(p, N=N, D=D)})
    >>> t = law_backtest(runs, [LawCandidate("chinchilla", laws.CHINCHILLA)], "loss")
    >>> bool(t.loc["chinchilla", "held_out_rmse"] < 1e-3)
    True
    """
    groups = sorted(runs[group].unique())
    if len(groups) < 2:
        raise ValueError(f"law_backtest needs at least two values of {group!r}, got {len(groups)}")
    rows = []
    for cand in candidates:
        full = _fit.fit(cand.law, runs, target=target, objective=cand.objective)
        row = {"candidate": cand.name, "rmse": full.rmse, "fit": full}
        errs = []
        for g in groups:
            held = runs[runs[group] == g]
            res = _fit.fit(cand.law, runs[runs[group] != g], target=target, objective=cand.objective)
            errs.append(_rmse(cand.law, res.params, held, target))
            row[f"held_out {g:.3g}"] = errs[-1]
        row["held_out_rmse"] = float(np.sqrt(np.mean(np.square(errs))))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("candidate")
    return out[["rmse", "held_out_rmse", *[c for c in out if c.startswith("held_out ")], "fit"]]


def multiplier_table(optima: pd.DataFrame, fits: Mapping, C: float) -> pd.DataFrame:
    """The compute-optimal token multiplier ``M* = D*/N*`` at the budget ``C``, measured and from laws.

    Parameters
    ----------
    optima : pandas.DataFrame
        :attr:`scaling_lib.isoflop_optima.IsoFLOPOptima.table` (``C``, ``N_opt``, ``N_lo``,
        ``N_hi``); the row of budget ``C`` gives the measured ``M*`` with its interval
        (``M = C / (6 N^2)``, so the interval's ends swap).
    fits : mapping
        ``{label: FitResult}`` of :data:`~scaling_lib.laws.CHINCHILLA` (``M*`` of its analytic optimum
        at ``C``) or :data:`~scaling_lib.laws.OVERTRAINING` (``M* = (b/a)^(1/(2 eta))`` at every ``C``).

    Returns
    -------
    pandas.DataFrame
        Index ``source``; ``M*``, ``lo``, ``hi`` (NaN for the laws) and ``kind``
        (``"measured"`` or ``"law"``).

    Examples
    --------
    >>> opt = pd.DataFrame({"C": [6e6], "N_opt": [100.0], "N_lo": [50.0], "N_hi": [200.0]})
    >>> multiplier_table(opt, {}, 6e6)["M*"].round(1).tolist()
    [100.0]
    """
    row = optima.loc[np.isclose(optima["C"], C)].iloc[0]
    rows = [{"source": "IsoFLOP vertex", "M*": C / (6 * row["N_opt"] ** 2), "lo": C / (6 * row["N_hi"] ** 2),
             "hi": C / (6 * row["N_lo"] ** 2), "kind": "measured"}]
    for label, res in fits.items():
        if res.law.name == laws.OVERTRAINING.name:
            m = laws.optimal_multiplier(res.params)
        else:
            best = co.chinchilla_optimum(res.params, C)
            m = float(best.D[0] / best.N[0])
        rows.append({"source": label, "M*": m, "lo": np.nan, "hi": np.nan, "kind": "law"})
    return pd.DataFrame(rows).set_index("source")


def advice_table(law, params, target: float, multiples=(0, 1, 10, 100)) -> tuple[advisor.Advice, pd.DataFrame]:
    """The advisor's answer for inference volumes in units of the compute-optimal model's tokens.

    Returns
    -------
    (Advice, pandas.DataFrame)
        The compute-optimal model for ``target`` (no inference), and per multiple of its ``D``:
        ``N``, ``M``, ``train FLOPs``, ``total FLOPs`` and ``saving vs M*`` (one minus the total
        against that of the compute-optimal model serving the same tokens).

    Examples
    --------
    >>> p = {"E": 1.0, "A": 100.0, "alpha": 0.3, "B": 100.0, "beta": 0.3}
    >>> base, t = advice_table(laws.CHINCHILLA, p, 2.0, (0, 10))
    >>> round(base.M, 3), bool(t.loc[10, "M"] > base.M), bool(t.loc[10, "saving vs M*"] > 0)
    (1.0, True, True)
    """
    base = advisor.advise(law, params, target, 0.0)
    rows = []
    for mult in multiples:
        T = mult * base.D
        best = advisor.advise(law, params, target, T)
        rows.append({"inference tokens / D*": mult, "N": best.N, "M": best.M,
                     "train FLOPs": best.train_flops, "total FLOPs": best.total_flops,
                     "saving vs M*": 1 - best.total_flops / (6 * base.N * base.D + 2 * base.N * T)})
    return base, pd.DataFrame(rows).set_index("inference tokens / D*")


def paper_table(ours: Mapping) -> pd.DataFrame:
    """Published compute-optimal values beside ours.

    Parameters
    ----------
    ours : mapping
        Our values under the keys ``a1``, ``a2``, ``a3`` (the three approaches), ``a_kaplan``
        (Kaplan's count, long warmup), ``a_head`` (head counted, long warmup), ``a_head_scaled``
        (head counted, scaled warmup) and ``M`` (tokens per parameter at the optimum).

    Returns
    -------
    pandas.DataFrame
        Index ``quantity``; ``Hoffmann et al. 2022`` (Table 2), ``Porian et al. 2024`` (Fig. 1,
        RefinedWeb, :data:`scaling_lib.published.PORIAN_EXPONENTS`) and ``ours`` (NaN where a
        paper does not report the quantity).

    Examples
    --------
    >>> t = paper_table({k: 0.5 for k in ("a1", "a2", "a3", "a_kaplan", "a_head", "a_head_scaled")} | {"M": 20})
    >>> float(t.loc["a, approach 2 (IsoFLOP)", "Hoffmann et al. 2022"]), float(t.loc["a, Kaplan's count, long warmup", "Porian et al. 2024"])
    (0.49, 0.835)
    """
    por = {p.step: p.a for p in co.PORIAN_EXPONENTS}
    nan = np.nan
    rows = [("a, approach 1 (envelope)", HOFFMANN_TABLE2["approach 1"], nan, ours["a1"]),
            ("a, approach 2 (IsoFLOP)", HOFFMANN_TABLE2["approach 2"], por["tuned"], ours["a2"]),
            ("a, approach 3 (parametric)", HOFFMANN_TABLE2["approach 3"], nan, ours["a3"]),
            ("a, Kaplan's count, long warmup", nan, por["kaplan_reproduction"], ours["a_kaplan"]),
            ("a, head counted, long warmup", nan, por["count_head"], ours["a_head"]),
            ("a, head counted, scaled warmup", nan, por["fix_warmup"], ours["a_head_scaled"]),
            ("tokens per parameter at the optimum", HOFFMANN_TOKENS_PER_PARAM, nan, ours["M"])]
    return pd.DataFrame(rows, columns=["quantity", "Hoffmann et al. 2022", "Porian et al. 2024",
                                       "ours"]).set_index("quantity")


# ----------------------------------------------------------------------------- figures


def plot_isoflop(ax, frame: pd.DataFrame, optima, loss_col: str, style: str = "-", label_budgets: bool = True):
    """Loss against ``N`` per budget, each budget's parabola and its vertex with its interval."""
    colors = plotting.m_colors(sorted(frame["budget"].unique()))
    table = optima.table.set_index("group")
    for c, g in frame.groupby("budget"):
        g = g.sort_values("N")
        ax.plot(g["N"], g[loss_col], "o", color=colors[c], ms=4)
        x = np.linspace(np.log(g["N"].min()) - 0.2, np.log(g["N"].max()) + 0.2, 100)
        ax.plot(np.exp(x), optima.parabolas[c](x), style, color=colors[c], lw=1,
                label=f"C = {sci(c)}" if label_budgets else None)
        row = table.loc[c]
        ax.errorbar(row["N_opt"], row["loss_opt"], xerr=bars([row["N_opt"]], [row["N_lo"]], [row["N_hi"]]),
                    fmt="*", color=colors[c], ms=10, capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N (total)")
    ax.set_ylabel(plotting.label(loss_col))
    return ax


def plot_exponents(optima, exponents):
    """``N*`` and ``D*`` against compute with their power laws, and grey slopes 0.5 and 0.73."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 4.0))
    t = optima.table
    cc = np.geomspace(t["C"].min() / 1.5, t["C"].max() * 1.5, 50)
    for key, col, marker in (("a", "N", "o"), ("b", "D", "s")):
        trend = getattr(exponents, key)
        ax.errorbar(t["C"], t[f"{col}_opt"], yerr=bars(t[f"{col}_opt"], t[f"{col}_lo"], t[f"{col}_hi"]),
                    fmt=marker, capsize=3, label=f"{col}*  ({key} = {trend.exponent:.2f})")
        ax.plot(cc, trend.coef * cc ** trend.exponent, "-", lw=1, color=ax.lines[-1].get_color())
    mid = np.exp(np.log(t["C"]).mean())
    n_mid = exponents.a.coef * mid ** exponents.a.exponent
    for slope, style in ((0.5, ":"), (0.73, "--")):
        ax.plot(cc, n_mid * (cc / mid) ** slope, style, color="grey", lw=1,
                label=f"slope {slope} through the middle N*")
    ax.set(xscale="log", yscale="log", xlabel="compute C = 6ND (FLOPs)", ylabel="N* or D*")
    fig.legend(loc="lower center", ncol=2, frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig


def plot_conventions(by_conv: pd.DataFrame):
    """The exponent ``a`` per FLOP convention with its interval; a dotted line at 0.5."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 2.4))
    y = np.arange(len(by_conv))
    ax.errorbar(by_conv["a"], y, xerr=bars(by_conv["a"], by_conv["a_lo"], by_conv["a_hi"]), fmt="o", capsize=3)
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.set_yticks(y, by_conv.index)
    ax.set_xlabel("exponent a of N* ~ C^a (95% interval)")
    ax.invert_yaxis()
    return fig


def plot_envelope(curves: pd.DataFrame, env: pd.DataFrame, loss_col: str, fit_range=None):
    """Every validation curve against the compute spent so far, and the monotone envelope."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 3.4))
    colors = plotting.m_colors(sorted(curves["N"].unique()))
    for _, g in curves.groupby("run_id"):
        ax.plot(6 * g["N"] * g["tokens"], g["loss"], lw=0.7, alpha=0.6, color=colors[g["N"].iloc[0]])
    ax.plot(env["C"], env["loss"], "k-", lw=2, label="lower envelope (approach 1)")
    if fit_range is not None:
        ax.axvspan(*fit_range, color="grey", alpha=0.1, lw=0, label="range of the fit of a")
    ax.set(xscale="log", xlabel="compute so far, 6 N D (FLOPs)", ylabel=plotting.label(loss_col),
           ylim=(env["loss"].min() - 0.1, env["loss"].quantile(0.9) + 0.4))
    ax.legend(fontsize="small")
    return fig


def plot_warmup(small: pd.DataFrame, longw: pd.DataFrame, opt, opt_long, loss_col: str, long_steps: int):
    """The small budgets trained with both warmups, each with its parabolas (solid and dashed)."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 3.4))
    plot_isoflop(ax, small, opt, loss_col)
    plot_isoflop(ax, longw, opt_long, loss_col, style="--", label_budgets=False)
    ax.plot([], [], "k-", lw=1, label="warmup 10% of the run")
    ax.plot([], [], "k--", lw=1, label=f"warmup {long_steps} steps")
    ax.legend(fontsize="small")
    return fig


def plot_lr(lr_runs: pd.DataFrame, best_lr: pd.DataFrame, loss_col: str):
    """Left: loss against the learning rate per shape; right: the fitted optima and the width rule."""
    fig, axes = plt.subplots(1, 2, figsize=(plotting.PAGE_WIDTH, 3.4))
    colors = plotting.m_colors(sorted(lr_runs["N"].unique()))
    for model, g in lr_runs.sort_values("N").groupby("model", sort=False):
        g = g.sort_values("lr_scale")
        axes[0].plot(g["lr_scale"], g[loss_col] - g[loss_col].min(), "o-", ms=4, color=colors[g["N"].iloc[0]],
                     label=f"{model} ({short(g['N'].iloc[0])})")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xticks([0.5, 1, 2], ["0.5x", "1x", "2x"])
    axes[0].minorticks_off()
    axes[0].set(xlabel="learning rate / the rule's", ylabel="loss above the shape's best")
    inside = best_lr[best_lr["inside"]]
    axes[1].plot(best_lr["N"], best_lr["lr_rule"], "k:", label="width rule")
    axes[1].plot(inside["N"], inside["lr_opt"], "ks", ms=5, label="fitted optimum")
    axes[1].set(xscale="log", yscale="log", xlabel="parameters N", ylabel="learning rate")
    axes[1].minorticks_off()
    axes[1].set_xticks([4e4, 1e5, 2e5, 4e5], ["40k", "100k", "200k", "400k"])
    axes[1].set_yticks([0.0125, 0.025, 0.05], ["0.0125", "0.025", "0.05"])
    handles = axes[0].get_legend_handles_labels()[0] + axes[1].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return fig


def plot_advisor(law, params, target: float, base, advice: pd.DataFrame):
    """Total compute against ``M`` per inference volume, each divided by its minimum (dots)."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 3.4))
    Ms = np.geomspace(2, 2000, 80)
    for mult in advice.index:
        c = advisor.cost_vs_multiplier(law, params, target, mult * base.D, Ms)
        line, = ax.plot(c["M"], c["total_flops"] / c["total_flops"].min(), label=f"{mult} x D*")
        ax.plot(advice.loc[mult, "M"], 1.0, "o", color=line.get_color())
    ax.set(xscale="log", xlabel="token multiplier M = D/N", ylabel="total FLOPs / its minimum", ylim=(0.95, 3))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    fig.legend(loc="lower center", ncol=4, frameon=False, fontsize="small", handlelength=1.2)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
