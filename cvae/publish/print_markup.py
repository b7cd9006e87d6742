"""HTML outputs rewritten as Markdown for print: myst-nb renders text/html only in HTML builds, so the PDF's LaTeX
builder needs a Markdown version of every table, admonition and cross-page glued value (tables wider than the page
split by columns, captions kept as the table's title)."""

from __future__ import annotations

import copy
import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

from cvae.report.chapter import TABLE_CAPTION_START
from cvae.report.notices import PRINT_LINE_KEY

MARKDOWN_TABLE_WIDTH = 96   # characters of a table row (cells + padding) that fit the A4 text width at \small
# a notebook cell with this tag is reference material the printed hand-in leaves to the web edition and the CSV
# downloads (the factorial's table, the performance appendix's tables); its prose says so with {only} latex
WEB_ONLY_TAG = "web-only"
SMALL_PRINT_WIDER = 1.25    # how many more fit at \scriptsize: a table up to that much wider prints whole, smaller
RECORD_PREFIX = "application/papermill.record/"




class _TableParser(HTMLParser):
    """Rows of a single HTML table: [(is_header_row, [cell text, ...])], colspan/rowspan expanded; `label_columns`:
    for each body row, how many of its leading cells are row labels (th), e.g. 2 for a two-level pandas index."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[bool, list[str]]] = []
        self.label_columns: list[int] = []
        self.tables = 0
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._cell_is_th = False
        self._span = (1, 1)
        self._row_all_th = True
        self._pending: dict[int, tuple[int, str, bool]] = {}   # column -> (rows left, text, is th) from rowspan
        self._row_th: list[bool] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self.tables += 1
        elif tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr":
            self._row, self._row_all_th, self._row_th = [], True, []
            self._fill_pending()
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._cell_is_th = [], tag == "th"
            self._span = (int(attrs.get("colspan") or 1), int(attrs.get("rowspan") or 1))
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            text = " ".join("".join(self._cell).split())
            colspan, rowspan = self._span
            for _ in range(colspan):
                if rowspan > 1:
                    self._pending[len(self._row)] = (rowspan - 1, text, self._cell_is_th)
                self._row.append(text)
                self._row_th.append(self._cell_is_th)
                self._fill_pending()
            self._row_all_th &= self._cell_is_th
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append((self._section == "thead", self._row))
            if self._section != "thead":
                self.label_columns.append(next((i for i, is_th in enumerate(self._row_th) if not is_th),
                                               len(self._row_th)))
            self._row = None

    def handle_data(self, data):
        if self._cell is not None and not self._skip:
            self._cell.append(data)

    def _fill_pending(self):
        while self._row is not None and len(self._row) in self._pending:
            left, text, is_th = self._pending.pop(len(self._row))
            column = len(self._row)
            self._row.append(text)
            self._row_th.append(is_th)
            if left > 1:
                self._pending[column] = (left - 1, text, is_th)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$#~^])")


def _escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?|nan|—|-", text.strip(), flags=re.I))


_LONG_HEX = re.compile(r"\b[0-9a-f]{24,}\b")


def _breakable(text: str) -> str:
    """A cell's text with long hex digests (MD5s, hashes) in groups of 8, so LaTeX can wrap them in a column."""
    return _LONG_HEX.sub(lambda m: " ".join(m.group(0)[i:i + 8] for i in range(0, len(m.group(0)), 8)), text)


def _cell_width(texts: list[str]) -> int:
    """Characters a column needs: numbers never wrap, text wraps at about 28 characters but not inside a word."""
    width = max((len(t) for t in texts), default=1)
    if all(_is_number(t) or not t for t in texts):
        return width + 2
    longest_word = max((len(word) for t in texts for word in t.split()), default=1)
    return max(min(width, 28), longest_word) + 2


def _column_groups(widths: list[int], limit: int, labels: int = 1) -> list[list[int]]:
    """Split the columns after the first `labels` (the row labels) into groups that fit `limit` characters with the
    row labels repeated in each."""
    groups: list[list[int]] = [[]]
    used = sum(widths[:labels])
    for column in range(labels, len(widths)):
        if groups[-1] and used + widths[column] > limit:
            groups.append([])
            used = sum(widths[:labels])
        groups[-1].append(column)
        used += widths[column]
    return groups


