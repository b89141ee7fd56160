"""Tables, checks and figures of the training-testbed chapter (``notebooks/training_testbed.md``).

The chapter trains two runs live with :mod:`scaling_lib.training.sweep` and presents the committed
run table of a testbed (:mod:`scaling_lib.testbeds`).  The training calls stay in the chapter; this
module holds what it builds around them, and needs no torch:

* corpus and tokenizer: :func:`corpus_splits`, :func:`corpus_view`, :func:`sources_text`,
  :func:`tokenization_text`, :func:`unigram_loss`;
* model family and recipe: :func:`shape_table`, :func:`recipe_table`, :func:`param_share_figure`,
  :func:`lr_schedule_figure`;
* live runs: :func:`live_testbed`, :func:`plan_text`, :func:`compare_twins`, :func:`schedule_gap`,
  :func:`live_curves_figure`;
* the committed testbed: :func:`read_curves`, :func:`committed_table`, :func:`records_table`,
  :func:`stale_runs`, :func:`design_grid`, :func:`run_name`, :func:`curve_reading`,
  :func:`seed_noise`, :func:`bpb_table`, :func:`range_over_multipliers`, :func:`seed_range`,
  :func:`throughput`, :func:`task_table`; figures :func:`curves_figure`,
  :func:`final_loss_figure`, :func:`bpb_figure`, :func:`throughput_figure`,
  :func:`error_vs_loss_figure` (these live in :mod:`scaling_lib.training_figures`).

Runs are selected by their columns (shape, seed, multiplier, role), never by name.  Every
sentence of the chapter is written there, not here.

Examples
--------
>>> df = pd.DataFrame({"model": "a", "M": 20.0, "seed": [0, 1], "D": 100.0,
...                    "loss_en": [4.0, 4.1]})
>>> float(round(seed_noise(df).spread["range"].iloc[0], 3))
0.1
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling_lib import counting, curves, records, runs, testbeds
from scaling_lib.prose import in_words, short
from scaling_lib.training_figures import (bpb_figure, curves_figure,  # noqa: F401
                                          error_vs_loss_figure, final_loss_figure, live_curves_figure,
                                          lr_schedule_figure, param_share_figure, shape_colors,
                                          throughput_figure)

__all__ = ["corpus_splits", "corpus_view", "sources_text", "tokenization_text", "unigram_loss",
           "shape_table", "param_share_figure", "recipe_table", "lr_schedule_figure",
           "live_testbed", "plan_text", "read_curves", "Reproduction", "compare_twins",
           "live_curves_figure", "ScheduleGap", "schedule_gap", "committed_table",
           "records_table", "stale_runs", "design_grid", "run_name", "curves_figure",
           "CurveReading", "curve_reading", "shape_colors", "final_loss_figure", "SeedNoise",
           "seed_noise", "bpb_figure", "bpb_table", "range_over_multipliers", "seed_range",
           "Throughput", "throughput", "throughput_figure", "error_vs_loss_figure", "task_table"]

DOMAIN_COLUMNS = ("model", "role", "seed", "lr", "warmup", "wall_s", "epochs", "loss_en_lo",
                  "loss_en_hi", "err_avg", "chance_avg")
"""Columns the chapter's figures read besides ``loss_<domain>`` and ``bpb_<domain>``."""


# ----------------------------------------------------------------------------- corpus, tokenizer


def corpus_splits(stats: Mapping) -> pd.DataFrame:
    """One row per split of a corpus build (``data/corpora_stats.json`` parsed): ``n_docs``,
    ``n_bytes``, ``n_tokens`` and ``bytes_per_token``, as floats.

    Examples
    --------
    >>> s = {"splits": {"val_en": {"n_docs": 2, "n_bytes": 50, "n_tokens": 20,
    ...                            "bytes_per_token": 2.5, "sha256_tokens": "x"}}}
    >>> float(corpus_splits(s).loc["val_en", "bytes_per_token"])
    2.5
    """
    return pd.DataFrame(stats["splits"]).T[
        ["n_docs", "n_bytes", "n_tokens", "bytes_per_token"]].astype(float)


def corpus_view(splits: pd.DataFrame):
    """:func:`corpus_splits` for the page: readable column names, thousands separators."""
    view = splits.set_axis(["documents", "UTF-8 bytes", "tokens", "bytes/token"], axis=1)
    return view.style.format({"documents": "{:,.0f}", "UTF-8 bytes": "{:,.0f}",
                              "tokens": "{:,.0f}", "bytes/token": "{:.3f}"})


