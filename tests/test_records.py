"""Tests for scaling_lib.records."""

import json

import numpy as np
import pytest

from scaling_lib import records


def write_record(folder, run_id, *, tokens=1000, wall=2.0, **extra):
    rec = {
        "run_id": run_id,
        "role": "grid",
        "multiplier": 5,
        "config": {"tokens": tokens, "seed": 1},
        "curve": [{"step": 1, "tokens": tokens, "loss_en": 5.0}],
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


def test_one_row_per_run_with_throughput(tmp_path):
    write_record(tmp_path / "runs", "a", tokens=1000, wall=4.0)
    write_record(tmp_path / "runs", "b", tokens=600, wall=2.0, device="cuda")
    df = records.load_records(tmp_path)
    assert list(df.columns) == list(records.COLUMNS)
    assert df["run_id"].tolist() == ["a", "b"]
    np.testing.assert_allclose(df["tokens_per_s"], [250.0, 300.0])
    assert df["device"].tolist() == ["cpu", "cuda"] and df["seed"].tolist() == [1, 1]
    # the runs/ folder and a single file work as well
    assert len(records.load_records(tmp_path / "runs")) == 2
    assert records.load_records(tmp_path / "runs" / "b.json")["tokens"].tolist() == [600]


def test_missing_fields_stay_empty(tmp_path):
    path = write_record(tmp_path, "a")
    rec = json.loads(path.read_text())
    for key in ("eval_wall_s", "train_wall_s", "device"):
        del rec[key]
    path.write_text(json.dumps(rec))
    row = records.load_records(tmp_path).iloc[0]
    assert np.isnan(row["tokens_per_s"]) and row["device"] is None


def test_empty_and_missing_directories(tmp_path):
    assert records.load_records(tmp_path).empty
    assert list(records.load_records(tmp_path).columns) == list(records.COLUMNS)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        records.load_records(tmp_path / "nowhere")


def test_bad_records_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(records.RecordError, match="bad.json.*not a JSON"):
        records.load_records(bad)
    no_cfg = write_record(tmp_path / "s", "y")
    rec = json.loads(no_cfg.read_text())
    del rec["config"]
    no_cfg.write_text(json.dumps(rec))
    with pytest.raises(records.RecordError, match=r"y.json: run record has no 'config'"):
        records.load_records(no_cfg)
    no_tokens = write_record(tmp_path / "t", "z", config={"seed": 0})
    with pytest.raises(records.RecordError, match="no 'tokens'"):
        records.load_records(no_tokens)
    zero = write_record(tmp_path / "u", "w", wall=0.0)
    with pytest.raises(records.RecordError, match="train_wall_s must be a positive number"):
        records.load_records(zero)


def test_reads_a_real_sweep_record(tmp_path):
    """The module reads what the sweep writes (a tiny run through the public sweep API)."""
    from scaling_lib import testbeds
    from scaling_lib.training import sweep
    from scaling_lib.testbeds import RunSpec, Shape

    cache = tmp_path / "corpus"
    (cache / "tokens").mkdir(parents=True)
    np.save(cache / "tokens" / "train_en.npy", (np.arange(8000) * 5 % 32).astype(np.uint16))
    np.save(cache / "tokens" / "val_en.npy", (np.arange(2000) * 3 % 32).astype(np.uint16))
    tb = testbeds.Testbed(
        name="records-test", description="one tiny run", shapes=(Shape("a", 16, 1, 2),),
        runs=(RunSpec("a", 0.5, seed=3),), vocab_size=32, seq_len=16, batch_size=8,
        eval_points=3, eval_seqs=4,
    )
    paths = sweep.SweepPaths(out_dir=tmp_path / "out", work_dir=tmp_path / "work", corpus_cache=cache)
    sweep.run_sweep(tb, paths, evaluate=False, log=lambda m: None)
    df = records.load_records(paths.out_dir)
    row = df.iloc[0]
    assert row["run_id"] == "a_M0.5_s3" and row["seed"] == 3 and row["multiplier"] == 0.5
    assert row["tokens"] == tb.tokens(tb.runs[0])
    assert row["tokens_per_s"] > 0 and row["train_wall_s"] > 0 and row["device"] == "cpu"