def _escape_cell(text: str) -> str:
    """A table cell as Markdown inside a list item: specials escaped, never read as a list marker; blank -> nbsp."""
    text = _escape_markdown(text)
    text = re.sub(r"^([-+])(?=\s|$|-+$)", r"\\\1", text)   # "- x", "-", "---": a list item or a rule
    text = re.sub(r"^(\d{1,9})([.)])(?=\s|$)", r"\1\\\2", text)   # "1. x": an ordered list item
    text = re.sub(r"^%", r"\\%", text)   # "%" (a unit): MyST reads a line that starts with % as a comment
    return text or "\u00a0"


TABLE_CAPTION = re.compile(re.escape(TABLE_CAPTION_START) + r'(?:<span class="caption-number">.*?</span>)?(.*?)</p>',
                           re.S)


def table_caption(source: str) -> str:
    """The caption of a table output (`cvae.report.chapter.table`) as one line of Markdown, without any number; '' if none."""
    match = TABLE_CAPTION.search(source)
    if not match:
        return ""
    # a backtick in a fence's info string ends the fence's chance of being one: code in a caption prints as text
    return " ".join(_inline_html_to_markdown(match.group(1)).replace("`", "").split())


def html_table_to_markdown(source: str, width_limit: int = MARKDOWN_TABLE_WIDTH) -> str | None:
    """A pandas/Styler HTML table as one or more MyST list-tables with column widths from the content (split by
    columns when wider than `width_limit` characters, the row labels, every index level, repeated in each); None
    unless the HTML is exactly one table. Explicit widths make Sphinx's LaTeX give each column room for its longest
    word or number.
    A caption (`cvae.report.chapter.table`) becomes each list-table's title, which LaTeX numbers."""
    caption = table_caption(source)
    source = TABLE_CAPTION.sub("", source)
    parser = _TableParser()
    parser.feed(source)
    if parser.tables != 1 or not parser.rows:
        return None
    header_rows = [cells for is_header, cells in parser.rows if is_header]
    body = [cells for is_header, cells in parser.rows if not is_header]
    if not header_rows and body:
        header_rows, body = [body[0]], body[1:]
    columns = max(len(cells) for _, cells in parser.rows)
    header_rows = [cells + [""] * (columns - len(cells)) for cells in header_rows]
    body = [[_breakable(cell) for cell in cells] + [""] * (columns - len(cells)) for cells in body]
    header = []
    for column in range(columns):  # pandas puts the index name on a second header row: merge per column
        parts = []
        for cells in header_rows:
            if cells[column] and cells[column] not in parts:
                parts.append(cells[column])
        header.append(" / ".join(parts))
    widths = []
    for c in range(columns):
        header_word = max((len(word) for word in header[c].split()), default=1) + 2
        widths.append(max(_cell_width([row[c] for row in body]), min(len(header[c]), 16) + 2, header_word))
    small = width_limit < sum(widths) <= width_limit * SMALL_PRINT_WIDER
    labels = max(1, min(min(parser.label_columns, default=1), columns - 1))  # every index level repeats in each part
    groups = (_column_groups(widths, width_limit * (SMALL_PRINT_WIDER if small else 1), labels) if columns > 1
              else [[]])
    tables = []
    for part, group in enumerate(groups):
        selected = list(range(labels)) + group
        title = (CONTINUED if part else f"{caption} Printed in {len(groups)} parts, each with the same rows."
                 if len(groups) > 1 else caption) if caption else ""
        lines = ["```{list-table}" + (" " + title if title else ""), ":header-rows: 1", ":widths: " + " ".join(str(widths[c]) for c in selected), ""]
        for row in [header] + body:
            lines.append("* - " + _escape_cell(row[selected[0]]))
            lines += ["  - " + _escape_cell(row[c]) for c in selected[1:]]
        lines.append("```")
        if small:  # one table in smaller print (PREAMBLE's print-small) rather than two halves
            lines = ["````{container} print-small", *lines, "````"]
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


CONTINUED = "Continued: more columns of the table above, the same rows."  # a printed part's title after the first
_ADMONITION = re.compile(r'\s*<div class="admonition (\w+)">\s*<p class="admonition-title">(.*?)</p>(.*)</div>\s*',
                         flags=re.S)