def sources_text(stats: Mapping, width: int = 72) -> str:
    """Megabytes and source names per language of a corpus build.

    Examples
    --------
    >>> s = {"sources": [{"language": "en", "name": "a", "n_bytes": 2e6},
    ...                  {"language": "en", "name": "b", "n_bytes": 1e6}]}
    >>> print(sources_text(s))
    en: 3.0 MB from 2 sources
      a, b
    """
    sources = pd.DataFrame(stats["sources"])
    lines = []
    for language, group in sources.groupby("language", sort=False):
        lines.append(f"{language}: {group['n_bytes'].sum() / 1e6:.1f} MB from "
                     f"{len(group)} sources")
        lines.append(textwrap.fill(", ".join(group["name"]), width,
                                   initial_indent="  ", subsequent_indent="  "))
    return "\n".join(lines)


def tokenization_text(tok, examples: Mapping[str, str], width: int = 66) -> str:
    """How ``tok`` cuts each example text (domain: text): tokens, bytes per token, the pieces.

    ``tok.encode(text).tokens`` lists the pieces (a ``tokenizers`` tokenizer); the byte-level
    space marker ``\u0120`` is shown as ``_``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> tok = SimpleNamespace(encode=lambda t: SimpleNamespace(tokens=["ab", "\u0120c"]))
    >>> print(tokenization_text(tok, {"en": "ab c"}))
    en      2 tokens, 2.00 bytes/token:
          ab|_c
    """
    lines = []
    for domain, text in examples.items():
        pieces = tok.encode(text).tokens
        n_bytes = len(text.encode("utf-8"))
        lines.append(f"{domain:5s} {len(pieces):3d} tokens, "
                     f"{n_bytes / len(pieces):.2f} bytes/token:")
        shown = "|".join(p.replace("\u0120", "_") for p in pieces)
        lines.append(textwrap.fill(shown, width, initial_indent="      ",
                                   subsequent_indent="      "))
    return "\n".join(lines)


def unigram_loss(train_ids, val_ids, vocab_size: int) -> float:
    """Loss in nats per token on ``val_ids`` of a unigram model counted on ``train_ids``.

    Every token count gets one added (Laplace smoothing), so no token has probability zero.

    Examples
    --------
    >>> round(unigram_loss([0, 0, 1], [0, 1], vocab_size=2), 4)
    0.7136
    """
    freq = np.bincount(np.asarray(train_ids), minlength=vocab_size) + 1.0
    return float(-np.log(freq / freq.sum())[np.asarray(val_ids)].mean())


# ----------------------------------------------------------------------------- model family, recipe


def shape_table(tb: testbeds.Testbed) -> pd.DataFrame:
    """Per shape: ``d``, ``layers``, ``heads``, ``N`` (total), ``N_ne`` (non-embedding),
    ``emb.``, ``head`` and ``emb+head`` (the share of ``N`` in the embedding and the head).

    Examples
    --------
    >>> t = shape_table(testbeds.cpu_tiny())
    >>> int(t.loc["s1", "N"]), round(float(t.loc["s1", "emb+head"]), 3)
    (63192, 0.778)
    """
    rows = []
    for s in tb.shapes:
        c = counting.param_counts(tb.gpt_config(s).shape())
        rows.append({"shape": s.name, "d": s.d_model, "layers": s.n_layers,
                     "heads": s.n_heads, "N": c["total"], "N_ne": c["non_embedding"],
                     "emb.": c["embedding"], "head": c["head"],
                     "emb+head": (c["embedding"] + c["head"]) / c["total"]})
    return pd.DataFrame(rows).set_index("shape")


def recipe_table(tb: testbeds.Testbed, multiplier: float = 20) -> pd.DataFrame:
    """What the rule gives each shape at one multiplier: lr, warmup, steps, tokens.

    Examples
    --------
    >>> int(recipe_table(testbeds.cpu_tiny()).loc["s1", "steps at M=20"])
    309
    """
    rows = []
    for s in tb.shapes:
        cfg = tb.train_config(testbeds.RunSpec(s.name, multiplier))
        rows.append({"shape": s.name, "N": short(tb.n_params(s.name)), "lr": cfg.lr,
                     "warmup steps": cfg.warmup_steps,
                     f"steps at M={multiplier:g}": cfg.total_steps,
                     f"D at M={multiplier:g}": short(cfg.tokens)})
    return pd.DataFrame(rows).set_index("shape")


