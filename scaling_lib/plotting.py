"""Figures for the book: one theme, one colour per token multiplier, one marker per role.

All presentation (colours, markers, labels, sizes) lives here; the data
layer (:mod:`scaling_lib.runs`, :mod:`scaling_lib.protocols`) knows nothing
about it. Figures take a run table and optionally a fitted law
(:class:`scaling_lib.fit.FitResult`) and return the matplotlib ``Axes``.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

THEME = {"context": "notebook", "style": "whitegrid", "palette": "colorblind", "font_scale": 1.0}
"""Arguments of :func:`seaborn.set_theme` used by :func:`use_style` (no named matplotlib style,
whose names change between releases)."""

PAGE_WIDTH = 6.3
"""Width in inches of a figure that fills the book's text column (about 690 px at
``figure.dpi``), so that font sizes in points show at their size on the page."""

RC = {
    "figure.figsize": (PAGE_WIDTH, 4.2),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
}
"""Matplotlib settings applied on top of :data:`THEME`."""

M_PALETTE = "viridis"
"""Sequential colour map for the token multiplier M (log-spaced)."""

ROLE_STYLE = {
    "loss_fit": {"marker": "o", "filled": True, "size": 46, "label": "fits loss and error laws"},
    "error_fit": {"marker": "s", "filled": True, "size": 46, "label": "fits error law only"},
    "target": {"marker": "*", "filled": True, "size": 150, "label": "held-out target"},
    "unused": {"marker": "o", "filled": False, "size": 26, "label": "not used in the fit"},
}
"""Marker per run role (see :data:`scaling_lib.protocols.ROLES`)."""

LABELS = {
    "flops": "training compute $C = 6ND$ (FLOPs)",
    "N": "parameters $N$",
    "D": "training tokens $D$",
    "M": "token multiplier $M = D/N$",
}
"""Axis labels of run-table columns."""


def use_style():
    """Apply the book's plotting theme (seaborn theme plus :data:`RC`).

    Examples
    --------
    >>> use_style()
    >>> import matplotlib as mpl
    >>> mpl.rcParams["axes.spines.top"]
    False
    """
    sns.set_theme(**THEME)
    mpl.rcParams.update(RC)


def label(column):
    """A readable axis label for a run-table column.

    Examples
    --------
    >>> label("loss_c4_val")
    'loss on c4_val (nats/token)'
    >>> label("err_avg17")
    'top-1 error (avg17)'
    """
    if column in LABELS:
        return LABELS[column]
    if column.startswith("loss_"):
        return f"loss on {column[len('loss_'):]} (nats/token)"
    if column.startswith("bpb_"):
        return f"bits per byte on {column[len('bpb_'):]}"
    if column.startswith("err_"):
        return f"top-1 error ({column[len('err_'):]})"
    return column


def m_colors(values):
    """Colour per token multiplier, spaced on a log scale.

    Examples
    --------
    >>> sorted(m_colors([20, 5, 640]))
    [5, 20, 640]
    """
    values = sorted(set(values))
    cmap = plt.get_cmap(M_PALETTE)
    logs = np.log(np.asarray(values, dtype=float))
    span = logs.max() - logs.min() if len(values) > 1 else 1.0
    pos = 0.9 * (logs - logs.min()) / span if len(values) > 1 else np.array([0.5])
    return {v: cmap(p) for v, p in zip(values, pos)}


def _m_text(m):
    return f"{m:g}"


def _scatter(ax, x, y, colors, roles):
    for role, style in ROLE_STYLE.items():
        mask = roles == role
        if not mask.any():
            continue
        c = [colors[i] for i in np.flatnonzero(mask)]
        kwargs = {"marker": style["marker"], "s": style["size"], "zorder": 3, "linewidths": 1.0}
        if style["filled"]:
            ax.scatter(x[mask], y[mask], c=c, edgecolors="black", **kwargs)
        else:
            ax.scatter(x[mask], y[mask], facecolors="none", edgecolors=c, **kwargs)


def _legends(ax, colors, roles, title="M"):
    m_handles = [Line2D([], [], color=c, marker="o", linestyle="-", label=_m_text(m))
                 for m, c in colors.items()]
    first = ax.legend(handles=m_handles, title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      ncol=2, frameon=False, borderaxespad=0.0)
    ax.add_artist(first)
    present = [r for r in ROLE_STYLE if (roles == r).any()]
    # without an error-law-only run the figure shows one law: say "fits the law", not both
    only_loss = "error_fit" not in present
    if len(present) > 1:
        handles = [Line2D([], [], linestyle="none", marker=ROLE_STYLE[r]["marker"],
                          markerfacecolor="grey" if ROLE_STYLE[r]["filled"] else "none",
                          markeredgecolor="black", markersize=8 if r == "target" else 6,
                          label="fits the law" if (r == "loss_fit" and only_loss) else ROLE_STYLE[r]["label"])
                   for r in present]
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(1.02, 0.0), frameon=False,
                  borderaxespad=0.0)


def grid_size(nrows, ncols, aspect=0.8):
    """Figure size (inches) of an ``nrows`` x ``ncols`` grid that fills the text column.

    Parameters
    ----------
    nrows, ncols : int
        Panels down and across.
    aspect : float
        Height of one panel over its width.

    Returns
    -------
    tuple of float
        ``(width, height)`` with width :data:`PAGE_WIDTH`.

    Examples
    --------
    >>> grid_size(2, 2)
    (6.3, 5.04)
    """
    if nrows < 1 or ncols < 1:
        raise ValueError(f"a grid needs at least one row and one column, got {nrows} x {ncols}")
    return PAGE_WIDTH, round(nrows * aspect * PAGE_WIDTH / ncols, 2)


def move_legends(src, dst=None):
    """Move the legends of one axes into another, or drop them.

    The figures of this module put their legends beside the axes; in a grid of panels
    one set of legends is enough, and an empty cell of the grid is the place for it,
    where it covers no data. ``dst`` is turned into a bare legend panel with the first
    legend at its top and the last at its bottom.

    Parameters
    ----------
    src : matplotlib.axes.Axes
        Axes whose legends are taken away.
    dst : matplotlib.axes.Axes or None
        Axes that receives them (its frame and ticks are hidden); None drops them.

    Returns
    -------
    list of matplotlib.legend.Legend
        The legends drawn on ``dst`` (empty when ``dst`` is None).

    Examples
    --------
    >>> fig, (a, b) = plt.subplots(1, 2)
    >>> _ = a.plot([0, 1], label="fit")
    >>> first = a.legend(title="M")
    >>> a.add_artist(first)  # doctest: +ELLIPSIS
    <matplotlib.legend.Legend object at ...>
    >>> _ = a.legend(handles=a.lines, labels=["data"])
    >>> moved = move_legends(a, b)
    >>> [leg.get_title().get_text() for leg in moved], a.get_legend() is None
    (['M', ''], True)
    >>> plt.close(fig)
    """
    legends = []
    for child in src.get_children():
        if isinstance(child, mpl.legend.Legend) and child not in legends:
            legends.append(child)
    moved = []
    for i, leg in enumerate(legends):
        spec = {"handles": list(leg.legend_handles),
                "labels": [t.get_text() for t in leg.get_texts()],
                "title": leg.get_title().get_text() or None,
                "ncols": getattr(leg, "_ncols", 1)}
        leg.remove()
        if src.legend_ is leg:
            src.legend_ = None
        if dst is None:
            continue
        last = i == len(legends) - 1 and i > 0
        new = mpl.legend.Legend(dst, spec.pop("handles"), spec.pop("labels"),
                                loc="lower left" if last else "upper left",
                                bbox_to_anchor=(0.0, 0.0 if last else 1.0 - i / len(legends)),
                                frameon=False, borderaxespad=0.0, **spec)
        dst.add_artist(new)
        moved.append(new)
    if dst is not None:
        dst.set_axis_off()
    return moved


def _roles(df, roles):
    if roles is None:
        return np.full(len(df), "loss_fit", dtype=object)
    return np.asarray(pd.Series(roles).reindex(df.index), dtype=object)


def loss_vs_compute(df, loss, *, result=None, roles=None, ax=None, extend=1.5, title=None):
    """Loss against training compute on log-log axes, one colour per M.

    With a fitted law, each M gets the law's curve from the smallest to
    ``extend`` times the largest compute in ``df`` (the extrapolation);
    without one, the measured points of each M are joined.

    Parameters
    ----------
    df : pandas.DataFrame
        Runs (``flops``, ``M``, ``N`` and the loss column).
    loss : str
        The loss column.
    result : scaling_lib.fit.FitResult, optional
        A law of ``N``, ``D``, ``M`` or ``flops`` (e.g. the over-training law).
    roles : pandas.Series, optional
        Role per run (from :func:`scaling_lib.protocols.assign_roles`), drawn as markers.
    ax : matplotlib.axes.Axes, optional
    extend : float
        How far past the largest compute to draw the law.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.figure().gca()
    colors = m_colors(df["M"])
    order = df.sort_values("flops")
    role_arr = _roles(order, roles)
    point_colors = [colors[m] for m in order["M"]]
    c_lo, c_hi = df["flops"].min(), df["flops"].max() * extend
    for m, color in colors.items():
        sub = order[order["M"] == m]
        if result is None:
            ax.plot(sub["flops"], sub[loss], color=color, alpha=0.7, zorder=2)
            continue
        C = np.logspace(np.log10(c_lo), np.log10(c_hi), 120)
        N = np.sqrt(C / (6.0 * m))
        grid = pd.DataFrame({"N": N, "M": m, "D": m * N, "flops": C})
        pred = result.predict(grid, interval=None)["pred"].to_numpy()
        ax.plot(C, pred, color=color, alpha=0.85, zorder=2)
    y = order[loss].to_numpy()
    _scatter(ax, order["flops"].to_numpy(), y, point_colors, role_arr)
    ax.set(xscale="log", yscale="log", xlabel=label("flops"), ylabel=label(loss))
    # The axis follows the measured losses, so a fitted curve that runs far off
    # outside the data (a poor fit, a long extrapolation) is clipped, not shown whole.
    lo, hi = np.nanmin(y), np.nanmax(y)
    pad = (hi / lo) ** 0.08
    ax.set_ylim(lo / pad, hi * pad)
    if hi / lo < 10:  # less than a decade: a log locator would leave one or two labelled ticks
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_minor_locator(mpl.ticker.NullLocator())
    ax.yaxis.set_minor_formatter(mpl.ticker.FormatStrFormatter("%.1f"))
    ax.yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%.1f"))
    if title:
        ax.set_title(title)
    _legends(ax, colors, role_arr)
    return ax


