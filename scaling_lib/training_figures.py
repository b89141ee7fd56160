"""Figures of the training-testbed chapter (``notebooks/training_testbed.md``).

The tables and checks they draw are built by :mod:`scaling_lib.training_report`, which re-exports
every figure here; the style (colours per multiplier, markers per role) is
:mod:`scaling_lib.plotting`'s.  No torch: the learning-rate figure takes the trainer's schedule
function as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from scaling_lib import counting, plotting, testbeds
from scaling_lib.prose import short

def _no_runs_yet(ax):
    ax.text(0.5, 0.5, "no finished run yet", ha="center", va="center",
            transform=ax.transAxes, color="grey")


def param_share_figure(tb: testbeds.Testbed):
    """Stacked bars: where the parameters of each shape sit (embedding, attention, ...)."""
    parts = ["embedding", "attention", "ffn", "norms", "head"]
    counts = pd.DataFrame({s.name: counting.param_counts(tb.gpt_config(s).shape())
                           for s in tb.shapes}).T[parts]
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 2.8))
    (counts.T / counts.sum(axis=1)).T.plot.barh(stacked=True, ax=ax, width=0.7)
    ax.set(xlabel="share of the parameters $N$", ylabel="", xlim=(0, 1))
    ax.invert_yaxis()
    ax.legend(ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


def lr_schedule_figure(tb: testbeds.Testbed, lr_lambda: Callable, multipliers=(5, 20, 80, 320),
                       shape: str | None = None):
    """Learning rate against training tokens of one shape at several multipliers.

    Parameters
    ----------
    lr_lambda : callable
        ``lr_lambda(train_config)`` returns the multiplier of the peak lr at each step
        (:func:`scaling_lib.training.train.lr_lambda`; passed in so this module needs no torch).
    shape : str, optional
        The shape; default the testbed's first (smallest).
    """
    shape = shape or tb.shapes[0].name
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 3.0))
    for m, color in plotting.m_colors(multipliers).items():
        cfg = tb.train_config(testbeds.RunSpec(shape, m))
        f = lr_lambda(cfg)
        steps = np.arange(cfg.total_steps)
        ax.plot(steps * cfg.tokens_per_step, [cfg.lr * f(int(k)) for k in steps],
                color=color, label=f"{m:g}")
    ax.set(xscale="log", xlabel="training tokens", ylabel="learning rate")
    ax.legend(title=f"{shape}, M", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def live_curves_figure(live_curves: pd.DataFrame, committed_curves: pd.DataFrame):
    """Live validation curves, one colour per multiplier, their committed twins dashed."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 3.4))
    colors = plotting.m_colors(live_curves["M"])
    first_ref = True
    for run_id, c in live_curves.groupby("run_id"):
        ax.plot(c["tokens"], c["loss"], "o-", ms=3, color=colors[c["M"].iloc[0]],
                label=f"{run_id} (live)")
        ref = committed_curves[committed_curves["run_id"] == run_id]
        if len(ref):  # one legend entry for the committed curves
            ax.plot(ref["tokens"], ref["loss"], "--", color="black", lw=1,
                    label="committed testbed" if first_ref else "_nolegend_")
            first_ref = False
    ax.set(xscale="log", xlabel="training tokens", ylabel="validation loss on en (nats/token)")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def curves_figure(tb: testbeds.Testbed, all_curves: pd.DataFrame):
    """Validation curves of every finished run: a panel per shape, a colour per ``M``, repeat
    seeds dotted."""
    names = [s.name for s in tb.shapes]
    nrows = -(-len(names) // 2)
    fig, axes = plt.subplots(nrows, 2, figsize=plotting.grid_size(nrows, 2, 0.62),
                             sharex=True, sharey=True, squeeze=False)
    colors = plotting.m_colors(sorted({r.multiplier for r in tb.runs}))
    for ax, name in zip(axes.flat, names):
        ids = [r.run_id for r in tb.runs if r.shape == name]
        sub = all_curves[all_curves["run_id"].isin(ids)]
        for _, c in sub.groupby("run_id"):
            ax.plot(c["tokens"], c["loss"], color=colors[c["M"].iloc[0]],
                    ls="-" if c["seed"].iloc[0] == 0 else ":", lw=1.3)
        ax.set_title(f"{name} ({short(tb.n_params(name))})", fontsize=10)
        if sub.empty:
            _no_runs_yet(ax)
        ax.set_xscale("log")
    for ax in axes[-1]:
        ax.set_xlabel("training tokens")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"loss on {tb.loss_column.removeprefix('loss_')}")
    handles = [plt.Line2D([], [], color=c, label=f"{m:g}") for m, c in colors.items()]
    fig.legend(handles=handles, title="M", ncol=len(handles), loc="lower center",
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def shape_colors(names) -> dict:
    """One colour per shape name, from small to large along a plasma scale.

    Examples
    --------
    >>> list(shape_colors(["s1", "s2"]))
    ['s1', 's2']
    """
    names = list(names)
    return dict(zip(names, plt.get_cmap("plasma")(np.linspace(0, 0.85, len(names)))))


def final_loss_figure(df: pd.DataFrame, colors: Mapping, loss: str = "loss_en"):
    """Final loss (with its interval) against tokens, a line per shape through seed 0; fitting
    runs filled circles, other grid runs open circles, targets stars."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 3.8))
    for name, g in df.sort_values("D").groupby("model", sort=False):
        color = colors[name]
        seed0 = g[g["seed"] == 0]
        ax.plot(seed0["D"], seed0[loss], "-", color=color, lw=1.2,
                label=f"{name} ({short(g['N'].iloc[0])})")
        for r in g.itertuples():
            y = getattr(r, loss)
            yerr = [[y - getattr(r, f"{loss}_lo")], [getattr(r, f"{loss}_hi") - y]]
            ax.errorbar(r.D, y, yerr=yerr, fmt="*" if r.role == "target" else "o",
                        ms=11 if r.role == "target" else 5, color=color,
                        mfc="white" if r.role == "grid" else color)
    if df.empty:
        _no_runs_yet(ax)
    ax.set(xscale="log", xlabel=plotting.label("D"), ylabel=plotting.label(loss))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    if len(df):
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="shape")
    return fig


def bpb_figure(df: pd.DataFrame, domains, colors: Mapping):
    """Bits per byte against compute, one panel per domain, one line per shape (seed 0)."""
    fig, axes = plt.subplots(2, 2, figsize=plotting.grid_size(2, 2, 0.75))
    for ax, dom in zip(axes.flat, domains):
        for name, g in df.sort_values("flops").groupby("model", sort=False):
            first_seed = g[g["seed"] == 0]
            ax.plot(first_seed["flops"], first_seed[f"bpb_{dom}"], "o-", ms=3,
                    color=colors[name], label=name)
        if df.empty:
            _no_runs_yet(ax)
        ax.set(xscale="log", title=dom, xlabel="$C = 6ND$ (FLOPs)", ylabel="bits per byte")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    if len(df):
        axes[1, 1].legend(*axes[0, 0].get_legend_handles_labels(),
                          title="shape", frameon=False, loc="center left")
    axes[1, 1].set_axis_off()
    fig.tight_layout()
    return fig


def throughput_figure(rec: pd.DataFrame):
    """Training throughput against ``N``, coloured by when each run finished."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 3.2))
    if len(rec):
        finished = pd.to_datetime(rec["finished_at"], utc=True, errors="coerce")
        hours = (finished - finished.min()).dt.total_seconds() / 3600
        points = ax.scatter(rec["N"], rec["tokens_per_s"], c=hours, cmap="cividis", s=28)
        fig.colorbar(points, ax=ax, label="finished (h after first run)")
    else:
        _no_runs_yet(ax)
    ax.set(xscale="log", yscale="log", xlabel=plotting.label("N"),
           ylabel="training tokens per second")
    return fig


def error_vs_loss_figure(df: pd.DataFrame, error: str = "err_avg", loss: str = "loss_en",
                         chance: str = "chance_avg"):
    """Average downstream error against loss, coloured by ``M``, marked by design role."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH * 0.8, 3.6))
    if len(df):
        roles = df["role"].map({"fit": "loss_fit", "target": "target", "grid": "unused"})
        plotting.error_vs_loss(df, error, loss, chance=chance, roles=roles, ax=ax)
    else:
        _no_runs_yet(ax)
    return fig
