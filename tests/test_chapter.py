"""Chapter input checks (scaling_lib.chapter) and the short error of scripts/rerun_chapter.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from scaling_lib import chapter

ROOT = Path(__file__).resolve().parents[1]


def _table(n=6, **extra):
    N = 1e6 * (1 + pd.RangeIndex(n).to_numpy())
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "N": N, "D": 20 * N, "M": 20.0,
                       "flops": 120 * N ** 2, "loss_en": 4.0, "err_avg": 0.5})
    for k, v in extra.items():
        df[k] = v
    return df


def test_a_sound_table_passes_and_keeps_only_the_chosen_training_set():
    df = _table(train_set=["A", "A", "A", "B", "B", "B"])
    out = chapter.check_table(df, {"loss_col": "loss_en"}, source="t.csv", train_set="B", min_runs=3)
    assert out["train_set"].unique().tolist() == ["B"] and len(out) == 3
    first = chapter.check_table(df, {"loss_col": "loss_en"}, source="t.csv")
    assert first["train_set"].unique().tolist() == ["A"]


def test_the_train_set_column_is_optional():
    out = chapter.check_table(_table(), {"loss_col": "loss_en"}, source="t.csv", train_set="C4")
    assert len(out) == 6


@pytest.mark.parametrize("columns, match", [
    ({"loss_col": "loss_xx"}, r"parameter loss_col = 'loss_xx': t\.csv has no column 'loss_xx'; its loss columns: loss_en"),
    ({"error_col": "err_avg17"}, r"parameter error_col = 'err_avg17'.*its error columns: err_avg"),
    ({"published_cols": ["loss_en", "loss_de"]}, r"parameter published_cols = 'loss_de'"),
    ({"de_col": "bpb_de"}, r"it has no bits-per-byte column at all"),
])
def test_a_missing_column_names_the_parameter(columns, match):
    with pytest.raises(chapter.ChapterInputError, match=match):
        chapter.check_table(_table(), columns, source="t.csv")


def test_unknown_training_set_and_too_few_runs():
    df = _table(train_set="A")
    with pytest.raises(chapter.ChapterInputError, match=r"parameter train_set = 'Z': t\.csv holds training sets A"):
        chapter.check_table(df, {}, source="t.csv", train_set="Z")
    with pytest.raises(chapter.ChapterInputError, match=r"t\.csv: 6 runs, and this chapter's fits need at least 9"):
        chapter.check_table(df, {}, source="t.csv", min_runs=9)


def test_run_table_names_the_path_parameter(tmp_path):
    with pytest.raises(chapter.ChapterInputError, match=r"parameter runs_path = '.*nope': run table not found"):
        chapter.run_table(tmp_path / "nope", {})
    (tmp_path / "runs.csv").write_text("run_id,N\nr0,1\n")
    with pytest.raises(chapter.ChapterInputError, match=r"parameter runs_path = .*missing required column"):
        chapter.run_table(tmp_path, {})
    _table().to_csv(tmp_path / "runs.csv", index=False)
    assert len(chapter.run_table(tmp_path, {"loss_col": "loss_en"}, min_runs=6)) == 6


def test_check_choice():
    chapter.check_choice("objective", "lsq", ("lsq", "huber_log"), "fit objective")
    with pytest.raises(chapter.ChapterInputError, match="parameter objective = 'l1': not a known fit objective"):
        chapter.check_choice("objective", "l1", ("lsq", "huber_log"), "fit objective")


def test_rerun_prints_the_chapter_error_in_at_most_three_lines(tmp_path):
    out = tmp_path / "out.ipynb"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "rerun_chapter.sh"), "notebooks/overtraining_loss.md",
                           str(out), "-p", "loss_col", "loss_xx"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    ours = [line for line in proc.stderr.splitlines() if line.startswith("rerun_chapter:")]
    assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr
    assert "ChapterInputError: parameter loss_col = 'loss_xx'" in ours[0]
    assert "full traceback in" in ours[1] and out.is_file()


def test_a_chapter_runs_on_a_table_with_only_the_required_columns_and_its_loss(tmp_path):
    table = pd.read_csv(ROOT / "data" / "testbeds" / "cpu-tiny" / "runs.csv")
    minimal = tmp_path / "runs.csv"
    table[["run_id", "N", "D", "M", "flops", "loss_en"]].to_csv(minimal, index=False)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "rerun_chapter.sh"), "notebooks/overtraining_loss.md",
                           str(tmp_path / "out.ipynb"), "-p", "runs_path", str(minimal)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