# ----------------------------------------------------------------------------- live runs


def live_testbed(tb: testbeds.Testbed, pairs=None) -> testbeds.Testbed:
    """A testbed of a few runs of ``tb``, trained live with the same recipe.

    Parameters
    ----------
    pairs : list of (shape, multiplier), str or None
        The runs; a JSON string (what ``papermill -p`` passes) is parsed; ``None``: the
        smallest shape at ``M = 5`` and ``M = 20``.

    Examples
    --------
    >>> live = live_testbed(testbeds.cpu_tiny())
    >>> live.name, [r.run_id for r in live.runs]
    ('cpu-tiny-live', ['s1_M5_s0', 's1_M20_s0'])
    >>> [r.run_id for r in live_testbed(testbeds.cpu_tiny(), '[["s2", 10]]').runs]
    ['s2_M10_s0']
    """
    if isinstance(pairs, str):
        pairs = json.loads(pairs)
    if pairs is None:
        pairs = [(tb.shapes[0].name, 5), (tb.shapes[0].name, 20)]
    return dataclasses.replace(tb, name=f"{tb.name}-live", runs=tuple(
        testbeds.RunSpec(str(s), float(m)) for s, m in pairs))


def plan_text(tb: testbeds.Testbed) -> str:
    """One line per run of a testbed: its parameters, tokens and steps.

    Examples
    --------
    >>> print(plan_text(live_testbed(testbeds.cpu_tiny(), [["s1", 5]])))
    s1_M5_s0: N = 63,192, D = 315,960 tokens, 78 steps
    """
    return "\n".join(f"{run.run_id}: N = {tb.n_params(run.shape):,}, "
                     f"D = {tb.tokens(run):,} tokens, "
                     f"{tb.train_config(run).total_steps} steps" for run in tb.runs)


def read_curves(path, tb: testbeds.Testbed) -> pd.DataFrame:
    """Validation curves of the runs under ``path`` with their ``M``, ``seed`` and ``role``.

    Runs that are not in the testbed's design are left out; no rows (with the columns
    ``run_id``, ``step``, ``tokens``, ``loss``, ``M``, ``seed``, ``role``) when no run has
    finished yet.

    Examples
    --------
    >>> import tempfile
    >>> read_curves(tempfile.mkdtemp(), testbeds.cpu_tiny()).empty
    True
    """
    spec = tb.table()[["run_id", "M", "seed", "role"]]
    try:
        found = curves.load_curves(path, target=tb.loss_column)
    except FileNotFoundError:  # no run has finished yet
        found = pd.DataFrame(columns=["run_id", "step", "tokens", "loss"])
    return found.merge(spec, on="run_id")


@dataclass(frozen=True)
class Reproduction:
    """Live runs beside their committed twins (:func:`compare_twins`).

    ``twins``: the live runs with a committed run of the same id, recipe, budget and corpus
    build; ``ends``: per live run the last point of its curve (``live``), of its twin's
    (``committed``) and their ``difference``; ``worst``: the largest absolute difference
    (``nan`` without twins); ``committed_curves``: the twins' committed curves.
    """

    twins: list
    ends: pd.DataFrame
    worst: float
    committed_curves: pd.DataFrame


def compare_twins(live: pd.DataFrame, committed: pd.DataFrame, live_curves: pd.DataFrame,
                  committed_curves: pd.DataFrame,
                  keys=("run_id", "lr", "warmup", "D", "data_version")) -> Reproduction:
    """Match live runs to committed runs of the same configuration and compare curve ends.

    Examples
    --------
    >>> row = {"run_id": "a", "lr": 0.1, "warmup": 2, "D": 10, "data_version": "v"}
    >>> c = pd.DataFrame({"run_id": "a", "tokens": [5, 10], "loss": [5.0, 4.0]})
    >>> rep = compare_twins(pd.DataFrame([row]), pd.DataFrame([row]), c, c.assign(loss=[5.0, 4.01]))
    >>> rep.twins, round(rep.worst, 3)
    (['a'], 0.01)
    """
    keys = list(keys)
    twins = live[keys].merge(committed.reindex(columns=keys), on=keys)["run_id"].tolist()
    same = committed_curves[committed_curves["run_id"].isin(twins)]
    ends = pd.DataFrame({"live": live_curves.groupby("run_id")["loss"].last(),
                         "committed": same.groupby("run_id")["loss"].last()})
    ends["difference"] = ends["live"] - ends["committed"]
    worst = float(ends["difference"].abs().max()) if twins else float("nan")
    return Reproduction(twins, ends, worst, same)


