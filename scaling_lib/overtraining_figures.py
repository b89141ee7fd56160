"""Figures of the over-training chapter (``notebooks/overtraining_loss.md``).

The tables and summaries they draw come from :mod:`scaling_lib.overtraining_report`; the style
(colours per multiplier, markers per role) is :mod:`scaling_lib.plotting`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from scaling_lib import plotting
from scaling_lib.overtraining_report import scored

__all__ = ["loss_lines_figure", "slopes_figure", "fit_figure", "backtest_figure", "no_data_figure"]


_ROLE_TEXT = {"fits loss and error laws": "fit run", "fits the law": "fit run", "not used in the fit": "other run"}


def _legend_panel(src, dst, others=()):
    """Move src's legends into the spare axes dst, with this chapter's role names; drop others'."""
    for leg in plotting.move_legends(src, dst):
        for text in leg.get_texts():
            text.set_text(_ROLE_TEXT.get(text.get_text(), text.get_text()))
    for ax in others:
        plotting.move_legends(ax, None)


def loss_lines_figure(df, loss_col, roles, result=None):
    """Loss against compute, one line per M; with a fitted over-training law, beside it the
    reducible loss ``L - E`` on log-log axes with the law's lines of common slope ``-eta``
    (the parallel lines of Gadre et al. 2024). The legends go in a panel of their own."""
    with_law = result is not None and result.success
    widths = [1.45, 1.45, 1.5] if with_law else [2.6, 1.0]
    fig, axes = plt.subplots(1, len(widths), figsize=(plotting.PAGE_WIDTH, 3.6),
                             gridspec_kw={"width_ratios": widths})
    plotting.loss_vs_compute(df, loss_col, roles=roles, ax=axes[0])
    if with_law:
        axes[0].set_xlabel("compute $C$ (FLOPs)")
    if with_law:
        ax, p = axes[1], result.params
        colors = plotting.m_colors(df["M"])
        C = np.logspace(np.log10(df["flops"].min()), np.log10(df["flops"].max()), 50)
        for m, color in colors.items():
            sub = df[df["M"] == m]
            ax.scatter(sub["flops"], sub[loss_col] - p["E"], color=color, s=14, zorder=3)
            reducible = (p["a"] * m ** p["eta"] + p["b"] * m ** -p["eta"]) * C ** -p["eta"]
            ax.plot(C, reducible, color=color, lw=1.2)
        ax.set(xscale="log", yscale="log", xlabel="compute $C$ (FLOPs)",
               ylabel=f"$L - E$, E = {p['E']:.2f} (nats/token)")
        ax.set_title(f"$\\eta$ = {p['eta']:.3f}: slope $-\\eta$ for every $M$", fontsize="small")
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5))
        ax.yaxis.set_minor_locator(mpl.ticker.NullLocator())
        ax.yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%.1f"))
    _legend_panel(axes[0], axes[-1])
    fig.tight_layout()
    return fig


def _slope_panel(ax, slopes, title, reference=None):
    ok = slopes.dropna(subset=["slope"])
    x, y = ok.index.to_numpy(float), ok["slope"]
    ax.errorbar(x, y, yerr=[y - ok["t_lo"], ok["t_hi"] - y], fmt="o", color="C0", capsize=3,
                label="t interval")
    ax.errorbar(x * 1.08, y, yerr=[y - ok["lo"], ok["hi"] - y], fmt="s", color="C1", capsize=3,
                markersize=4, label="bootstrap")
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", label=r"$-\eta$ of the fit to all runs")
    ax.set(xscale="log", xlabel=plotting.label("M"), ylabel="log-log slope", title=title)


def slopes_figure(total, reducible=None, eta=None):
    """The slopes of the total and (if given) reducible loss per M, with both intervals."""
    panels = [(total, "total loss", None)]
    if reducible is not None:
        panels.append((reducible, "reducible loss $L - E$", -eta))
    fig, axes = plt.subplots(1, 2, figsize=plotting.grid_size(1, 2, 0.95))
    for ax, (slopes, title, ref) in zip(axes, panels):
        _slope_panel(ax, slopes, title, ref)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    handles, names = axes[len(panels) - 1].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def no_data_figure(text):
    """A blank strip saying why a figure has nothing to show."""
    fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return fig


