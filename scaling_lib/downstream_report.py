"""Tables and figures of the downstream-error chapter (``notebooks/downstream_error.md``).

The chapter fits the error law of Gadre et al. (2024, eq. 5) to the average error of a task suite,
chains it with the over-training law (their eq. 4) and asks which single tasks, and how large
averages of tasks, can be predicted that way (:mod:`scaling_lib.downstream` holds the studies).
This module holds the chapter's plumbing around those fits:

* :func:`one_train_set`, :func:`role_grid`, :func:`fit_sets`: the runs, their roles, the fit sets;
* :func:`line_vs_law`, :func:`chain_split`: the error law against a line; the chained miss by link;
* :func:`label_tasks`, :func:`per_task_view`, :func:`task_spread`: the per-task table;
* :func:`task_panels`, :func:`subsets_figure`: the per-task and task-subset figures;
* :data:`PAPER_HELDOUT` and :func:`paper_vs_testbed`: the paper's held-out errors beside ours.

Nothing here reads files or names a run; runs are selected by their roles.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from scaling_lib import laws, plotting
from scaling_lib.prose import short

__all__ = ["TrainSetChoice", "one_train_set", "role_grid", "FitSets", "fit_sets", "missing_text",
           "LineVsLaw", "line_vs_law", "ChainSplit", "chain_split", "label_tasks",
           "PER_TASK_COLUMNS", "per_task_view", "TaskSpread", "task_spread", "task_panels",
           "subsets_figure", "run_label", "PaperTarget", "PAPER_HELDOUT", "paper_vs_testbed"]


@dataclass(frozen=True)
class TrainSetChoice:
    """The runs of one training set.

    Attributes
    ----------
    runs : pandas.DataFrame
        Those runs, indexed ``0..n-1``.
    train_set : str or None
        The set chosen (None for a table without a ``train_set`` column).
    """

    runs: pd.DataFrame
    train_set: object


def one_train_set(table: pd.DataFrame, train_set=None) -> TrainSetChoice:
    """The runs of ``train_set``; by default the first training set in sorted order.

    Parameters
    ----------
    table : pandas.DataFrame
        A run table, with or without a ``train_set`` column.
    train_set : str, optional
        The training set to keep (ignored for a table without the column).

    Examples
    --------
    >>> t = pd.DataFrame({"train_set": ["b", "a", "b"], "N": [1, 2, 3]})
    >>> pick = one_train_set(t)
    >>> pick.train_set, pick.runs["N"].tolist()
    ('a', [2])
    >>> one_train_set(t.drop(columns="train_set")).train_set is None
    True
    """
    sets = sorted(table["train_set"].unique()) if "train_set" in table else [None]
    train_set = sets[0] if train_set is None else train_set
    if train_set is not None:
        table = table[table["train_set"] == train_set]
    return TrainSetChoice(table.reset_index(drop=True), train_set)


def role_grid(df: pd.DataFrame, role: str = "role") -> pd.DataFrame:
    """The runs' roles as a table: one row per ``model`` (by size), one column per ``M``.

    Parameters
    ----------
    df : pandas.DataFrame
        Runs with ``model``, ``N``, ``M``, the ``role`` column (and ``seed``: the first shows).
    role : str

    Returns
    -------
    pandas.DataFrame
        Role strings, columns named by ``M`` (``"20"``), empty where no run exists.

    Examples
    --------
    >>> runs = pd.DataFrame({"model": ["b", "a", "a"], "N": [2e6, 1e6, 1e6], "M": [20.0, 20.0, 40.0],
    ...                      "role": ["target", "loss_fit", "unused"]})
    >>> role_grid(runs).to_dict("index")
    {'a': {'20': 'loss_fit', '40': 'unused'}, 'b': {'20': 'target', '40': ''}}
    """
    grid = (df.sort_values(["N", "seed"] if "seed" in df else "N")
            .pivot_table(index="model", columns="M", values=role, aggfunc="first")
            .reindex(df.sort_values("N")["model"].unique()).fillna(""))
    grid.columns = [f"{m:g}" for m in grid.columns]
    return grid


def missing_text(missing: pd.DataFrame) -> str:
    """What a claim that the design is complete shows when runs are missing.

    Examples
    --------
    >>> missing_text(pd.DataFrame({"run_id": ["r1", "r2"], "role": ["target", "loss_fit"]}))
    '2 planned runs missing: r1 (target), r2 (loss_fit)'
    """
    return (f"{len(missing)} planned runs missing: "
            + ", ".join(f"{r} ({role})" for r, role in zip(missing["run_id"], missing["role"])))


@dataclass(frozen=True)
class FitSets:
    """The runs each law is fitted to and the runs the chain predicts.

    Attributes
    ----------
    loss_fit, error_fit : pandas.DataFrame
        Runs of role ``loss_fit`` (the over-training law); of ``loss_fit`` or ``error_fit``
        (the error law).
    heldout : pandas.DataFrame
        The ``target`` runs, or the ``unused`` runs while no target is present.
    heldout_kind : str
        Which of the two, in words.
    extra_run : pandas.Series
        The planned error-law run (``run_id``, ``M``, ``flops``; NaN where the design has none).
    largest_fit_flops : float
        Compute of the largest planned loss-fit run.
    """

    loss_fit: pd.DataFrame
    error_fit: pd.DataFrame
    heldout: pd.DataFrame
    heldout_kind: str
    extra_run: pd.Series
    largest_fit_flops: float

    @property
    def extra_ratio(self) -> float:
        """Compute of the error-law run over that of the largest loss-fit run."""
        return self.extra_run["flops"] / self.largest_fit_flops


def fit_sets(df: pd.DataFrame, planned: pd.DataFrame, role: str = "role") -> FitSets:
    """Split the runs by their protocol roles (:data:`scaling_lib.protocols.ROLES`).

    Parameters
    ----------
    df, planned : pandas.DataFrame
        The runs present, and those of the design (``df`` itself when the design is not known),
        with ``run_id``, ``M``, ``flops`` and the ``role`` column.
    role : str

    Examples
    --------
    >>> runs = pd.DataFrame({"run_id": list("abcd"), "M": [20.0, 20, 20, 20],
    ...                      "flops": [1.0, 2.0, 10.0, 50.0],
    ...                      "role": ["loss_fit", "loss_fit", "error_fit", "target"]})
    >>> s = fit_sets(runs, runs)
    >>> len(s.error_fit), s.heldout_kind, s.extra_run["run_id"], float(s.extra_ratio)
    (3, 'held-out targets', 'c', 5.0)
    """
    targets = df[df[role] == "target"]
    extra = planned[planned[role] == "error_fit"]
    run = (extra.iloc[0] if len(extra)
           else pd.Series({"run_id": "none", "M": np.nan, "flops": np.nan}))
    return FitSets(
        loss_fit=df[df[role] == "loss_fit"],
        error_fit=df[df[role].isin(["loss_fit", "error_fit"])],
        heldout=targets if len(targets) else df[df[role] == "unused"],
        heldout_kind="held-out targets" if len(targets) else "runs outside the fit sets",
        extra_run=run,
        largest_fit_flops=planned.loc[planned[role] == "loss_fit", "flops"].max())


@dataclass(frozen=True)
class LineVsLaw:
    """The fitted error law next to a straight line through the same runs.

    Attributes
    ----------
    span : float
        Loss range of all runs.
    slope_ratio : float
        ``exp(-gamma * span)``: the law's slope ratio across that range (1 for a line).
    rms_law, rms_line : float
        Residual RMS of the law and of the least-squares line on the fit runs.
    """

    span: float
    slope_ratio: float
    rms_law: float
    rms_line: float

    def report(self) -> str:
        """Two lines for the chapter."""
        return (f"loss range of all runs: {self.span:.2f} nats; slope ratio across "
                f"it {self.slope_ratio:.2f}\nresidual RMS: law {self.rms_law:.4f}, "
                f"straight line {self.rms_line:.4f}")


def line_vs_law(result, fit_runs: pd.DataFrame, all_runs: pd.DataFrame, loss: str,
                error: str) -> LineVsLaw:
    """Compare the error law fitted to ``fit_runs`` with a straight line in the loss.

    Parameters
    ----------
    result : scaling_lib.fit.FitResult
        The error law (:data:`scaling_lib.laws.ERROR`) fitted to ``fit_runs``.
    fit_runs, all_runs : pandas.DataFrame
        Its fit runs, and every run (for the loss range).
    loss, error : str

    Examples
    --------
    >>> from scaling_lib import fit
    >>> L = np.linspace(3.0, 5.0, 6)
    >>> runs = pd.DataFrame({"L": L, "err": laws.ERROR({"eps": 0.9, "k": 2.0, "gamma": 0.5}, L=L)})
    >>> res = fit.fit(laws.ERROR, runs, target="err", inputs={"L": "L"}, objective="lsq")
    >>> c = line_vs_law(res, runs, runs, "L", "err")
    >>> round(c.slope_ratio, 2), c.rms_law < 1e-6 < c.rms_line
    (0.37, True)
    """
    L = fit_runs[loss].to_numpy(float)
    y = fit_runs[error].to_numpy(float)
    line = np.polyfit(L, y, 1)
    span = all_runs[loss].max() - all_runs[loss].min()
    return LineVsLaw(span=float(span), slope_ratio=float(np.exp(-result.params["gamma"] * span)),
                     rms_law=float(result.rmse),
                     rms_line=float(np.sqrt(np.mean((np.polyval(line, L) - y) ** 2))))


@dataclass(frozen=True)
class ChainSplit:
    """Mean relative errors (%) over the held-out runs, link by link.

    Attributes
    ----------
    chain_err, loss_err, alone_err : float
        The chained prediction ``(N, M) -> L -> Err``; the loss law alone, on the loss; the
        error law alone, applied to the measured loss.
    """

    chain_err: float
    loss_err: float
    alone_err: float


def chain_split(chain: pd.DataFrame, heldout: pd.DataFrame, loss: str) -> ChainSplit:
    """Split the chained miss between the loss law and the error law.

    Parameters
    ----------
    chain, heldout : pandas.DataFrame
        From :func:`scaling_lib.protocols.chained_error_table` on ``heldout``; the held-out
        runs, in its order.
    loss : str
        Their measured loss.

    Examples
    --------
    >>> chain = pd.DataFrame({"actual": [0.5, 0.4], "pred_loss": [3.3, 3.0],
    ...                       "pred_from_actual_loss": [0.5, 0.42], "rel_err_pct": [2.0, 4.0]})
    >>> s = chain_split(chain, pd.DataFrame({"L": [3.0, 3.0]}), "L")
    >>> round(s.chain_err, 6), round(s.loss_err, 6), round(s.alone_err, 6)
    (3.0, 5.0, 2.5)
    """
    alone = 100 * (chain["pred_from_actual_loss"] - chain["actual"]).abs()
    alone = alone / chain["actual"]
    measured = heldout[loss].to_numpy()
    loss_rel = 100 * (chain["pred_loss"] - measured) / measured
    return ChainSplit(chain_err=float(chain["rel_err_pct"].mean()),
                      loss_err=float(np.abs(loss_rel).mean()), alone_err=float(alone.mean()))


def label_tasks(per_task: pd.DataFrame, members, prefix: str = "err_") -> pd.DataFrame:
    """Mark the tasks of the average (``in_avg``) and name tasks without the column prefix.

    Parameters
    ----------
    per_task : pandas.DataFrame
        From :func:`scaling_lib.downstream.per_task_fits`, indexed by error column.
    members : sequence of str
        The error columns of the average.
    prefix : str

    Returns
    -------
    pandas.DataFrame
        A copy with a boolean ``in_avg`` column, indexed by task name.

    Examples
    --------
    >>> t = label_tasks(pd.DataFrame({"fit_rms": [0.1, 0.2]}, index=["err_a", "err_b"]), ["err_b"])
    >>> t["in_avg"].to_dict()
    {'a': False, 'b': True}
    """
    out = per_task.copy()
    out["in_avg"] = out.index.isin(members)
    out.index = out.index.str.replace(prefix, "", regex=False)
    return out


PER_TASK_COLUMNS = {"in_avg": "in avg", "spread": "spread", "fit_rms": "fit rms",
                    "heldout_mae": "miss", "mae_over_spread": "miss/spread",
                    "heldout_rel_err_pct": "rel. err %"}
"""Columns of :func:`per_task_view` and their headings (``above_chance`` is added with chance
levels)."""


def per_task_view(per_task: pd.DataFrame, with_chance: bool = False) -> pd.DataFrame:
    """The per-task table for reading: most predictable task (by miss/spread) first.

    Parameters
    ----------
    per_task : pandas.DataFrame
        From :func:`label_tasks`.
    with_chance : bool
        Add ``below chance`` (from ``above_chance``).

    Returns
    -------
    pandas.DataFrame
        :data:`PER_TASK_COLUMNS` under their headings, to three decimals.

    Examples
    --------
    >>> t = pd.DataFrame({"in_avg": [True, False], "spread": [0.2, 0.1], "fit_rms": [0.01, 0.02],
    ...                   "heldout_mae": [0.02, 0.05], "mae_over_spread": [0.1, 0.5],
    ...                   "heldout_rel_err_pct": [3.0, 9.0]}, index=["a", "b"])
    >>> per_task_view(t.iloc[::-1]).index.tolist()
    ['a', 'b']
    """
    show = dict(PER_TASK_COLUMNS)
    if with_chance:
        show["above_chance"] = "below chance"
    return (per_task.sort_values("mae_over_spread")[list(show)]
            .rename(columns=show).rename_axis(None).round(3))


@dataclass(frozen=True)
class TaskSpread:
    """How far the tasks move, in and outside the average, and their ranking.

    Attributes
    ----------
    outside_max, inside_median : float
        Largest spread (max minus min error over the runs) of a task outside the average, and
        the median spread of the tasks in it.
    ranked : list of str
        The tasks of the average from the most to the least predictable by ``mae_over_spread``
        (``["none", "none", "none"]`` without held-out predictions).
    """

    outside_max: float
    inside_median: float
    ranked: list

    @property
    def best(self) -> str:
        """The most predictable task of the average."""
        return self.ranked[0]

    @property
    def worst_two(self) -> str:
        """The two least predictable tasks, in words."""
        return " and ".join(self.ranked[-2:])


def task_spread(df: pd.DataFrame, candidates, members, per_task=None) -> TaskSpread:
    """Spread of each task's error over the runs, and the tasks ranked by predictability.

    Parameters
    ----------
    df : pandas.DataFrame
    candidates, members : sequence of str
        Every task's error column; those the average holds.
    per_task : pandas.DataFrame, optional
        From :func:`label_tasks`.

    Examples
    --------
    >>> runs = pd.DataFrame({"err_a": [0.6, 0.3], "err_b": [0.5, 0.4], "err_c": [0.5, 0.48]})
    >>> s = task_spread(runs, ["err_a", "err_b", "err_c"], ["err_a", "err_b"])
    >>> round(s.outside_max, 3), round(s.inside_median, 3), s.best
    (0.02, 0.2, 'none')
    """
    spread = df[candidates].max() - df[candidates].min()
    ready = per_task is not None and per_task["heldout_mae"].notna().any()
    ranked = (list(per_task[per_task["in_avg"]].sort_values("mae_over_spread").index)
              if ready else ["none", "none", "none"])
    return TaskSpread(outside_max=float(spread[~spread.index.isin(members)].max()),
                      inside_median=float(spread[spread.index.isin(members)].median()),
                      ranked=ranked)


def task_panels(df, per_task, names, members, loss, *, chance=None, role="role", prefix="err_",
                max_panels=12, ncols=3):
    """Each task's error against loss, with the task's own error law where it was fitted.

    Parameters
    ----------
    df : pandas.DataFrame
        The runs (``loss``, the role column, one ``prefix + name`` column per task).
    per_task : pandas.DataFrame or None
        From :func:`label_tasks`: orders the panels by ``mae_over_spread``, draws the laws.
    names, members : sequence of str
        Task names (without ``prefix``; the order without ``per_task``); the error columns of
        the average (the others are tagged "not in avg").
    loss : str
    chance : mapping, optional, keyword-only
        Chance error per error column, drawn dashed.
    role, prefix, max_panels, ncols : keyword-only

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> runs = pd.DataFrame({"loss": [4.0, 3.5], "err_a": [0.6, 0.5], "role": ["loss_fit", "target"]})
    >>> fig = task_panels(runs, None, ["a"], ["err_a"], "loss")
    >>> fig.axes[0].get_title()
    'a'
    >>> plt.close(fig)
    """
    if per_task is not None:
        names = per_task.sort_values("mae_over_spread").index
    names = list(names)[:max_panels]
    if len(names) == 0:
        fig, ax = plt.subplots(figsize=plotting.grid_size(1, 1, 0.15))
        ax.text(0.5, 0.5, "no per-task error columns in this run table", ha="center", va="center")
        ax.set_axis_off()
        return fig
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, sharex=True, squeeze=False,
                             figsize=plotting.grid_size(nrows, ncols, 0.8))
    grid = np.linspace(df[loss].min(), df[loss].max(), 100)
    for ax, task in zip(axes.flat, names):
        for r, style in plotting.ROLE_STYLE.items():
            sub = df[df[role] == r]
            ax.scatter(sub[loss], sub[prefix + task], s=style["size"] / 2, marker=style["marker"],
                       edgecolors="black", linewidths=0.5,
                       c="grey" if style["filled"] else "none")
        if per_task is not None:
            p = per_task.loc[task, list(laws.ERROR.param_names)].to_dict()
            ax.plot(grid, laws.ERROR(p, L=grid), "k")
        if chance:
            ax.axhline(chance[prefix + task], color="grey", ls="--", lw=1)
        tag = "" if prefix + task in members else " (not in avg)"
        ax.set_title(task + tag, fontsize="small")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.supxlabel(plotting.label(loss), fontsize="small")
    fig.supylabel("top-1 error", fontsize="small")
    fig.tight_layout()
    return fig


def subsets_figure(study, by_size, *, seed=0):
    """Relative error of subset averages against the number of tasks averaged (log scale).

    Parameters
    ----------
    study, by_size : pandas.DataFrame or None
        From :func:`scaling_lib.downstream.subset_study` (chained) and its
        :func:`~scaling_lib.downstream.summarize_subsets`, with the median on the measured loss
        as ``"median, measured loss"``.
    seed : int, keyword-only
        Seed of the sideways jitter.

    Returns
    -------
    matplotlib.figure.Figure
        The log axis is labelled at 1, 2 and 5 times each power of ten only (no overlap).

    Examples
    --------
    >>> fig = subsets_figure(None, None)
    >>> fig.axes[0].texts[0].get_text()
    'no subset study yet'
    >>> plt.close(fig)
    """
    fig, ax = plt.subplots(figsize=plotting.grid_size(1, 1, 0.55 if study is not None else 0.15))
    if study is None:
        ax.text(0.5, 0.5, "no subset study yet", ha="center", va="center")
        ax.set_axis_off()
        fig.tight_layout()
        return fig
    jitter = np.random.default_rng(seed).uniform(-0.15, 0.15, len(study))
    ax.scatter(study["size"] + jitter, study["rel_err_pct"], s=10, color="grey", alpha=0.5,
               label="one subset (chained)")
    ax.plot(by_size.index, by_size["median"], "k-o", label="median (chained)")
    ax.fill_between(by_size.index, by_size["q25"], by_size["q75"], color="black", alpha=0.15,
                    label="middle half")
    ax.plot(by_size.index, by_size["median, measured loss"], "--s", color="tab:blue",
            label="median (measured loss)")
    ax.set(xlabel="tasks averaged", ylabel="relative error (%)", yscale="log")
    ax.yaxis.set_major_locator(mpl.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def run_label(N, M) -> str:
    """A run named by its size and token multiplier.

    Examples
    --------
    >>> run_label(1.44e9, 80.0), run_label(640608, 40)
    ('1.4B, M=80', '641k, M=40')
    """
    return f"{short(N)}, M={M:g}"


@dataclass(frozen=True)
class PaperTarget:
    """A held-out run of Gadre et al. (2024) and the relative errors they report for it.

    Attributes
    ----------
    N, M : float
        Model size as the paper names it, and token multiplier.
    loss_pct, error_pct : float
        Relative error (%) of the predicted loss on C4 eval, and of the 17-task average top-1
        error chained through it.
    source : str
        Where in the paper (arXiv 2403.08540).
    """

    N: float
    M: float
    loss_pct: float
    error_pct: float
    source: str


PAPER_HELDOUT = (
    # Gadre et al. (2024), arXiv 2403.08540: their two C4-trained runs held out from both laws.
    # Loss on C4 eval: Fig. 5 (one decimal); chained 17-task error: Fig. 12 (1.4B) and Table 2
    # (6.9B). Also in published_report.PAPER_RELATIVE_ERRORS (checked against the released data).
    PaperTarget(N=1.4e9, M=80.0, loss_pct=1.5, error_pct=9.6, source="Fig. 5, Fig. 12"),
    PaperTarget(N=6.9e9, M=20.0, loss_pct=4.3, error_pct=0.14, source="Fig. 5, Table 2"),
)
"""The relative errors Gadre et al. (2024) report for their held-out C4 runs: published facts."""


def paper_vs_testbed(chain: pd.DataFrame, heldout: pd.DataFrame, loss: str,
                     paper=PAPER_HELDOUT) -> pd.DataFrame:
    """The paper's held-out relative errors beside our testbed's, run by run and on average.

    Parameters
    ----------
    chain, heldout : pandas.DataFrame
        From :func:`scaling_lib.protocols.chained_error_table` on ``heldout``; our held-out runs
        (``N``, ``M`` and ``loss``), in its order.
    loss : str
    paper : sequence of PaperTarget

    Returns
    -------
    pandas.DataFrame
        One row per paper run (``"Gadre et al.: 1.4B, M=80"``), per held-out run of ours
        (``"ours: 641k, M=40"``) and ``"ours: mean"`` (the chapter's averages); columns
        ``loss (%)`` and ``chained error (%)``, relative errors.

    Examples
    --------
    >>> chain = pd.DataFrame({"pred_loss": [3.3, 2.7], "rel_err_pct": [2.0, 4.0]})
    >>> ours = pd.DataFrame({"N": [1e6, 2e6], "M": [40.0, 20.0], "L": [3.0, 3.0]})
    >>> t = paper_vs_testbed(chain, ours, "L")
    >>> t.index.tolist()[1:]
    ['Gadre et al.: 6.9B, M=20', 'ours: 1M, M=40', 'ours: 2M, M=20', 'ours: mean']
    >>> t.loc["ours: mean"].round(2).tolist()
    [10.0, 3.0]
    """
    measured = heldout[loss].to_numpy(float)
    loss_rel = np.abs(100 * (chain["pred_loss"].to_numpy(float) - measured) / measured)
    cols = {f"Gadre et al.: {run_label(p.N, p.M)}": [p.loss_pct, p.error_pct] for p in paper}
    for n, m, lr, er in zip(heldout["N"], heldout["M"], loss_rel, chain["rel_err_pct"]):
        cols[f"ours: {run_label(n, m)}"] = [lr, er]
    cols["ours: mean"] = [loss_rel.mean(), chain["rel_err_pct"].mean()]
    return pd.DataFrame.from_dict(cols, orient="index", columns=["loss (%)", "chained error (%)"])