@dataclass(frozen=True)
class ScheduleGap:
    """Two runs compared where the shorter one ends (:func:`schedule_gap`).

    ``short_id`` and ``long_id`` have the smallest and the largest budget; at ``tokens``, the
    end of the shorter run, its loss is ``short_loss`` and the longer run's (interpolated in
    log tokens) ``long_loss``; ``gap`` is positive when the shorter, decayed run is better.
    """

    short_id: str
    long_id: str
    tokens: float
    short_loss: float
    long_loss: float

    @property
    def gap(self) -> float:
        return self.long_loss - self.short_loss


def schedule_gap(curves_: pd.DataFrame) -> ScheduleGap:
    """Compare the shortest and the longest run of ``curves_`` where the shortest ends.

    Examples
    --------
    >>> c = pd.DataFrame({"run_id": ["a", "a", "b", "b", "b"], "tokens": [1, 10, 1, 10, 100],
    ...                   "loss": [5.0, 4.0, 5.0, 4.2, 3.5]})
    >>> g = schedule_gap(c)
    >>> g.short_id, g.long_id, round(g.gap, 3)
    ('a', 'b', 0.2)
    """
    by_budget = sorted(curves_.groupby("run_id"), key=lambda kv: kv[1]["tokens"].max())
    (short_id, short_c), (long_id, long_c) = by_budget[0], by_budget[-1]
    at = float(short_c["tokens"].iloc[-1])
    long_at = float(np.interp(np.log(at), np.log(long_c["tokens"].astype(float)),
                              long_c["loss"].astype(float)))
    return ScheduleGap(str(short_id), str(long_id), at, float(short_c["loss"].iloc[-1]), long_at)


# ----------------------------------------------------------------------------- the committed testbed


def committed_table(path, domains=("en", "code", "de")) -> pd.DataFrame:
    """The run table of the testbed directory ``path``, with every column the chapter reads.

    Missing columns (``loss_<d>`` and ``bpb_<d>`` for each of ``domains`` among them) are
    added empty; without ``runs.csv`` (no run finished yet) the table has no rows.

    Examples
    --------
    >>> import tempfile
    >>> t = committed_table(tempfile.mkdtemp())
    >>> len(t), "bpb_de" in t.columns
    (0, True)
    """
    path = Path(path)
    df = (runs.load_runs(path) if (path / "runs.csv").is_file()
          else pd.DataFrame(columns=list(runs.REQUIRED_COLUMNS)))
    used = list(DOMAIN_COLUMNS) + [f"{p}_{d}" for p in ("loss", "bpb") for d in domains]
    return df.reindex(columns=df.columns.union(used, sort=False))


def records_table(path) -> pd.DataFrame:
    """:func:`scaling_lib.records.load_records`, or no rows when ``path`` does not exist.

    Examples
    --------
    >>> records_table("/no/such/dir").columns[0]
    'run_id'
    """
    path = Path(path)
    return (records.load_records(path) if path.exists()
            else pd.DataFrame(columns=list(records.COLUMNS)))


def stale_runs(df: pd.DataFrame, tb: testbeds.Testbed) -> list:
    """Finished runs whose learning rate, warmup or budget differ from the testbed's rule.

    Examples
    --------
    >>> tb = testbeds.cpu_tiny()
    >>> row = tb.table().iloc[:1].rename(columns={"warmup_steps": "warmup"})
    >>> stale_runs(row, tb), stale_runs(row.assign(lr=1.0), tb)
    ([], ['s1_M5_s0'])
    """
    expected = pd.DataFrame([
        {"run_id": r.run_id, "lr_rule": tb.train_config(r).lr,
         "warmup_rule": tb.train_config(r).warmup_steps, "D_rule": tb.tokens(r)}
        for r in tb.runs])
    check = df.merge(expected, on="run_id", how="left")
    ok = (np.isclose(check["lr"].astype(float), check["lr_rule"].astype(float), rtol=1e-9)
          & (check["warmup"] == check["warmup_rule"]) & (check["D"] == check["D_rule"]))
    return check.loc[~ok, "run_id"].tolist()


