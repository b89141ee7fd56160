"""Tests for scaling_lib.protocols: fit/target selection and prediction-error tables."""

import numpy as np
import pandas as pd
import pytest

from scaling_lib import protocols, runs

from conftest import OPENLM, needs_openlm


def _grid(sizes=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0), mults=(5, 20, 80, 320), groups=("A", "B")):
    rows = []
    for g in groups:
        for n in sizes:
            for m in mults:
                rows.append({"run_id": f"{g}-{n}-{m}", "train_set": g, "model": f"s{n:g}",
                             "N": n, "M": float(m), "D": n * m, "flops": 6 * n * n * m})
    return pd.DataFrame(rows)


@needs_openlm
def test_paper_protocol_on_published_testbed(openlm):
    roles = protocols.assign_roles(openlm)
    for train_set, group in openlm.groupby("train_set"):
        fit = protocols.select(group, "loss_fit")
        assert len(fit) == 5, train_set
        assert sorted(fit["M"]) == [20, 20, 20, 20, 320]
        assert fit.loc[fit["M"] == 320, "model"].tolist() == ["d=96_l=8_h=4"]
        err_fit = protocols.select(group, "error_fit")
        assert len(err_fit) == 6
        extra = err_fit.loc[~err_fit.index.isin(fit.index)]
        assert extra["model"].tolist() == ["open_lm_1b"] and extra["M"].tolist() == [20]
        targets = protocols.select(group, "target")
        assert sorted(targets["model"]) == ["open_lm_1b", "open_lm_7b"]
        assert (targets.loc[targets["model"] == "open_lm_1b", "M"] > 20).all()
    assert (roles == "target").sum() == 6
    # the paper's over-trained 1.4B targets: C4 M=80, RedPajama M=640, RefinedWeb M=320
    tgt = protocols.select(openlm, "target")
    one_b = tgt[tgt["model"] == "open_lm_1b"].set_index("train_set")["M"].to_dict()
    assert one_b == {"C4": 80, "RedPajama": 640, "RefinedWeb": 320}


def test_ranks_are_per_group():
    df = _grid()
    df.loc[df["train_set"] == "B", "N"] *= 10  # other sizes in group B: ranks restart
    ranks = protocols.size_rank(df)
    assert ranks[df["train_set"] == "A"].tolist() == ranks[df["train_set"] == "B"].tolist()
    assert ranks.min() == 0 and ranks.max() == 5


def test_roles_on_synthetic_grid():
    df = _grid()
    roles = protocols.assign_roles(df).groupby(df["train_set"]).value_counts().unstack()
    # per group: 4 sizes at M=20 + smallest at M=320 = 5; size 5 at M=20; sizes 5-6 others = 7
    assert roles.loc["A"].to_dict() == {"error_fit": 1, "loss_fit": 5, "target": 7, "unused": 11}
    custom = protocols.Protocol(n_small_shapes=3, overtrained_M=(80.0, 320.0),
                                n_overtrained_shapes=2, n_error_extra_shapes=0, group_by=None)
    fit = protocols.select(df[df["train_set"] == "A"], "loss_fit", custom)
    assert len(fit) == 3 + 2 * 2
    assert len(protocols.select(df[df["train_set"] == "A"], "error_fit", custom)) == 7


def test_bad_protocol_and_inputs():
    with pytest.raises(ValueError, match="n_overtrained_shapes cannot exceed"):
        protocols.Protocol(n_small_shapes=1, n_overtrained_shapes=2)
    with pytest.raises(runs.MissingColumnError, match=r"\['N'\]"):
        protocols.assign_roles(_grid().drop(columns="N"))
    # a table without the group column is one group
    one = _grid()
    one = one[one["train_set"] == one["train_set"].iloc[0]]
    assert protocols.assign_roles(one.drop(columns="train_set")).tolist() == protocols.assign_roles(one).tolist()
    with pytest.raises(ValueError, match="unknown role 'fit'"):
        protocols.select(_grid(), "fit")


