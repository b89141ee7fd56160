"""Fit and target selections as queries on a run table, and prediction-error tables.

Gadre et al. (2024, Table 2 and Fig. 1) fit their laws on small runs and
predict much larger ones. Expressed as data queries on a run table (sizes
ranked from the smallest, 0, within each training set):

* loss-law fit set: the ``n_small_shapes`` smallest sizes at the reference
  multiplier ``M = 20``, plus the smallest size at each over-trained ``M``
  (320 in the paper);
* error-law fit set: the loss-law fit set plus the next size(s) at ``M = 20``
  (the 1.4B model in the paper);
* targets: every other run of the sizes above the small ones (the 1.4B
  over-trained runs and the 6.9B model in the paper).

No model names or counts are written into the queries; a :class:`Protocol`
holds the few numbers that define them, and :data:`PAPER` holds the paper's.
A testbed that records its own design (a ``role`` column) is read by
:func:`table_roles`, which falls back to :func:`assign_roles` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling_lib.runs import require_columns

ROLES = ("loss_fit", "error_fit", "target", "unused")
"""Role of a run: fits both laws, fits only the error law, is predicted, or is not used."""

RECORDED_ROLES = {"fit": "loss_fit", "target": "target", "grid": "unused"}
"""Roles a testbed design records for its planned runs (:class:`scaling_lib.testbeds.RunSpec`,
the run table's ``role`` column) and the :data:`ROLES` they stand for: fitted on, held-out target,
or another run of the grid (predicted, never fitted).  These two are the library's only role
vocabularies."""

DESIGN_ROLES = tuple(RECORDED_ROLES)
"""The recorded roles a design may give a run: ``fit``, ``target``, ``grid``."""


@dataclass(frozen=True)
class Protocol:
    """Which runs a fit uses and which it predicts.

    Parameters
    ----------
    n_small_shapes : int
        Number of smallest sizes fitted at ``reference_M``.
    reference_M : float
        The token multiplier of the compute-optimal fit runs.
    overtrained_M : tuple of float
        Multipliers at which the smallest ``n_overtrained_shapes`` sizes add a run.
    n_overtrained_shapes : int
        How many of the smallest sizes contribute over-trained fit runs.
    n_error_extra_shapes : int
        Sizes after the small ones whose ``reference_M`` run joins the error-law fit.
    size_column : str
        Column ranked to define sizes (``N``: runs of one shape share it).
    group_by : str or None
        Column whose groups (training sets) get their own ranks and fits; a table without
        that column is one group.
    rtol : float
        Relative tolerance when matching ``M`` values.

    Examples
    --------
    >>> PAPER.n_small_shapes, PAPER.overtrained_M
    (4, (320.0,))
    """

    n_small_shapes: int = 4
    reference_M: float = 20.0
    overtrained_M: tuple = (320.0,)
    n_overtrained_shapes: int = 1
    n_error_extra_shapes: int = 1
    size_column: str = "N"
    group_by: str | None = "train_set"
    rtol: float = 1e-6

    def __post_init__(self):
        counts = (self.n_overtrained_shapes, self.n_error_extra_shapes)
        if self.n_small_shapes < 1 or min(counts) < 0:
            raise ValueError("Protocol: shape counts must be non-negative (n_small_shapes >= 1)")
        if self.n_overtrained_shapes > self.n_small_shapes:
            raise ValueError("Protocol: n_overtrained_shapes cannot exceed n_small_shapes")


PAPER = Protocol()
"""The default protocol of Gadre et al. (2024): the 4 smallest sizes at M=20 and the smallest at
M=320 fit the loss law; the 5th size at M=20 joins them for the error law."""


def size_rank(df, protocol=PAPER):
    """Dense rank of each run's size within its group (0 = smallest).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"N": [5.0, 1.0, 5.0, 3.0]})
    >>> size_rank(df, Protocol(group_by=None)).tolist()
    [2, 0, 2, 1]
    """
    require_columns(df, [protocol.size_column], "run table")
    sizes = df[protocol.size_column]
    if protocol.group_by is None or protocol.group_by not in df.columns:
        ranks = sizes.rank(method="dense")
    else:
        ranks = sizes.groupby(df[protocol.group_by]).rank(method="dense")
    return (ranks - 1).astype(int).rename("size_rank")


def assign_roles(df, protocol=PAPER):
    """The role of every run under a protocol.

    Parameters
    ----------
    df : pandas.DataFrame
        A run table with ``M``, the size column and the group column.
    protocol : Protocol, optional

    Returns
    -------
    pandas.Series
        One of :data:`ROLES` per run, indexed like ``df``. ``loss_fit`` runs
        fit both laws; ``error_fit`` runs fit only the error law.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"N": [1, 1, 2, 3, 3], "M": [20, 320, 20, 20, 80]})
    >>> p = Protocol(n_small_shapes=2, group_by=None)
    >>> assign_roles(df, p).tolist()
    ['loss_fit', 'loss_fit', 'loss_fit', 'error_fit', 'target']
    """
    require_columns(df, ["M"], "run table")
    rank = size_rank(df, protocol).to_numpy()
    M = df["M"].to_numpy(dtype=float)
    at_ref = np.isclose(M, protocol.reference_M, rtol=protocol.rtol, atol=0)
    at_over = np.zeros(len(df), dtype=bool)
    for m in protocol.overtrained_M:
        at_over |= np.isclose(M, m, rtol=protocol.rtol, atol=0)
    small = rank < protocol.n_small_shapes
    loss_fit = (small & at_ref) | ((rank < protocol.n_overtrained_shapes) & at_over)
    extra = (rank >= protocol.n_small_shapes) & (
        rank < protocol.n_small_shapes + protocol.n_error_extra_shapes) & at_ref
    target = ~small & ~extra
    role = np.select([loss_fit, extra, target], ["loss_fit", "error_fit", "target"], "unused")
    return pd.Series(role, index=df.index, name="role")


def _add_error_fit_runs(df, role, protocol):
    """Mark, per group, the paper's extra error-law run(s) among the ``unused`` runs."""
    if protocol.group_by is not None and protocol.group_by in df.columns:
        groups = df.groupby(protocol.group_by).groups.values()
    else:
        groups = [df.index]
    for index in groups:
        sub = df.loc[index]
        sizes = sub[protocol.size_column].astype(float)
        fitted = sizes[role.loc[index] == "loss_fit"]
        if fitted.empty:
            continue
        above = np.unique(sizes[sizes > fitted.max()])[: protocol.n_error_extra_shapes]
        for size in above:
            pool = sub[(sizes == size) & (role.loc[index] == "unused")]
            if pool.empty:
                continue
            distance = np.abs(np.log(pool["M"].astype(float) / protocol.reference_M))
            role.loc[distance.idxmin()] = "error_fit"
    return role


