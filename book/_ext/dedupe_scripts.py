"""Sphinx extension: drop repeated <script> entries from each page.

With Sphinx 7.4, inline scripts that extensions add while the builder starts
(sphinx-thebe's configuration, sphinx-togglebutton's) can be registered twice,
and a page that declares the same ``const`` twice logs a JavaScript error.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for script in scripts:
        # Two registrations of one inline script may differ in priority and in
        # whether the missing file name is None or "".
        attrs = tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items()))
        key = (getattr(script, "filename", str(script)) or "", attrs)
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

