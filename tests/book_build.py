"""The smoke book, built once per test session and shared by test_book.py and test_browser.py."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from cvae.core.paths import PROJECT_ROOT

LOG: list[str] = []


@functools.lru_cache(maxsize=1)
def smoke_book() -> tuple[Path, float]:
    """Build the smoke book (data -> notebooks -> HTML) in the project; returns (html folder, seconds).

    With CVAE_TEST_BOOK_HTML=<folder> the browser tests check an already built book instead (e.g. a CI artifact);
    the build-time budget is then not measured (0 s)."""
    from cvae.publish.book import build_book

    if os.environ.get("CVAE_TEST_BOOK_HTML"):
        return Path(os.environ["CVAE_TEST_BOOK_HTML"]), 0.0

    tick = time.perf_counter()
    html = build_book("smoke", log=LOG.append)
    return Path(html), time.perf_counter() - tick


def toc_pages() -> list[str]:
    """Every page of _toc.yml as a path relative to the HTML root without suffix (root first)."""
    import yaml

    toc = yaml.safe_load((PROJECT_ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages
