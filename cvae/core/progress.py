"""The progress bar every long loop uses: a widget in a notebook that can draw one, text elsewhere.

tqdm.auto picks the widget in any notebook kernel, and without ipywidgets (the `interactive` extra) it warns into the
cell's output instead, which a book built with `make book` alone would print under a chapter's heading.
"""

from __future__ import annotations

try:
    import ipywidgets  # noqa: F401  (only to know whether tqdm.auto can draw its widget)
except ImportError:
    from tqdm import tqdm
else:
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
