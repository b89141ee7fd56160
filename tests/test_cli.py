"""The command line (scaling_lib.cli): each subcommand on the committed cpu-tiny table, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scaling_lib import cli, laws

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "data" / "testbeds" / "cpu-tiny")
EXAMPLE = ROOT / "data" / "examples" / "own-runs"
LAW = ["--law", "overtraining", "--target", "loss_en"]


def run(capsys, *argv):
    """Exit status, stdout and stderr of one in-process call."""
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def short_error(capsys, *argv):
    """The stderr of a call that must fail on bad input: status 2, at most two lines, no traceback."""
    status, out, err = run(capsys, *argv)
    assert status == cli.EXIT_USAGE, (status, out, err)
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err and out == ""
    return err


# --- the subcommands ----------------------------------------------------------------------------


def test_laws_lists_every_law_with_formula_and_parameters(capsys):
    status, out, _ = run(capsys, "laws")
    assert status == 0
    for law in laws.ALL_LAWS:
        assert law.name in out and law.latex() in out
        assert ", ".join(law.param_names) in out.replace(" [", ",").replace("], ", ", ") or \
            all(name in out for name in law.param_names)


def test_fit_prints_the_report(capsys):
    status, out, _ = run(capsys, "fit", TINY, *LAW, "--boot", "20")
    assert status == 0
    assert "runs       31 of" in out and "n=31  k=4  dof=27" in out
    assert "95% CI" in out and "eta" in out


def test_fit_json_is_the_summary_and_the_query_selects_runs(capsys):
    status, out, _ = run(capsys, "fit", TINY, *LAW, "--json", "--fit-query", "role == 'fit'")
    assert status == 0
    summary = json.loads(out)
    table = pd.read_csv(Path(TINY) / "runs.csv")
    assert summary["n_data"] == int((table["role"] == "fit").sum())
    assert summary["law"] == "overtraining" and summary["target"] == "loss_en"
    assert set(summary["params"]) == {"E", "a", "b", "eta"}
    assert isinstance(summary["warnings"], list)


class _WithWarnings:
    """A fit result with ``warnings`` (a list of sentences), as FitResult gains them."""

    def __init__(self, result, in_report):
        self._result, self._in_report = result, in_report
        self.warnings = ["the data leave the exponent free"]

    def __getattr__(self, name):
        return getattr(self._result, name)

    def report(self):
        text = self._result.report()
        return text + "\n  warning: " + self.warnings[0] if self._in_report else text


@pytest.mark.parametrize("in_report", [False, True])
def test_fit_prints_each_fit_warning_once(capsys, monkeypatch, in_report):
    real = cli.fitting.fit
    monkeypatch.setattr(cli.fitting, "fit", lambda *a, **k: _WithWarnings(real(*a, **k), in_report))
    status, out, _ = run(capsys, "fit", TINY, *LAW)
    assert status == 0 and out.count("the data leave the exponent free") == 1
    status, out, _ = run(capsys, "fit", TINY, *LAW, "--json")
    assert json.loads(out)["warnings"] == ["the data leave the exponent free"]


def test_fit_reads_an_input_from_another_column(capsys):
    status, out, _ = run(capsys, "fit", TINY, "--law", "error", "--target", "err_avg",
                         "--input", "L=loss_en", "--json")
    assert status == 0
    assert json.loads(out)["inputs"] == {"L": "loss_en"}


def test_predict_gives_intervals_for_new_runs(capsys):
    status, out, _ = run(capsys, "predict", TINY, *LAW, "--at", "N=2e6,M=20", "--at", "N=2e6,D=8e7",
                         "--boot", "20", "--json")
    assert status == 0
    rows = json.loads(out)["predictions"]
    assert [r["M"] for r in rows] == [20.0, 40.0]
    for r in rows:
        assert r["lo"] <= r["pred"] <= r["hi"]
        assert_allclose(r["flops"], 6 * r["N"] ** 2 * r["M"])


def test_predict_table_names_the_interval(capsys):
    status, out, _ = run(capsys, "predict", TINY, *LAW, "--at", "N=2e6,M=20", "--boot", "10",
                         "--interval", "0.8")
    assert status == 0
    assert "lo 80%" in out and "hi 80%" in out and "C/C_fit" in out


def test_backtest_fits_smaller_runs_and_predicts_larger_ones(capsys, tmp_path):
    csv = tmp_path / "bt.csv"
    status, out, _ = run(capsys, "backtest", TINY, *LAW, "--csv", str(csv))
    assert status == 0 and "err %" in out
    table = pd.read_csv(csv)
    assert table["split"].nunique() == 3
    assert (table["to_largest_fit"] > 1).all()  # every predicted run costs more than every fit run
    assert (table["status"] == "ok").all()
    first = table[table["split"] == table["split"].iloc[0]]
    assert first["n_fit"].iloc[0] >= laws.OVERTRAINING.n_params + 1


def test_backtest_shape_splits(capsys):
    status, out, _ = run(capsys, "backtest", TINY, *LAW, "--split", "shapes")
    assert status == 0 and "smallest" in out


def test_default_cutoffs_span_the_table():
    flops = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert cli.default_cutoffs(flops, n_params=2, n_splits=2) == [4.0, 16.0]
    assert_allclose(cli.default_cutoffs(flops, n_params=2, n_splits=3), [4.0, 8.0, 16.0])


def test_the_example_table_recovers_its_true_parameters(capsys):
    """The page "Your own runs" fits this table; its data card states the true parameters."""
    status, out, _ = run(capsys, "fit", str(EXAMPLE), "--law", "overtraining", "--target", "loss_val",
                         "--json", "--boot", "100")
    assert status == 0
    summary = json.loads(out)
    assert summary["n_data"] == 12
    true = {"E": 1.8, "a": 480.0, "b": 560.0, "eta": 0.15}
    for name, value in true.items():
        lo, hi = summary["bootstrap"]["ci95"][name]
        assert lo <= value <= hi, (name, lo, hi)


def test_the_example_table_is_what_its_script_makes():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_example_runs
    finally:
        sys.path.pop(0)
    made = make_example_runs.make_table()
    committed = pd.read_csv(EXAMPLE / "runs.csv", dtype={"run_id": str})
    assert list(made["run_id"]) == list(committed["run_id"])
    assert_allclose(made["loss_val"], committed["loss_val"], rtol=1e-5)


def test_python_m_scaling_lib_runs_without_torch():
    out = subprocess.run([sys.executable, "-m", "scaling_lib", "laws"], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert "overtraining" in out.stdout and out.stderr == ""
    code = "import sys; from scaling_lib import cli; cli.main(['laws']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("command", ["fit", "predict", "backtest", "laws"])
def test_every_subcommand_has_help(capsys, command):
    status, out, _ = run(capsys, command, "--help")
    assert status == 0 and "usage:" in out


# --- bad input ----------------------------------------------------------------------------------


def test_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.csv"
    err = short_error(capsys, "fit", str(missing), *LAW)
    assert str(missing) in err and "not found" in err


def test_missing_column(capsys):
    err = short_error(capsys, "fit", TINY, "--law", "overtraining", "--target", "loss_xx")
    assert "'loss_xx'" in err and "cpu-tiny" in err


def test_missing_input_column_suggests_input(capsys):
    err = short_error(capsys, "fit", TINY, "--law", "saturating_power", "--target", "loss_en")
    assert "'x'" in err and "--input x=COLUMN" in err


def test_unknown_law(capsys):
    err = short_error(capsys, "fit", TINY, "--law", "overtrainin", "--target", "loss_en")
    assert "unknown law 'overtrainin'" in err and "'overtraining'" in err


def test_too_few_runs(capsys):
    err = short_error(capsys, "fit", TINY, *LAW, "--fit-query", "model == 's6' or run_id == 's1_M5_s0'")
    assert "2 run(s)" in err and "4 parameters" in err


def test_bad_query_and_empty_query(capsys):
    err = short_error(capsys, "fit", TINY, *LAW, "--fit-query", "no_such_column > 1")
    assert "no_such_column" in err
    err = short_error(capsys, "fit", TINY, *LAW, "--fit-query", "N < 0")
    assert "selects no run" in err


@pytest.mark.parametrize("at, words", [
    ("N=1e9", "needs M"),
    ("N=1e9,Q=3", "no input 'Q'"),
    ("N=abc,M=20", "'abc' is not a number"),
    ("N1e9,M=20", "expected NAME=VALUE"),
    ("N=-1,M=20", "positive"),
])
def test_bad_at(capsys, at, words):
    err = short_error(capsys, "predict", TINY, *LAW, "--at", at)
    assert words in err and repr(at) in err


def test_bad_option_is_short_too(capsys):
    err = short_error(capsys, "fit", TINY, "--law", "overtraining")
    assert "--target" in err


def test_nan_target_names_the_run(capsys, tmp_path):
    table = pd.read_csv(Path(TINY) / "runs.csv")
    table.loc[3, "loss_en"] = float("nan")
    path = tmp_path / "runs.csv"
    table.to_csv(path, index=False)
    err = short_error(capsys, "fit", str(path), *LAW)
    assert str(path) in err and table.loc[3, "run_id"] in err
    assert '--fit-query "loss_en == loss_en"' in err
    status, _, _ = run(capsys, "fit", str(path), *LAW, "--fit-query", "loss_en == loss_en")
    assert status == 0


def test_debug_shows_the_traceback(capsys, tmp_path):
    with pytest.raises(cli.UsageError):
        cli.main(["fit", str(tmp_path / "nope.csv"), *LAW, "--debug"])