def table_roles(df, protocol=PAPER, *, role_column="role", design=None, error_fit=True):
    """The role of every run of a run table, one of :data:`ROLES`.

    The roles come from one of two sources:

    * a recorded design: a testbed that plans its own fit set stores each
      run's role in ``role_column`` (``fit``, ``target`` or ``grid``; see
      :data:`RECORDED_ROLES`), read as ``loss_fit``, ``target`` and
      ``unused``. The error-law fit set then gets what the paper's protocol
      adds to the loss-law runs: in each group, the next
      ``protocol.n_error_extra_shapes`` sizes above the largest loss-fit
      size, each with its ``unused`` run whose ``M`` is closest to
      ``protocol.reference_M`` on a log scale (exactly ``reference_M`` when
      such a run exists, as in the paper);
    * otherwise (no ``role_column``) the protocol itself,
      :func:`assign_roles`.

    Parameters
    ----------
    df : pandas.DataFrame
        A run table with ``M`` and the protocol's size column (and
        ``run_id`` when ``design`` is given).
    protocol : Protocol, optional
        Defines the error-law extra runs, or every role when the table
        records none.
    role_column : str, keyword-only
        Column holding recorded design roles; ignored when absent.
    design : pandas.DataFrame, keyword-only
        The full design of the table's testbed (one row per planned run,
        with ``run_id`` and the columns above, e.g.
        :meth:`scaling_lib.testbeds.Testbed.table`). The roles are then
        resolved on the design and looked up by ``run_id``, so a table that
        holds only some of the runs gets the roles of the finished one; a
        run missing from the design is ``unused``.
    error_fit : bool, keyword-only
        Whether to mark the error-law extra runs. With ``False`` only the
        loss-law design remains: ``loss_fit``, ``target`` and ``unused``
        (runs the protocol would give to the error law alone are ``unused``).

    Returns
    -------
    pandas.Series
        Indexed like ``df``, named ``role``.

    Raises
    ------
    ValueError
        ``role_column`` holds a value that is not in :data:`RECORDED_ROLES`.
    KeyError
        A column the roles need is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"N": [1, 2, 2, 3, 3], "M": [20, 20, 5, 10, 40],
    ...                    "role": ["fit", "fit", "grid", "grid", "target"]})
    >>> p = Protocol(group_by=None)
    >>> table_roles(df, p).tolist()
    ['loss_fit', 'loss_fit', 'unused', 'error_fit', 'target']
    >>> table_roles(df, p, error_fit=False).tolist()
    ['loss_fit', 'loss_fit', 'unused', 'unused', 'target']
    >>> table_roles(df.drop(columns="role"), Protocol(n_small_shapes=2, group_by=None)).tolist()
    ['loss_fit', 'loss_fit', 'unused', 'target', 'target']
    """
    if design is not None:
        require_columns(df, ["run_id"], "run table")
        require_columns(design, ["run_id"], "design table")
        planned = table_roles(design, protocol, role_column=role_column, error_fit=error_fit)
        lookup = pd.Series(planned.to_numpy(), index=design["run_id"].astype(str))
        role = df["run_id"].astype(str).map(lookup).fillna("unused")
        return pd.Series(role.to_numpy(), index=df.index, name="role")
    if role_column not in df.columns:
        role = assign_roles(df, protocol)
        return role if error_fit else role.replace("error_fit", "unused")
    recorded = df[role_column].astype(str)
    unknown = sorted(set(recorded) - set(RECORDED_ROLES))
    if unknown:
        raise ValueError(f"column {role_column!r} holds unknown role(s) {unknown}; "
                         f"expected {tuple(RECORDED_ROLES)}")
    role = recorded.map(RECORDED_ROLES).rename("role")
    if error_fit and protocol.n_error_extra_shapes > 0:
        require_columns(df, ["M", protocol.size_column], "run table")
        role = _add_error_fit_runs(df, role, protocol)
    return role


