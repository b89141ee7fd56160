"""Checkpoints of a training run: written atomically with a SHA-256 checksum, verified on load.

:func:`save_checkpoint` writes :data:`CHECKPOINT_MAGIC`, a line ``sha256:<hex>`` and the payload
(``torch.save`` of the state); :func:`load_checkpoint` refuses a file whose checksum does not match,
that was written without one, or that belongs to another run (:class:`CheckpointError`).
:mod:`scaling_lib.training.train` re-exports all of them.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from scaling_lib.configs import TrainConfig

CHECKPOINT_FORMAT = "scaling_lib.training.train/1"
"""Schema of the state dict that :func:`scaling_lib.training.train.train` checkpoints."""

CHECKPOINT_MAGIC = b"scaling_lib checkpoint v2\n"
"""First line of every file :func:`save_checkpoint` writes; the second is ``sha256:<hex>``."""


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, corrupt, or belongs to another run."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` atomically (temporary file, then ``os.replace``) with a checksum.

    The file is :data:`CHECKPOINT_MAGIC`, a line ``sha256:<hex digest of the
    payload>``, then the payload: ``state`` serialised by ``torch.save``.
    The temporary file is removed if writing fails; the file gets the
    process's normal mode (the umask applies).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
    >>> save_checkpoint(p, {"step": 3})
    >>> load_checkpoint(p, check_format=False)["step"]
    3
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    digest = hashlib.sha256(payload).hexdigest()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(CHECKPOINT_MAGIC)
            fh.write(f"sha256:{digest}\n".encode("ascii"))
            fh.write(payload)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | os.PathLike, cfg: TrainConfig | None = None, *, check_format: bool = True) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; raise :class:`CheckpointError` if unusable.

    Parameters
    ----------
    path : path-like
    cfg : TrainConfig, optional
        If given, the checkpoint must have been written for exactly this config.
    check_format : bool
        Require a :data:`CHECKPOINT_FORMAT` training state (False for other
        payloads, such as a sweep's final weights).

    Raises
    ------
    CheckpointError
        The file is unreadable, lacks the checksum header (a checkpoint of an
        older version: delete it, the run restarts from scratch), its payload
        does not match its checksum (flipped or lost bytes), it is not a
        training checkpoint, or it belongs to another config.  The message
        names the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc})") from exc
    if not data.startswith(CHECKPOINT_MAGIC):
        if data.startswith(b"PK"):
            raise CheckpointError(
                f"checkpoint {path} has no checksum (written by an older version of scaling_lib); "
                "it cannot be verified: delete it to restart the run from scratch"
            )
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable (no {CHECKPOINT_MAGIC.strip().decode()!r} header); "
            "delete it to restart the run from scratch"
        )
    head_end = data.find(b"\n", len(CHECKPOINT_MAGIC))
    header = data[len(CHECKPOINT_MAGIC) : head_end] if head_end > 0 else b""
    if not header.startswith(b"sha256:"):
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable (malformed checksum line); "
            "delete it to restart the run from scratch"
        )
    payload = memoryview(data)[head_end + 1 :]
    if hashlib.sha256(payload).hexdigest().encode("ascii") != header[len(b"sha256:") :]:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its payload does not match its SHA-256 checksum "
            "(flipped or missing bytes); delete it to restart the run from scratch"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling / zip error means the file is unusable
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {exc}); "
            "delete it to restart the run from scratch"
        ) from exc
    if not check_format:
        return state
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if cfg is not None and state.get("config") != cfg.to_dict():
        raise CheckpointError(
            f"checkpoint {path} was written for a different TrainConfig; "
            "delete it or point the run at another checkpoint path"
        )
    return state


