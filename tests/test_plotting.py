"""Tests for scaling_lib.plotting: figures draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from scaling_lib import plotting  # noqa: E402


class _Line:
    """A fitted-law double: pred = 2 + 1e3 * flops^-0.1 or 1 - 0.1 * loss."""

    def predict(self, df, interval=None):
        if "flops" in df:
            return pd.DataFrame({"pred": 2.0 + 1e3 * df["flops"].to_numpy() ** -0.1})
        return pd.DataFrame({"pred": 1.0 - 0.1 * df["loss"].to_numpy()})


@pytest.fixture
def table():
    N = np.repeat([1e6, 1e7, 1e8], 2)
    M = np.tile([20.0, 80.0], 3)
    flops = 6 * N * N * M
    return pd.DataFrame({"N": N, "M": M, "D": N * M, "flops": flops,
                         "loss": 2.0 + 1e3 * flops ** -0.1, "err": 0.5, "chance": 0.75})


def test_use_style_and_labels():
    plotting.use_style()
    assert matplotlib.rcParams["axes.spines.right"] is False
    assert plotting.label("bpb_en") == "bits per byte on en"
    assert plotting.label("flops").startswith("training compute")
    colors = plotting.m_colors([5, 20, 320])
    assert len(colors) == 3 and colors[5] != colors[320]


def test_loss_vs_compute_draws_one_curve_per_m(table):
    roles = pd.Series(["loss_fit", "unused", "loss_fit", "unused", "target", "target"],
                      index=table.index)
    ax = plotting.loss_vs_compute(table, "loss", result=_Line(), roles=roles, extend=2.0)
    assert len(ax.lines) == 2
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    curve = ax.lines[0]
    np.testing.assert_allclose(curve.get_ydata(), 2.0 + 1e3 * curve.get_xdata() ** -0.1)
    assert curve.get_xdata().max() == pytest.approx(2.0 * table["flops"].max())
    plt.close("all")


def test_error_vs_loss_chance_and_curve(table):
    ax = plotting.error_vs_loss(table, "err", "loss", result=_Line(), chance="chance")
    ys = [line.get_ydata() for line in ax.lines]
    assert any(np.allclose(y, 0.75) for y in ys)  # the chance line
    assert len(ax.collections) >= 1
    plt.close("all")


def test_relative_error_heatmap():
    ax = plotting.relative_error_heatmap(pd.DataFrame({"a": [1.0, 2.0]}, index=["x", "y"]))
    assert [t.get_text() for t in ax.texts] == ["1.0", "2.0"]
    plt.close("all")


def test_docstring_examples():
    import doctest

    assert doctest.testmod(plotting).failed == 0
