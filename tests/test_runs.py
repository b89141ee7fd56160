"""Tests for scaling_lib.runs: the run-table schema, loaders and atomic appends."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from scaling_lib import runs

from conftest import OPENLM, needs_openlm


def _table(**overrides):
    base = {"run_id": ["a", "b"], "N": [1e6, 2e6], "D": [2e7, 8e7], "M": [20.0, 40.0],
            "flops": [6 * 1e6 * 2e7, 6 * 2e6 * 8e7]}
    base.update(overrides)
    return pd.DataFrame(base)


# ----------------------------------------------------------------------------- published testbed


@needs_openlm
def test_openlm_counts(openlm):
    assert len(openlm) == 104
    assert openlm["run_id"].is_unique
    assert openlm.groupby("train_set").size().to_dict() == {"C4": 34, "RedPajama": 35,
                                                            "RefinedWeb": 35}
    assert sorted(openlm["model"].unique()) == sorted(
        ["d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8",
         "open_lm_1b", "open_lm_7b"])
    assert openlm["M"].min() == 5 and openlm["M"].max() == 640
    err_cols = [c for c in openlm.columns if c.startswith("err_") and "avg" not in c]
    assert len(err_cols) == 46
    assert not openlm[err_cols + ["err_avg17", "err_avg46"]].isna().any().any()


@needs_openlm
def test_openlm_spot_check_against_json(openlm):
    row = openlm.set_index("run_id").loc["rpj-open_lm_1b-32.0"]
    # literal values from exp_data/models/rpj-open_lm_1b-32.0.json and its evals file
    assert row["N"] == 1439795200 and row["D"] == 921468928000
    assert row["N_ne"] == 1336510464 and row["vocab_size"] == 50432
    assert row["M"] == 640 and row["train_set"] == "RedPajama"
    assert (row["d_model"], row["n_layers"], row["n_heads"]) == (2048, 24, 16)
    assert row["flops"] == pytest.approx(6 * 1439795200 * 921468928000)
    assert row["loss_c4_val"] == pytest.approx(2.502053562117363, rel=1e-12)
    assert row["loss_c4_val_lo"] == pytest.approx(2.4992918988385155, rel=1e-12)
    assert row["loss_c4_val_hi"] == pytest.approx(2.504789996610254, rel=1e-12)
    assert row["loss_val_de-en_100"] == pytest.approx(2.3582380935549736, rel=1e-12)
    assert row["loss_paloma_dolma_100_programing_languages"] == pytest.approx(1.2111714526950097)
    assert row["err_hellaswag"] == pytest.approx(1 - 0.6350328326225281)
    assert row["err_piqa"] == pytest.approx(1 - 0.7399346828460693)
    assert row["seed"] == 124 and row["lr"] == 0.003 and row["batch_size"] == 256


@needs_openlm
def test_openlm_every_loss_matches_json(openlm):
    """Each run's losses equal its JSON, read here independently of the loader."""
    table = openlm.set_index("run_id")
    for path in sorted((OPENLM / "models").glob("*.json")):
        spec = json.loads(path.read_text())
        for res in spec["results"]:
            folder, stem = path_parts(res["val_data"][0])
            name = stem if "de-en" in stem else folder
            assert table.loc[spec["name"], f"loss_{name}"] == res["loss"], (path, name)


def path_parts(p):
    parts = p.split("/")
    return parts[-2], parts[-1].split(".")[0]


@needs_openlm
def test_openlm_averages(openlm):
    row = openlm.iloc[0]
    subset = [row[f"err_{t}"] for t in runs.OPENLM_SUBSET17]
    assert row["err_avg17"] == pytest.approx(np.mean(subset))
    # chance error from eval_metadata.csv: copa 50% -> 0.5, squad 0% -> 1.0, hellaswag 25% -> 0.75
    meta = pd.read_csv(OPENLM / "eval_metadata.csv").set_index("Eval Task")["Random baseline"]
    expected = np.mean([1 - meta[t] / 100 for t in runs.OPENLM_SUBSET17])
    assert openlm["chance_avg17"].unique().tolist() == [pytest.approx(expected)]
    assert 0.5 < expected < 1


@needs_openlm
def test_load_runs_dispatches_to_openlm(openlm):
    df = runs.load_runs(OPENLM)
    pd.testing.assert_frame_equal(df, openlm)


def test_default_path_env(monkeypatch, tmp_path):
    monkeypatch.setenv(runs.OPENLM_TESTBED_ENV, str(tmp_path))
    assert runs.default_openlm_path() == tmp_path
    assert runs.default_openlm_path("/x/y").as_posix() == "/x/y"
    monkeypatch.delenv(runs.OPENLM_TESTBED_ENV)
    assert runs.default_openlm_path().parts[-3:] == ("shared", "testbeds", "gadre2024-openlm")


def test_eval_set_name_and_shape():
    assert runs.eval_set_name("training/eval_data/c4_val/shard-{0000000..0000010}.tar") == "c4_val"
    assert runs.eval_set_name("x/de-en/val_de-en_100.tar") == "val_de-en_100"
    assert runs.parse_shape("scaling/open_lm_configs/d=1024_l=24_h=8.json") == (1024, 24, 8)
    assert runs.parse_shape("open_lm_7b") == (4096, 32, 32)
    assert runs.parse_shape("mystery") is None