def test_role_grid_orders_by_size():
    grid = protocols.role_grid(_grid(groups=("A",)))
    assert grid.index.tolist() == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert grid.loc["s1", 320.0] == "loss_fit" and grid.loc["s6", 20.0] == "target"


class _Known:
    """A fitted-law double whose prediction is a known function of the table."""

    def __init__(self, column, scale):
        self.column, self.scale = column, scale

    def predict(self, df, interval=0.95):
        pred = self.scale * df[self.column].to_numpy(float)
        out = pd.DataFrame({"pred": pred})
        if interval is not None:
            out["lo"], out["hi"] = pred * 0.99, pred * 1.01
        return out


def test_relative_error_table():
    df = _grid(groups=("A",)).assign(loss=lambda d: 2.0 + 1.0 / d["N"])
    table = protocols.relative_error_table(_Known("loss", 1.02), df, "loss", interval=0.9)
    np.testing.assert_allclose(table["rel_err_pct"], 2.0)
    np.testing.assert_allclose(table["error"], 0.02 * df["loss"])
    assert not table["covered"].any()
    assert list(table.columns[:5]) == ["run_id", "train_set", "model", "N", "M"]
    plain = protocols.relative_error_table(_Known("loss", 1.005), df, "loss")
    assert "lo" not in plain and np.allclose(plain["rel_err_pct"], 0.5)
    df.loc[3, "loss"] = np.nan
    with pytest.raises(ValueError, match=r"'loss'.*\['A-1.0-320'\]"):
        protocols.relative_error_table(_Known("loss", 1.0), df, "loss")


def test_chained_error_table():
    df = _grid(groups=("A",)).assign(loss=lambda d: 2.0 + 1.0 / d["N"], err=0.5)
    loss_law = _Known("N", 3.0)      # predicted loss = 3 N
    err_law = _Known("loss", 0.1)    # predicted error = 0.1 loss
    table = protocols.chained_error_table(loss_law, err_law, df, "loss", "err")
    np.testing.assert_allclose(table["pred_loss"], 3.0 * df["N"])
    np.testing.assert_allclose(table["pred"], 0.3 * df["N"])
    np.testing.assert_allclose(table["pred_from_actual_loss"], 0.1 * df["loss"])
    np.testing.assert_allclose(table["rel_err_pct"], 100 * np.abs(0.3 * df["N"] - 0.5) / 0.5)
    assert (df["loss"] == 2.0 + 1.0 / df["N"]).all()  # the input table is left unchanged


@needs_openlm
def test_paper_loss_fit_predicts_targets(openlm):
    fit = pytest.importorskip("scaling_lib.fit")
    laws = pytest.importorskip("scaling_lib.laws")
    rpj = openlm[openlm["train_set"] == "RedPajama"]
    res = fit.fit(laws.OVERTRAINING, protocols.select(rpj, "loss_fit"), target="loss_c4_val",
                  objective="lsq")
    table = protocols.relative_error_table(res, protocols.select(rpj, "target"), "loss_c4_val")
    # extrapolating ~300x in compute from five runs: within a few percent, as the paper reports
    assert (table["rel_err_pct"] < 5.0).all(), table


# --- table_roles: recorded design roles, or the protocol's ---------------------------------------

NOGROUP = protocols.Protocol(group_by=None)


def _design():
    rows = [(1, 20, "fit"), (1, 320, "fit"), (1, 5, "grid"), (2, 20, "fit"), (2, 40, "grid"),
            (3, 5, "grid"), (3, 10, "grid"), (3, 40, "target"), (4, 20, "target")]
    df = pd.DataFrame(rows, columns=["N", "M", "role"])
    df["run_id"] = [f"n{n}_M{m}" for n, m, _ in rows]
    return df


