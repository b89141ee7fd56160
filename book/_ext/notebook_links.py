"""Sphinx extension: every chapter's executed notebook for download, and the repository and
launch buttons wired to one setting, shown only when it is set.

**Downloads.** sphinx-book-theme's download menu offers a page's source (the chapter's MyST
Markdown) and a print button; it offers the *executed* notebook only on pages that also have
launch buttons. Here every notebook page (a page whose metadata holds a kernelspec) gets it: the
notebook myst-nb executed, outputs included (``_build/jupyter_execute/<page>.ipynb``), is copied
into the HTML output as ``_sources/<page>.ipynb`` and the menu's ``.ipynb`` entry links to it.
When a chapter came from the execution cache, myst-nb (1.4) writes that notebook without its
outputs; its outputs are then merged in from the cache (``_build/.jupyter_cache``), as myst-nb
itself does for the page. ``build-finished`` copies every executed notebook again, so that an
incremental build whose pages were not rewritten still ships the notebooks of the latest
execution.

**Repository and launch buttons.** ``repository: url:`` in ``_config.yml`` is the one setting.
Empty (the default: the book has no public address yet), the pages show no repository button and
no launch buttons, so there is no link that leads nowhere. Set to a GitHub repository
(``https://github.com/OWNER/REPO``), the header gets a repository button and every chapter a
launch menu:

* **Binder** (``launch_buttons: binderhub_url:``) opens the chapter's MyST source from the
  repository's branch ``repository: branch:``; jupytext, pinned in ``requirements.txt``, opens
  it as a notebook;
* **Colab** (``launch_buttons: colab_url:``) opens only ``.ipynb`` files on GitHub, and the
  chapters are committed as Markdown, so its button opens the executed notebook the published
  HTML ships: ``_sources/<page>.ipynb`` on the branch the HTML is published from
  (``notebook_links_pages_branch``, default ``gh-pages``, where ``ghp-import`` puts
  ``_build/html``).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

REPOSITORY_BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button",
                      "use_source_button")
LAUNCH_KEYS = ("binderhub_url", "jupyterhub_url", "thebe", "colab_url", "deepnote_url",
               "jupyterlite_url")


def repository_settings(theme_options):
    """Theme options with the repository and launch buttons switched by ``repository_url``.

    Returns the new options and the Colab address this extension builds its own button from
    (empty when there is none).

    Examples
    --------
    >>> opts, colab = repository_settings({"repository_url": "", "use_repository_button": True,
    ...     "launch_buttons": {"binderhub_url": "https://mybinder.org",
    ...                        "colab_url": "https://colab.research.google.com"}})
    >>> opts["use_repository_button"], opts["launch_buttons"], colab
    (False, {}, '')
    >>> opts, colab = repository_settings({"repository_url": "https://github.com/o/r",
    ...     "launch_buttons": {"binderhub_url": "https://mybinder.org",
    ...                        "colab_url": "https://colab.research.google.com"}})
    >>> opts["use_repository_button"], opts["launch_buttons"], colab
    (True, {'binderhub_url': 'https://mybinder.org'}, 'https://colab.research.google.com')
    """
    opts = dict(theme_options)
    launch = dict(opts.get("launch_buttons") or {})
    url = str(opts.get("repository_url") or "").strip()
    if not url:
        opts["repository_url"] = ""
        for key in REPOSITORY_BUTTONS:
            opts[key] = False
        opts["launch_buttons"] = {}
        return opts, ""
    opts["repository_url"] = url
    opts["use_repository_button"] = True
    colab = str(launch.pop("colab_url", "") or "").strip().rstrip("/")
    opts["launch_buttons"] = launch if any(launch.get(k) for k in LAUNCH_KEYS) else {}
    return opts, colab


def colab_url(colab, repository_url, branch, pagename):
    """The Colab address of a page's executed notebook on the published HTML's branch.

    Examples
    --------
    >>> colab_url("https://colab.research.google.com", "https://github.com/o/r/", "gh-pages",
    ...           "notebooks/compute_optimal")
    'https://colab.research.google.com/github/o/r/blob/gh-pages/_sources/notebooks/compute_optimal.ipynb'
    >>> colab_url("https://colab.research.google.com", "https://gitlab.com/o/r", "main", "x")
    ''
    """
    parts = repository_url.strip().rstrip("/").split("/")
    if len(parts) < 5 or parts[2].lower() != "github.com":
        return ""
    org, repo = parts[3], parts[4]
    return f"{colab}/github/{org}/{repo}/blob/{branch}/_sources/{pagename}.ipynb"


def _configure(app, config):
    opts, colab = repository_settings(config.html_theme_options or {})
    config.html_theme_options = opts
    app.notebook_links_colab = colab
    if colab and not colab_url(colab, opts["repository_url"], "b", "p"):
        LOGGER.warning("notebook_links: Colab opens notebooks from GitHub only; no Colab button "
                       "for %s", opts["repository_url"])


def _executed_dir(app):
    return Path(app.outdir).parent / "jupyter_execute"


def _is_notebook(app, pagename):
    return "kernelspec" in app.env.metadata.get(pagename, {})


def n_outputs(notebook):
    """The number of outputs of a notebook's code cells.

    Examples
    --------
    >>> n_outputs({"cells": [{"cell_type": "code", "outputs": [{}, {}]},
    ...                      {"cell_type": "markdown"}]})
    2
    """
    return sum(len(c.get("outputs") or []) for c in notebook.get("cells", [])
               if c.get("cell_type") == "code")


def _cache_path(app):
    config = getattr(app.env, "mystnb_config", None)
    path = getattr(config, "execution_cache_path", "") if config is not None else ""
    return Path(path) if path else Path(app.outdir).parent / ".jupyter_cache"


def executed_notebook(app, source):
    """The text of an executed notebook with its outputs, or None when it has none.

    ``source`` is the notebook myst-nb wrote to ``jupyter_execute``; without outputs (a chapter
    taken from the execution cache) the cached outputs are merged into it.
    """
    import nbformat

    notebook = nbformat.read(str(source), as_version=4)
    if n_outputs(notebook):
        return nbformat.writes(notebook)
    cache_dir = _cache_path(app)
    if not cache_dir.is_dir():
        return None
    try:
        from jupyter_cache import get_cache

        _, merged = get_cache(str(cache_dir)).merge_match_into_notebook(notebook)
    except KeyError:  # not in the cache
        return None
    except Exception as exc:  # a damaged or locked cache must not stop the build
        LOGGER.warning("notebook_links: cannot read the execution cache for %s: %s",
                       source, exc)
        return None
    return nbformat.writes(merged) if n_outputs(merged) else None


def _publish(app, pagename):
    """Copy a page's executed notebook into ``_sources``; True when there is one."""
    executed = _executed_dir(app) / f"{pagename}.ipynb"
    if not executed.is_file():
        return False
    text = executed_notebook(app, executed)
    if text is None:
        return False
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return True


