"""Compute-optimal exponents from published IsoFLOP runs (Porian et al. 2024, Chinchilla's points).

Two published tables, read where they lie and never copied into the project:

:func:`load_porian_isoflop`
    ``isoflop_points.csv`` of Porian et al. (2024; ``porian2024resolving``): per experiment
    configuration and FLOP budget, every model size with the loss the authors read off its
    training curve at that budget.
:func:`scaling_lib.published_chinchilla.load_epoch_chinchilla`
    ``svg_extracted_data.csv`` of Besiroglu et al. (2024; ``besiroglu2024chinchilla``): the 245
    runs of Hoffmann et al. (2022), Figure 4, as extracted from the figure.

:func:`porian_table` turns Porian et al.'s points into the exponents ``a`` (``N* ~ C^a``) and
``b`` (``D* ~ C^b``) of every configuration, by the authors' protocol (:func:`paper_exponents`,
:func:`interpolated_optima`) or by the library's own IsoFLOP parabolas
(:func:`scaling_lib.compute_optimal.isoflop_optima`); :func:`porian_comparison` puts the two
side by side with the published values. The fit of the Chinchilla law to
Hoffmann et al.'s own points is :mod:`scaling_lib.published_chinchilla`.

Every problem with a file raises :class:`PublishedDataError` naming the file, the column and the
row (row numbers count the lines of the file, the header being line 1); a missing file raises
:class:`FileNotFoundError` saying where it looked and which environment variable to set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from scaling_lib import compute_optimal as co
from scaling_lib.published import PORIAN_EXPONENTS

__all__ = [
    "EPOCH_ENV", "EPOCH_FILE", "PORIAN_CATEGORIES", "PORIAN_ENV", "PORIAN_FILE", "PORIAN_PUBLISHED_A",
    "PublishedDataError", "SEED_NOISE", "default_epoch_path", "default_porian_path", "interpolated_optima",
    "load_porian_isoflop", "paper_exponents", "parabola_groups", "porian_comparison", "porian_published", "porian_table",
]

PORIAN_ENV = "SCALING_PORIAN_ISOFLOP"
"""Environment variable naming Porian et al.'s ``isoflop_points.csv`` (or its folder)."""

EPOCH_ENV = "SCALING_EPOCH_CHINCHILLA"
"""Environment variable naming Epoch's ``svg_extracted_data.csv`` (or its folder)."""

PORIAN_FILE = "isoflop_points.csv"
EPOCH_FILE = "svg_extracted_data.csv"

PORIAN_CATEGORIES = {
    "dataset": ("rw", "owt2"),
    "hparams": ("base", "tuned"),
    "warmup": ("long", "short"),
    "decay": ("kaplan", "chinchilla", "const"),
    "param_count": ("kaplan", "standard", "attention"),
    "loss_split": ("train", "val"),
}
"""The configuration columns of Porian et al.'s points and the values each may take."""

CONFIG_COLUMNS = ("source", "dataset", "hparams", "warmup", "decay", "param_count", "loss_split", "experiment")
"""The columns that name one experiment configuration (one IsoFLOP study)."""

PORIAN_PUBLISHED_A = {(p.experiment, "rw"): p.a for p in PORIAN_EXPONENTS}
"""Porian et al. (2024), Figure 1: the exponent ``a`` on RefinedWeb for their five
steps (:data:`scaling_lib.published.PORIAN_EXPONENTS`), keyed by (experiment, dataset) as in
``isoflop_points.csv``. Published values, cited for comparison."""

_REPO_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "testbeds"


class PublishedDataError(ValueError):
    """A published data file is malformed; the message names the file, the column and the row."""


# ----------------------------------------------------------------------------- paths


def _default(path, env: str, folder: str) -> Path:
    if path is not None:
        return Path(path)
    if os.environ.get(env):
        return Path(os.environ[env])
    return _REPO_SHARED / folder


