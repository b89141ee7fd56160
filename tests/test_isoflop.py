"""Tests of scaling_lib.isoflop: the IsoFLOP design as data, its cost estimate and its testbed."""

import math
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose

from scaling_lib import counting, isoflop
from scaling_lib.training import sweep
from scaling_lib.testbeds import RunSpec, Shape


@pytest.fixture(scope="module")
def design():
    return isoflop.cpu_isoflop_design()


def test_every_run_spends_its_budget(design):
    t = design.table()
    assert t["run_id"].is_unique
    # D is rounded to whole tokens: 6 N D equals the budget to well under a token's worth
    assert_allclose(6 * t["N"] * t["D"], t["budget"], rtol=1e-5)
    assert_allclose(t["M"], t["D"] / t["N"])
    assert (t["steps"] == -(-t["D"] // (design.batch_size * design.seq_len))).all()


def test_main_grid_windows_centre_on_the_expected_optimum(design):
    t = design.table()
    main = t[t["purpose"] == "isoflop"]
    assert sorted(main["budget"].unique()) == [5e11, 1.5e12, 4.5e12, 1.35e13]
    ladder_n = np.array([design.n_params(s) for s in isoflop.CPU_LADDER])
    for C, grp in main.groupby("budget"):
        assert grp["model"].nunique() == 6
        centre = np.exp(np.log(grp["N"]).mean())
        n_star = math.sqrt(C / 120)
        # no other window of 6 consecutive shapes is closer
        others = [abs(np.log(ladder_n[i:i + 6]).mean() - math.log(n_star)) for i in range(len(ladder_n) - 5)]
        assert abs(math.log(centre / n_star)) <= min(others) + 1e-12
        assert grp["N"].min() < n_star < grp["N"].max()
        assert (grp["warmup_frac"].between(0.1, 0.12)).all()


def test_warmup_variant_and_lr_sweep(design):
    t = design.table().set_index("run_id")
    long = t[t["purpose"] == "warmup"]
    assert sorted(long["budget"].unique()) == [5e11, 1.5e12]
    assert (long["warmup_steps"] == np.minimum(200, long["steps"])).all()
    for rid, row in long.iterrows():  # the same run as in the main grid, apart from the warmup
        base = t.loc[rid.removesuffix("_wlong")]
        assert base["D"] == row["D"] and base["lr"] == row["lr"] and base["warmup_steps"] < row["warmup_steps"]
    lr = t[t["purpose"] == "lr_sweep"]
    assert sorted(lr["model"].unique()) == ["i0", "i2", "i4", "i6", "i8"]
    for rid, row in lr.iterrows():
        base = t.loc[rid.rsplit("_lr", 1)[0]]
        assert_allclose(row["lr"], base["lr"] * row["lr_scale"])
        assert row["D"] == base["D"]
    assert sorted(lr["lr_scale"].unique()) == [0.5, 2.0]


def test_convention_sets_the_tokens():
    tb = isoflop.cpu_isoflop_design(budgets=(1e12,), warmup_budgets=0, lr_scales=())
    kaplan = isoflop.IsoFLOPTestbed(name="k", description="", shapes=tb.shapes, runs=tb.runs,
                                    convention="6N_ne_D", warmup_rules=tb.warmup_rules)
    for run in tb.runs:
        shape = tb.gpt_config(run.shape).shape()
        n_ne = counting.param_counts(shape)["non_embedding"]
        assert abs(6 * n_ne * kaplan.tokens(run) - 1e12) <= 6 * n_ne
        assert kaplan.tokens(run) > tb.tokens(run)


def test_cost_estimate(design):
    cost = isoflop.estimate_cost(design)
    per = cost.per_run
    assert_allclose(per["est_s"], per["D"] / (isoflop.throughput(per["N"]) * 0.5) + 15.0)
    assert cost.worker_s / 2 / 3600 <= cost.wall_h <= cost.worker_s / 3600
    assert set(cost.by_purpose) == {"isoflop", "warmup", "lr_sweep"}
    assert cost.wall_h < 2.0  # the design targets about 1.5 hours on two workers
    faster = isoflop.estimate_cost(design, load_factor=1.0)
    assert faster.worker_s < cost.worker_s


def test_throughput_interpolates_and_clamps():
    for n, tps in isoflop.SINGLE_THREAD_THROUGHPUT:
        assert_allclose(isoflop.throughput(n), tps)
    assert_allclose(isoflop.throughput([1e3, 1e8]), [58e3, 6.2e3])
    mid = isoflop.throughput(math.sqrt(91e3 * 182e3))[0]
    assert_allclose(mid, math.sqrt(58e3 * 30e3))


def test_testbed_runs_in_the_sweep(design):
    planned = sweep.plan(design)
    assert len(planned) == len(design.runs)
    flops = [design.flops(r) for r in planned]
    assert flops == sorted(flops)
    run = planned[0]
    cfg = design.train_config(run)
    assert cfg.tokens == design.tokens(run) and cfg.warmup_steps >= 1
    clone = pickle.loads(pickle.dumps(design))  # workers receive the testbed pickled
    assert clone == design and clone.train_config(run) == cfg


def test_bad_input():
    with pytest.raises(ValueError, match="kind must be one of"):
        isoflop.WarmupRule("linear", 0.1)
    with pytest.raises(ValueError, match="out of range"):
        isoflop.WarmupRule("run_fraction", 1.5)
    with pytest.raises(ValueError, match="budget must be positive"):
        isoflop.IsoFLOPRunSpec("i0", 20.0)
    shapes = (Shape("a", 16, 2, 1),)
    with pytest.raises(ValueError, match="run 'a_C1e12_wnope' names unknown warmup rule 'nope'"):
        isoflop.IsoFLOPTestbed(name="x", description="", shapes=shapes,
                               runs=(isoflop.IsoFLOPRunSpec("a", 1.0, budget=1e12, warmup="nope"),))
    with pytest.raises(TypeError, match="is not an IsoFLOPRunSpec"):
        isoflop.IsoFLOPTestbed(name="x", description="", shapes=shapes, runs=(RunSpec("a", 20),))
    with pytest.raises(ValueError, match="unknown FLOP convention"):
        isoflop.IsoFLOPTestbed(name="x", description="", shapes=shapes, runs=(), convention="7ND")
    with pytest.raises(ValueError, match="sizes_per_budget"):
        isoflop.cpu_isoflop_design(sizes_per_budget=2)
    with pytest.raises(ValueError, match="increasing parameter count"):
        isoflop.cpu_isoflop_design(shapes=tuple(reversed(isoflop.CPU_LADDER)))
    with pytest.raises(ValueError, match="load_factor"):
        isoflop.estimate_cost(isoflop.cpu_isoflop_design(), load_factor=0.0)


def test_hyperparameters_follow_the_reference_testbed(design):
    from scaling_lib import designs

    ref = designs.get_testbed("cpu-tiny")
    for key in ("base_lr", "base_width", "lr_width_exponent", "batch_size", "seq_len", "vocab_size",
                "min_lr_ratio", "weight_decay", "train_split", "val_split"):
        assert getattr(design, key) == getattr(ref, key)
    run = design.runs[0]
    d = design.gpt_config(run.shape).d_model
    assert_allclose(design.train_config(run).lr, ref.base_lr * (ref.base_width / d) ** ref.lr_width_exponent)


def test_sweep_trains_an_isoflop_testbed(tmp_path):
    """End to end on a fake corpus: per-run tokens, learning rate and warmup reach the run table."""
    from scaling_lib import runs

    cache = tmp_path / "corpus"
    (cache / "tokens").mkdir(parents=True)
    np.save(cache / "tokens" / "train_en.npy", (np.arange(20_000) * 7 % 32).astype(np.uint16))
    np.save(cache / "tokens" / "val_en.npy", np.random.default_rng(0).integers(0, 32, 3_000).astype(np.uint16))
    shapes = (Shape("a", 16, 1, 2), Shape("b", 16, 2, 2))
    budget = 3e7
    tb = isoflop.IsoFLOPTestbed(
        name="fake-isoflop", description="", shapes=shapes, vocab_size=32, seq_len=16, batch_size=8,
        eval_points=2, eval_seqs=4,
        runs=(isoflop.IsoFLOPRunSpec("a", 1.0, budget=budget),
              isoflop.IsoFLOPRunSpec("b", 1.0, budget=budget, lr_scale=2.0, warmup="long", purpose="warmup")),
        warmup_rules=(("scaled", isoflop.WarmupRule("run_fraction", 0.1)), ("long", isoflop.WarmupRule("fixed", 5))),
    )
    paths = sweep.SweepPaths(out_dir=tmp_path / "out", work_dir=tmp_path / "work", corpus_cache=cache)
    out = sweep.run_sweep(tb, paths, evaluate=False, log=lambda m: None)
    assert not out.failed, out.failed
    table = runs.load_runs(paths.table).set_index("run_id")
    assert sorted(table.index) == ["a_C3e7", "b_C3e7_lr2_wlong"]
    assert_allclose(table["flops"], budget, rtol=1e-3)
    plan = tb.table().set_index("run_id")
    assert (table["warmup"] == plan.loc[table.index, "warmup_steps"]).all()
    assert_allclose(table["lr"], plan.loc[table.index, "lr"])
    merged = table.join(isoflop.design_frame(tb).set_index("run_id"))
    assert merged["purpose"].tolist() == ["isoflop", "warmup"]


def test_hyperparameters_from_a_testbed_object(design):
    from scaling_lib import designs

    same = isoflop.cpu_isoflop_design(hparams_from=designs.get_testbed("cpu-tiny"))
    assert same == design
    with pytest.raises(TypeError, match="hparams_from must be a Testbed"):
        isoflop.cpu_isoflop_design(hparams_from="cpu-tiny")