def design_grid(tb: testbeds.Testbed, done, stale=()) -> pd.DataFrame:
    """The design as a shape-by-multiplier grid of role letters and status marks.

    Each run is its role's first letter in capitals (``F``, ``T``, ``G``), followed by a
    check mark when it is in ``done``, an exclamation mark when it is in ``stale``, and a
    middle dot otherwise; one entry per seed.

    Examples
    --------
    >>> g = design_grid(testbeds.cpu_tiny(), done={"s1_M5_s0"})
    >>> g.loc["s1 (63k)", "5"], g.loc["s1 (63k)", "10"]
    ('G\u2713', 'G\u00b7')
    """
    done, stale = set(done), set(stale)
    cells = {}
    for run in tb.runs:
        mark = ("!" if run.run_id in stale else "\u2713" if run.run_id in done else "\u00b7")
        key = (f"{run.shape} ({short(tb.n_params(run.shape))})", run.multiplier)
        cells[key] = cells.get(key, "") + run.role[0].upper() + mark
    grid = pd.Series(cells).unstack(fill_value="")
    grid.columns = pd.Index([f"{m:g}" for m in grid.columns], name="M")
    return grid


def run_name(run: testbeds.RunSpec) -> str:
    """A run in words: ``s1 at M=20``, with its seed when it is not 0.

    Examples
    --------
    >>> run_name(testbeds.RunSpec("s1", 20, seed=2))
    's1 at M=20 (seed 2)'
    """
    seed = f" (seed {run.seed})" if run.seed else ""
    return f"{run.shape} at M={run.multiplier:g}{seed}"


@dataclass(frozen=True)
class CurveReading:
    """Curves against a reference loss (:func:`curve_reading`): ``n_runs`` curves, the highest
    first point ``first_max``, ``n_below`` curves that get below the reference, and the median
    ``median_crossing`` over those of the tokens at their first point below it (``nan`` if none).
    """

    n_runs: int
    first_max: float
    n_below: int
    median_crossing: float


def curve_reading(curves_: pd.DataFrame, reference: float) -> CurveReading:
    """Read the curves against a reference loss (the unigram model's, say).

    Examples
    --------
    >>> c = pd.DataFrame({"run_id": ["a", "a", "b", "b"], "tokens": [1, 10, 1, 10],
    ...                   "loss": [7.0, 5.0, 6.5, 6.2]})
    >>> curve_reading(c, 6.0)
    CurveReading(n_runs=2, first_max=7.0, n_below=1, median_crossing=10.0)
    """
    first = curves_.groupby("run_id")["loss"].first()
    crossing = curves_[curves_["loss"] < reference].groupby("run_id")["tokens"].min()
    return CurveReading(int(first.size), float(first.max()) if first.size else float("nan"),
                        int(crossing.size),
                        float(crossing.median()) if crossing.size else float("nan"))


@dataclass(frozen=True)
class SeedNoise:
    """Seed-to-seed spread of the final loss against the gain per doubling (:func:`seed_noise`).

    ``spread``: per repeated configuration (``model``, ``M``) ``count``, ``min``, ``max``,
    ``std`` and ``range``; ``std_median``: the median standard deviation; ``worst``: the
    ``(model, M)`` with the largest range; ``doubling_gain``: the median over the seed-0 runs
    of the loss a shape gains when its ``D`` doubles.
    """

    spread: pd.DataFrame
    std_median: float
    worst: tuple
    doubling_gain: float

    @property
    def ratio(self) -> float:
        """``std_median / doubling_gain``."""
        return self.std_median / self.doubling_gain


def seed_noise(df: pd.DataFrame, loss: str = "loss_en") -> SeedNoise:
    """Spread over repeat seeds (same ``model`` and ``M``) and the median gain per doubling.

    Examples
    --------
    >>> df = pd.DataFrame({"model": "a", "M": [10.0, 20.0, 20.0], "seed": [0, 0, 1],
    ...                    "D": [10.0, 20.0, 20.0], "loss_en": [4.2, 4.0, 4.02]})
    >>> n = seed_noise(df)
    >>> n.worst, round(n.doubling_gain, 3), round(n.std_median, 4)
    (('a', 20.0), 0.2, 0.0141)
    """
    repeats = df[df.duplicated(["model", "M"], keep=False)]
    spread = repeats.groupby(["model", "M"])[loss].agg(["count", "min", "max", "std"])
    spread["range"] = spread["max"] - spread["min"]
    seed0 = df[df["seed"] == 0].sort_values("D")
    log2_d = np.log2(seed0["D"].astype(float))
    per_doubling = (-seed0.groupby("model")[loss].diff()
                    / log2_d.groupby(seed0["model"]).diff())
    worst = spread["range"].idxmax() if len(spread) else (None, float("nan"))
    worst = (worst[0], float(worst[1]))
    return SeedNoise(spread, float(spread["std"].median()), worst, float(per_doubling.median()))