def _parity(ax, tables: Mapping, loss_col):
    values = []
    for i, (obj, t) in enumerate(tables.items()):
        both = pd.concat([t.targets, t.grid])
        if both.empty:
            continue
        y = both["pred"]
        ax.errorbar(both["actual"] * (1 + 0.004 * (i - 0.5)), y, yerr=[y - both["lo"], both["hi"] - y],
                    fmt="os"[i], color=f"C{i}", capsize=2, markersize=4, linestyle="none", label=obj)
        values += [both["actual"], y]
    if values:
        v = pd.concat(values)
        lims = [v.min() - 0.05 * np.ptp(v), v.max() + 0.05 * np.ptp(v)]
        ax.plot(lims, lims, color="grey", linewidth=1, zorder=0)
        ax.set(xlim=lims, ylim=lims)
        ax.legend(frameon=False, fontsize=8)
    ax.set(xlabel=f"actual {loss_col}", ylabel="predicted", title="runs the fit did not see")


def fit_figure(df, loss_col, fits: Mapping, preds: Mapping, roles):
    """Two fitted laws (``fits``, by objective) over the runs (top) and their predictions
    (``preds``, :func:`predictions`) against the actual losses (bottom left)."""
    if not fits:
        return no_data_figure("no fit yet: too few finished fit runs")
    fig, axes = plt.subplots(2, 2, figsize=plotting.grid_size(2, 2, 0.9))
    for ax, (obj, res) in zip(axes[0], fits.items()):
        plotting.loss_vs_compute(df, loss_col, result=res, roles=roles, ax=ax, title=obj)
    _legend_panel(axes[0, 0], axes[1, 1], others=[axes[0, 1]])
    axes[0, 1].set_ylabel("")
    _parity(axes[1, 0], preds, loss_col)
    fig.tight_layout()
    return fig


def _plain_log_ticks(axis):
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _error_vs_ratio(ax, key, rows, title, colors, objectives):
    """Relative error against compute ratio; the fit-set legend in ``key``."""
    rows = scored(rows)
    keys = sorted(set(zip(rows["kind"], rows["value"]))) if len(rows) else []
    handles = []
    for k, v in keys:
        for i, obj in enumerate(objectives):
            r = rows[(rows["kind"] == k) & (rows["value"] == v) & (rows["objective"] == obj)]
            h = ax.scatter(r["to_largest_fit"], r["rel_err_pct"], s=22, marker="o^"[i],
                           color=colors[(k, v)], facecolors="none" if i else None,
                           label=r["split"].iloc[0] if len(r) else "")
            handles += [h] if i == 0 and len(r) else []
    ax.set(xscale="log", yscale="log", title=title, xlabel="compute / largest fit run",
           ylabel="relative error (%)")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    key.set_axis_off()
    if handles:
        key.legend(handles=handles, frameon=False, fontsize=8, ncol=2, loc="upper center")


def backtest_figure(panels, objectives):
    """Relative error against compute ratio for two backtest tables, side by side.

    ``panels`` holds two (:func:`scaling_lib.backtest.run_backtest` table, title) pairs; the
    first objective is drawn as filled circles, the second as open triangles.
    """
    fig, axes = plt.subplots(2, 2, figsize=(plotting.PAGE_WIDTH, 4.3),
                             gridspec_kw={"height_ratios": [3, 0.9]})
    # one colour scale per kind of split, shared by the panels
    colors, cmap = {}, plt.get_cmap("viridis")
    frames = [rows for rows, _ in panels if len(rows)]
    for k, values in (pd.concat(frames).groupby("kind")["value"] if frames else ()):
        values = sorted(values.unique())
        for j, v in enumerate(values):
            colors[(k, v)] = cmap(0.9 * j / max(len(values) - 1, 1))
    for j, (rows, title) in enumerate(panels):
        _error_vs_ratio(axes[0, j], axes[1, j], rows, title, colors, objectives)
    marks = [axes[1, 0].scatter([], [], marker="o^"[i], color="grey",
                                facecolors="none" if i else None, label=obj)
             for i, obj in enumerate(objectives)]
    fig.legend(handles=marks, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