def test_table_roles_reads_recorded_column():
    df = _grid(groups=("A",)).assign(role="grid")
    df.loc[0, "role"] = "fit"
    roles = protocols.table_roles(df, error_fit=False)
    assert roles.tolist()[:2] == ["loss_fit", "unused"]
    assert set(roles) == {"loss_fit", "unused"}
    assert roles.name == "role"


def test_table_roles_without_error_fit_falls_back_to_paper_protocol():
    df = _grid(mults=(5, 10, 20, 40, 80, 320), groups=("A",))
    roles = protocols.table_roles(df, NOGROUP, error_fit=False)
    fit = df[roles == "loss_fit"]
    assert sorted(zip(fit["N"], fit["M"])) == [(1, 20), (1, 320), (2, 20), (3, 20), (4, 20)]
    # the paper's error-law run (5th size at M=20) is neither fitted nor a target here
    assert roles[(df["N"] == 5) & (df["M"] == 20)].tolist() == ["unused"]
    assert set(df.loc[roles == "target", "N"]) == {5, 6}
    assert "error_fit" not in set(roles)


def test_table_roles_adds_nearest_reference_run_of_next_size():
    df = _design()
    roles = protocols.table_roles(df, NOGROUP)
    assert roles[roles == "error_fit"].index.tolist() == [6]  # size 3 at M=10, not the target
    assert (roles[df["role"] == "fit"] == "loss_fit").all()
    assert (roles[df["role"] == "target"] == "target").all()
    assert roles.name == "role"
    # without the error-law run, the recorded design alone
    assert (protocols.table_roles(df, NOGROUP, error_fit=False)
            == df["role"].map(protocols.RECORDED_ROLES)).all()


def test_table_roles_prefers_exact_reference_M():
    df = pd.concat([_design(), pd.DataFrame({"N": [3], "M": [20], "role": ["grid"],
                                             "run_id": ["n3_M20"]})], ignore_index=True)
    roles = protocols.table_roles(df, NOGROUP)
    assert df.loc[roles == "error_fit", "run_id"].tolist() == ["n3_M20"]


def test_table_roles_per_group_and_without_role_column():
    df = pd.concat([_design().assign(train_set="A"), _design().assign(train_set="B")],
                   ignore_index=True)
    roles = protocols.table_roles(df)
    assert (roles == "error_fit").sum() == 2
    plain = df.drop(columns="role")
    assert protocols.table_roles(plain).equals(protocols.assign_roles(plain))
    assert (protocols.table_roles(df, protocols.Protocol(n_error_extra_shapes=0))
            != "error_fit").all()


def test_table_roles_on_a_partial_table_uses_the_full_design():
    design = _design()
    partial = design.iloc[[0, 3, 5]].drop(columns="role").assign(extra=1.0)
    partial = pd.concat([partial, pd.DataFrame({"run_id": ["not_planned"], "N": [9], "M": [20]})],
                        ignore_index=True)
    roles = protocols.table_roles(partial, NOGROUP, design=design)
    # n3_M5 is not the error-law run of the full design (n3_M10 is), although it is the only
    # size-3 run present
    assert roles.tolist() == ["loss_fit", "loss_fit", "unused", "unused"]
    full = protocols.table_roles(design.drop(columns="role"), NOGROUP, design=design)
    assert full.tolist() == protocols.table_roles(design, NOGROUP).tolist()
    with pytest.raises(runs.MissingColumnError, match="run_id"):
        protocols.table_roles(partial.drop(columns="run_id"), NOGROUP, design=design)


@pytest.mark.parametrize("bad", ["train", "holdout"])
def test_table_roles_rejects_unknown_recorded_role(bad):
    df = _design()
    df.loc[3, "role"] = bad
    with pytest.raises(ValueError, match=f"unknown role.*{bad}"):
        protocols.table_roles(df, NOGROUP)
    with pytest.raises(ValueError, match=f"unknown role.*{bad}"):
        protocols.table_roles(df, error_fit=False)


def test_docstring_examples():
    import doctest

    assert doctest.testmod(protocols).failed == 0