# ----------------------------------------------------------------------------- a fake exp_data


def _write_fake_exp_data(root, *, n_runs=2):
    (root / "models").mkdir(parents=True)
    (root / "evals").mkdir()
    tasks = list(runs.OPENLM_SUBSET17) + ["extra_task"]
    with open(root / "eval_metadata.csv", "w") as fh:
        fh.write("Eval Task,Task Category,Random baseline\n")
        for t in tasks:
            fh.write(f"{t},cat,25\n")
    for i in range(n_runs):
        name = f"rpj-d=96_l=8_h=4-{float(i + 1)}"
        N, mult = 10569312, float(i + 1)
        spec = {"name": name, "dataset_name": "rpj",
                "hyperparameters": {"model": "scaling/open_lm_configs/d=96_l=8_h=4.json",
                                    "params": N, "params_no_embed": N - 50432 * 96,
                                    "tokens": int(20 * mult * N), "chinchilla_multiplier": mult,
                                    "lr": 0.003, "warmup": 100, "global_bs": 64},
                "open_lm_args": ["--seed", "7"],
                "results": [{"loss": 4.0 - i, "loss_sequences_lower_95": 3.9 - i,
                             "loss_sequences_upper_95": 4.1 - i,
                             "val_data": ["a/b/c4_val/shard-0.tar"]},
                            {"loss": 5.0, "loss_sequences_lower_95": 4.9,
                             "loss_sequences_upper_95": 5.1,
                             "val_data": ["a/de-en/val_de-en_100.tar"]}]}
        (root / "models" / f"{name}.json").write_text(json.dumps(spec))
        evals = {"eval_metrics": {"icl": {t: 0.5 for t in tasks}}}
        (root / "evals" / f"evaluation_{name}_heavy.json").write_text(json.dumps(evals))
    return root


def test_fake_exp_data_loads(tmp_path):
    df = runs.load_runs(_write_fake_exp_data(tmp_path / "exp_data"))
    assert len(df) == 2 and df["M"].tolist() == [20.0, 40.0]
    assert df["seed"].tolist() == [7, 7]
    assert df["loss_c4_val"].tolist() == [4.0, 3.0]
    assert df["err_avg17"].tolist() == [0.5, 0.5] and df["chance_avg17"].iloc[0] == 0.75


def test_repository_clone_layout(tmp_path):
    _write_fake_exp_data(tmp_path / "scaling" / "exp_data")
    assert len(runs.load_openlm_testbed(tmp_path / "scaling")) == 2


