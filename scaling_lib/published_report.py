"""Tables and figures of the published-testbed chapter (Gadre et al. 2024 on their 104 runs).

The chapter ``notebooks/published_testbed.md`` fits the over-training law (Gadre et al. 2024,
eq. 4) and the loss-to-error law (their eq. 5) per training set, with the protocol of
:mod:`scaling_lib.protocols`.  This module holds what the chapter builds from those fits:

* :data:`PAPER_RELATIVE_ERRORS` / :func:`paper_relative_errors`: the relative prediction errors
  the paper reports for its 1.4B and 6.9B runs on C4 eval (their Fig. 5, Fig. 12, Table 2),
  kept as citable data, and :func:`paper_comparison`, which sets our recomputed values beside them;
* :func:`held_out_errors`: our relative errors of loss and chained downstream error on the runs
  above the small shapes;
* :func:`m_star`, :func:`m_star_bootstrap`, :func:`m_star_table`: the token multiplier that
  minimises the over-training law at fixed compute, ``M* = (b/a)^(1/(2 eta))`` (their eq. 10);
* :func:`eval_set_errors`, :func:`objective_comparison`, :func:`warnings_table`;
* :func:`loss_figure`, :func:`error_figure`: the chapter's two per-training-set figures.

Nothing here reads files or names a model; runs are selected by their roles and sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from scaling_lib import fit, laws, plotting, protocols

__all__ = ["PaperValue", "PAPER_RELATIVE_ERRORS", "PAPER_M_STAR", "paper_relative_errors",
           "held_out_errors", "relative_residuals", "paper_comparison", "m_star",
           "m_star_bootstrap", "m_star_table", "eval_set_errors", "ObjectiveComparison",
           "objective_comparison", "warnings_table", "warnings_text", "loss_figure",
           "error_figure"]


@dataclass(frozen=True)
class PaperValue:
    """One relative prediction error reported by Gadre et al. (2024) on C4 eval.

    Attributes
    ----------
    train_set : str
        Training corpus, as in the run table's ``train_set`` column.
    N : float
        Model size as the paper names it (1.4e9, 6.9e9); runs are matched within 10%.
    M : float
        Token multiplier.
    quantity : {"loss", "error"}
        C4 eval loss, or the 17-task average top-1 error chained through it.
    pct : float
        The reported relative error, in percent.
    decimals : int
        Decimals the paper prints (a value agrees when it rounds to ``pct``).
    source : str
        Where in the paper (arXiv 2403.08540, ``gadre2024scaling``).

    Examples
    --------
    >>> PAPER_RELATIVE_ERRORS[4].pct, PAPER_RELATIVE_ERRORS[4].source
    (0.7, 'Fig. 5')
    """

    train_set: str
    N: float
    M: float
    quantity: str
    pct: float
    decimals: int
    source: str


PAPER_RELATIVE_ERRORS = (
    # Gadre et al. (2024), arXiv 2403.08540: Fig. 5 (loss on C4 eval, one decimal), Fig. 12
    # (17-task average error, one decimal) and Table 2 (6.9B downstream, two decimals).
    PaperValue("C4", 1.4e9, 20, "loss", 0.8, 1, "Fig. 5"),
    PaperValue("C4", 1.4e9, 80, "loss", 1.5, 1, "Fig. 5"),
    PaperValue("C4", 6.9e9, 20, "loss", 4.3, 1, "Fig. 5"),
    PaperValue("RedPajama", 1.4e9, 20, "loss", 0.1, 1, "Fig. 5"),
    PaperValue("RedPajama", 1.4e9, 640, "loss", 0.7, 1, "Fig. 5"),
    PaperValue("RedPajama", 6.9e9, 20, "loss", 0.7, 1, "Fig. 5"),
    PaperValue("RefinedWeb", 1.4e9, 20, "loss", 0.6, 1, "Fig. 5"),
    PaperValue("RefinedWeb", 1.4e9, 320, "loss", 0.0, 1, "Fig. 5"),
    PaperValue("RefinedWeb", 6.9e9, 20, "loss", 1.6, 1, "Fig. 5"),
    PaperValue("C4", 1.4e9, 20, "error", 0.7, 1, "Fig. 12"),
    PaperValue("C4", 1.4e9, 80, "error", 9.6, 1, "Fig. 12"),
    PaperValue("C4", 6.9e9, 20, "error", 0.14, 2, "Table 2"),
    PaperValue("RedPajama", 1.4e9, 20, "error", 0.7, 1, "Fig. 12"),
    PaperValue("RedPajama", 1.4e9, 640, "error", 3.6, 1, "Fig. 12, Sec. 4"),
    PaperValue("RedPajama", 6.9e9, 20, "error", 0.05, 2, "Table 2, Sec. 4"),
    PaperValue("RefinedWeb", 1.4e9, 20, "error", 0.4, 1, "Fig. 12"),
    PaperValue("RefinedWeb", 1.4e9, 320, "error", 5.6, 1, "Fig. 12"),
    PaperValue("RefinedWeb", 6.9e9, 20, "error", 2.94, 2, "Table 2"),
)
"""Relative prediction errors (%) Gadre et al. (2024) report for their 1.4B and 6.9B runs on C4
eval under their default protocol (their Table 1): published facts, not results of this library."""

PAPER_M_STAR = {"C4": 2.87, "RedPajama": 4.30, "RefinedWeb": 3.79}
"""``M*`` of eq. (10) from their fitted coefficients (Gadre et al. 2024, Appendix E)."""


def paper_relative_errors() -> pd.DataFrame:
    """:data:`PAPER_RELATIVE_ERRORS` as a table.

    Returns
    -------
    pandas.DataFrame
        ``train_set``, ``N``, ``M``, ``quantity``, ``pct``, ``decimals``, ``source``.

    Examples
    --------
    >>> paper_relative_errors().groupby("quantity").size().to_dict()
    {'error': 9, 'loss': 9}
    """
    return pd.DataFrame([vars(p) for p in PAPER_RELATIVE_ERRORS])


def held_out_errors(df, loss_fits: Mapping, error_fits: Mapping, loss_col: str, error_col: str,
                    protocol=protocols.PAPER) -> pd.DataFrame:
    """Our relative errors of loss and chained error on every run above the small shapes.

    Parameters
    ----------
    df : pandas.DataFrame
        The run table (``train_set``, ``N``, ``M`` and the two columns).
    loss_fits, error_fits : mapping
        ``{train_set: FitResult}`` of the over-training law and of the error law (fitted with
        ``loss_col`` as its input).
    loss_col, error_col : str
    protocol : scaling_lib.protocols.Protocol

    Returns
    -------
    pandas.DataFrame
        One row per run and quantity: ``train_set``, ``model``, ``N``, ``M``, ``role``,
        ``quantity`` (``"loss"`` or ``"error"``), ``actual``, ``pred``, ``rel_err_pct``.
    """
    big = df[protocols.size_rank(df, protocol) >= protocol.n_small_shapes]
    roles = protocols.assign_roles(df, protocol)
    out = []
    for train_set, runs in big.groupby("train_set"):
        lt = protocols.relative_error_table(loss_fits[train_set], runs, loss_col)
        et = protocols.chained_error_table(loss_fits[train_set], error_fits[train_set], runs,
                                           loss_col, error_col)
        for quantity, table in (("loss", lt), ("error", et)):
            out.append(table[["train_set", "model", "N", "M", "actual", "pred", "rel_err_pct"]]
                       .assign(role=roles.loc[runs.index].to_numpy(), quantity=quantity))
    return pd.concat(out, ignore_index=True)


def relative_residuals(df, fits: Mapping, column: str) -> pd.Series:
    """Each run's measured value over its training set's fitted law, minus one, in percent.

    Parameters
    ----------
    df : pandas.DataFrame
        Runs with ``train_set``, ``column`` and the inputs the fits read.
    fits : mapping
        ``{train_set: FitResult}``.
    column : str
        The measured value (the column the laws were fitted to).

    Returns
    -------
    pandas.Series
        ``100 * (measured / law - 1)``, indexed like ``df``: positive where a run lies above
        its law.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> x = np.logspace(15, 20, 8)
    >>> data = pd.DataFrame({"train_set": "a", "x": x,
    ...                      "loss": laws.SATURATING_POWER({"E": 2.0, "A": 300.0, "alpha": 0.15}, x=x)})
    >>> res = fit.fit(laws.SATURATING_POWER, data, target="loss")
    >>> float(relative_residuals(data, {"a": res}, "loss").abs().max()) < 1e-6
    True
    """
    parts = [100 * (g[column] / fits[ts].predict(g, interval=None)["pred"] - 1)
             for ts, g in df.groupby("train_set")]
    return pd.concat(parts).reindex(df.index).rename("resid_pct")


def paper_comparison(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our relative errors beside the paper's, with the difference.

    Parameters
    ----------
    ours : pandas.DataFrame
        From :func:`held_out_errors` (``train_set``, ``N``, ``M``, ``quantity``, ``rel_err_pct``).
    paper : pandas.DataFrame, optional
        From :func:`paper_relative_errors` (the default).

    Returns
    -------
    pandas.DataFrame
        One row per paper value: ``train_set``, ``N``, ``M``, ``quantity``, ``role``, ``paper``
        (%), ``ours`` (%), ``difference`` (ours - paper, percentage points), ``source`` and
        ``agrees`` (ours rounds to the paper's value at the paper's printed precision).
        A paper value without a matching run has ``ours`` NaN and does not agree.

    Examples
    --------
    >>> ours = pd.DataFrame({"train_set": ["C4"], "N": [6.87e9], "M": [20.0], "quantity": ["loss"],
    ...                      "role": ["target"], "rel_err_pct": [4.2952]})
    >>> paper_comparison(ours).dropna(subset=["ours"])[["paper", "ours", "agrees"]]
       paper    ours  agrees
    2    4.3  4.2952    True
    """
    paper = paper_relative_errors() if paper is None else paper
    rows = []
    for p in paper.itertuples(index=False):
        match = ours[(ours["train_set"] == p.train_set) & (ours["quantity"] == p.quantity)
                     & np.isclose(ours["M"], p.M) & (np.abs(ours["N"] / p.N - 1) < 0.1)]
        value = float(match["rel_err_pct"].iloc[0]) if len(match) == 1 else np.nan
        role = match["role"].iloc[0] if len(match) == 1 else ""
        agrees = bool(abs(value - p.pct) <= 0.5 * 10.0 ** -p.decimals + 1e-9)
        rows.append({"train_set": p.train_set, "N": p.N, "M": p.M, "quantity": p.quantity,
                     "role": role, "paper": p.pct, "ours": value, "difference": value - p.pct,
                     "source": p.source, "agrees": agrees})
    return pd.DataFrame(rows)