def select(df, role, protocol=PAPER):
    """The runs playing a role: ``"loss_fit"``, ``"error_fit"`` or ``"target"``.

    ``"error_fit"`` returns the whole error-law fit set (the loss-law fit
    runs and the extra size), not only the extra runs.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"N": [1, 1, 2, 3, 3], "M": [20, 320, 20, 20, 80]})
    >>> p = Protocol(n_small_shapes=2, group_by=None)
    >>> [len(select(df, r, p)) for r in ("loss_fit", "error_fit", "target")]
    [3, 4, 1]
    """
    roles = assign_roles(df, protocol)
    if role == "error_fit":
        mask = roles.isin(["loss_fit", "error_fit"])
    elif role in ("loss_fit", "target", "unused"):
        mask = roles == role
    else:
        raise ValueError(f"unknown role {role!r}; choose from {ROLES}")
    return df.loc[mask]


def role_grid(df, protocol=PAPER, *, index="model"):
    """A table of roles: one row per shape, one column per ``M`` (for display).

    Parameters
    ----------
    df : pandas.DataFrame
        Runs of one group (e.g. one training set).
    protocol : Protocol, optional
    index : str, keyword-only
        Column naming the shape (default ``model``); rows are ordered by size.

    Returns
    -------
    pandas.DataFrame
        Role strings; empty cells where no run exists.
    """
    require_columns(df, [index, "M", protocol.size_column], "run table")
    table = df.assign(role=assign_roles(df, protocol))
    order = table.sort_values(protocol.size_column)[index].unique()
    grid = table.pivot_table(index=index, columns="M", values="role", aggfunc="first")
    return grid.reindex(order).fillna("")