def error_vs_loss(df, error, loss, *, result=None, chance=None, roles=None, ax=None,
                  title=None):
    """Downstream error against loss, with the fitted error law and the chance level.

    Parameters
    ----------
    df : pandas.DataFrame
        Runs with the error, loss and ``M`` columns.
    error, loss : str
        Columns of the error (y) and the loss (x).
    result : scaling_lib.fit.FitResult, optional
        The error law fitted with ``loss`` as its input.
    chance : float or str, optional
        Chance-level error, or the column holding it (its mean is drawn).
    roles : pandas.Series, optional
        Role per run, drawn as markers.
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.figure().gca()
    colors = m_colors(df["M"])
    role_arr = _roles(df, roles)
    _scatter(ax, df[loss].to_numpy(), df[error].to_numpy(), [colors[m] for m in df["M"]],
             role_arr)
    if result is not None:
        lo, hi = df[loss].min(), df[loss].max()
        grid = pd.DataFrame({loss: np.linspace(lo - 0.05 * (hi - lo), hi, 200)})
        ax.plot(grid[loss], result.predict(grid, interval=None)["pred"], color="black",
                linewidth=1.8, zorder=2, label="fitted error law")
    if chance is not None:
        level = float(df[chance].mean()) if isinstance(chance, str) else float(chance)
        ax.axhline(level, color="grey", linestyle="--", linewidth=1.2, zorder=1)
        ax.annotate("chance", (0.01, level), xycoords=("axes fraction", "data"),
                    ha="left", va="bottom", color="grey", fontsize=9)
    ax.set(xlabel=label(loss), ylabel=label(error))
    if title:
        ax.set_title(title)
    _legends(ax, colors, role_arr)
    return ax


def relative_error_heatmap(table, *, ax=None, vmax=None, cbar_label="relative error (%)"):
    """A heatmap of relative errors (e.g. evaluation sets by target runs), annotated.

    Parameters
    ----------
    table : pandas.DataFrame
        Numeric values; its index and columns label the rows and columns.
    ax : matplotlib.axes.Axes, optional
    vmax : float, optional
        Top of the colour scale (default: the largest value).
    cbar_label : str

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.figure(figsize=(1.1 * table.shape[1] + 3, 0.45 * table.shape[0] + 1.5)).gca()
    sns.heatmap(table.astype(float), ax=ax, annot=True, fmt=".1f", cmap="rocket_r", vmin=0,
                vmax=vmax, cbar_kws={"label": cbar_label}, linewidths=0.5,
                annot_kws={"fontsize": mpl.rcParams["xtick.labelsize"]})
    ax.set(xlabel="", ylabel="")
    ax.tick_params(axis="x", rotation=30)
    for tick in ax.get_xticklabels():
        tick.set_ha("right")
    return ax