def m_star(params: Mapping) -> float:
    """The token multiplier that minimises the over-training law at fixed compute.

    At fixed ``C``, ``a M^eta + b M^-eta`` is smallest at ``M* = (b/a)^(1/(2 eta))``
    (Gadre et al. 2024, eq. 10).  ``a = 0`` gives ``inf``, ``b = 0`` gives 0.

    Examples
    --------
    >>> round(m_star({"E": 1.8, "a": 1.0, "b": 4.0, "eta": 0.25}), 6)
    16.0
    """
    a, b, eta = float(params["a"]), float(params["b"]), float(params["eta"])
    if not np.isfinite([a, b, eta]).all() or eta <= 0:
        return float("nan")
    if a <= 0:
        return float("inf")
    return float((b / a) ** (1.0 / (2.0 * eta))) if b > 0 else 0.0


def m_star_bootstrap(result, data: pd.DataFrame, n_boot: int = 100, seed: int = 0) -> pd.DataFrame:
    """Bootstrap of ``M*`` over the fitting runs, naming the replicates that can locate it.

    Each replicate resamples the rows of ``data`` with replacement and refits the law from the
    fit's optimum.  A replicate locates ``M*`` only if it draws at least as many distinct runs as
    the law has parameters *and* at least two distinct multipliers: with one ``M`` the data say
    nothing about how the loss depends on ``M``.

    Parameters
    ----------
    result : scaling_lib.fit.FitResult
        A fit of :data:`scaling_lib.laws.OVERTRAINING` (or a law with ``a``, ``b``, ``eta``).
    data : pandas.DataFrame
        The runs it was fitted to.
    n_boot : int
    seed : int

    Returns
    -------
    pandas.DataFrame
        One row per replicate: ``M_star``, ``n_unique`` (distinct runs), ``n_M`` (distinct
        multipliers) and ``identified``.
    """
    rng = np.random.default_rng(seed)
    start = [dict(result.params)]
    rows = []
    for _ in range(int(n_boot)):
        idx = rng.integers(0, len(data), len(data))
        sample = data.iloc[idx]
        n_unique, n_m = len(np.unique(idx)), sample["M"].nunique()
        value, ok = np.nan, n_unique >= result.n_params and n_m >= 2
        if ok:
            refit = fit.fit(result.law, sample, target=result.target, inputs=result.inputs,
                            objective=result.objective, starts=start)
            ok = refit.success
            value = m_star(refit.params) if ok else np.nan
        rows.append({"M_star": value, "n_unique": n_unique, "n_M": n_m, "identified": bool(ok)})
    return pd.DataFrame(rows)


