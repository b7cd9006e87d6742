"""The smoke book's PDF, built once per test session from the smoke book (book_build.py) and shared by
test_pdf.py and test_publishing.py."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from book_build import LOG, smoke_book


@functools.lru_cache(maxsize=1)
def smoke_pdf() -> tuple[Path, float]:
    """Build the smoke book (shared with the other slow tests), then its PDF; returns (PDF, seconds for the PDF).
    With CVAE_TEST_BOOK_HTML=<project>/_build/html (see book_build.py) the PDF is made from that project's build."""
    from cvae.publish.pdf import build_pdf

    html, _ = smoke_book()
    tick = time.perf_counter()
    path = build_pdf(root=html.resolve().parent.parent, log=LOG.append)
    return path, time.perf_counter() - tick
