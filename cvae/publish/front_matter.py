"""The book's front matter (title, authors, course, date, repository, the original report) from `_config.yml`.

`_config.yml` is the one place a submitter edits: Jupyter Book's own `title` and `author`, `repository.url`
(empty = not published) and a `submission` block that Jupyter Book ignores:

    submission:
      course: "Deep Generative Models (course project reproduction)"
      date: ""          # empty = the build date
      original_report: {title: ..., course: ..., year: ""}   # empty year = "n.d."

The PDF title page, the HTML front matter and the derived launch-button settings all read it through
`load_front_matter`.
"""

from __future__ import annotations

import datetime as _datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cvae.core.config import ConfigError
from cvae.core.paths import PROJECT_ROOT

CONFIG_FILE = PROJECT_ROOT / "_config.yml"
DEFAULT_AUTHORS = "The CVAE MedMNIST report team"
DEFAULT_COURSE = "Deep Generative Models (course project reproduction)"
DEFAULT_ORIGINAL_TITLE = "Conditional Generation of Medical Images using VAE"
DEFAULT_ORIGINAL_COURSE = "Deep Generative Models"


@dataclass(frozen=True)
class OriginalReport:
    """The report this book reproduces; `year` is "" when the original does not state it."""

    title: str
    course: str
    year: str = ""

    @property
    def citation(self) -> str:
        """One-line citation, e.g. 'Conditional Generation of Medical Images using VAE. Course project, "Deep
        Generative Models", n.d.'"""
        year = self.year or "n.d."
        return f'{self.title}. Course project, "{self.course}", {year}' + ("" if year.endswith(".") else ".")


@dataclass(frozen=True)
class FrontMatter:
    """What the title page and the intro page say about the book and where it is published."""

    title: str
    authors: tuple[str, ...]
    course: str
    date: str                      # as printed, e.g. "26 November 2026"
    date_is_build_date: bool       # True when `submission.date` was empty
    repository_url: str            # "" = not published: no repository, issue or launch buttons
    repository_branch: str
    original: OriginalReport

    @property
    def author_line(self) -> str:
        """The authors joined for a title page: 'A', 'A and B', 'A, B and C'."""
        if len(self.authors) <= 2:
            return " and ".join(self.authors)
        return ", ".join(self.authors[:-1]) + " and " + self.authors[-1]

    @property
    def published(self) -> bool:
        """Whether a public repository URL is configured (buttons and Binder links are derived from it)."""
        return bool(self.repository_url)

    @property
    def binder_url(self) -> str:
        """The mybinder.org launch URL of the repository's branch ("" when unpublished)."""
        if not self.repository_url:
            return ""
        match = re.match(r"https://(github|gitlab)\.com/([^/]+)/([^/]+?)(?:\.git)?/?$", self.repository_url)
        if match:
            host, org, repo = match.groups()
            provider = "gh" if host == "github" else "gl"
            return f"https://mybinder.org/v2/{provider}/{org}/{repo}/{self.repository_branch}"
        from urllib.parse import quote

        return f"https://mybinder.org/v2/git/{quote(self.repository_url, safe='')}/{self.repository_branch}"


def _text(value, key: str, path: Path) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{path}: `{key}` must be text, got {value!r}; edit that key in {path.name}")
    return str(value).strip()


def split_authors(author: str) -> tuple[str, ...]:
    """'A and B; C' -> ('A', 'B', 'C'): authors are separated by ';' or ' and ' (never by commas)."""
    parts = [p.strip() for p in re.split(r";|\s+and\s+", author) if p.strip()]
    return tuple(parts)


def build_date(today: _datetime.date | None = None) -> str:
    """Today's date as printed on the title page, e.g. '26 November 2026' ($SOURCE_DATE_EPOCH is honoured)."""
    if today is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        if epoch and epoch.isdigit():
            today = _datetime.datetime.fromtimestamp(int(epoch), tz=_datetime.timezone.utc).date()
        else:
            today = _datetime.date.today()
    return f"{today.day} {today.strftime('%B %Y')}"


def load_front_matter(path: str | Path = CONFIG_FILE, today: _datetime.date | None = None) -> FrontMatter:
    """Read the front matter from a Jupyter Book `_config.yml`; ConfigError naming the file and key if invalid."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run from the project folder (it holds _config.yml)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML ({str(error).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a YAML mapping of Jupyter Book settings")
    title = _text(data.get("title"), "title", path)
    if not title:
        raise ConfigError(f"{path}: `title` is empty; give the book a title there")
    authors = split_authors(_text(data.get("author"), "author", path) or DEFAULT_AUTHORS)
    submission = data.get("submission") or {}
    repository = data.get("repository") or {}
    if not isinstance(submission, dict) or not isinstance(repository, dict):
        raise ConfigError(f"{path}: `submission` and `repository` must be mappings (key: value lines)")
    original = submission.get("original_report") or {}
    if not isinstance(original, dict):
        raise ConfigError(f"{path}: `submission.original_report` must be a mapping with title, course and year")
    url = _text(repository.get("url"), "repository.url", path).rstrip("/")
    if url and not re.match(r"https://[\w.-]+/\S+$", url):
        raise ConfigError(f"{path}: `repository.url` must be an https:// repository address or empty, got {url!r}")
    date = _text(submission.get("date"), "submission.date", path)
    return FrontMatter(
        title=title,
        authors=authors,
        course=_text(submission.get("course"), "submission.course", path) or DEFAULT_COURSE,
        date=date or build_date(today),
        date_is_build_date=not date,
        repository_url=url,
        repository_branch=_text(repository.get("branch"), "repository.branch", path) or "main",
        original=OriginalReport(
            title=_text(original.get("title"), "submission.original_report.title", path) or DEFAULT_ORIGINAL_TITLE,
            course=_text(original.get("course"), "submission.original_report.course", path)
            or DEFAULT_ORIGINAL_COURSE,
            year=_text(original.get("year"), "submission.original_report.year", path),
        ),
    )


__all__ = ["FrontMatter", "OriginalReport", "load_front_matter", "split_authors", "build_date", "CONFIG_FILE"]