def m_star_table(fits: Mapping, data: Mapping, n_boot: int = 100, seed: int = 0,
                 level: float = 0.95) -> pd.DataFrame:
    """``M*`` of each fit with a bootstrap interval and the range of ``M`` its runs span.

    Parameters
    ----------
    fits : mapping
        ``{label: FitResult}`` of the over-training law.
    data : mapping
        ``{label: DataFrame}``: the runs each fit used (same keys).
    n_boot, seed : int
        Replicates of :func:`m_star_bootstrap` (0: no interval).
    level : float
        Central probability of the interval.

    Returns
    -------
    pandas.DataFrame
        Index: the labels; ``M_star``, ``lo``, ``hi``, ``identified`` (replicates that locate
        ``M*``), ``fit_M_min``, ``fit_M_max`` and ``inside`` (``M*`` lies within the fitted
        multipliers, where the law interpolates).
    """
    rows = {}
    for label, result in fits.items():
        runs = data[label]
        value = m_star(result.params)
        lo = hi = np.nan
        identified = 0
        if n_boot:
            boot = m_star_bootstrap(result, runs, n_boot, seed)
            good = boot.loc[boot["identified"], "M_star"].to_numpy()
            identified = len(good)
            if identified >= 2:
                lo, hi = np.quantile(good, [(1 - level) / 2, (1 + level) / 2])
        m_lo, m_hi = float(runs["M"].min()), float(runs["M"].max())
        rows[label] = {"M_star": value, "lo": lo, "hi": hi, "identified": identified,
                       "fit_M_min": m_lo, "fit_M_max": m_hi, "inside": m_lo <= value <= m_hi}
    return pd.DataFrame.from_dict(rows, orient="index")


