"""Tests for scaling_lib.curves."""

import json

import numpy as np
import pytest

from scaling_lib import curves


def write_record(folder, run_id, *, tokens=1000, points=4, wall=2.0, **extra):
    rec = {
        "run_id": run_id,
        "role": "grid",
        "multiplier": 5,
        "config": {"tokens": tokens, "seed": 1, "model": {"d_model": 16, "n_layers": 2}},
        "curve": [
            {"step": i + 1, "tokens": tokens * (i + 1) // points, "loss_en": 6.0 - i}
            for i in range(points)
        ],
        "train_wall_s": wall,
        "eval_wall_s": 0.5,
        "device": "cpu",
        "torch_threads": 1,
    }
    rec.update(extra)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.json"
    path.write_text(json.dumps(rec))
    return path


def test_curves_long_format_from_testbed_dir(tmp_path):
    write_record(tmp_path / "runs", "a", tokens=1000, points=4)
    write_record(tmp_path / "runs", "b", tokens=600, points=3)
    df = curves.load_curves(tmp_path)
    assert len(df) == 7
    assert sorted(df["run_id"].unique()) == ["a", "b"]
    a = df[df["run_id"] == "a"]
    np.testing.assert_array_equal(a["tokens"], [250, 500, 750, 1000])
    np.testing.assert_allclose(a["frac"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(a["loss_en"], [6, 5, 4, 3])
    assert set(a["seed"]) == {1} and set(a["d_model"]) == {16}
    # the runs/ folder and a single file work as well
    assert len(curves.load_curves(tmp_path / "runs")) == 7
    assert len(curves.load_curves(tmp_path / "runs" / "b.json")) == 3


def test_records_throughput_and_empty(tmp_path):
    write_record(tmp_path, "a", tokens=1000, wall=4.0)
    rec = curves.load_records(tmp_path)
    assert rec["tokens_per_s"].iloc[0] == pytest.approx(250.0)
    assert rec["eval_wall_s"].iloc[0] == 0.5
    assert rec["device"].iloc[0] == "cpu"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert curves.load_records(empty).empty
    assert curves.load_curves(empty).empty
    assert "tokens" in curves.load_curves(empty).columns


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        curves.load_curves(tmp_path / "nowhere")


def test_bad_records_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(curves.CurveError, match="bad.json.*not a JSON"):
        curves.load_curves(bad)
    path = write_record(tmp_path / "r", "x")
    rec = json.loads(path.read_text())
    del rec["curve"][1]["tokens"]
    path.write_text(json.dumps(rec))
    with pytest.raises(curves.CurveError, match=r"x.json: curve point 1 of run 'x' lacks \['tokens'\]"):
        curves.load_curves(path)
    no_cfg = write_record(tmp_path / "s", "y")
    rec = json.loads(no_cfg.read_text())
    del rec["config"]
    no_cfg.write_text(json.dumps(rec))
    with pytest.raises(curves.CurveError, match="no 'config' field"):
        curves.load_records(no_cfg)
    zero = write_record(tmp_path / "t", "z", wall=0.0)
    with pytest.raises(curves.CurveError, match="train_wall_s must be positive"):
        curves.load_records(zero)


def test_reads_a_real_sweep_record(tmp_path):
    """The module reads what the sweep writes (a tiny run through the public sweep API)."""
    from scaling_lib import sweep, testbeds
    from scaling_lib.testbeds import RunSpec, Shape

    cache = tmp_path / "corpus"
    (cache / "tokens").mkdir(parents=True)
    np.save(cache / "tokens" / "train_en.npy", (np.arange(8000) * 5 % 32).astype(np.uint16))
    np.save(cache / "tokens" / "val_en.npy", (np.arange(2000) * 3 % 32).astype(np.uint16))
    tb = testbeds.Testbed(
        name="curve-test", description="one tiny run", shapes=(Shape("a", 16, 1, 2),),
        runs=(RunSpec("a", 0.5),), vocab_size=32, seq_len=16, batch_size=8,
        eval_points=3, eval_seqs=4,
    )
    paths = sweep.SweepPaths(out_dir=tmp_path / "out", work_dir=tmp_path / "work", corpus_cache=cache)
    sweep.run_sweep(tb, paths, evaluate=False, log=lambda m: None)
    df = curves.load_curves(paths.out_dir)
    assert list(df["run_id"].unique()) == ["a_M0.5_s0"]
    assert df["tokens"].iloc[-1] == tb.tokens(tb.runs[0]) and df["frac"].iloc[-1] == 1.0
    assert np.all(np.diff(df["step"]) > 0) and np.isfinite(df["loss_en"]).all()
    rec = curves.load_records(paths.out_dir)
    assert rec["tokens_per_s"].iloc[0] > 0 and rec["multiplier"].iloc[0] == 0.5
