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


# ----------------------------------------------------------------------------- trust: failures, checkpoints, claims


def diverging_testbed():
    """Shape ``z`` (d_model 8) gets lr = 0.015 * 2**100 and diverges; shape ``a`` trains normally."""
    return testbeds.Testbed(
        name="fake-diverging",
        description="one healthy run, one with a learning rate far too high",
        shapes=(Shape("a", 16, 1, 2), Shape("z", 8, 1, 2)),
        runs=(RunSpec("a", 0.25), RunSpec("z", 0.5)),
        vocab_size=32, seq_len=16, batch_size=8, eval_points=2, eval_seqs=4,
        base_width=16.0, lr_width_exponent=100.0,
    )


def test_diverging_run_is_failed_not_recorded_and_cli_exits_nonzero(tmp_path, corpus, monkeypatch, capsys):
    tb = diverging_testbed()
    monkeypatch.setattr(sweep, "get_testbed", lambda name: tb)
    out, work = tmp_path / "out", tmp_path / "work"
    code = sweep.main(["--testbed", tb.name, "--out", str(out), "--work", str(work),
                       "--corpus-cache", str(corpus), "--no-evals"])
    assert code == 1
    text = capsys.readouterr().out
    assert "FAILED z_M0.5_s0 (nothing recorded)" in text and "TrainingDiverged" in text
    assert "run z_M0.5_s0 (d_model=8" in text and "diverged at step" in text
    assert "[sweep] done: 1 trained, 0 already finished, 1 failed (z_M0.5_s0)" in text
    table = runs.load_runs(out / "runs.csv")
    assert table["run_id"].tolist() == ["a_M0.25_s0"] and np.isfinite(table["loss_en"]).all()
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["a_M0.25_s0.json"]
    assert not list(out.rglob("*.tmp")) and not list(work.rglob("*.tmp"))


def test_corrupt_checkpoint_is_reported_and_the_run_trained_from_scratch(tmp_path, corpus):
    import os

    from scaling_lib.training.corpora import load_tokens
    from scaling_lib.training.train import CheckpointError, load_checkpoint, train

    run = RunSpec("a", 0.5, role="fit")
    tb = dataclasses.replace(fake_testbed(), runs=(run,), checkpoint_every_s=0.0)
    paths = paths_for(tmp_path, corpus)
    ckpt = paths.checkpoint(run.run_id)

    def crash(step):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        train(tb.train_config(run), load_tokens("train_en", corpus), load_tokens("val_en", corpus),
              checkpoint_path=ckpt, progress=False, on_step=crash)
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its SHA-256"):
        load_checkpoint(ckpt, tb.train_config(run))
    messages = []
    old = os.umask(0o022)
    try:
        out = sweep.run_sweep(tb, paths, evaluate=False, log=messages.append)
    finally:
        os.umask(old)
    assert out.done == [run.run_id] and not out.failed
    assert "does not match its SHA-256" in out.restarted[run.run_id]
    assert any(m.startswith(f"[sweep] not resuming {run.run_id}: checkpoint") for m in messages)
    assert "1 restarted from scratch (a_M0.5_s0)" in str(out)
    assert json.loads(paths.record(run.run_id).read_text())["resumed_from_step"] == 0
    assert paths.rejected(ckpt.name).read_bytes() == bytes(data) and not ckpt.exists()
    for f in (paths.table, paths.record(run.run_id)):
        assert f.stat().st_mode & 0o777 == 0o644, f


def _row_for(tb, run):
    N, D = tb.n_params(run.shape), tb.tokens(run)
    return {"run_id": run.run_id, "N": N, "D": D, "M": D / N, "flops": 6.0 * N * D, "loss_en": 3.0}


def test_locked_run_is_skipped_and_the_table_rechecked_before_training(tmp_path, corpus):
    from filelock import FileLock

    first, second = RunSpec("a", 0.25), RunSpec("a", 0.5, role="fit")
    tb = dataclasses.replace(fake_testbed(), runs=(first, second))
    paths = paths_for(tmp_path, corpus)
    paths.lock(first.run_id).parent.mkdir(parents=True)
    other = FileLock(paths.lock(first.run_id), timeout=0)  # "another sweep" is training the first run

    def log(msg):  # ... and finishes the second after this sweep has planned it
        if "to train" in msg:
            runs.append_run(paths.table, _row_for(tb, second))

    with other:
        out = sweep.run_sweep(tb, paths, evaluate=False, log=log)
    assert out.done == [] and not out.failed
    assert out.locked == [first.run_id] and out.skipped == [second.run_id]
    assert str(out) == "0 trained, 1 already finished, 1 locked by another sweep (a_M0.25_s0), 0 failed"
    assert runs.load_runs(paths.table)["run_id"].tolist() == [second.run_id]  # the other sweep's row
    assert not paths.record(first.run_id).exists() and not paths.checkpoint(first.run_id).exists()


def test_record_with_a_non_finite_row_is_not_recovered(tmp_path, corpus):
    run = RunSpec("a", 0.25)
    tb = dataclasses.replace(fake_testbed(), runs=(run,))
    paths = paths_for(tmp_path, corpus)
    paths.record(run.run_id).parent.mkdir(parents=True)
    paths.record(run.run_id).write_text(json.dumps({"row": {**_row_for(tb, run), "loss_en": float("nan")}}))
    messages = []
    out = sweep.run_sweep(tb, paths, evaluate=False, max_runs=0, log=messages.append)
    assert out.done == [] and out.skipped == [] and not paths.table.exists()
    assert not paths.record(run.run_id).exists() and paths.rejected(f"{run.run_id}.json").exists()
    assert any("record of a_M0.25_s0 is unusable" in m and "non-finite" in m for m in messages)


def _concurrent_sweep(tmp, corpus, barrier, name):
    """One of two sweeps started together on the same testbed and output directory."""
    import os
    from pathlib import Path

    tmp = Path(tmp)
    real = sweep.train_run

    def counting(testbed, run, paths, **kw):  # one line per training start
        with open(tmp / "starts.txt", "a") as fh:
            fh.write(f"{name} {run.run_id} {os.getpid()}\n")
        return real(testbed, run, paths, **kw)

    sweep.train_run = counting
    tb = dataclasses.replace(fake_testbed(), runs=(RunSpec("a", 0.25), RunSpec("a", 0.5, role="fit")))
    paths = sweep.SweepPaths(out_dir=tmp / "out", work_dir=tmp / "work", corpus_cache=Path(corpus))
    barrier.wait(timeout=120)
    out = sweep.run_sweep(tb, paths, evaluate=False, log=lambda m: None)
    (tmp / f"{name}.json").write_text(json.dumps(dataclasses.asdict(out)))


def test_two_concurrent_sweeps_train_each_run_once(tmp_path, corpus):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_concurrent_sweep, args=(str(tmp_path), str(corpus), barrier, name))
             for name in ("A", "B")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    ids = ["a_M0.25_s0", "a_M0.5_s0"]
    starts = (tmp_path / "starts.txt").read_text().split("\n")[:-1]
    assert sorted(line.split()[1] for line in starts) == ids  # each run trained once, by one process
    table = runs.load_runs(tmp_path / "out" / "runs.csv")
    assert sorted(table["run_id"]) == ids
    summaries = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("A", "B")}
    assert sorted(summaries["A"]["done"] + summaries["B"]["done"]) == ids
    for name, s in summaries.items():
        assert not s["failed"] and sorted(s["done"] + s["skipped"] + s["locked"]) == ids, (name, s)
        assert {line.split()[1] for line in starts if line.startswith(name)} == set(s["done"])
    for run_id in ids:
        record = json.loads((tmp_path / "out" / "runs" / f"{run_id}.json").read_text())
        assert record["resumed_from_step"] == 0  # nobody resumed from the other's live checkpoint
