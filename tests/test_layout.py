"""The library's layout: a torch-free analysis side and no import cycles."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "scaling_lib"
CHAPTERS = sorted((ROOT / "notebooks").glob("*.md"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str) -> set[str]:
    """Every scaling_lib module that ``path`` imports, at module level or inside a function."""
    known = _modules()
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return {m for m in found if m in known and m != name}


def _analysis_modules() -> list[str]:
    return [m for m in _modules() if not m.startswith("scaling_lib.training")]


def test_the_analysis_side_never_imports_the_training_side():
    for name in _analysis_modules():
        bad = sorted(m for m in _imports(_modules()[name], name) if m.startswith("scaling_lib.training"))
        assert not bad, f"{name} imports {bad}"


def test_the_package_has_no_import_cycle():
    graph = {name: _imports(path, name) for name, path in _modules().items()}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def _chapter_imports(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    mods = set()
    for m in re.finditer(r"^\s*from (scaling_lib[\w.]*) import \(?([^)\n]*(?:\n[^)\n]*)*?)\)?\s*$", text, re.M):
        base, names = m.group(1), m.group(2)
        for item in re.split(r"[,\s]+", names.replace("\n", " ")):
            word = item.strip()
            if word and word != "as" and re.fullmatch(r"\w+", word):
                full = f"{base}.{word}"
                mods.add(full if full in _modules() else base)
    mods |= set(re.findall(r"^\s*import (scaling_lib[\w.]*)", text, re.M))
    return {m for m in mods if m in _modules()}


TRAINING_CHAPTER = "training_testbed.md"
"""The one chapter that trains models (and so imports torch)."""


def test_the_analysis_chapters_and_modules_import_without_torch():
    """Importing every analysis module and everything an analysis chapter imports leaves torch out."""
    analysis_chapters = [p for p in CHAPTERS if p.name != TRAINING_CHAPTER]
    assert len(analysis_chapters) >= 5, [p.name for p in CHAPTERS]
    wanted = sorted(set(_analysis_modules()) | set().union(*(_chapter_imports(p) for p in analysis_chapters)))
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in wanted) + \
        "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", f"importing {wanted} loaded torch"


def test_the_training_chapter_imports_the_training_side():
    """The check above is only meaningful if the chapter parser finds the imports it should."""
    found = _chapter_imports(ROOT / "notebooks" / TRAINING_CHAPTER)
    assert {"scaling_lib.training.train", "scaling_lib.training.sweep", "scaling_lib.fit"} <= found
