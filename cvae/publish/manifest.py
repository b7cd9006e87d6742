"""What a build was made from, by content: the executed notebooks' digests, recorded by the HTML and the PDF builds
when they finish and checked by `submission`, so that the site, the PDF and the notebooks it zips come from one
build. A build that did not finish leaves no manifest; file times are never compared.
"""

from __future__ import annotations

import json
from pathlib import Path

from cvae.core.labels import DATASETS
from cvae.core.paths import PROJECT_ROOT, file_digest
from cvae.training.runs import atomic_write_text

MANIFEST_DIR = PROJECT_ROOT / "_build" / "manifests"
PARTS = {"html": ("the HTML site in _build/html", "make book"), "pdf": ("the PDF in _build/pdf", "make pdf")}


def notebook_digests(notebooks: list[Path]) -> dict[str, str]:
    """{file name: SHA-256 of its bytes} of the executed notebooks."""
    return {path.name: file_digest(path, "sha256") for path in notebooks}


def data_digests(folder: str | Path) -> dict[str, str | None]:
    """{'pathmnist.npz': MD5, ...} of the three data files in `folder` (None for a missing one)."""
    folder = Path(folder)
    # is_file: a missing file, or one that leads to a device (/dev/zero never ends), is left to the loader to name
    return {f"{flag}.npz": file_digest(folder / f"{flag}.npz", "md5") if (folder / f"{flag}.npz").is_file() else None
            for flag in DATASETS}


def manifest_path(part: str, root: Path = PROJECT_ROOT) -> Path:
    """Where the `part` ('html' or 'pdf') build records the notebooks it was made from."""
    return root / MANIFEST_DIR.relative_to(PROJECT_ROOT) / f"{part}.json"


def start(part: str, notebooks: list[Path], root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Remove the part's manifest before its build starts (a build that stops half-way leaves none); returns the
    digests of the notebooks it is about to read, for `record`."""
    manifest_path(part, root).unlink(missing_ok=True)
    return notebook_digests(notebooks)


def record(part: str, digests: dict[str, str], root: Path = PROJECT_ROOT) -> Path:
    """Write the part's manifest (the digests `start` took) once its build has finished; returns its path."""
    path = manifest_path(part, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"notebooks": digests}, indent=2))
    return path


def stale_part(notebooks: list[Path], profile: str, root: Path = PROJECT_ROOT) -> str | None:
    """None when the HTML and the PDF were both built, to the end, from exactly these notebooks; else one line naming
    the part that is not and the command that rebuilds it."""
    current = notebook_digests(notebooks)
    for part, (what, command) in PARTS.items():
        path = manifest_path(part, root)
        try:
            built_from = json.loads(path.read_text())["notebooks"]
        except FileNotFoundError:
            return (f"{what} has no finished build on record ({path} is missing): run `{command} PROFILE={profile}`")
        except (ValueError, KeyError, TypeError):
            built_from = None
        if not isinstance(built_from, dict):
            return f"{path} is damaged: run `{command} PROFILE={profile}` again"
        differing = sorted(set(current) ^ set(built_from) | {name for name in current
                                                              if built_from.get(name) not in (None, current[name])})
        if differing:
            return (f"{what} was built from other notebooks than those in report/ ({', '.join(differing[:3])}"
                    f"{' and more' if len(differing) > 3 else ''} differ): run `{command} PROFILE={profile}` again")
    return None


__all__ = ["notebook_digests", "data_digests", "manifest_path", "start", "record", "stale_part", "MANIFEST_DIR"]