def _inline_html_to_markdown(fragment: str) -> str:
    fragment = re.sub(r"</p>\s*<p>", "\n\n", fragment)
    fragment = re.sub(r"<strong>(.*?)</strong>", r"**\1**", fragment, flags=re.S)
    fragment = re.sub(r"<em>(.*?)</em>", r"*\1*", fragment, flags=re.S)
    fragment = re.sub(r"<code>(.*?)</code>", r"`\1`", fragment, flags=re.S)
    fragment = re.sub(r'<a href="([^"]+)">(.*?)</a>', r"[\2](\1)", fragment, flags=re.S)
    fragment = re.sub(r"</?p>", "", fragment)
    if re.search(r"<[a-z]", fragment):
        raise ValueError("unsupported inline HTML")
    return html.unescape(fragment).strip()


def html_to_markdown(source: str) -> str | None:
    """MyST Markdown for the HTML outputs the chapters produce (a table, an admonition); None for anything else."""
    match = _ADMONITION.fullmatch(source)
    if match:
        kind, title, body = match.groups()
        try:
            return (f"```{{admonition}} {html.unescape(title)}\n:class: {kind}\n{_inline_html_to_markdown(body)}"
                    "\n```\n")
        except ValueError:
            return None
    if "<table" in source:
        return html_table_to_markdown(source)
    return None


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def latex_ready_notebook(notebook: dict) -> tuple[dict, int]:
    """A copy of an executed notebook in which every HTML output also carries text/markdown (the LaTeX builder's
    choice), the data notice is its one print line (`PRINT_LINE_KEY`: the book's first page prints it whole), and
    cells tagged `WEB_ONLY_TAG` are left out; returns (notebook, number of outputs converted). HTML builds are
    unaffected (HTML has priority)."""
    notebook = copy.deepcopy(notebook)
    notebook["cells"] = [cell for cell in notebook.get("cells", [])
                         if WEB_ONLY_TAG not in cell.get("metadata", {}).get("tags", [])]
    converted = 0
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if line := output.get("metadata", {}).get(PRINT_LINE_KEY):
                data["text/markdown"] = line
                converted += 1
                continue
            for prefix in ("", RECORD_PREFIX):
                source = data.get(prefix + "text/html")
                if source is None or any(prefix + kind in data for kind in
                                         ("text/markdown", "text/latex", "image/png", "image/jpeg")):
                    continue
                markdown = html_to_markdown(_joined(source))
                if markdown is not None:
                    data[prefix + "text/markdown"] = markdown
                    converted += 1
    return notebook, converted


def glue_markdown(notebook: dict) -> dict[str, str]:
    """{glue key: its text/markdown} for the glued values of a LaTeX-ready notebook that have one."""
    found = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            markdown = output.get("data", {}).get(RECORD_PREFIX + "text/markdown")
            if name and markdown is not None:
                found[name] = _joined(markdown)
    return found


_CROSS_DOC_GLUE = re.compile(r"^```\{glue\} (?P<key>\S+)\n(?P<options>(?::[\w-]+:.*\n)*)```[ \t]*$", flags=re.M)


_FRONT_LINE = re.compile(r"^\{glue:text\}`[^`]*::front_line:s`\n+", flags=re.M)


def without_front_line(text: str) -> str:
    """The landing page without its line of author, course and date, which the PDF's title page already prints."""
    return _FRONT_LINE.sub("", text)


def latex_ready_prose(text: str, page: str, glued: dict[str, dict[str, str]],
                      notice_line: bool = False) -> tuple[str, int]:
    """Replace each cross-document `{glue}` directive of a prose page whose value is HTML (a table, a notice) by
    that value's Markdown: myst-nb renders only text/plain, HTML and images across documents, and LaTeX no HTML.
    `glued` maps a notebook's docname (report/02_training) to `glue_markdown`; with `notice_line` the data notice
    becomes its one print line. Returns (text, replacements)."""
    replaced = 0

    def substitute(match: re.Match) -> str:
        nonlocal replaced
        doc = re.search(r"^:doc:\s*(\S+)", match.group("options"), flags=re.M)
        if not doc:
            return match.group(0)
        target = doc.group(1)
        docname = target.lstrip("/") if target.startswith("/") else str(Path(page).parent / target)
        docname = os.path.normpath(docname).removesuffix(".ipynb")
        key = match.group("key")
        if notice_line and key == "data_notice" and "data_notice_line" in glued.get(docname, {}):
            key = "data_notice_line"
        markdown = glued.get(docname, {}).get(key)
        if markdown is None:
            return match.group(0)
        replaced += 1
        return markdown.rstrip("\n")

    return _CROSS_DOC_GLUE.sub(substitute, text), replaced
