"""The whole book as one PDF, through Jupyter Book 1's LaTeX builder, from the notebooks `python -m cvae book` executed.

Nothing is re-executed. `build_pdf()` stages a LaTeX-ready copy of the sources in `_build/pdf/source/` (the prose
chapters, `_toc.yml`, and the executed notebooks with a Markdown version added beside every HTML table and
admonition, which LaTeX cannot use: `cvae.publish.print_markup`), writes a configuration with a title page from `cvae.publish.front_matter`, runs
`jupyter-book build --builder latex -W -n`, then `latexmk` (xelatex), and copies the result to `_build/pdf/book.pdf`.

The TeX tool chain comes from Debian (`TEX_PACKAGES`); `make pdf` installs it when run as root.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from cvae.core.paths import PROJECT_ROOT
from cvae.publish.print_markup import glue_markdown, latex_ready_notebook, latex_ready_prose, without_front_line

PDF_DIR = PROJECT_ROOT / "_build" / "pdf"
PDF_PATH = PDF_DIR / "book.pdf"
TEX_PACKAGES = ("texlive-xetex", "texlive-latex-extra", "texlive-fonts-recommended", "latexmk",
                "fonts-freefont-otf", "poppler-utils")
APT_INSTALL = "sudo apt-get install --no-install-recommends " + " ".join(TEX_PACKAGES)
TEX_TOOLS = ("xelatex", "latexmk", "kpsewhich", "make")
# pages the PDF prints last: Sphinx's LaTeX writer prints every citation at the end of the document, so the
# References chapter goes there and the list follows its heading (PREAMBLE), instead of an empty chapter mid-book
PRINT_LAST = ("book/references",)


# ---------------------------------------------------------------------------------------------------------------
# The build


def missing_tex_tools() -> list[str]:
    """The TeX tools `build_pdf` needs that are not on PATH (xelatex, latexmk, kpsewhich, make)."""
    return [tool for tool in TEX_TOOLS if shutil.which(tool) is None]


def require_tex() -> None:
    """BookError (exit 2) naming the one apt-get line when a TeX tool (`missing_tex_tools`) is missing."""
    from cvae.publish.jupyter_book import BookError

    missing = missing_tex_tools()
    if missing:
        raise BookError(f"the PDF needs {', '.join(missing)} (TeX), not found on PATH; install it with: {APT_INSTALL}"
                        " (`make pdf` run as root installs it)")


def tex_escape(text: str) -> str:
    """Text for a LaTeX document: the ten special characters escaped."""
    replacements = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                    "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}"}
    return "".join(replacements.get(character, character) for character in text)


def title_page(front, built) -> str:
    """The LaTeX title page: title, authors, course, date from `_config.yml`, what the book reproduces, and which
    build (profile, config hash, data) it shows; `built` is a `cvae.publish.built.BuiltBook`."""
    lines = [
        r"\begin{titlepage}",
        r"\centering\vspace*{3cm}",
        r"{\Huge\bfseries " + tex_escape(front.title) + r"\par}",
        r"\vspace{1.5cm}",
        r"{\Large " + tex_escape(front.author_line) + r"\par}",
        r"\vspace{0.8cm}",
        r"{\large " + tex_escape(front.course) + r"\par}",
        r"\vspace{0.3cm}",
        r"{\large " + tex_escape(front.date) + r"\par}",
        r"\vspace{1.5cm}",
        r"{\normalsize A reproduction of \emph{" + tex_escape(front.original.title) + "}, course project, "
        + "\u201c" + tex_escape(front.original.course) + "\u201d, " + tex_escape(front.original.year or "n.d.")
        + ("" if (front.original.year or "n.d.").endswith(".") else ".") + r"\par}",
        r"\vfill",
    ]
    data = ("the synthetic stand-in (generated MedMNIST-format images, not medical data)" if built.synthetic
            else "the real MedMNIST files")
    lines.append(r"{\small Built with profile \texttt{" + tex_escape(built.profile) + r"} (configuration \texttt{"
                 + tex_escape(built.config_hash) + "}) on " + tex_escape(data) + r".\par}")
    if built.synthetic:
        lines += [r"\vspace{0.5cm}",
                  r"\fbox{\parbox{0.8\linewidth}{\centering\textbf{Synthetic data.} Every number and figure in this "
                  r"build comes from the synthetic stand-in: it tests the pipeline and says nothing about "
                  r"PathMNIST, TissueMNIST or OCTMNIST.}}\par"]
    if front.published:
        lines.append(r"\vspace{0.5cm}{\small Online: \url{" + front.repository_url + r"}\par}")
    lines.append(r"\end{titlepage}")
    return "\n".join(lines)


# jupyterBook.cls (sphinx-jupyterbook-latex) loads bbm.sty only for blackboard-bold macros (\RR, \EE, ...) this book
# never uses; Debian ships bbm.sty only in the 1 GB texlive-fonts-extra, so without it \mathbbm maps to \mathbb.
BBM_STUB = r"""% written by cvae/publish/pdf.py: no bbm.sty is installed (texlive-fonts-extra); \mathbbm falls back to \mathbb
\ProvidesPackage{bbm}[2026/11/26 cvae stand-in]
\RequirePackage{amssymb}
\providecommand{\mathbbm}[1]{\mathbb{#1}}
"""

PREAMBLE = r"""
% cvae.publish.pdf: tables a little smaller, so that more columns fit the text width
\AtBeginEnvironment{tabulary}{\small}
\AtBeginEnvironment{longtable}{\small}
\AtBeginEnvironment{tabular}{\small}
% cvae.publish.pdf: cells of tables with given column widths (sphinxlatextables.sty's \X) ragged right, so that a narrow
% column with long words does not stretch its spaces
\makeatletter
\newcolumntype{\X}[2]{>{\raggedright\arraybackslash}p{\dimexpr
      (\linewidth-\spx@arrayrulewidth)*#1/#2-\tw@\tabcolsep-\spx@arrayrulewidth\relax}}
\makeatother
% cvae.publish.pdf: a chapter starts on the page where the previous one ends, under a compact heading (no part pages, no
% fncychap banner: about 15 pages fewer), unless less than 0.15 of that page is left (0.33 broke pages that were
% nearly empty: the smoke PDF had 46 pages with 0.15, 48 with 0.33)
\usepackage{needspace}
\usepackage{placeins}
\makeatletter
\renewcommand\chapter{\par\needspace{0.15\textheight}\addvspace{2\baselineskip}\global\@topnum\z@\@afterindentfalse
  \secdef\@chapter\@schapter}
% a figure is at most 0.38 of the text height: two fit a page with their captions, and a figure that stays in its
% section (figure_align H) leaves at most that much of the page before it empty (0.78 gave 54 pages, 0.38 gives 41)
\AtBeginDocument{\spx@image@maxheight=0.38\textheight}
\renewcommand\@makechapterhead[1]{{\parindent\z@\raggedright\normalfont\LARGE\py@HeaderFamily
  \thechapter\quad #1\par\nobreak\vskip 1.2em}}
\renewcommand\@makeschapterhead[1]{{\parindent\z@\raggedright\normalfont\LARGE\py@HeaderFamily
  #1\par\nobreak\vskip 1.2em}}
\makeatother
% a notebook cell tagged "print-small" prints in \scriptsize, its tables too (the claims table fits one page);
% Sphinx wraps each cell in sphinxuseclass{tag_<tag>}, which opens the environment sphinxclass<class> if defined
\makeatletter
\@namedef{sphinxclasstag_print-small}{\let\small\scriptsize\scriptsize}
\@namedef{endsphinxclasstag_print-small}{}
\@namedef{sphinxclassprint-small}{\let\small\scriptsize\scriptsize}
\@namedef{endsphinxclassprint-small}{}
% a cell tagged "print-page" (the claims table) prints small on a page of its own, a float: the text before it fills
% the page it would have left half empty, and a barrier after it keeps the next section after it (the table had
% floated into the middle of the margins' list, two sections on)
\@namedef{sphinxclasstag_print-page}{\begin{table}[p]\let\small\scriptsize\scriptsize}
\@namedef{endsphinxclasstag_print-page}{\end{table}\FloatBarrier}
% a figure inside a "print-tall" container (the eight panels of the loss curves) may take 0.52 of the text height, so
% that its width, which the height cap sets for a tall figure, leaves its labels readable
\@namedef{sphinxclassprint-tall}{\spx@image@maxheight=0.52\textheight}
\@namedef{endsphinxclassprint-tall}{}
\makeatother
% the landing page's headings print as line blocks (it precedes the chapters): one never ends a page alone
\AtBeginEnvironment{DUlineblock}{\needspace{5\baselineskip}}
% the datasets' names are never hyphenated ("PathM-NIST")
\hyphenation{PathMNIST TissueMNIST OCTMNIST MedMNIST}
\makeatletter
\makeatother
% the contents list the chapters only (one page instead of three)
\setcounter{tocdepth}{0}
% running footers name where the reader is: nothing on the pages after the contents (the abstract and introduction),
% and a chapter's own name until its first section (a chapter without sections, References, kept the last section
% of the chapter before it)
\makeatletter
\AtBeginDocument{\g@addto@macro\sphinxtableofcontents{\markboth{}{}}}
\renewcommand\chaptermark[1]{\markboth{\thechapter\quad #1}{\thechapter\quad #1}}
\makeatother
% the bibliography as a plain list under the References chapter, which the PDF prints last (cvae.publish.pdf.PRINT_LAST)
\makeatletter
\renewenvironment{sphinxthebibliography}[1]{\list{\@biblabel{\@arabic\c@enumiv}}{\settowidth\labelwidth{\@biblabel{#1}}%
    \leftmargin\labelwidth\advance\leftmargin\labelsep\@openbib@code\usecounter{enumiv}\let\p@enumiv\@empty
    \renewcommand\theenumiv{\@arabic\c@enumiv}}\sloppy\clubpenalty4000\@clubpenalty\clubpenalty\widowpenalty4000%
  \sfcode`\.\@m}{\def\@noitemerr{\@latex@warning{Empty `thebibliography' environment}}\endlist}
\makeatother
"""


def latex_config(base: dict, front, built) -> dict:
    """The LaTeX build's Jupyter Book configuration: the HTML one plus xelatex, the title page, A4, no index."""
    config = copy.deepcopy(base)
    config["latex"] = {"latex_engine": "xelatex", "use_jupyterbook_latex": True,
                       "latex_documents": {"targetname": "book.tex"}}
    sphinx = config.setdefault("sphinx", {})
    settings = sphinx.setdefault("config", {})
    for key in ("mathjax_path", "html_extra_path"):  # HTML-only, and their folders are not staged
        settings.pop(key, None)
    settings["latex_elements"] = {
        "papersize": "a4paper",
        "pointsize": "10pt",
        "sphinxsetup": "hmargin={2.2cm,2.2cm}, vmargin={2cm,2.2cm}",  # Sphinx's 1 in margins and 11 pt: 54 pages
        "maketitle": title_page(front, built),
        "preamble": PREAMBLE,
        "fncychap": "",
        "figure_align": "H",  # a figure stays where the text puts it, inside its section, never floated past it
        "printindex": "",
        "extraclassoptions": "openany,oneside",
        # a figure's width is given in CSS px of its 100 dpi drawing (FIGURE_DPI; the PNG holds twice as many pixels):
        # printed at 100 px an inch it keeps its drawn size and prints at 200 dpi, where Sphinx's 96 would give 192
        "pxunit": "0.72bp",
    }
    settings["latex_use_xindy"] = False
    settings["latex_domain_indices"] = False
    settings["latex_show_urls"] = "no"
    config["exclude_patterns"] = sorted(set(config.get("exclude_patterns", [])) | {"_build/**"})
    return config


def stage_sources(stage: Path, report_dir: Path, root: Path = PROJECT_ROOT) -> int:
    """Copy `_toc.yml`, the prose chapters and LaTeX-ready executed notebooks into `stage`; returns how many HTML
    outputs were given a Markdown version (in the notebooks, and in place of cross-document glue in the prose)."""
    import yaml

    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    toc = printed_toc(yaml.safe_load((root / "_toc.yml").read_text()))
    (stage / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    shutil.copytree(root / "book", stage / "book", ignore=shutil.ignore_patterns("_mathjax", ".ipynb_checkpoints"))
    converted = 0
    glued: dict[str, dict[str, str]] = {}
    docnames = _toc_docnames(toc)
    for docname in docnames:
        if not docname.startswith("report/"):
            continue
        source = report_dir / (Path(docname).name + ".ipynb")
        notebook, count = latex_ready_notebook(json.loads(source.read_text()))
        converted += count
        glued[docname] = glue_markdown(notebook)
        target = stage / (docname + ".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(notebook, indent=1))
    for download in report_dir.glob("*.csv"):   # files the chapters offer as {download} links
        shutil.copy2(download, stage / "report" / download.name)
    for docname in docnames:
        page = stage / (docname + ".md")
        if page.exists():  # the first page prints the data notice whole, the others its one line
            text, count = latex_ready_prose(page.read_text(), docname, glued, notice_line=docname != docnames[0])
            text = without_front_line(text) if docname == docnames[0] else text
            page.write_text(text)
            converted += count
    return converted


def printed_toc(toc: dict) -> dict:
    """The PDF's table of contents: the book's chapters in order, without part pages (four pages of a part's name
    alone), PRINT_LAST at the end."""
    chapters = [chapter for part in toc.get("parts", []) for chapter in part.get("chapters", [])]
    chapters += toc.get("chapters", [])
    last = [chapter for chapter in chapters if re.sub(r"\.(md|ipynb)$", "", chapter["file"]) in PRINT_LAST]
    first = [chapter for chapter in chapters if chapter not in last]
    return {key: value for key, value in toc.items() if key != "parts"} | {"chapters": first + last}


def _toc_docnames(toc: dict) -> list[str]:
    names = [toc["root"]]
    for part in toc.get("parts", []):
        names += [chapter["file"] for chapter in part.get("chapters", [])]
    names += [chapter["file"] for chapter in toc.get("chapters", [])]
    return names


def printed_pages(log_text: str) -> int | None:
    """The PDF's page count as xelatex reports it in its log ('Output written on book.pdf (38 pages)'), or None."""
    found = re.findall(r"^Output written on \S+ \((\d+) pages?", log_text, flags=re.M)
    return int(found[-1]) if found else None


def _latex_problems(log_text: str) -> list[str]:
    """Undefined references/citations and missing images reported in a LaTeX log."""
    patterns = (r"LaTeX Warning: (Reference|Citation|Hyper reference) .* undefined.*",
                r"LaTeX Warning: There were undefined references.*",
                r"! LaTeX Error: File .* not found.*", r"LaTeX Warning: File .* not found.*",
                r"! Package \w+ Error:.*")
    found = []
    for pattern in patterns:
        found += [match.group(0).strip() for match in re.finditer(r"^.*" + pattern, log_text, flags=re.M)]
    return list(dict.fromkeys(found))


def build_pdf(root: Path = PROJECT_ROOT, report_dir: Path | None = None, log=print) -> Path:
    """The whole book as one PDF at _build/pdf/book.pdf from the executed notebooks (no re-execution)."""
    import yaml

    from cvae.publish import manifest
    from cvae.publish.built import built_book
    from cvae.publish.front_matter import load_front_matter
    from cvae.publish.jupyter_book import BookError, derived_config, jupyter_book_command, kernel_env
    from cvae.training.runs import atomic_write_text

    require_tex()
    report_dir = Path(report_dir or root / "report")
    built = built_book(report_dir)          # BookError when the notebooks are missing or disagree
    read = manifest.start("pdf", list(built.notebooks), root)
    front = load_front_matter(root / "_config.yml")
    tick = time.perf_counter()
    pdf_dir = root / "_build" / "pdf"
    stage = pdf_dir / "source"
    converted = stage_sources(stage, report_dir, root)
    log(f"[pdf] staged {stage} ({converted} HTML tables/notices given a Markdown version)")
    config = latex_config(derived_config(root / "_config.yml"), front, built)
    config_path = stage / "_config.yml"
    atomic_write_text(config_path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    command = jupyter_book_command() + ["build", str(stage), "--builder", "latex", "--config", str(config_path),
                                         "--path-output", str(pdf_dir), "-W", "-n", "--keep-going", "--all"]
    log("[pdf] " + " ".join(command[1:]))
    env = kernel_env()
    completed = subprocess.run(command, cwd=stage, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        lines = [line for line in (completed.stdout + completed.stderr).splitlines()
                 if "WARNING" in line or "ERROR" in line or "Error" in line]
        raise BookError("the LaTeX build (jupyter-book --builder latex) failed:\n"
                        + "\n".join(lines[-40:] or completed.stderr.splitlines()[-40:]))
    latex_dir = pdf_dir / "_build" / "latex"
    if subprocess.run(["kpsewhich", "bbm.sty"], capture_output=True, text=True).returncode != 0:
        (latex_dir / "bbm.sty").write_text(BBM_STUB)
    log(f"[pdf] LaTeX sources in {latex_dir}; running latexmk (xelatex)")
    env = dict(os.environ, LATEXMKOPTS="-interaction=nonstopmode -halt-on-error -file-line-error")
    completed = subprocess.run(["make", "-C", str(latex_dir), "all-pdf"], env=env, capture_output=True, text=True)
    log_file = latex_dir / "book.log"
    log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
    problems = _latex_problems(log_text)
    produced = latex_dir / "book.pdf"
    if completed.returncode != 0 or not produced.exists() or problems:
        detail = problems or [line for line in completed.stdout.splitlines()
                              if line.startswith("!") or re.match(r"\S+\.(tex|sty|cls):\d+: ", line)][-20:]
        raise BookError(f"xelatex failed or left problems (see {log_file}):\n" + "\n".join(detail[:30]))
    target = pdf_dir / PDF_PATH.name
    temporary = target.with_suffix(".pdf.tmp")
    shutil.copy2(produced, temporary)
    os.replace(temporary, target)
    manifest.record("pdf", read, root)
    pages = printed_pages(log_text)
    log(f"[pdf] {target} ({f'{pages} pages, ' if pages else ''}{target.stat().st_size / 1e6:.1f} MB, "
        f"{time.perf_counter() - tick:.0f} s)")
    return target


__all__ = ["PRINT_LAST", "printed_toc", "printed_pages", "build_pdf", "missing_tex_tools", "require_tex", "title_page",
           "tex_escape", "latex_config", "stage_sources", "PDF_PATH", "TEX_PACKAGES", "APT_INSTALL"]
