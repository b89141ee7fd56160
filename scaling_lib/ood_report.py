"""Tables and figures of the out-of-distribution chapter (``notebooks/out_of_distribution.md``).

The chapter fits the over-training law of Gadre et al. (2024, eq. 4) to the loss on several
domains (English, code, German) with the paper's fit runs, predicts the held-out runs, and
compares each miss with a baseline that predicts no improvement.  This module holds the
plumbing around those fits:

* :func:`protocol_runs`: the loss-fit runs, the held-out runs and how they sit in compute;
* :func:`domain_movement`, :func:`seed_spread`: how far each domain's loss moves, over the
  runs and between repeat seeds;
* :func:`fits_report`, :func:`flat_domains`: the fitted parameters, warnings, and the domains
  whose law describes no trend;
* :func:`with_baseline`, :func:`skill_view`, :func:`domain_summary`, :func:`side_by_side`: the
  skill ratio (the law's miss over the no-improvement baseline's) and its summaries;
* :func:`domains_figure`, :func:`side_by_side_figure`: the chapter's two figures;
* :func:`paper_vs_testbed`: the paper's reported C4-eval errors beside the recomputed ones and ours.

Domains are passed as a mapping ``{name: loss column}``; nothing here names a run or a column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from scaling_lib import diagnostics, laws, plotting
from scaling_lib.downstream_report import PAPER_HELDOUT, run_label

__all__ = ["ProtocolRuns", "protocol_runs", "domain_movement", "seed_spread", "fits_report",
           "flat_domains", "with_baseline", "skill_view", "domain_summary", "side_by_side",
           "domains_figure", "side_by_side_figure", "paper_vs_testbed"]


@dataclass(frozen=True)
class ProtocolRuns:
    """The runs the loss law is fitted to and the runs it predicts.

    Attributes
    ----------
    loss_fit : pandas.DataFrame
        Runs of role ``loss_fit``.
    heldout : pandas.DataFrame
        The ``target`` runs, or the ``unused`` runs while no target is present.
    heldout_kind : str
        Which of the two ``heldout`` holds, in words.
    can_fit : bool
        Enough loss-fit runs for the over-training law, and at least one run to predict.
    n_design_fit : int
        Loss-fit runs of the design (those present when the design is not known).
    n_inside : int
        Held-out runs with no more compute than the largest loss-fit run (0: all extrapolate).
    """

    loss_fit: pd.DataFrame
    heldout: pd.DataFrame
    heldout_kind: str
    can_fit: bool
    n_design_fit: int
    n_inside: int


def protocol_runs(df: pd.DataFrame, design: pd.DataFrame | None = None, role: str = "role",
                  law=laws.OVERTRAINING) -> ProtocolRuns:
    """Split the runs by their protocol roles (:data:`scaling_lib.protocols.ROLES`).

    Parameters
    ----------
    df : pandas.DataFrame
        The runs present, with ``flops`` and the role column.
    design : pandas.DataFrame, optional
        The testbed's design, with its recorded roles (``fit``, ``grid``, ``target``).
    role : str
    law : scaling_lib.laws.Law
        The law to be fitted (its parameter count decides ``can_fit``).

    Returns
    -------
    ProtocolRuns

    Examples
    --------
    >>> runs = pd.DataFrame({"flops": [1.0, 2, 3, 4, 5, 9], "role": ["loss_fit"] * 5 + ["target"]})
    >>> r = protocol_runs(runs)
    >>> r.can_fit, r.heldout_kind, r.n_design_fit, r.n_inside
    (True, 'held-out targets', 5, 0)
    """
    loss_fit = df[df[role] == "loss_fit"]
    targets = df[df[role] == "target"]
    heldout = targets if len(targets) else df[df[role] == "unused"]
    top = loss_fit["flops"].max() if len(loss_fit) else np.nan
    return ProtocolRuns(
        loss_fit=loss_fit, heldout=heldout,
        heldout_kind="held-out targets" if len(targets) else "runs outside the fit set",
        can_fit=bool(len(loss_fit) >= law.n_params and len(heldout) > 0),
        n_design_fit=(int((design[role] == "fit").sum()) if design is not None
                      else len(loss_fit)),
        n_inside=int((heldout["flops"] <= top).sum()))


def domain_movement(df: pd.DataFrame, domains: Mapping[str, str]) -> pd.DataFrame:
    """How far each domain's loss moves over the runs, next to the first domain's.

    Parameters
    ----------
    df : pandas.DataFrame
    domains : mapping
        ``{domain: loss column}``; the first is the reference.

    Returns
    -------
    pandas.DataFrame
        Indexed by domain: ``lowest``, ``highest``, ``range`` and ``range / <first> range``.

    Examples
    --------
    >>> runs = pd.DataFrame({"a": [3.0, 2.0], "b": [5.0, 4.9]})
    >>> domain_movement(runs, {"A": "a", "B": "b"})["range / A range"].round(2).tolist()
    [1.0, 0.1]
    """
    first = next(iter(domains))
    movement = pd.DataFrame({
        "lowest": {d: df[c].min() for d, c in domains.items()},
        "highest": {d: df[c].max() for d, c in domains.items()}})
    movement["range"] = movement["highest"] - movement["lowest"]
    movement[f"range / {first} range"] = movement["range"] / movement.loc[first, "range"]
    return movement


def seed_spread(df: pd.DataFrame, domains: Mapping[str, str], keys=("model", "M"),
                seed: str = "seed") -> pd.DataFrame | None:
    """Spread (max minus min) of each domain's loss between repeat seeds of one shape and budget.

    Parameters
    ----------
    df : pandas.DataFrame
    domains : mapping
        ``{domain: loss column}``.
    keys : sequence of str
        The columns that name one configuration.
    seed : str

    Returns
    -------
    pandas.DataFrame or None
        One row per repeated configuration, one column per domain; None without repeats.

    Examples
    --------
    >>> runs = pd.DataFrame({"model": ["s", "s", "t"], "M": [20.0, 20.0, 20.0],
    ...                      "seed": [0, 1, 0], "a": [3.0, 3.1, 2.5]})
    >>> seed_spread(runs, {"A": "a"}).round(3).to_dict("list")
    {'A': [0.1]}
    """
    if seed not in df or df[seed].nunique() <= 1:
        return None
    keys = list(keys)
    repeats = df.groupby(keys).filter(lambda g: len(g) > 1)
    noise = repeats.groupby(keys)[list(domains.values())].agg(lambda s: s.max() - s.min())
    noise.columns = list(domains)
    return noise


def fits_report(fits: Mapping, domains: Mapping[str, str]) -> str:
    """The fitted parameters per domain, then each fit's warnings.

    Parameters
    ----------
    fits : mapping
        ``{loss column: FitResult}``.
    domains : mapping
        ``{domain: loss column}``.

    Returns
    -------
    str

    Examples
    --------
    >>> from scaling_lib import fit
    >>> N = np.array([1e5, 2e5, 4e5, 8e5, 1e5, 3e5])
    >>> M = np.array([20, 20, 20, 20, 320, 80.0])
    >>> runs = pd.DataFrame({"N": N, "M": M, "x": laws.OVERTRAINING(
    ...     {"E": 1.5, "a": 80.0, "b": 400.0, "eta": 0.2}, N=N, M=M)})
    >>> res = fit.fit(laws.OVERTRAINING, runs, target="x", objective="lsq")
    >>> print(fits_report({"x": res}, {"A": "x"}).splitlines()[0].split())
    ['E', 'a', 'b', 'eta']
    """
    params = pd.DataFrame({d: fits[c].params for d, c in domains.items()}).T
    lines = [str(params)]
    for d, c in domains.items():
        lines.append(" ".join([f"{d}:", *(f"\n  - {w}" for w in fits[c].warnings
                                          or ["no warning"])]))
    return "\n".join(lines)


def flat_domains(fits: Mapping, domains: Mapping[str, str]) -> list:
    """The domains whose law fits no better than a constant (a trend the data do not support).

    See :func:`scaling_lib.diagnostics.trend_warnings`; a domain without a fit is not listed.

    Examples
    --------
    >>> flat_domains({}, {"A": "x"})
    []
    """
    return [d for d, c in domains.items() if c in fits and diagnostics.trend_warnings(fits[c])]


def with_baseline(table: pd.DataFrame, fit_runs: pd.DataFrame) -> pd.DataFrame:
    """Add the no-improvement baseline's miss and the skill ratio.

    The baseline predicts that a larger run is no better than the best fitting run: its loss is
    the lowest loss among ``fit_runs``.  ``skill`` is the law's miss over the baseline's: below 1
    the law predicted part of the change from the fit runs to the held-out run.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`scaling_lib.downstream.relative_errors_by_column` (``column``, ``actual``,
        ``error``).
    fit_runs : pandas.DataFrame
        The runs the laws were fitted to.

    Returns
    -------
    pandas.DataFrame
        ``table`` with ``baseline_err`` and ``skill``.

    Examples
    --------
    >>> t = pd.DataFrame({"column": ["x", "x"], "actual": [2.0, 1.5], "error": [0.1, -0.1]})
    >>> with_baseline(t, pd.DataFrame({"x": [3.0, 2.5]}))[["baseline_err", "skill"]].to_dict("list")
    {'baseline_err': [0.5, 1.0], 'skill': [0.2, 0.1]}
    """
    best = table["column"].map(lambda c: fit_runs[c].min())
    out = table.assign(baseline_err=(best - table["actual"]).abs())
    out["skill"] = out["error"].abs() / out["baseline_err"]
    return out


def skill_view(table: pd.DataFrame, domains) -> pd.DataFrame:
    """Relative error and skill per held-out run (rows) and domain (columns), for reading.

    Examples
    --------
    >>> t = pd.DataFrame({"run_id": ["r", "r"], "domain": ["B", "A"], "rel_err_pct": [1.0, 2.0],
    ...                   "skill": [0.5, 0.1]})
    >>> skill_view(t, ["A", "B"]).columns.tolist()
    [('rel_err_pct', 'A'), ('rel_err_pct', 'B'), ('skill', 'A'), ('skill', 'B')]
    """
    view = table.pivot(index="run_id", columns="domain", values=["rel_err_pct", "skill"])
    return view.reindex(columns=list(domains), level=1).round(3)


def domain_summary(table: pd.DataFrame | None, domains) -> pd.DataFrame:
    """Mean relative error and median skill per domain (and the interval coverage, if any).

    Parameters
    ----------
    table : pandas.DataFrame or None
        From :func:`with_baseline`, with a ``domain`` column; None gives NaN rows.
    domains : sequence of str
        The rows, in order.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``domain``: ``rel_err_pct`` (mean), ``skill`` (median) and, where the table
        has it, ``covered`` (the share of held-out runs inside their prediction interval).

    Examples
    --------
    >>> t = pd.DataFrame({"domain": ["A", "A", "B"], "rel_err_pct": [1.0, 3.0, 5.0],
    ...                   "skill": [0.1, 0.3, 2.0]})
    >>> domain_summary(t, ["B", "A"]).to_dict("index")
    {'B': {'rel_err_pct': 5.0, 'skill': 2.0}, 'A': {'rel_err_pct': 2.0, 'skill': 0.2}}
    """
    if table is None:
        return pd.DataFrame(np.nan, index=pd.Index(list(domains), name="domain"),
                            columns=["rel_err_pct", "skill"])
    how = {"rel_err_pct": ("rel_err_pct", "mean"), "skill": ("skill", "median")}
    if "covered" in table:
        how["covered"] = ("covered", "mean")
    return table.groupby("domain", sort=False).agg(**how).reindex(list(domains))


def side_by_side(tables: Mapping, domains) -> pd.DataFrame | None:
    """Mean relative error and median skill per domain, one pair of columns per testbed.

    Parameters
    ----------
    tables : mapping
        ``{testbed label: table from with_baseline, or None}``; None entries are left out.
    domains : sequence of str

    Returns
    -------
    pandas.DataFrame or None
        Columns ``(label, "rel. err (%)")`` and ``(label, "skill")``; None without any table.

    Examples
    --------
    >>> t = pd.DataFrame({"domain": ["A", "B"], "rel_err_pct": [1.0, 2.0], "skill": [0.1, 0.5]})
    >>> side_by_side({"ours": t, "theirs": None}, ["A", "B"]).columns.tolist()
    [('ours', 'rel. err (%)'), ('ours', 'skill')]
    """
    rows = {}
    for label, t in tables.items():
        if t is not None:
            g = t.groupby("domain", sort=False)
            rows[(label, "rel. err (%)")] = g["rel_err_pct"].mean()
            rows[(label, "skill")] = g["skill"].median()
    return pd.DataFrame(rows).reindex(list(domains)) if rows else None


def domains_figure(df, domains: Mapping[str, str], fits: Mapping, flat=(), *, role="role"):
    """Loss against compute per domain, with the fitted law where it describes a trend.

    Parameters
    ----------
    df : pandas.DataFrame
        The runs (``flops``, ``M``, the role column and the domains' loss columns).
    domains : mapping
        ``{domain: loss column}``; at most four, one panel each.
    fits : mapping
        ``{loss column: FitResult}`` (may be empty).
    flat : sequence of str
        Domains whose law is not drawn (:func:`flat_domains`).
    role : str, keyword-only

    Returns
    -------
    matplotlib.figure.Figure
        A 2-by-2 grid; the compute axis is labelled at 1 and 3 times each power of ten.
    """
    fig, axes = plt.subplots(2, 2, figsize=plotting.grid_size(2, 2, 0.95))
    for ax, (domain, col) in zip(axes.flat, domains.items()):
        drawn = None if domain in flat else fits.get(col)
        plotting.loss_vs_compute(df, col, result=drawn, roles=df[role], ax=ax, title=domain)
        ax.set_ylabel(plotting.label(col))
        ax.set_yscale("linear")  # a narrow range: no decade in view
        ax.xaxis.set_major_locator(mpl.ticker.LogLocator(subs=(1.0, 3.0)))
        ax.xaxis.set_major_formatter(mpl.ticker.LogFormatterSciNotation(labelOnlyBase=False))
        ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    plotting.move_legends(axes.flat[0], axes.flat[3])
    for ax in axes.flat[1:3]:
        plotting.move_legends(ax, None)
    fig.tight_layout()
    return fig


def _run_labels(t: pd.DataFrame) -> pd.Series:
    """Each row's run as "1.4B, M=80"; the run id is added where two runs would share a label."""
    labels = pd.Series([run_label(n, m) for n, m in zip(t["N"], t["M"])], index=t.index)
    per_label = t.groupby(labels)["run_id"].nunique()
    clash = labels.map(per_label) > 1
    return labels.where(~clash, labels + " (" + t["run_id"].astype(str) + ")")


def side_by_side_figure(tables: Mapping, domains, *, cbar_label="rel. error (%)"):
    """Heat maps of relative error, domain by held-out run, one panel per testbed.

    Parameters
    ----------
    tables : mapping
        ``{testbed label: table}`` (``domain``, ``run_id``, ``N``, ``M``, ``rel_err_pct``);
        None entries are left out.  All panels share one colour scale.
    domains : sequence of str
        The rows, in order.
    cbar_label : str, keyword-only

    Returns
    -------
    matplotlib.figure.Figure
        Columns are labelled by the run's size and multiplier (``"1.4B, M=80"``), smallest first.

    Examples
    --------
    >>> t = pd.DataFrame({"domain": ["A", "A"], "run_id": ["x", "y"], "N": [1.44e9, 6.9e9],
    ...                   "M": [80.0, 20.0], "rel_err_pct": [1.5, 4.3]})
    >>> fig = side_by_side_figure({"published": t}, ["A"])
    >>> [x.get_text() for x in fig.axes[0].get_xticklabels()]
    ['1.4B, M=80', '6.9B, M=20']
    >>> plt.close(fig)
    """
    panels = [(label, t) for label, t in tables.items() if t is not None]
    n = max(len(panels), 1)
    vmax = max([t["rel_err_pct"].max() for _, t in panels], default=None)
    fig, axes = plt.subplots(n, 1, squeeze=False, figsize=plotting.grid_size(n, 1, 0.5))
    for ax, (label, t) in zip(axes[:, 0], panels):
        t = t.assign(run=_run_labels(t))
        order = t.sort_values(["N", "M"])["run"].unique()
        heat = t.pivot(index="domain", columns="run", values="rel_err_pct")
        plotting.relative_error_heatmap(heat.reindex(index=list(domains), columns=order), ax=ax,
                                        vmax=vmax, cbar_label=cbar_label)
        ax.set_title(label)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no fits yet", ha="center")
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    return fig


def paper_vs_testbed(published: pd.DataFrame | None, ours: pd.DataFrame | None, domains,
                     paper=PAPER_HELDOUT, rtol: float = 0.1) -> pd.DataFrame:
    """The paper's reported C4-eval loss errors beside the ones recomputed here, and ours.

    Parameters
    ----------
    published : pandas.DataFrame or None
        The published runs' table (``domain``, ``N``, ``M``, ``rel_err_pct``); the first domain
        is the in-distribution one (C4 eval for the C4-trained models).
    ours : pandas.DataFrame or None
        Our testbed's table (``domain``, ``rel_err_pct``), averaged over its held-out runs.
    domains : sequence of str
    paper : sequence of scaling_lib.downstream_report.PaperTarget
        The reported values (Gadre et al. 2024, Fig. 5); a published run matches a paper run
        with the same ``M`` and ``N`` within ``rtol``.
    rtol : float

    Returns
    -------
    pandas.DataFrame
        One row per paper run (``"Gadre et al.: 1.4B, M=80"``) and ``"ours: mean"``; columns
        ``reported (%)`` (the paper's number, for the first domain) and one ``<domain> (%)`` per
        domain, computed in the chapter.

    Examples
    --------
    >>> pub = pd.DataFrame({"domain": ["A", "B"], "N": [1.44e9, 1.44e9], "M": [80.0, 80.0],
    ...                     "rel_err_pct": [1.498, 4.3]})
    >>> t = paper_vs_testbed(pub, None, ["A", "B"])
    >>> t.loc["Gadre et al.: 1.4B, M=80"].round(2).tolist()
    [1.5, 1.5, 4.3]
    >>> t.loc["Gadre et al.: 6.9B, M=20"].isna().tolist()
    [False, True, True]
    """
    domains = list(domains)
    cols = [f"{d} (%)" for d in domains]
    rows = {}
    for p in paper:
        row = pd.Series(np.nan, index=cols)
        if published is not None:
            hit = published[np.isclose(published["N"], p.N, rtol=rtol) & (published["M"] == p.M)]
            means = hit.groupby("domain")["rel_err_pct"].mean()
            row[:] = [means.get(d, np.nan) for d in domains]
        rows[f"Gadre et al.: {run_label(p.N, p.M)}"] = [p.loss_pct, *row]
    means = (ours.groupby("domain")["rel_err_pct"].mean() if ours is not None
             else pd.Series(dtype=float))
    rows["ours: mean"] = [np.nan, *(means.get(d, np.nan) for d in domains)]
    return pd.DataFrame.from_dict(rows, orient="index", columns=["reported (%)", *cols])
