"""A Sphinx extension with one fix for this book's stack (Jupyter Book 1.0.4, Sphinx 7.4, sphinx-thebe 0.3.1).

Loaded by `_config.yml` (`sphinx: extra_extensions: [cvae.sphinx_fixes]`).

sphinx-thebe adds its inline configuration script with `app.add_js_file(None, body=...)` while the HTML builder
already exists, so Sphinx 7.4 stores it once as filename None (in the builder) and again as filename "" (re-added
from the registry in `prepare_writing`); the two compare unequal, and every page declared `const THEBE_JS_URL`
twice: the browser logged "Identifier 'THEBE_JS_URL' has already been declared". This drops a page's duplicate
scripts (same file, same attributes) just before the page is rendered.
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), tuple(sorted((str(k), str(v)) for k, v in attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """`html-page-context` handler: keep the first of identical `<script>` entries of a page."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app) -> dict:
    """Register the handler (after every other extension's, so their scripts are in place)."""
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