def test_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        runs.load_openlm_testbed(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        runs.load_runs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no models/"):
        runs.load_openlm_testbed(tmp_path / "empty")
    with pytest.raises(runs.RunTableError, match="runs.csv"):
        runs.load_runs(tmp_path / "empty")


def test_malformed_json(tmp_path):
    root = _write_fake_exp_data(tmp_path)
    bad = sorted((root / "models").glob("*.json"))[1]
    bad.write_text('{"name": "x", "hyperparameters": {')
    with pytest.raises(runs.RunTableError, match=r"malformed JSON") as info:
        runs.load_openlm_testbed(root)
    assert bad.name in str(info.value)


def test_missing_key_and_eval_file(tmp_path):
    root = _write_fake_exp_data(tmp_path)
    path = sorted((root / "models").glob("*.json"))[0]
    spec = json.loads(path.read_text())
    del spec["hyperparameters"]["tokens"]
    path.write_text(json.dumps(spec))
    with pytest.raises(runs.RunTableError, match=r"missing key 'hyperparameters.tokens'"):
        runs.load_openlm_testbed(root)

    root = _write_fake_exp_data(tmp_path / "second")
    victim = sorted((root / "evals").glob("*.json"))[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name.replace("[", r"\[")):
        runs.load_openlm_testbed(root)


def test_bad_values_in_exp_data(tmp_path):
    root = _write_fake_exp_data(tmp_path)
    path = sorted((root / "models").glob("*.json"))[0]
    spec = json.loads(path.read_text())
    spec["hyperparameters"]["chinchilla_multiplier"] = 3.0  # tokens say 1.0
    path.write_text(json.dumps(spec))
    with pytest.raises(runs.RunTableError, match=r"tokens / params"):
        runs.load_openlm_testbed(root)

    root = _write_fake_exp_data(tmp_path / "acc")
    path = sorted((root / "evals").glob("*.json"))[0]
    path.write_text(json.dumps({"eval_metrics": {"icl": {"copa": 57.0}}}))
    with pytest.raises(runs.RunTableError, match=r"copa.*not in \[0, 1\]"):
        runs.load_openlm_testbed(root)

    root = _write_fake_exp_data(tmp_path / "meta")
    (root / "eval_metadata.csv").write_text("Eval Task,Random baseline\ncopa,fifty\n")
    with pytest.raises(runs.RunTableError, match=r"Random baseline.*line 2"):
        runs.load_openlm_testbed(root)


# ----------------------------------------------------------------------------- validation


def test_validate_accepts_good_table():
    df = _table()
    assert runs.validate_runs(df, source="t") is df


def test_validate_missing_column(tmp_path):
    path = tmp_path / "runs.csv"
    _table().drop(columns="flops").to_csv(path, index=False)
    with pytest.raises(runs.RunTableError, match=r"runs\.csv.*missing required column.*flops"):
        runs.load_runs(path)


@pytest.mark.parametrize("col,value", [("N", math.nan), ("N", -5.0), ("D", 0.0), ("D", math.inf)])
def test_validate_bad_n_d_names_run(col, value):
    values = _table()[col].tolist()
    values[1] = value
    with pytest.raises(runs.RunTableError, match=rf"'{col}'.*run_id \['b'\]"):
        runs.validate_runs(_table(**{col: values}), source="t")


def test_validate_duplicate_and_inconsistent():
    with pytest.raises(runs.RunTableError, match=r"duplicate run_id \['a'\]"):
        runs.validate_runs(_table(run_id=["a", "a"]))
    with pytest.raises(runs.RunTableError, match=r"'M' disagrees with D / N.*\['b'\]"):
        runs.validate_runs(_table(M=[20.0, 2.0]))
    with pytest.raises(runs.RunTableError, match=r"'flops' disagrees"):
        runs.validate_runs(_table(flops=[1.0, 1.0]))


# ----------------------------------------------------------------------------- append_run


def _row(run_id, N=1e6, M=20.0, **extra):
    return {"run_id": run_id, "N": N, "D": M * N, "M": M, "flops": 6 * N * M * N, **extra}


def test_append_run_roundtrip_and_skip(tmp_path):
    path = tmp_path / "sub" / "runs.csv"
    assert runs.append_run(path, _row("r0", loss_en=4.0))
    assert runs.append_run(path, _row("r1", N=2e6, bpb_en=1.5))
    assert not runs.append_run(path, _row("r0", loss_en=99.0))
    df = runs.load_runs(path.parent)
    assert df["run_id"].tolist() == ["r0", "r1"]
    assert df["loss_en"].iloc[0] == 4.0 and np.isnan(df["loss_en"].iloc[1])
    assert np.isnan(df["bpb_en"].iloc[0]) and df["bpb_en"].iloc[1] == 1.5
    assert not list(path.parent.glob("*.tmp"))


def test_append_run_refuses(tmp_path):
    path = tmp_path / "runs.csv"
    runs.append_run(path, _row("r0"))
    with pytest.raises(runs.RunTableError, match=r"'r0' is already in the table"):
        runs.append_run(path, _row("r0"), on_duplicate="error")
    with pytest.raises(runs.RunTableError, match=r"lacks required column\(s\) \['flops'\]"):
        runs.append_run(path, {k: v for k, v in _row("r2").items() if k != "flops"})
    bad = _row("r3")
    bad["N"] = -1.0
    with pytest.raises(runs.RunTableError, match=r"'N'.*\['r3'\]"):
        runs.append_run(path, bad)
    assert runs.load_runs(path)["run_id"].tolist() == ["r0"]  # failed appends left it intact


def test_append_run_failed_write_keeps_old_table(tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"
    runs.append_run(path, _row("r0"))
    before = path.read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        runs.append_run(path, _row("r1"))
    assert path.read_text() == before
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_append_run_file_mode_follows_umask(tmp_path, umask, mode):
    import os

    path = tmp_path / "runs.csv"
    old = os.umask(umask)
    try:
        runs.append_run(path, _row("r0"))
        assert path.stat().st_mode & 0o777 == mode
        runs.append_run(path, _row("r1"))  # the replacement, too
        assert path.stat().st_mode & 0o777 == mode
    finally:
        os.umask(old)


def test_append_run_failing_append_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"
    runs.append_run(path, _row("r0"))
    before = path.read_text()
    stale = tmp_path / ".runs.csv.abc123.tmp"  # left by a writer killed mid-append
    stale.write_text("run_id,N\n")

    def half_written(self, fh, **kwargs):
        fh.write("run_id,N,D\nr0,")
        raise KeyboardInterrupt  # any failure, not only an Exception

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    with pytest.raises(KeyboardInterrupt):
        runs.append_run(path, _row("r1"))
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv"]  # stale one cleared too


def test_append_run_refuses_non_finite_losses(tmp_path):
    path = tmp_path / "runs.csv"
    runs.append_run(path, _row("r0", loss_en=3.0))
    for col in ("loss_en", "loss_en_hi", "train_loss", "bpb_en"):
        with pytest.raises(runs.RunTableError, match=rf"run 'r1' has non-finite loss column\(s\) \{{'{col}': nan"):
            runs.append_run(path, _row("r1", **{col: float("nan")}))
    with pytest.raises(runs.RunTableError, match="non-finite"):
        runs.append_run(path, _row("r1", loss_en=float("inf")))
    assert runs.load_runs(path)["run_id"].tolist() == ["r0"]


def test_docstring_examples():
    import doctest

    assert doctest.testmod(runs).failed == 0