def _offer_notebook(app, pagename, templatename, context, doctree):
    """Before the theme builds its download menu: point its ``.ipynb`` entry at our copy."""
    if doctree is None or not _is_notebook(app, pagename):
        return
    if not _publish(app, pagename):
        LOGGER.warning("notebook_links: no executed notebook with outputs for %s in %s",
                       pagename, _executed_dir(app))
        return
    context["ipynb_source"] = f"{pagename}.ipynb"


def _add_colab(app, pagename, templatename, context, doctree):
    """After the theme's launch menu: add Colab, pointing at the executed notebook."""
    colab = getattr(app, "notebook_links_colab", "")
    if not colab or doctree is None or not _is_notebook(app, pagename):
        return
    opts = app.config.html_theme_options
    url = colab_url(colab, opts.get("repository_url", ""), app.config.notebook_links_pages_branch,
                    pagename)
    if not url:
        return
    button = {"type": "link", "text": "Colab", "tooltip": "Launch on Colab",
              "icon": "_static/images/logo_colab.png", "url": url}
    buttons = context.get("header_buttons", [])
    for group in buttons:
        if group.get("label") == "launch-buttons":
            group["buttons"].append(button)
            return
    buttons.append({"type": "group", "tooltip": "Launch interactive content",
                    "icon": "fas fa-rocket", "buttons": [button], "label": "launch-buttons"})


def _copy_all(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    src = _executed_dir(app)
    if not src.is_dir():
        return
    for notebook in src.rglob("*.ipynb"):
        pagename = notebook.relative_to(src).with_suffix("").as_posix()
        if pagename in app.env.all_docs and _is_notebook(app, pagename):
            _publish(app, pagename)


def setup(app):
    app.add_config_value("notebook_links_pages_branch", "gh-pages", "html")
    app.connect("config-inited", _configure, priority=400)
    # sphinx-book-theme builds its header buttons at priority 501
    app.connect("html-page-context", _offer_notebook, priority=500)
    app.connect("html-page-context", _add_colab, priority=502)
    app.connect("build-finished", _copy_all)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