def _actual(df, column):
    require_columns(df, [column], "run table")
    values = df[column].to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        bad = list(df.loc[~np.isfinite(values), "run_id"]) if "run_id" in df else "?"
        raise ValueError(f"column {column!r} has no finite value for run(s) {bad}")
    return values


def _table(df, actual, pred, lo=None, hi=None, keep=("run_id", "train_set", "model", "N", "M")):
    out = df[[c for c in keep if c in df.columns]].reset_index(drop=True).copy()
    out["actual"] = actual
    out["pred"] = np.asarray(pred, dtype=float)
    if lo is not None:
        out["lo"], out["hi"] = np.asarray(lo, float), np.asarray(hi, float)
        out["covered"] = (out["lo"] <= out["actual"]) & (out["actual"] <= out["hi"])
    out["error"] = out["pred"] - out["actual"]
    out["rel_err_pct"] = 100.0 * np.abs(out["error"]) / np.abs(out["actual"])
    return out


def _predict(result, df, interval):
    pred = result.predict(df, interval=interval)
    if interval is None:
        return pred["pred"].to_numpy(float), None, None
    return pred["pred"].to_numpy(float), pred["lo"].to_numpy(float), pred["hi"].to_numpy(float)


def relative_error_table(result, targets, target, *, interval=None):
    """Predicted vs actual values of a fitted law on held-out runs.

    Parameters
    ----------
    result : scaling_lib.fit.FitResult
        A fitted law; its ``predict`` reads the columns it was fitted on.
    targets : pandas.DataFrame
        The runs to predict.
    target : str
        Column holding the actual values (e.g. ``"loss_c4_val"``).
    interval : float or None, keyword-only
        Level of the prediction interval to add (``lo``, ``hi``,
        ``covered``), or None for point predictions only.

    Returns
    -------
    pandas.DataFrame
        ``run_id``, ``train_set``, ``model``, ``N``, ``M`` (those present),
        ``actual``, ``pred``, [``lo``, ``hi``, ``covered``], ``error`` =
        pred - actual and ``rel_err_pct`` = 100 |pred - actual| / actual
        (the relative error of Gadre et al. 2024).

    Examples
    --------
    >>> from scaling_lib import fit, laws, runs
    >>> df = runs.load_openlm_testbed()  # doctest: +SKIP
    >>> rpj = df[df["train_set"] == "RedPajama"]  # doctest: +SKIP
    >>> res = fit.fit(laws.OVERTRAINING, select(rpj, "loss_fit"),
    ...               target="loss_c4_val")  # doctest: +SKIP
    >>> table = relative_error_table(res, select(rpj, "target"), "loss_c4_val")  # doctest: +SKIP
    >>> table["rel_err_pct"].round(1).tolist()  # doctest: +SKIP
    [0.7, 0.7]
    """
    actual = _actual(targets, target)
    pred, lo, hi = _predict(result, targets, interval)
    return _table(targets, actual, pred, lo, hi)


def chained_error_table(loss_result, error_result, targets, loss_column, error_column):
    """Downstream error predicted from the *predicted* loss, as in Gadre et al. (2024) eq. (6).

    The loss law predicts each target's loss; the error law, fitted on
    ``loss_column``, turns that prediction into a predicted error.

    Parameters
    ----------
    loss_result, error_result : scaling_lib.fit.FitResult
        The fitted loss law and the error law fitted with ``loss_column`` as input.
    targets : pandas.DataFrame
        The runs to predict.
    loss_column, error_column : str
        Columns of the actual loss and the actual error.

    Returns
    -------
    pandas.DataFrame
        As :func:`relative_error_table` for the error, plus ``pred_loss``
        (the loss law's prediction) and ``pred_from_actual_loss`` (the error
        law applied to the measured loss, which isolates the error law's own
        share of the error).
    """
    actual = _actual(targets, error_column)
    _actual(targets, loss_column)
    pred_loss, _, _ = _predict(loss_result, targets, None)
    chained = targets.copy()
    chained[loss_column] = pred_loss
    pred_err, _, _ = _predict(error_result, chained, None)
    direct, _, _ = _predict(error_result, targets, None)
    out = _table(targets, actual, pred_err)
    out.insert(out.columns.get_loc("actual"), "pred_loss", pred_loss)
    out["pred_from_actual_loss"] = direct
    return out
