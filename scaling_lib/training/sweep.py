"""Train every run of a named testbed, resumably, and append the results to its run table.

Usage::

    python -m scaling_lib.training.sweep --testbed cpu-tiny [--workers 2] [--shard i/n]

The sweep orders the testbed's runs cheapest first (by ``6 N D``), keeps the
``i``-th of every ``n`` runs when sharded (``--shard 0/2`` and ``--shard 1/2``
split the work between two machines, 0-based), skips runs already in the run
table, and trains the rest in parallel worker processes with one torch thread
each.  A killed sweep restarted with the same command resumes each unfinished
run from its last checkpoint.

Outputs (``<out>`` defaults to ``data/testbeds/<testbed>`` in the repository):

* ``<out>/runs.csv``: the run table (:mod:`scaling_lib.runs` schema), one row
  appended atomically per finished run;
* ``<out>/runs/<run_id>.json``: config, validation curve, final evaluations,
  wall time, device and code version of the run;

and in the git-ignored work directory (``.cache/sweep/<testbed>``):
``checkpoints/<run_id>.pt`` while a run is in progress and
``models/<run_id>.pt`` (final weights and config) after it finished.

Under ``torchrun`` (``WORLD_SIZE > 1``) every run is trained by all ranks with
DistributedDataParallel and rank 0 claims, evaluates and writes.

Trust
-----
* A run is claimed before it is trained: a lock file
  ``<out>/.locks/<run_id>.lock`` (:mod:`filelock`; released when the process
  ends, however it ends) is held for the whole training and recording of the
  run, so two sweeps on one testbed never train the same run.  A sweep that
  finds a run locked skips it (:attr:`SweepSummary.locked`); one that gets
  the lock re-checks the run table and the run's record first, so a run
  finished by another sweep meanwhile is skipped, not retrained.
* A run that raises (:class:`~scaling_lib.training.train.TrainingDiverged`
  when its loss or weights turn NaN or infinite, or any other error) is
  reported as failed: nothing of it enters the run table or ``runs/``, the
  sweep goes on with the other runs, lists the failures at the end and the
  command exits with status 1.  A row whose loss columns are not all finite
  is never appended.
* A checkpoint that is corrupt (its SHA-256 checksum does not match), has no
  checksum (an older version's) or belongs to another config is never
  resumed from: the sweep reports it (:attr:`SweepSummary.restarted`), moves
  it to ``.cache/sweep/<testbed>/rejected/`` and trains the run from scratch
  (the data order is a pure function of the seed and the step, so the result
  is that of an uninterrupted run).
* Files are written with the process's normal mode (the umask applies);
  temporary files are removed on any failure.

Examples
--------
>>> from scaling_lib import designs
>>> from scaling_lib.training import sweep
>>> tb = designs.get_testbed("cpu-tiny")
>>> [r.run_id for r in sweep.plan(tb)[:2]]
['s1_M5_s0', 's1_M10_s0']
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scaling_lib.designs import get_testbed, known_testbeds
from scaling_lib.testbeds import RunSpec, Testbed
from scaling_lib.training.sweep_files import (REPO_ROOT, SweepError, SweepPaths, _atomic_write_text,  # noqa: F401
                                           _fingerprint, _move_aside, _tokens, check_inputs,
                                           finished_run_ids, nonfinite_losses, parse_shard, plan)


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _is_rank0() -> bool:
    if _distributed():
        import torch.distributed as dist

        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def evaluate_model(model, testbed: Testbed, paths: SweepPaths, evaluate: bool) -> dict:
    """Run-table evaluation columns of a trained model.

    With ``evaluate`` the full :func:`scaling_lib.training.evals.evaluate` (losses on
    en/code/de with 95% intervals, bits per byte, downstream errors); without,
    only the validation loss on the testbed's validation split.
    """
    from scaling_lib.training import evals

    model.eval()
    cache = str(paths.corpus_cache) if paths.corpus_cache is not None else None
    if evaluate:
        from scaling_lib.training import tokenizer

        tok = tokenizer.load_tokenizer(cache)
        return evals.evaluate(model, tok, seq_len=testbed.seq_len, cache_dir=cache)
    r = evals.eval_loss(model, _tokens(testbed.val_split, cache), testbed.seq_len, n_seqs=128, batch_size=64)
    name = testbed.val_split.removeprefix("val_")
    return {f"loss_{name}": r["loss"], f"loss_{name}_lo": r["lo"], f"loss_{name}_hi": r["hi"]}


def train_run(
    testbed: Testbed,
    run: RunSpec,
    paths: SweepPaths,
    *,
    evaluate: bool = True,
    device: str | None = None,
    code_version: str = "unknown",
    progress: bool = True,
) -> dict:
    """Train (or resume) one run, evaluate it, write its JSON record and final weights.

    It neither claims the run nor checks its checkpoint beforehand: :func:`run_sweep`
    does both.  Called directly, a corrupt checkpoint raises
    :class:`~scaling_lib.training.train.CheckpointError`.

    Returns
    -------
    dict
        The run-table row (not yet appended to the table); empty on ranks other than 0.

    Raises
    ------
    TrainingDiverged
        The training diverged (nothing is written).
    SweepError
        The evaluation gave a non-finite loss (nothing is written).
    """
    import torch

    from scaling_lib import counting
    from scaling_lib.training.train import train

    cfg = testbed.train_config(run)
    cache = str(paths.corpus_cache) if paths.corpus_cache is not None else None
    train_tokens = _tokens(testbed.train_split, cache)
    val_tokens = _tokens(testbed.val_split, cache)
    ckpt = paths.checkpoint(run.run_id)
    res = train(cfg, train_tokens, val_tokens, checkpoint_path=ckpt, device=device,
                progress=progress, desc=run.run_id)
    rank0 = not _distributed() or torch.distributed.get_rank() == 0
    if not rank0:
        return {}
    t_eval = time.perf_counter()
    scores = evaluate_model(res.model, testbed, paths, evaluate)  # on the training device, float32
    eval_s = time.perf_counter() - t_eval

    counts = counting.param_counts(cfg.model.shape())
    N = int(counts["total"])
    D = int(res.tokens_seen)
    row = {
        "run_id": run.run_id,
        "N": N,
        "D": D,
        "M": D / N,
        "flops": 6.0 * N * D,
        "testbed": testbed.name,
        "train_set": testbed.train_split,
        "model": run.shape,
        "role": run.role,
        "d_model": cfg.model.d_model,
        "n_layers": cfg.model.n_layers,
        "n_heads": cfg.model.n_heads,
        "vocab_size": cfg.model.vocab_size,
        "seq_len": cfg.model.seq_len,
        "N_ne": int(counts["non_embedding"]),
        "N_emb": int(counts["embedding"]),
        "seed": run.seed,
        "epochs": D / len(train_tokens),
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "warmup": cfg.warmup_steps,
        "steps": res.steps,
        "train_loss": res.train_loss,
        **scores,
        "wall_s": res.wall_s + eval_s,
        "device": res.device,
        "code_version": code_version,
        "data_version": _fingerprint(train_tokens)[:12],
    }
    record = {
        "run_id": run.run_id,
        "testbed": testbed.name,
        "role": run.role,
        "multiplier": run.multiplier,
        "config": cfg.to_dict(),
        "param_counts": {k: int(v) for k, v in counts.items() if isinstance(v, (int, np.integer))},
        "curve": [{"step": s, "tokens": t, testbed.loss_column: v} for s, t, v in res.curve],
        "evals": scores,
        "train_wall_s": res.wall_s,
        "eval_wall_s": eval_s,
        "resumed_from_step": res.resumed_from_step,
        "device": res.device,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "code_version": code_version,
        "data": {
            split: {"n_tokens": int(len(arr)), "sha256": _fingerprint(arr)}
            for split, arr in ((testbed.train_split, train_tokens), (testbed.val_split, val_tokens))
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "row": row,
    }
    bad = nonfinite_losses(row)
    if bad:
        raise SweepError(f"run {run.run_id}: the evaluation gave non-finite loss(es) {bad}; "
                         "the run is not recorded")
    paths.final_model(run.run_id).parent.mkdir(parents=True, exist_ok=True)
    from scaling_lib.training.train import save_checkpoint

    save_checkpoint(paths.final_model(run.run_id), {"config": cfg.to_dict(), "model": res.model.state_dict()})
    _atomic_write_text(paths.record(run.run_id), json.dumps(record, indent=1, default=float) + "\n")
    if ckpt.exists():
        ckpt.unlink()
    return row


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _recover_record(paths: SweepPaths, run: RunSpec, log=None) -> bool:
    """Append the row of a run whose JSON record exists but whose row is missing (crash in between).

    Returns True if the run is now in the table.  A record that is unreadable
    or whose row has a non-finite loss is moved to :meth:`SweepPaths.rejected`
    (the run is then trained afresh); the caller must hold the run's lock.
    """
    from scaling_lib import runs

    rec = paths.record(run.run_id)
    if not rec.exists():
        return False
    try:
        row = json.loads(rec.read_text(encoding="utf-8"))["row"]
        bad = nonfinite_losses(row)
        if bad:
            raise ValueError(f"non-finite loss(es) {bad}")
        runs.append_run(paths.table, row)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:  # RunTableError is a ValueError
        dest = _move_aside(rec, paths)
        if log is not None:
            log(f"[sweep] record of {run.run_id} is unusable ({type(exc).__name__}: {exc}); "
                f"moved to {dest}, the run is trained again")
        return False
    return True


def _check_checkpoint(paths: SweepPaths, run: RunSpec, cfg) -> str | None:
    """Move a checkpoint that must not be resumed from aside; the reason, or None if it is fine."""
    from scaling_lib.training.train import CheckpointError, load_checkpoint

    ckpt = paths.checkpoint(run.run_id)
    if not ckpt.exists():
        return None
    try:
        load_checkpoint(ckpt, cfg)
    except CheckpointError as exc:
        dest = _move_aside(ckpt, paths)
        return f"{exc} -- moved to {dest}; the run is trained from scratch"
    return None


def _claim(paths: SweepPaths, run: RunSpec, cfg, log=None) -> tuple:
    """Rank 0: ``(lock, status, restarted)``; the lock is held only when status is ``"train"``.

    Status ``"locked"``: another sweep holds the run; ``"finished"``: the run
    is in the table (finished meanwhile, or its record was recovered).
    """
    from filelock import FileLock, Timeout

    path = paths.lock(run.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return None, "locked", None
    try:
        if run.run_id in finished_run_ids(paths) or _recover_record(paths, run, log):
            lock.release()
            return None, "finished", None
        return lock, "train", _check_checkpoint(paths, run, cfg)
    except BaseException:
        lock.release()
        raise


def _worker(job: tuple) -> dict:
    """Claim, train, record and append one run; never raises (a failure is reported in the result).

    Returns
    -------
    dict
        ``run_id``, ``status`` (``"done"``, ``"locked"``, ``"finished"`` or
        ``"failed"``), ``row`` (done), ``error`` (failed), ``restarted``
        (why a checkpoint was discarded, or None) and ``notes`` (messages for the log).
    """
    from scaling_lib import runs
    from scaling_lib.training.train import code_version

    # the code version is read when the run starts: worker processes import the code afresh
    testbed_name, run, paths, evaluate, device, _launch_version, testbed = job
    result = {"run_id": run.run_id, "status": "failed", "row": {}, "error": None, "restarted": None,
              "notes": []}
    lock = None
    rank0 = _is_rank0()
    try:
        tb = testbed if testbed is not None else get_testbed(testbed_name)
        decision = {"status": "failed", "restarted": None, "error": None}
        if rank0:
            try:
                lock, decision["status"], decision["restarted"] = _claim(paths, run, tb.train_config(run),
                                                                         result["notes"].append)
            except Exception:
                decision["error"] = traceback.format_exc()
        if _distributed():  # every rank follows rank 0's decision
            import torch.distributed as dist

            box = [decision]
            dist.broadcast_object_list(box, src=0)
            decision = box[0]
        result.update(status=decision["status"], restarted=decision["restarted"], error=decision["error"])
        if decision["status"] != "train":
            return result
        row = train_run(tb, run, paths, evaluate=evaluate, device=device, code_version=code_version())
        if row:
            try:
                bad = nonfinite_losses(row)
                if bad:
                    raise SweepError(f"run {run.run_id}: non-finite loss(es) {bad}; not appended")
                runs.append_run(paths.table, row)
            except Exception:
                if paths.record(run.run_id).exists():  # a failed run leaves no record
                    _move_aside(paths.record(run.run_id), paths)
                raise
        result.update(status="done", row=row)
    except Exception:  # reported by the parent; the other runs go on
        result.update(status="failed", error=traceback.format_exc())
    finally:
        if lock is not None:
            lock.release()
    return result


def _recover_records(paths: SweepPaths, pending: list[RunSpec], log=None) -> list[RunSpec]:
    """Append rows of runs whose JSON record exists but whose row is missing (crash in between).

    Each run is claimed first; one held by another sweep is left pending (its
    worker reports it).  Returns the runs still to train.
    """
    from filelock import FileLock, Timeout

    left = []
    for run in pending:
        if not paths.record(run.run_id).exists():
            left.append(run)
            continue
        paths.lock(run.run_id).parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(paths.lock(run.run_id), timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            left.append(run)
            continue
        try:
            if not _recover_record(paths, run, log):
                left.append(run)
        finally:
            lock.release()
    return left


@dataclass(frozen=True)
class SweepSummary:
    """What one :func:`run_sweep` call did.

    Attributes
    ----------
    done : list of str
        Run ids trained (and appended to the run table) by this call.
    skipped : list of str
        Run ids already finished: before it, or by another sweep while it ran.
    failed : dict
        Run id -> the error (traceback) of each run that failed (diverged,
        corrupt input, evaluation error, ...); nothing of theirs is in the
        run table or ``runs/``.
    locked : list of str
        Run ids skipped because another sweep held their lock (was training them).
    restarted : dict
        Run id -> why its checkpoint was not resumed from (corrupt, no
        checksum, other config); the run was trained from scratch.

    Examples
    --------
    >>> print(SweepSummary(done=["a"], skipped=[], failed={"b": "..."}, locked=["c"]))
    1 trained, 0 already finished, 1 locked by another sweep (c), 1 failed (b)
    """

    done: list
    skipped: list
    failed: dict
    locked: list = field(default_factory=list)
    restarted: dict = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"{len(self.done)} trained, {len(self.skipped)} already finished"
        if self.locked:
            text += f", {len(self.locked)} locked by another sweep ({', '.join(self.locked)})"
        if self.restarted:
            text += f", {len(self.restarted)} restarted from scratch ({', '.join(self.restarted)})"
        text += f", {len(self.failed)} failed"
        if self.failed:
            text += f" ({', '.join(self.failed)})"
        return text


def run_sweep(
    testbed: Testbed,
    paths: SweepPaths,
    *,
    workers: int = 1,
    threads: int = 1,
    shard: tuple[int, int] = (0, 1),
    evaluate: bool = True,
    device: str | None = None,
    max_runs: int | None = None,
    log=print,
) -> SweepSummary:
    """Train the pending runs of ``testbed`` (this shard), appending rows as they finish.

    Parameters
    ----------
    testbed : Testbed
    paths : SweepPaths
    workers : int
        Parallel worker processes (1: in this process).
    threads : int
        Torch threads per worker.
    shard : (i, n)
    evaluate : bool
        Full evaluation suite (else validation loss only).
    device : str, optional
    max_runs : int, optional
        Train at most this many pending runs (cheapest first).
    log : callable
        Receives one-line progress messages.

    Returns
    -------
    SweepSummary
        A run that raised is in ``failed`` (and nowhere in the outputs); the
        sweep goes on with the others.  Runs another sweep holds are in
        ``locked``; runs whose checkpoint could not be trusted, in
        ``restarted`` (trained from scratch).
    """
    from scaling_lib.training.train import code_version

    check_inputs(testbed, paths, evaluate)
    planned = plan(testbed, shard)
    rank0 = _is_rank0()
    if rank0:
        finished = finished_run_ids(paths)
        pending = _recover_records(paths, [r for r in planned if r.run_id not in finished], log)
    else:
        pending = []
    if _distributed():  # one job list for all ranks: rank 0's
        import torch.distributed as dist

        box = [[r.run_id for r in pending]]
        dist.broadcast_object_list(box, src=0)
        pending = [r for r in planned if r.run_id in set(box[0])]
    skipped = [r.run_id for r in planned if r not in pending]
    if max_runs is not None:
        pending = pending[:max_runs]
    version = code_version()
    log(f"[sweep] {testbed.name} shard {shard[0]}/{shard[1]}: {len(planned)} planned, "
        f"{len(skipped)} finished, {len(pending)} to train on {workers} worker(s); code {version}")
    known = get_testbed(testbed.name) if testbed.name in known_testbeds() else None
    carry = None if known == testbed else testbed
    jobs = [(testbed.name, r, paths, evaluate, device, version, carry) for r in pending]
    done, failed, locked, restarted = [], {}, [], {}

    def handle(result: dict) -> None:
        run_id, status = result["run_id"], result["status"]
        for note in result["notes"]:
            log(note)
        if result["restarted"]:
            restarted[run_id] = result["restarted"]
            log(f"[sweep] not resuming {run_id}: {result['restarted']}")
        if status == "done":
            row = result["row"]
            if row:  # appended by the worker, under the run's lock
                loss_key = testbed.loss_column
                log(f"[sweep] finished {run_id}: {loss_key}={row.get(loss_key, float('nan')):.4f} "
                    f"wall {row['wall_s']:.0f}s")
            done.append(run_id)
        elif status == "locked":
            locked.append(run_id)
            log(f"[sweep] skipped {run_id}: another sweep holds {paths.lock(run_id)}")
        elif status == "finished":
            skipped.append(run_id)
            log(f"[sweep] skipped {run_id}: finished by another sweep meanwhile")
        else:
            failed[run_id] = result["error"]
            log(f"[sweep] FAILED {run_id} (nothing recorded):\n{result['error']}")

    if workers <= 1:
        _init_worker(threads)
        for job in jobs:
            handle(_worker(job))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(threads,), maxtasksperchild=1) as pool:
            for result in pool.imap_unordered(_worker, jobs, chunksize=1):
                handle(result)
    return SweepSummary(done=done, skipped=skipped, failed=failed, locked=locked, restarted=restarted)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m scaling_lib.training.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--testbed", required=True, help=f"one of {sorted(known_testbeds())}")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--shard", default="0/1", help="i/n: train every n-th run starting at i (0-based)")
    parser.add_argument("--out", default=None, help="results directory (default data/testbeds/<testbed>)")
    parser.add_argument("--work", default=None, help="checkpoint directory (default .cache/sweep/<testbed>)")
    parser.add_argument("--corpus-cache", default=None, help="corpus cache (default: scaling_lib.training.corpora's)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--max-runs", type=int, default=None, help="train at most this many pending runs")
    parser.add_argument("--no-evals", action="store_true", help="validation loss only, no downstream suite")
    args = parser.parse_args(argv)

    try:
        testbed = get_testbed(args.testbed)
        shard = parse_shard(args.shard)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc.args[0]))
    paths = SweepPaths.default(testbed.name, args.corpus_cache)
    paths = SweepPaths(
        out_dir=Path(args.out) if args.out else paths.out_dir,
        work_dir=Path(args.work) if args.work else paths.work_dir,
        corpus_cache=paths.corpus_cache,
    )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch
        import torch.distributed as dist

        if args.workers != 1:
            parser.error("under torchrun every run uses all ranks: use --workers 1")
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    rank0 = int(os.environ.get("RANK", "0")) == 0
    try:
        summary = run_sweep(
            testbed, paths, workers=args.workers, threads=args.threads, shard=shard,
            evaluate=not args.no_evals, device=args.device, max_runs=args.max_runs,
            log=(lambda msg: print(msg, flush=True)) if rank0 else (lambda msg: None),
        )
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if rank0:
        print(f"[sweep] done: {summary}", flush=True)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