def bpb_table(df: pd.DataFrame, domains) -> pd.DataFrame:
    """Per domain: the worst and best run's bits per byte, the gain, the value of the run with
    the most compute (``flops``).

    Examples
    --------
    >>> df = pd.DataFrame({"flops": [1.0, 2.0], "bpb_en": [3.0, 2.0], "bpb_de": [5.0, 4.8]})
    >>> bpb_table(df, ["en", "de"])["gain"].round(2).tolist()
    [1.0, 0.2]
    """
    table = pd.DataFrame({dom: [df[f"bpb_{dom}"].max(), df[f"bpb_{dom}"].min()]
                          for dom in domains}, index=["worst run", "best run"]).T
    table["gain"] = table["worst run"] - table["best run"]
    top = df.loc[df["flops"].idxmax()]
    table["largest run"] = [top[f"bpb_{dom}"] for dom in domains]
    return table


def range_over_multipliers(df: pd.DataFrame, column: str, seed: int = 0) -> pd.Series:
    """Per shape (``model``): the range (max - min) of ``column`` over its runs of one seed.

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["a", "a", "b"], "seed": 0, "bpb_de": [5.0, 4.8, 4.0]})
    >>> range_over_multipliers(df, "bpb_de").round(2).to_dict()
    {'a': 0.2, 'b': 0.0}
    """
    one = df[df["seed"] == seed]
    return one.groupby("model")[column].agg(lambda s: s.max() - s.min())


def seed_range(df: pd.DataFrame, column: str, multiplier: float = 20) -> pd.Series:
    """Per shape with several seeds at ``multiplier``: the range of ``column`` over its seeds.

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["a", "a", "b"], "M": 20.0, "seed": [0, 1, 0],
    ...                    "bpb_de": [5.0, 5.1, 4.0]})
    >>> seed_range(df, "bpb_de").round(2).to_dict()
    {'a': 0.1}
    """
    at = df[df["M"] == multiplier]
    repeats = at.groupby("model").filter(lambda g: g["seed"].nunique() > 1)
    return repeats.groupby("model")[column].agg(lambda s: s.max() - s.min())


@dataclass(frozen=True)
class Throughput:
    """Wall time and speed of the finished runs (:func:`throughput`).

    ``records``: the run records with ``model``, ``N`` and ``wall_s`` of the run table;
    ``per_shape``: ``N``, ``runs``, median ``tokens_per_s``, summed ``train_min`` and
    ``eval_min``; ``worker_hours``: the total wall time; ``devices``: in words; ``eval_pct``:
    the share of the wall time in the final evaluations; ``slope``: of log throughput against
    log ``N`` (``nan`` with one size).
    """

    records: pd.DataFrame
    per_shape: pd.DataFrame
    worker_hours: float
    devices: str
    eval_pct: float
    slope: float


def throughput(run_records: pd.DataFrame, df: pd.DataFrame) -> Throughput:
    """Summarise the runs' wall times and speeds (:func:`records_table` and the run table).

    Examples
    --------
    >>> rec = pd.DataFrame({"run_id": ["a", "b"], "tokens_per_s": [100.0, 50.0],
    ...                     "train_wall_s": [60.0, 120.0], "eval_wall_s": [6.0, 6.0],
    ...                     "device": "cpu"})
    >>> df = pd.DataFrame({"run_id": ["a", "b"], "model": ["x", "y"], "N": [1e3, 4e3],
    ...                    "wall_s": [66.0, 126.0]})
    >>> t = throughput(rec, df)
    >>> round(t.slope, 2), round(t.eval_pct, 2), t.devices
    (-0.5, 6.25, 'cpu')
    """
    rec = run_records.merge(df[["run_id", "model", "N", "wall_s"]], on="run_id")
    per_shape = rec.groupby("model").agg(
        N=("N", "first"), runs=("run_id", "count"),
        tokens_per_s=("tokens_per_s", "median"),
        train_min=("train_wall_s", lambda s: s.sum() / 60),
        eval_min=("eval_wall_s", lambda s: s.sum() / 60))
    slope = float("nan")
    if rec["N"].nunique() > 1:
        slope = float(np.polyfit(np.log(rec["N"].astype(float)),
                                 np.log(rec["tokens_per_s"].astype(float)), 1)[0])
    wall = rec["wall_s"].sum()
    eval_pct = float(100 * rec["eval_wall_s"].sum() / wall) if wall else float("nan")
    return Throughput(rec, per_shape, float(wall) / 3600,
                      in_words(sorted(rec["device"].astype(str).unique())), eval_pct, slope)