def eval_set_errors(df, eval_sets, error_col: str, protocol=protocols.PAPER) -> pd.DataFrame:
    """The paper's protocol refitted on each evaluation set's loss, for every training set.

    Returns
    -------
    pandas.DataFrame
        One row per evaluation set and target run: ``eval_set``, ``train_set``, ``model``,
        ``N``, ``M``, ``rel_err_pct`` (loss), ``error`` (predicted minus measured loss),
        ``err_rel_err_pct`` (chained downstream error), ``target`` (a label such as
        ``"C4 6.9B M=20"``) and ``n_warnings`` (fit warnings of both laws beyond ``dof = 1``).
    """
    out = []
    for name in eval_sets:
        col = f"loss_{name}"
        for train_set, group in df.groupby("train_set"):
            lf = fit.fit(laws.OVERTRAINING, protocols.select(group, "loss_fit", protocol), target=col)
            ef = fit.fit(laws.ERROR, protocols.select(group, "error_fit", protocol),
                         target=error_col, inputs={"L": col})
            targets = protocols.select(group, "target", protocol)
            lt = protocols.relative_error_table(lf, targets, col)
            et = protocols.chained_error_table(lf, ef, targets, col, error_col)
            extra = [w for w in lf.warnings + ef.warnings if "dof = 1" not in w]
            out.append(lt.assign(eval_set=name, err_rel_err_pct=et["rel_err_pct"],
                                 n_warnings=len(extra)))
    table = pd.concat(out, ignore_index=True)
    table["target"] = [f"{ts} {n / 1e9:.2g}B M={m:g}" for ts, n, m
                       in table[["train_set", "N", "M"]].to_numpy()]
    return table


@dataclass(frozen=True)
class ObjectiveComparison:
    """Loss predictions of the targets under several fit objectives (:func:`objective_comparison`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per objective and target: the columns of
        :func:`scaling_lib.protocols.relative_error_table` with an interval, plus ``objective``
        and ``width_pct`` (interval width over the measured loss, %).
    fits : dict
        ``{(objective, train_set): FitResult}``.
    usable : float
        Share of run-bootstrap replicates that could be refitted (all fits pooled).
    exactly_k : float
        Share of the usable replicates that drew exactly as many distinct runs as parameters.
    """

    table: pd.DataFrame
    fits: dict
    usable: float
    exactly_k: float