def default_porian_path(path=None) -> Path:
    """Where Porian et al.'s points are looked for: ``path``, else ``$SCALING_PORIAN_ISOFLOP``,
    else ``<repository>/../shared/testbeds/porian2024-isoflop`` (not checked for existence).

    Examples
    --------
    >>> default_porian_path("/data/isoflop_points.csv").name
    'isoflop_points.csv'
    """
    return _default(path, PORIAN_ENV, "porian2024-isoflop")


def default_epoch_path(path=None) -> Path:
    """Where Epoch's extraction of Chinchilla's points is looked for: ``path``, else
    ``$SCALING_EPOCH_CHINCHILLA``, else ``<repository>/../shared/testbeds/epoch2024-chinchilla``.

    Examples
    --------
    >>> default_epoch_path("/data").as_posix()
    '/data'
    """
    return _default(path, EPOCH_ENV, "epoch2024-chinchilla")


def _resolve(path: Path, filename: str, env: str) -> Path:
    file = path / filename if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{filename} not found: looked for {file} (pass the path, as a file or its "
                                f"folder, or set the {env} environment variable)")
    return file


def _read(file: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise PublishedDataError(f"{file}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise PublishedDataError(f"{file}: not a readable CSV table ({exc})") from None
    if df.empty:
        raise PublishedDataError(f"{file}: a header but no rows")
    return df


def _require(df: pd.DataFrame, columns, file: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PublishedDataError(f"{file}: missing column(s) {missing}; it has {list(df.columns)}")


def _positive(df: pd.DataFrame, column: str, file: Path) -> np.ndarray:
    """The column as floats; raise naming the first rows that are not positive finite numbers."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        rows = np.flatnonzero(bad)[:5]
        shown = ", ".join(f"line {i + 2} ({'empty' if pd.isna(df[column].iloc[i]) else repr(str(df[column].iloc[i]))})"
                          for i in rows)
        raise PublishedDataError(f"{file}: column {column!r} must hold positive numbers; "
                                 f"{int(bad.sum())} bad value(s), first at {shown}")
    return values


# ----------------------------------------------------------------------------- loaders


def load_porian_isoflop(path=None) -> pd.DataFrame:
    """Porian et al.'s IsoFLOP points as a tidy, validated table.

    Parameters
    ----------
    path : str or path-like, optional
        ``isoflop_points.csv`` or its folder; default :func:`default_porian_path`.

    Returns
    -------
    pandas.DataFrame
        One row per (configuration, budget, model size): the configuration columns
        ``source``, ``dataset``, ``hparams``, ``warmup``, ``decay``, ``param_count``,
        ``loss_split``, ``experiment``; ``flops`` (the budget ``C``), ``N`` (the model size under
        the row's counting), ``D`` (tokens at the budget) and ``loss``, all positive floats.

    Raises
    ------
    FileNotFoundError
        No file where it looked.
    PublishedDataError
        An empty file, a missing column, a value that is not a positive number, an unknown
        configuration value, or a model size listed twice for one budget.

    Examples
    --------
    >>> pts = load_porian_isoflop()  # doctest: +SKIP
    >>> pts.groupby(["experiment", "dataset"]).ngroups  # doctest: +SKIP
    15
    """
    file = _resolve(default_porian_path(path), PORIAN_FILE, PORIAN_ENV)
    df = _read(file)
    _require(df, CONFIG_COLUMNS + ("flops", "N", "D", "loss"), file)
    out = df[list(CONFIG_COLUMNS)].copy()
    for column in CONFIG_COLUMNS:
        empty = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if empty.any():
            raise PublishedDataError(f"{file}: column {column!r} is empty at line {int(np.flatnonzero(empty)[0]) + 2}")
        out[column] = df[column].astype(str).str.strip()
    for column, allowed in PORIAN_CATEGORIES.items():
        unknown = ~out[column].isin(allowed)
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise PublishedDataError(f"{file}: column {column!r} has unknown value {out[column].iloc[i]!r} at "
                                     f"line {i + 2}; known values: {list(allowed)}")
    for column in ("flops", "N", "D", "loss"):
        out[column] = _positive(df, column, file)
    dup = out.duplicated(["experiment", "dataset", "flops", "N"], keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise PublishedDataError(f"{file}: model size N = {out['N'].iloc[i]:g} appears twice for experiment "
                                 f"{out['experiment'].iloc[i]!r} at C = {out['flops'].iloc[i]:g} (line {i + 2})")
    return out



# ----------------------------------------------------------------------------- the paper's protocol

SEED_NOISE = {"rw": 0.002, "owt2": 0.01}
"""Standard deviation of the seed noise that the authors' bootstrap adds to each loss, per dataset
(their ``configs.py``: ``noise_low`` of ``RW_SEED_CONFIG`` and ``OWT2_SEED_CONFIG``). Their rule
interpolates between a low and a high noise level by log loss, but it compares ``log(loss)`` with
thresholds of 3 and 7, so every loss below ``e^3 ~ 20`` gets the low level: a constant here."""


def interpolated_optima(points: pd.DataFrame, *, column: str = "N", noise_sd: float, n_boot: int = 1000,
                        seed: int = 0, grid_per_interval: int = 25, min_sd_factor: float = 0.33) -> pd.DataFrame:
    """Per budget, the minimum of the loss interpolated over ``log column`` (Porian et al. 2024, Sec. 2).

    The losses of one budget, sorted by ``column``, are interpolated in log-log by an Akima
    spline on a grid of ``grid_per_interval`` points per interval between sizes; the grid point
    of lowest loss is the optimum. A bootstrap adds Gaussian noise of ``noise_sd`` to every loss
    and repeats this ``n_boot`` times; a replicate whose minimum lies on the edge of the grid has
    none. A budget has an optimum if the noiseless minimum is interior and at least half of the
    replicates have one. Its optimum is the median of the replicates, its spread the standard
    deviation of their logarithm, floored at ``min_sd_factor`` times the log spacing of the sizes
    and inflated by ``n_boot / (replicates with a minimum)`` (the authors' ``interp_flop``).

    Parameters
    ----------
    points : pandas.DataFrame
        One configuration: ``flops``, ``loss`` and ``column``.
    column : str
        ``"N"`` for ``N*``, ``"D"`` for ``D*``.
    noise_sd : float
        Seed noise added to the loss (nats), e.g. ``SEED_NOISE["rw"]``.
    n_boot, seed, grid_per_interval, min_sd_factor
        As above; the defaults are the authors'.

    Returns
    -------
    pandas.DataFrame
        One row per budget (sorted by ``flops``): ``flops``, ``n_points``, ``ok``, ``opt``,
        ``log_sd``, ``n_valid``, and ``boot`` (the log optima of the replicates with one, as an
        array, in the order drawn).

    Examples
    --------
    >>> C = np.repeat([1e18, 4e18], 7)
    >>> N = np.sqrt(C / 120) * np.tile(np.geomspace(0.2, 5, 7), 2)
    >>> pts = pd.DataFrame({"flops": C, "N": N, "loss": 3 + 0.1 * np.log(N / np.sqrt(C / 120)) ** 2})
    >>> t = interpolated_optima(pts, noise_sd=0.002, n_boot=100)
    >>> (t["opt"] / np.sqrt(t["flops"] / 120)).round(1).tolist(), t["ok"].tolist()
    ([1.0, 1.0], [True, True])
    """
    from scipy.interpolate import Akima1DInterpolator

    rng = np.random.default_rng(seed)
    rows = []
    for c, sub in points.groupby("flops", sort=True):
        sub = sub.sort_values(column)
        x = np.log(sub[column].to_numpy(float))
        loss = sub["loss"].to_numpy(float)
        row = {"flops": float(c), "n_points": int(x.size), "ok": False, "opt": np.nan, "log_sd": np.nan,
               "n_valid": 0, "boot": np.array([])}
        if x.size >= 3:
            m = (x.size - 1) * grid_per_interval
            grid = np.linspace(x[0], x[-1], m)
            i0 = int(np.argmin(Akima1DInterpolator(x, np.log(loss))(grid)))
            noisy = np.clip(loss[:, None] + noise_sd * rng.standard_normal((x.size, n_boot)), 1e-12, None)
            idx = np.argmin(Akima1DInterpolator(x, np.log(noisy), axis=0)(grid), axis=0)
            stars = grid[idx[(idx > 0) & (idx < m - 1)]]
            row |= {"n_valid": int(stars.size), "boot": stars}
            if 0 < i0 < m - 1 and stars.size >= n_boot // 2 and stars.size > 0:
                floor = min_sd_factor * grid_per_interval * (grid[1] - grid[0])
                row |= {"ok": True, "opt": float(np.exp(np.median(stars))),
                        "log_sd": max(float(np.std(stars)), floor) * n_boot / stars.size}
        rows.append(row)
    return pd.DataFrame(rows, columns=["flops", "n_points", "ok", "opt", "log_sd", "n_valid", "boot"])


def _weighted_line(log_c: np.ndarray, log_y: np.ndarray, log_sd: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares line (weights ``1 / log_sd^2``), in closed form."""
    w = 1.0 / log_sd**2
    xm, ym = np.average(log_c, weights=w), np.average(log_y, weights=w)
    slope = np.sum(w * (log_c - xm) * (log_y - ym)) / np.sum(w * (log_c - xm) ** 2)
    return float(slope), float(ym - slope * xm)


def paper_exponents(points: pd.DataFrame, *, noise_sd: float, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95, **interp) -> dict:
    """Porian et al.'s exponents ``a`` and ``b`` of one configuration, with their intervals.

    :func:`interpolated_optima` of ``N`` and of ``D`` per budget; the budgets where both have
    an optimum are fitted by weighted least squares of ``log N*`` (``log D*``) on ``log C`` with
    weights ``1 / log_sd^2`` (the authors' ``fit_compute_optimal_power_laws``, its
    ``bs_median_weighted`` estimate). Replicate ``i`` of the interval refits the line through the
    ``i``-th bootstrap optimum of every budget, with the same weights; the interval is the
    percentile interval of those slopes.

    Returns
    -------
    dict
        ``a``, ``a_lo``, ``a_hi``, ``a_coef`` (``N* = a_coef C^a``), ``b``, ``b_lo``, ``b_hi``,
        ``b_coef`` and ``n_budgets``; NaN exponents with fewer than two budgets.

    Examples
    --------
    See :func:`porian_table`.
    """
    opt = {col: interpolated_optima(points, column=col, noise_sd=noise_sd, n_boot=n_boot, seed=seed + k, **interp)
           for k, col in enumerate(("N", "D"))}
    used = opt["N"]["ok"].to_numpy() & opt["D"]["ok"].to_numpy()
    out = {"n_budgets": int(used.sum())}
    q = ((1 - level) / 2, (1 + level) / 2)
    for key, col in (("a", "N"), ("b", "D")):
        t = opt[col][used]
        if len(t) < 2:
            out |= {key: np.nan, f"{key}_lo": np.nan, f"{key}_hi": np.nan, f"{key}_coef": np.nan}
            continue
        lc, sd = np.log(t["flops"].to_numpy()), t["log_sd"].to_numpy()
        slope, icpt = _weighted_line(lc, np.log(t["opt"].to_numpy()), sd)
        n_rep = min(len(b) for b in t["boot"])
        slopes = [_weighted_line(lc, np.array([b[i] for b in t["boot"]]), sd)[0] for i in range(n_rep)]
        lo, hi = np.quantile(slopes, q) if n_rep >= 2 else (np.nan, np.nan)
        out |= {key: slope, f"{key}_lo": float(lo), f"{key}_hi": float(hi), f"{key}_coef": float(np.exp(icpt))}
    return out


# ----------------------------------------------------------------------------- exponents


def parabola_groups(df: pd.DataFrame, *, group: str, target: str, n_col: str = "N") -> pd.Series:
    """Which IsoFLOP groups a parabola in ``ln N`` can use: three sizes or more and a minimum
    inside the sampled sizes (the groups :func:`scaling_lib.compute_optimal.isoflop_optima`
    accepts and does not extrapolate).

    Returns
    -------
    pandas.Series
        Indexed by group, ``True`` for a usable group.

    Examples
    --------
    >>> n = np.tile([1.0, 2.0, 4.0, 8.0], 2)
    >>> runs = pd.DataFrame({"g": [1] * 4 + [2] * 4, "N": n,
    ...                      "loss": np.r_[(np.log(n[:4]) - 1) ** 2, -np.log(n[4:])]})
    >>> parabola_groups(runs, group="g", target="loss").tolist()
    [True, False]
    """
    ok = {}
    for g, sub in df.groupby(group, sort=False):
        try:
            ok[g] = co.fit_parabola(np.log(sub[n_col].to_numpy(float)), sub[target].to_numpy(float)).inside
        except co.ComputeOptimalError:
            ok[g] = False
    return pd.Series(ok, name="usable")


def _default_exponents(points: pd.DataFrame, n_boot: int, seed: int, level: float) -> dict:
    usable = parabola_groups(points, group="flops", target="loss")
    keep = points[points["flops"].isin(usable.index[usable])]
    row = {"n_budgets": int(usable.sum())}
    if row["n_budgets"] < 2:
        return row | {k: np.nan for k in ("a", "a_lo", "a_hi", "a_coef", "b", "b_lo", "b_hi", "b_coef")}
    ex = co.optimum_exponents(co.isoflop_optima(keep, target="loss", group="flops", n_col="N", flops_col="flops",
                                                n_boot=n_boot, seed=seed, level=level))
    for key, trend in (("a", ex.a), ("b", ex.b)):
        row |= {key: trend.exponent, f"{key}_lo": trend.exponent_lo, f"{key}_hi": trend.exponent_hi,
                f"{key}_coef": trend.coef}
    return row


def porian_table(points: pd.DataFrame, protocol: str = "paper", *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, noise=None) -> pd.DataFrame:
    """Compute-optimal exponents of every configuration in Porian et al.'s points.

    Parameters
    ----------
    points : pandas.DataFrame
        As returned by :func:`load_porian_isoflop` (``experiment``, ``dataset``, ``flops``,
        ``N``, ``D``, ``loss``; further configuration columns are carried along).
    protocol : {"paper", "default"}
        ``"paper"``: the authors' method (:func:`paper_exponents`): per
        budget the loss interpolated over ``log N`` (and over ``log D``) and its minimum, with a
        bootstrap that adds seed noise, then a weighted power-law fit of the per-budget optima.
        ``"default"``: the library's IsoFLOP parabolas
        (:func:`scaling_lib.compute_optimal.isoflop_optima`, fixed-design bootstrap) on the
        budgets whose parabola has a minimum inside the sampled sizes
        (:func:`parabola_groups`), and :func:`scaling_lib.compute_optimal.optimum_exponents`.
    n_boot : int
        Bootstrap replicates (the paper used 1000).
    seed : int
    level : float
        Central probability of the intervals.
    noise : mapping, optional
        Seed-noise standard deviation of the loss per dataset for ``"paper"``; default
        :data:`SEED_NOISE`.

    Returns
    -------
    pandas.DataFrame
        One row per (experiment, dataset), in file order: the configuration columns,
        ``protocol``, ``a``, ``a_lo``, ``a_hi``, ``a_coef`` (``N* = a_coef C^a``), ``b``,
        ``b_lo``, ``b_hi``, ``b_coef`` and ``n_budgets`` (the budgets fitted).

    Examples
    --------
    >>> C = np.repeat(1e17 * 2.0 ** np.arange(6), 7)
    >>> N = np.sqrt(C / 120) * np.tile(np.geomspace(0.2, 5, 7), 6)
    >>> pts = pd.DataFrame({"experiment": "toy", "dataset": "rw", "flops": C, "N": N,
    ...                     "D": C / (6 * N), "loss": 3 + 0.1 * np.log(N / np.sqrt(C / 120)) ** 2})
    >>> porian_table(pts, n_boot=50)[["a", "b"]].round(2).values.tolist()
    [[0.5, 0.5]]
    """
    if protocol not in ("paper", "default"):
        raise ValueError(f"protocol must be 'paper' or 'default', got {protocol!r}")
    missing = [c for c in ("experiment", "dataset", "flops", "N", "D", "loss") if c not in points.columns]
    if missing:
        raise PublishedDataError(f"porian_table: points lack column(s) {missing}")
    config = [c for c in CONFIG_COLUMNS if c in points.columns and c != "source"]
    rows = []
    for i, (key, sub) in enumerate(points.groupby(["experiment", "dataset"], sort=False)):
        row = {c: sub[c].iloc[0] for c in config} | {"protocol": protocol}
        if protocol == "paper":
            res = paper_exponents(sub, noise_sd=(SEED_NOISE if noise is None else noise)[key[1]],
                                            n_boot=n_boot, seed=seed + i, level=level)
            row |= res
        else:
            row |= _default_exponents(sub, n_boot, seed + i, level)
        rows.append(row)
    cols = config + ["protocol", "a", "a_lo", "a_hi", "a_coef", "b", "b_lo", "b_hi", "b_coef", "n_budgets"]
    return pd.DataFrame(rows)[cols]


def porian_published() -> pd.DataFrame:
    """:data:`PORIAN_PUBLISHED_A` as a table: ``experiment``, ``dataset``, ``a_published``.

    Examples
    --------
    >>> porian_published()["a_published"].tolist()
    [0.835, 0.706, 0.602, 0.571, 0.497]
    """
    return pd.DataFrame([{"experiment": e, "dataset": d, "a_published": a} for (e, d), a in PORIAN_PUBLISHED_A.items()])


def porian_comparison(paper: pd.DataFrame, default: pd.DataFrame) -> pd.DataFrame:
    """The two protocols side by side, with the published exponent where there is one.

    Parameters
    ----------
    paper, default : pandas.DataFrame
        :func:`porian_table` under ``"paper"`` and ``"default"``.

    Returns
    -------
    pandas.DataFrame
        One row per (experiment, dataset): ``a_published`` (NaN where not recorded), ``a_paper``
        with ``a_lo``/``a_hi`` (the paper protocol's interval), ``a_default``,
        ``default_inside`` (the default estimate lies in the paper protocol's interval),
        ``gap`` (``a_default - a_paper``), ``width`` (``a_hi - a_lo``), ``paper_minus_published``,
        ``b_paper``, ``b_default``, and the budgets each used.

    Examples
    --------
    >>> p = pd.DataFrame({"experiment": ["x"], "dataset": ["rw"], "a": [0.5], "a_lo": [0.45],
    ...                   "a_hi": [0.55], "b": [0.5], "n_budgets": [6]})
    >>> d = p.assign(a=0.6)
    >>> porian_comparison(p, d)["default_inside"].tolist()
    [False]
    """
    keys = ["experiment", "dataset"]
    left = paper[keys + ["a", "a_lo", "a_hi", "b", "n_budgets"]].rename(
        columns={"a": "a_paper", "b": "b_paper", "n_budgets": "budgets_paper"})
    right = default[keys + ["a", "b", "n_budgets"]].rename(
        columns={"a": "a_default", "b": "b_default", "n_budgets": "budgets_default"})
    out = left.merge(right, on=keys, how="left", sort=False).merge(porian_published(), on=keys, how="left")
    out["default_inside"] = (out["a_default"] >= out["a_lo"]) & (out["a_default"] <= out["a_hi"])
    out["gap"], out["width"] = out["a_default"] - out["a_paper"], out["a_hi"] - out["a_lo"]
    out["paper_minus_published"] = out["a_paper"] - out["a_published"]
    return out[keys + ["a_published", "a_paper", "a_lo", "a_hi", "a_default", "default_inside", "gap", "width",
                       "paper_minus_published", "b_paper", "b_default", "budgets_paper", "budgets_default"]]