def task_table(df: pd.DataFrame, loss: str = "loss_en", prefix: str = "err_",
               average: str = "err_avg") -> pd.DataFrame:
    """Per task: best and worst error over the runs, and its rank correlation with the loss.

    Examples
    --------
    >>> df = pd.DataFrame({"loss_en": [3.0, 4.0, 5.0], "err_a": [0.1, 0.2, 0.3],
    ...                    "err_b": [0.5, 0.4, 0.5], "err_avg": [0.3, 0.3, 0.4]})
    >>> task_table(df)["corr. with loss"].round(2).to_dict()
    {'a': 1.0, 'b': 0.0}
    """
    tasks = [c for c in df.columns if c.startswith(prefix) and c != average]
    table = pd.DataFrame({
        "best": df[tasks].min(), "worst": df[tasks].max(),
        "corr. with loss": df[tasks].astype(float).corrwith(
            df[loss].astype(float), method="spearman")})
    table.index = [t.removeprefix(prefix) for t in table.index]
    return table


def flop_conventions(tb: testbeds.Testbed, multiplier: float = 20) -> pd.DataFrame:
    """Per shape (smallest first): the compute of its run at ``multiplier`` under each convention
    of :func:`scaling_lib.counting.training_flops`, as a fraction of ``6ND``.

    Examples
    --------
    >>> t = flop_conventions(testbeds.cpu_tiny())
    >>> list(t.columns), bool(t["6ND"].eq(1).all())
    (['6ND', '6N_ne_D', 'with_attention'], True)
    >>> bool(t["6N_ne_D"].is_monotonic_increasing)
    True
    """
    rows = {}
    for s in tb.shapes:
        shape = tb.gpt_config(s).shape()
        d = tb.tokens(testbeds.RunSpec(s.name, multiplier))
        c = {conv: counting.training_flops(shape, d, convention=conv)
             for conv in ("6ND", "6N_ne_D", "with_attention")}
        rows[s.name] = {k: v / c["6ND"] for k, v in c.items()}
    return pd.DataFrame(rows).T


def bpb_check(df: pd.DataFrame, stats: Mapping, domains, seed: int = 0) -> pd.DataFrame:
    """Per domain, over the runs of one seed: the largest relative difference between the
    recorded bits per byte and the loss converted with the corpus statistics' bytes per token
    (which the statistics file rounds to six decimals), and the slope of bits per byte against
    ``log2`` of compute (NaN with fewer than two runs).

    Examples
    --------
    >>> df = pd.DataFrame({"seed": 0, "flops": [1.0, 2.0], "loss_en": [2.0, 1.0]})
    >>> df["bpb_en"] = df["loss_en"] / np.log(2) / 2.0
    >>> bpb_check(df, {"splits": {"val_en": {"bytes_per_token": 2.0}}}, ["en"]).round(3).to_dict("index")
    {'en': {'max rel. diff': 0.0, 'bpb per doubling': -0.721}}
    """
    one = df[df["seed"] == seed]
    rows = {}
    for dom in domains:
        bpt = stats["splits"][f"val_{dom}"]["bytes_per_token"]
        mine = one[f"loss_{dom}"] / np.log(2) / bpt
        slope = (np.polyfit(np.log2(one["flops"].astype(float)), one[f"bpb_{dom}"].astype(float), 1)[0]
                 if len(one) >= 2 else float("nan"))
        rel = ((mine - one[f"bpb_{dom}"]) / one[f"bpb_{dom}"]).abs().max()
        rows[dom] = {"max rel. diff": float(rel), "bpb per doubling": slope}
    return pd.DataFrame(rows).T