def objective_comparison(df, loss_col: str, objectives=("lsq", "huber_log"), n_boot: int = 100,
                         seed: int = 0, level: float = 0.95,
                         protocol=protocols.PAPER) -> ObjectiveComparison:
    """Fit the over-training law per training set with each objective; predict the targets.

    The intervals are the fit's default prediction intervals for a measured value
    (:meth:`scaling_lib.fit.FitResult.predict`) at ``level``.
    """
    tables, fits, usable, exact = [], {}, [], []
    for objective in objectives:
        for train_set, group in df.groupby("train_set"):
            res = fit.fit(laws.OVERTRAINING, protocols.select(group, "loss_fit", protocol),
                          target=loss_col, objective=objective, seed=seed, n_boot=n_boot)
            fits[(objective, train_set)] = res
            table = protocols.relative_error_table(res, protocols.select(group, "target", protocol),
                                                   loss_col, interval=level)
            tables.append(table.assign(objective=objective))
            boot = res.bootstrap(n_boot)
            usable.append(boot["success"].mean())
            exact.append((boot.loc[boot["success"], "n_unique"] == res.n_params).mean())
    table = pd.concat(tables, ignore_index=True)
    table["width_pct"] = 100 * (table["hi"] - table["lo"]) / table["actual"]
    return ObjectiveComparison(table, fits, float(np.mean(usable)), float(np.nanmean(exact)))


def warnings_table(fits: Mapping) -> pd.DataFrame:
    """Every warning of every fit, one row each (``"(none)"`` for a fit without warnings).

    Parameters
    ----------
    fits : mapping
        ``{label: FitResult}``; a tuple label is joined with spaces.

    Returns
    -------
    pandas.DataFrame
        ``fit`` and ``warning``.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> x = np.logspace(15, 20, 8)
    >>> data = pd.DataFrame({"x": x, "loss": laws.SATURATING_POWER({"E": 2.0, "A": 300.0, "alpha": 0.15}, x=x)})
    >>> warnings_table({"demo": fit.fit(laws.SATURATING_POWER, data, target="loss")})
        fit warning
    0  demo  (none)
    """
    rows = []
    for label, result in fits.items():
        name = " ".join(map(str, label)) if isinstance(label, tuple) else str(label)
        rows += [{"fit": name, "warning": w} for w in (result.warnings or ["(none)"])]
    return pd.DataFrame(rows, columns=["fit", "warning"])


def warnings_text(fits: Mapping) -> str:
    """:func:`warnings_table` as indented text, one block per fit.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> x = np.logspace(15, 20, 8)
    >>> data = pd.DataFrame({"x": x, "loss": laws.SATURATING_POWER({"E": 2.0, "A": 300.0, "alpha": 0.15}, x=x)})
    >>> print(warnings_text({"demo": fit.fit(laws.SATURATING_POWER, data, target="loss")}))
    demo:
      - (none)
    """
    table = warnings_table(fits)
    return "\n".join(f"{name}:\n" + "\n".join(f"  - {w}" for w in rows["warning"])
                     for name, rows in table.groupby("fit", sort=False))


# --- figures -----------------------------------------------------------------------------------


def _role_markers(ax, x, y, colors, roles, scale=1.0):
    for role, style in plotting.ROLE_STYLE.items():
        mask = np.asarray(roles) == role
        if not mask.any():
            continue
        c = [colors[i] for i in np.flatnonzero(mask)]
        kw = {"marker": style["marker"], "s": style["size"] * scale, "zorder": 3, "linewidths": 0.9}
        if style["filled"]:
            ax.scatter(x[mask], y[mask], c=c, edgecolors="black", **kw)
        else:
            ax.scatter(x[mask], y[mask], facecolors="none", edgecolors=c, **kw)


def _figure_legends(fig, colors, roles, top):
    """The M legend and the role legend stacked below the panels, ``top`` inches from the bottom."""
    height = fig.get_size_inches()[1]
    m_handles = [Line2D([], [], color=c, marker="o", linestyle="-", label=f"M = {m:g}")
                 for m, c in colors.items()]
    present = [r for r in plotting.ROLE_STYLE if (np.asarray(roles) == r).any()]
    role_handles = [Line2D([], [], linestyle="none", marker=plotting.ROLE_STYLE[r]["marker"],
                           markerfacecolor="grey" if plotting.ROLE_STYLE[r]["filled"] else "none",
                           markeredgecolor="black", markersize=9 if r == "target" else 6,
                           label=plotting.ROLE_STYLE[r]["label"]) for r in present]
    fig.legend(handles=m_handles, loc="upper center", bbox_to_anchor=(0.5, top / height), ncol=4,
               frameon=False, title="token multiplier (colour)")
    fig.legend(handles=role_handles, loc="upper center", bbox_to_anchor=(0.5, (top - 0.7) / height),
               ncol=2, frameon=False, title="role in the fit (marker)")


