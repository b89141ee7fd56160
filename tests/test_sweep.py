"""Tests for scaling_lib.training.sweep and scaling_lib.testbeds."""

import dataclasses
import json

import numpy as np
import pytest

from scaling_lib import designs, runs, testbeds
from scaling_lib.training import sweep
from scaling_lib.testbeds import RunSpec, Shape


def fake_testbed():
    return testbeds.Testbed(
        name="fake-tiny",
        description="two tiny shapes for tests",
        shapes=(Shape("a", 16, 1, 2), Shape("b", 16, 2, 2)),
        runs=(RunSpec("a", 0.5, role="fit"), RunSpec("b", 0.25, role="fit"), RunSpec("a", 0.25)),
        vocab_size=32,
        seq_len=16,
        batch_size=8,
        eval_points=2,
        eval_seqs=4,
    )


@pytest.fixture()
def corpus(tmp_path):
    """A corpus cache holding only the two token splits the trainer reads."""
    cache = tmp_path / "corpus"
    (cache / "tokens").mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(cache / "tokens" / "train_en.npy", (np.arange(20_000) * 7 % 32).astype(np.uint16))
    np.save(cache / "tokens" / "val_en.npy", rng.integers(0, 32, 3_000).astype(np.uint16))
    return cache


def paths_for(tmp_path, corpus):
    return sweep.SweepPaths(out_dir=tmp_path / "out", work_dir=tmp_path / "work", corpus_cache=corpus)


def test_sweep_trains_skips_finished_and_recovers(tmp_path, corpus):
    tb = fake_testbed()
    paths = paths_for(tmp_path, corpus)
    first = sweep.run_sweep(tb, paths, evaluate=False, max_runs=2, log=lambda m: None)
    # cheapest first: a (1 layer) at M=0.5 costs less than b (2 layers) at M=0.25
    assert first.done == ["a_M0.25_s0", "a_M0.5_s0"] and not first.failed
    table = runs.load_runs(paths.table)
    assert sorted(table["run_id"]) == ["a_M0.25_s0", "a_M0.5_s0"]
    row = table.set_index("run_id").loc["a_M0.25_s0"]
    assert row["D"] == tb.tokens(RunSpec("a", 0.25)) and row["M"] == pytest.approx(0.25, rel=1e-3)
    assert row["flops"] == pytest.approx(6 * row["N"] * row["D"])
    assert row["epochs"] == pytest.approx(row["D"] / 20_000)
    assert np.isfinite(row["loss_en"]) and row["loss_en_lo"] < row["loss_en"] < row["loss_en_hi"]
    record = json.loads(paths.record("a_M0.25_s0").read_text())
    assert record["curve"][-1]["tokens"] == row["D"] and record["config"]["tokens"] == row["D"]
    assert paths.final_model("a_M0.25_s0").exists() and not paths.checkpoint("a_M0.25_s0").exists()

    second = sweep.run_sweep(tb, paths, evaluate=False, log=lambda m: None)
    assert second.done == ["b_M0.25_s0"]
    assert sorted(second.skipped) == ["a_M0.25_s0", "a_M0.5_s0"]
    assert len(runs.load_runs(paths.table)) == 3

    # a run whose JSON record was written but whose row was lost is appended without retraining
    table = runs.load_runs(paths.table)
    table[table.run_id != "a_M0.5_s0"].to_csv(paths.table, index=False)
    third = sweep.run_sweep(tb, paths, evaluate=False, log=lambda m: None)
    assert third.done == [] and "a_M0.5_s0" in third.skipped
    assert len(runs.load_runs(paths.table)) == 3


def test_sweep_two_workers(tmp_path, corpus):
    tb = fake_testbed()
    paths = paths_for(tmp_path, corpus)
    out = sweep.run_sweep(tb, paths, workers=2, evaluate=False, max_runs=2, log=lambda m: None)
    assert sorted(out.done) == ["a_M0.25_s0", "a_M0.5_s0"] and not out.failed
    assert len(runs.load_runs(paths.table)) == 2


def test_missing_corpus_gives_clear_error(tmp_path):
    paths = paths_for(tmp_path, tmp_path / "empty")
    with pytest.raises(sweep.SweepError, match="needs corpus split 'train_en'.*not built"):
        sweep.run_sweep(fake_testbed(), paths, evaluate=False, log=lambda m: None)


def test_unknown_testbed_cli_lists_known(capsys):
    with pytest.raises(SystemExit) as exc:
        sweep.main(["--testbed", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown testbed 'nope'" in err and "cpu-tiny" in err and "gpu-small" in err


@pytest.mark.parametrize("text", ["2/2", "a/b", "1", "0/0"])
def test_bad_shard(text):
    with pytest.raises(ValueError, match="shard"):
        sweep.parse_shard(text)


def test_plan_is_cheapest_first_and_shards_partition():
    tb = designs.get_testbed("cpu-tiny")
    full = sweep.plan(tb)
    costs = [tb.flops(r) for r in full]
    assert costs == sorted(costs)
    parts = [sweep.plan(tb, (i, 3)) for i in range(3)]
    assert sorted(r.run_id for p in parts for r in p) == sorted(r.run_id for r in full)


def test_cpu_tiny_design():
    tb = designs.get_testbed("cpu-tiny")
    assert len(tb.shapes) >= 5 and len(tb.runs) >= 30
    ms = [r.multiplier for r in tb.runs]
    assert min(ms) <= 5 and max(ms) >= 320
    by_n = sorted(tb.shapes, key=lambda s: tb.n_params(s))
    fit = [r for r in tb.runs if r.role == "fit"]
    assert {(r.shape, r.multiplier) for r in fit} == {(s.name, 20) for s in by_n[:4]} | {(by_n[0].name, 320)}
    fit_max = max(tb.flops(r) for r in fit)
    targets = [r for r in tb.runs if r.role == "target"]
    assert targets and all(tb.flops(r) >= 10 * fit_max for r in targets)


def test_testbed_validation():
    with pytest.raises(ValueError, match="unknown shapes"):
        testbeds.Testbed(name="x", description="", shapes=(Shape("a", 16, 1, 2),), runs=(RunSpec("z", 1.0),))
    with pytest.raises(ValueError, match="duplicate runs"):
        testbeds.Testbed(name="x", description="", shapes=(Shape("a", 16, 1, 2),), runs=(RunSpec("a", 1.0),) * 2)
    with pytest.raises(ValueError, match="role"):
        RunSpec("a", 1.0, role="other")


class Crash(Exception):
    pass


def test_sweep_resumes_a_killed_run_from_its_checkpoint(tmp_path, corpus):
    from scaling_lib.training.corpora import load_tokens
    from scaling_lib.training.train import train

    tb = dataclasses.replace(fake_testbed(), checkpoint_every_s=0.0)  # a checkpoint after every step
    paths = paths_for(tmp_path, corpus)
    run = RunSpec("a", 0.5, role="fit")

    def crash(step):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        train(tb.train_config(run), load_tokens("train_en", corpus), load_tokens("val_en", corpus),
              checkpoint_path=paths.checkpoint(run.run_id), progress=False, on_step=crash)
    assert paths.checkpoint(run.run_id).exists()
    out = sweep.run_sweep(tb, paths, evaluate=False, max_runs=2, log=lambda m: None)
    assert "a_M0.5_s0" in out.done
    record = json.loads(paths.record("a_M0.5_s0").read_text())
    assert record["resumed_from_step"] == 3
    assert not paths.checkpoint(run.run_id).exists()
