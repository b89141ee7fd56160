"""Sphinx extension: the ``claims-table`` directive lists every checked claim of every chapter.

Each chapter publishes its claims (``scaling_lib.claims.Claims.publish``) as a glued JSON list
under the key ``claims_registry``.  The directive leaves a placeholder that is filled once every
document has been read (and so every chapter executed, or taken from the execution cache), from
the glue data myst-nb keeps for each executed notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

REGISTRY_KEY = "claims_registry"


class claims_table_node(nodes.General, nodes.Element):
    """Placeholder replaced by the table in ``doctree-resolved``."""


class ClaimsTable(SphinxDirective):
    has_content = False

    def run(self):
        return [claims_table_node()]


def _registry(folder: Path, docname: str) -> list[dict]:
    path = folder.joinpath(*docname.split("/")[:-1], docname.split("/")[-1] + ".glue.json")
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8")).get(REGISTRY_KEY)
    if not data:
        return []
    text = data.get("data", {}).get("text/plain", "[]")
    try:
        value = json.loads(json.loads(text)) if text.startswith(("'", '"')) else json.loads(text)
    except json.JSONDecodeError:
        import ast

        value = json.loads(ast.literal_eval(text))
    return value if isinstance(value, list) else []


def _cell(text: str) -> nodes.entry:
    entry = nodes.entry()
    entry += nodes.paragraph(text=text)
    return entry


def _table(rows: list[tuple[str, str, str, str]]) -> nodes.table:
    table = nodes.table(classes=["claims-table"])
    group = nodes.tgroup(cols=4)
    table += group
    for width in (18, 22, 8, 52):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for title in ("chapter", "claim", "holds", "what the text says"):
        row += _cell(title)
    head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for text in cells:
            row += _cell(text)
        body += row
    return table


def _fill(app, doctree, docname):
    placeholders = list(doctree.findall(claims_table_node))
    if not placeholders:
        return
    env = app.env
    folder = Path(env.mystnb_config.output_folder)
    rows = []
    for doc in sorted(env.found_docs):
        for claim in _registry(folder, doc):
            title = env.titles.get(doc)
            rows.append((title.astext() if title is not None else doc, str(claim.get("name", "?")),
                         "yes" if claim.get("holds") else "NO", str(claim.get("expected", ""))))
    for node in placeholders:
        if rows:
            n_false = sum(r[2] != "yes" for r in rows)
            summary = nodes.paragraph(text=f"{len(rows)} checked claims in all; {n_false} do not hold.")
            node.replace_self([summary, _table(rows)])
        else:
            node.replace_self(nodes.paragraph(text="No chapter has published its checked claims."))


def setup(app):
    app.add_node(claims_table_node)
    app.add_directive("claims-table", ClaimsTable)
    app.connect("doctree-resolved", _fill)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
