"""Where a sweep writes and what it reads: paths, the run plan, the corpus splits, safe files.

:class:`SweepPaths` names the run table, the per-run records, the checkpoints, the final weights,
the claim locks and the folder for rejected files; :func:`plan` orders a testbed's runs; the file
helpers write atomically (a temporary file, removed on any failure, then ``os.replace``) and never
let a row with a non-finite loss through.  :mod:`scaling_lib.training.sweep` re-exports them.

Examples
--------
>>> from scaling_lib import designs
>>> [r.run_id for r in plan(designs.get_testbed("cpu-tiny"))[:2]]
['s1_M5_s0', 's1_M10_s0']
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling_lib.testbeds import RunSpec, Testbed

REPO_ROOT = Path(__file__).resolve().parents[2]


class SweepError(RuntimeError):
    """A sweep cannot start or a run failed."""


@dataclass(frozen=True)
class SweepPaths:
    """Where a sweep writes: the committed results and the git-ignored work directory."""

    out_dir: Path
    work_dir: Path
    corpus_cache: Path | None = None

    @property
    def table(self) -> Path:
        """The run-table CSV."""
        return self.out_dir / "runs.csv"

    def record(self, run_id: str) -> Path:
        """The per-run JSON record."""
        return self.out_dir / "runs" / f"{run_id}.json"

    def checkpoint(self, run_id: str) -> Path:
        """The in-progress training checkpoint."""
        return self.work_dir / "checkpoints" / f"{run_id}.pt"

    def final_model(self, run_id: str) -> Path:
        """The final weights of a finished run."""
        return self.work_dir / "models" / f"{run_id}.pt"

    def lock(self, run_id: str) -> Path:
        """The claim lock of a run, beside the run table it guards (git-ignored)."""
        return self.out_dir / ".locks" / f"{run_id}.lock"

    def rejected(self, name: str) -> Path:
        """Where a corrupt checkpoint or an unusable record is moved aside."""
        return self.work_dir / "rejected" / name

    @classmethod
    def default(cls, testbed: str, corpus_cache: str | os.PathLike | None = None) -> "SweepPaths":
        """``data/testbeds/<testbed>`` and ``.cache/sweep/<testbed>`` under the repository."""
        return cls(
            out_dir=REPO_ROOT / "data" / "testbeds" / testbed,
            work_dir=REPO_ROOT / ".cache" / "sweep" / testbed,
            corpus_cache=Path(corpus_cache) if corpus_cache is not None else None,
        )


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0-based ``i < n``).

    Examples
    --------
    >>> parse_shard("1/2")
    (1, 2)
    """
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/2), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n (shards are 0-based)")
    return i, n


def plan(testbed: Testbed, shard: tuple[int, int] = (0, 1)) -> list[RunSpec]:
    """The testbed's runs cheapest first (``6 N D``, then run id), this shard's share only."""
    i, n = shard
    ordered = sorted(testbed.runs, key=lambda r: (testbed.flops(r), r.run_id))
    return ordered[i::n]


def finished_run_ids(paths: SweepPaths) -> set[str]:
    """Run ids already in the run table."""
    if not paths.table.exists():
        return set()
    from scaling_lib import runs

    return set(runs.load_runs(paths.table)["run_id"].astype(str))


@functools.lru_cache(maxsize=4)
def _tokens(split: str, cache_dir: str | None) -> np.ndarray:
    from scaling_lib.training import corpora

    return corpora.load_tokens(split, cache_dir=cache_dir, mmap=True)


def _fingerprint(tokens: np.ndarray) -> str:
    """SHA-256 of a token array's bytes (identifies the corpus build a run used)."""
    return hashlib.sha256(np.ascontiguousarray(tokens).tobytes()).hexdigest()


def check_inputs(testbed: Testbed, paths: SweepPaths, evaluate: bool) -> None:
    """Fail early, with the corpus module's message, if a needed split or the tokenizer is missing."""
    cache = str(paths.corpus_cache) if paths.corpus_cache is not None else None
    for split in (testbed.train_split, testbed.val_split):
        try:
            _tokens(split, cache)
        except FileNotFoundError as exc:
            raise SweepError(f"testbed {testbed.name!r} needs corpus split {split!r}: {exc}") from exc
    if evaluate:
        from scaling_lib.training import tokenizer

        try:
            tokenizer.load_tokenizer(cache)
        except FileNotFoundError as exc:
            raise SweepError(f"testbed {testbed.name!r} needs the tokenizer for evaluation: {exc}") from exc


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file (removed on any failure) and ``os.replace``; the umask applies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def nonfinite_losses(row: dict) -> dict:
    """The loss columns (``loss*``, ``train_loss``, ``bpb_*``) of a row that are not finite numbers.

    Examples
    --------
    >>> nonfinite_losses({"run_id": "r0", "loss_en": float("nan"), "loss_en_lo": 2.0, "wall_s": 1.0})
    {'loss_en': nan}
    """
    bad = {}
    for col, value in row.items():
        if str(col).startswith(("loss", "train_loss", "bpb_")):
            try:
                ok = math.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad[col] = value
    return bad


def _move_aside(path: Path, paths: SweepPaths) -> Path:
    """Move ``path`` to :meth:`SweepPaths.rejected` (kept for inspection, out of the sweep's way)."""
    import shutil

    dest = paths.rejected(path.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)  # the work directory may be on another file system
    return dest