def loss_figure(df, loss_col: str, fits: Mapping, roles, extend: float = 1.5):
    """Loss against compute, one row per training set: the law (left), relative residuals (right).

    The left panel draws the law only for the multipliers the fit or the targets use, with their
    runs; the right panel shows every run as ``measured / law - 1`` (%), so that multipliers the
    left panel leaves out, and runs off their curve, can be told apart.

    Returns
    -------
    matplotlib.figure.Figure
    """
    sets = sorted(df["train_set"].unique())
    colors = plotting.m_colors(df["M"])
    height = 2.3 * len(sets) + 1.6
    fig, axes = plt.subplots(len(sets), 2, figsize=(plotting.PAGE_WIDTH, height), sharex=True,
                             squeeze=False)
    for row, train_set in zip(axes, sets):
        group = df[df["train_set"] == train_set].sort_values("flops")
        role = np.asarray(pd.Series(roles).reindex(group.index), dtype=object)
        shown = sorted(group.loc[role != "unused", "M"].unique())
        keep = np.isin(group["M"], shown)
        c_grid = np.logspace(np.log10(group["flops"].min()), np.log10(group["flops"].max() * extend), 100)
        for m in shown:
            n = np.sqrt(c_grid / (6.0 * m))
            grid = pd.DataFrame({"N": n, "M": m, "D": m * n, "flops": c_grid})
            row[0].plot(c_grid, fits[train_set].predict(grid, interval=None)["pred"], color=colors[m])
        x, y = group["flops"].to_numpy(), group[loss_col].to_numpy()
        point_colors = [colors[m] for m in group["M"]]
        _role_markers(row[0], x[keep], y[keep], [point_colors[i] for i in np.flatnonzero(keep)],
                      role[keep], 0.8)
        resid = 100 * (y / fits[train_set].predict(group, interval=None)["pred"].to_numpy() - 1)
        row[1].axhline(0, color="grey", linewidth=1)
        _role_markers(row[1], x, resid, point_colors, role, 0.8)
        row[0].set(xscale="log", yscale="log", ylabel="loss (nats/token)")
        lo, hi = np.nanmin(y), np.nanmax(y)
        row[0].set_yticks([t for t in np.arange(1.0, 13.0) if lo / 1.1 <= t <= hi * 1.1])
        row[0].yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%.0f"))
        row[0].yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
        row[0].set_title(f"{train_set}: law and its runs", fontsize=10)
        row[1].set(xscale="log", ylabel="measured / law - 1 (%)")
        row[1].set_title(f"{train_set}: every run", fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel(plotting.label("flops"), fontsize=9)
    fig.tight_layout(rect=(0, 1.6 / height, 1, 1))
    _figure_legends(fig, colors, roles, 1.55)
    return fig


def error_figure(df, error_col: str, loss_col: str, fits: Mapping, chance_col: str, roles):
    """Downstream error against loss, one panel per training set, with the error law and chance.

    Returns
    -------
    matplotlib.figure.Figure
    """
    sets = sorted(df["train_set"].unique())
    colors = plotting.m_colors(df["M"])
    fig, axes = plt.subplots(1, len(sets), figsize=(plotting.PAGE_WIDTH, 4.4), sharey=True,
                             squeeze=False)
    for ax, train_set in zip(axes[0], sets):
        group = df[df["train_set"] == train_set]
        role = np.asarray(pd.Series(roles).reindex(group.index), dtype=object)
        x, y = group[loss_col].to_numpy(), group[error_col].to_numpy()
        _role_markers(ax, x, y, [colors[m] for m in group["M"]], role, 0.7)
        grid = pd.DataFrame({loss_col: np.linspace(x.min() - 0.05 * np.ptp(x), x.max(), 150)})
        ax.plot(grid[loss_col], fits[train_set].predict(grid, interval=None)["pred"], color="black",
                zorder=2)
        ax.axhline(group[chance_col].mean(), color="grey", linestyle="--", linewidth=1.1)
        ax.annotate("chance", (0.02, group[chance_col].mean()), xycoords=("axes fraction", "data"),
                    va="bottom", color="grey", fontsize=8)
        ax.set_title(train_set, fontsize=10)
        ax.set_xlabel(plotting.label(loss_col), fontsize=9)
    axes[0][0].set_ylabel(plotting.label(error_col))
    fig.tight_layout(rect=(0, 1.6 / 4.4, 1, 1))
    _figure_legends(fig, colors, roles, 1.55)
    return fig
