#!/usr/bin/env python3
"""Compare two book builds: every glued value and every text output of every chapter.

Usage: python scripts/compare_glue.py OLD/_build/jupyter_execute NEW/_build/jupyter_execute

A restructure of the library must leave every number of the book unchanged; this prints, for each
executed notebook, how many glued values and text outputs differ (figures are compared by their
text description only) and lists the differing keys.  Wall-clock times and object addresses
differ between any two builds; the listing shows them so a reader can tell them apart.
Exits 1 when a glued value differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _plain(entry):
    data = entry.get("data", {}) if isinstance(entry, dict) else {}
    return {k: v for k, v in data.items() if not k.startswith("image/")}


def _texts(path: Path) -> list[str]:
    out = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        for o in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            if o.get("output_type") == "stream":
                out.append("".join(o["text"]))
            elif "text/plain" in o.get("data", {}):
                out.append("".join(o["data"]["text/plain"]))
    return out


def main(argv=None) -> int:
    old, new = (Path(p) for p in (argv or sys.argv[1:]))
    differ = 0
    for a in sorted(old.rglob("*.glue.json")):
        b = new / a.relative_to(old)
        if not b.is_file():
            print(f"{a.relative_to(old)}: missing from the new build")
            differ += 1
            continue
        A, B = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))
        keys = sorted(k for k in set(A) | set(B) if _plain(A.get(k, {})) != _plain(B.get(k, {})))
        print(f"{a.relative_to(old)}: {len(A)} vs {len(B)} glued values, {len(keys)} differ")
        for k in keys:
            print(f"    {k}: {str(_plain(A.get(k, {})))[:120]} -> {str(_plain(B.get(k, {})))[:120]}")
        differ += len(keys)
        ta, tb = _texts(a.with_name(a.name.replace(".glue.json", ".ipynb"))), \
            _texts(b.with_name(b.name.replace(".glue.json", ".ipynb")))
        n = sum(x != y for x, y in zip(ta, tb)) + abs(len(ta) - len(tb))
        print(f"    text outputs: {len(ta)} vs {len(tb)}, {n} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
