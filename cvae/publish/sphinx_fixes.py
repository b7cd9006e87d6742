"""A Sphinx extension with two fixes for this book's stack (Jupyter Book 1.0.4, Sphinx 7.4, sphinx-thebe 0.3.1).

Loaded by `_config.yml` (`sphinx: extra_extensions: [cvae.publish.sphinx_fixes]`).

Tables and figures are numbered in HTML as LaTeX numbers them in the PDF: "Table 7.2" is the second table of the
book's seventh chapter (the chapters of `_toc.yml` in order, the landing page not counted), a table split by columns
for print counting once per part. The chapters' tables are notebook outputs (`cvae.report.chapter.table`), which Sphinx
does not number by itself; its figures it numbers through the whole book ("Fig. 15"), as the toctree is not numbered.

sphinx-thebe adds its inline configuration script with `app.add_js_file(None, body=...)` while the HTML builder
already exists, so Sphinx 7.4 stores it once as filename None (in the builder) and again as filename "" (re-added
from the registry in `prepare_writing`); the two compare unequal, and every page declared `const THEBE_JS_URL`
twice: the browser logged "Identifier 'THEBE_JS_URL' has already been declared". This drops a page's duplicate
scripts (same file, same attributes) just before the page is rendered.
"""

from __future__ import annotations

import re
from pathlib import Path


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


def chapter_numbers(toc: dict) -> dict[str, int]:
    """{docname: chapter number} as the PDF numbers its chapters (`cvae.publish.pdf.printed_toc`: parts flattened,
    PRINT_LAST at the end; the root page has none)."""
    from cvae.publish.pdf import printed_toc

    chapters = [re.sub(r"\.(md|ipynb)$", "", chapter["file"]) for chapter in printed_toc(toc)["chapters"]]
    return {name: number for number, name in enumerate(chapters, start=1)}


def numbered_tables(html_outputs: list[str], chapter: int | None) -> list[str]:
    """The HTML outputs of one page with "Table c.k" put before each table caption, k counting the page's tables the
    way the PDF will (one per printed part, `cvae.publish.print_markup.html_table_to_markdown`)."""
    from cvae.publish.print_markup import TABLE_CAPTION_START as start
    from cvae.publish.print_markup import html_table_to_markdown

    count, numbered = 0, []
    for source in html_outputs:
        if start in source:
            label = f"Table {chapter}.{count + 1}" if chapter else f"Table {count + 1}"
            source = source.replace(start, f'{start}<span class="caption-number">{label} </span>', 1)
            count += max(1, (html_table_to_markdown(source) or "").count("```{list-table}"))
        numbered.append(source)
    return numbered


def _book_chapters(app) -> dict[str, int]:
    import yaml

    toc_path = Path(app.srcdir) / "_toc.yml"
    return chapter_numbers(yaml.safe_load(toc_path.read_text())) if toc_path.exists() else {}


def figures_by_chapter(fignumbers: dict[str, dict[str, dict]], chapters: dict[str, int]) -> dict:
    """Sphinx's figure numbers ({docname: {"figure": {id: (n,)}}}, counted through the whole book when the toctree is
    not numbered) renumbered (c, k) as the PDF numbers them: the k-th figure of chapter c; pages without a chapter
    number keep theirs."""
    renumbered = {}
    for docname, numbers in fignumbers.items():
        figures, chapter = numbers.get("figure"), chapters.get(docname)
        if figures and chapter:
            order = sorted(figures, key=figures.get)
            numbers = {**numbers, "figure": {key: (chapter, k) for k, key in enumerate(order, start=1)}}
        renumbered[docname] = numbers
    return renumbered


def number_figures(app, env) -> list[str]:
    """`env-get-updated` handler (HTML builds), run after Sphinx's own has counted the figures: "Fig. 7.2" on the web
    as in the PDF (`figures_by_chapter`), in captions and references alike. Returns no pages to rewrite."""
    if app.builder.format == "html":
        env.toc_fignumbers = figures_by_chapter(env.toc_fignumbers, _book_chapters(app))
    return []


def number_tables(app, doctree, docname: str) -> None:
    """`doctree-resolved` handler (HTML builds): number the captioned tables of a page (`numbered_tables`)."""
    if app.builder.format != "html":
        return
    from docutils import nodes

    chapters = _book_chapters(app)
    raws = [node for node in doctree.findall(nodes.raw) if "html" in node.get("format", "").split()]
    for node, source in zip(raws, numbered_tables([node.astext() for node in raws], chapters.get(docname))):
        if source != node.astext():
            node.replace_self(nodes.raw("", source, format="html"))


ICON_SCRIPT = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')


def drop_icon_script(html_dir: Path) -> int:
    """Remove the theme's 1.5 MB Font Awesome script from every page of a built site, and the script itself: it only
    draws custom icons as SVG, and the theme's stylesheet already draws its own icons with the web font. Returns the
    number of pages changed."""
    changed = 0
    for page in html_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        trimmed = ICON_SCRIPT.sub("", text)
        if trimmed != text:
            page.write_text(trimmed, encoding="utf-8")
            changed += 1
    for leftover in (html_dir / "_static" / "scripts").glob("fontawesome.js*"):
        leftover.unlink()
    return changed


def setup(app) -> dict:
    """Register the handlers (the scripts' after every other extension's, so their scripts are in place)."""
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    app.connect("env-get-updated", number_figures, priority=900)
    app.connect("doctree-resolved", number_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
