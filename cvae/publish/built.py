"""What the executed notebooks in report/ were built with: profile, parameters, configuration, data source.

The PDF and the submission archive are made from an existing build; they read its parameters from the notebooks
papermill wrote (metadata.papermill.parameters), never from the command line, so they cannot mislabel a build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cvae.core.paths import PROJECT_ROOT


@dataclass(frozen=True)
class BuiltBook:
    """One executed build of the chapters."""

    report_dir: Path
    notebooks: tuple[Path, ...]     # report/NN_name.ipynb in chapter order
    parameters: dict                # the papermill parameters every chapter ran with
    profile: str
    config_hash: str
    data_source: str                # "medmnist" or "synthetic"

    @property
    def synthetic(self) -> bool:
        """True when the build used the synthetic stand-in instead of MedMNIST."""
        return self.data_source == "synthetic"


def built_book(report_dir: str | Path = PROJECT_ROOT / "report") -> BuiltBook:
    """Read the executed notebooks; BookError (exit 2) when one is missing or they ran with different parameters."""
    from cvae.publish.jupyter_book import BookError, notebook_sources

    report_dir = Path(report_dir)
    sources = notebook_sources()
    notebooks = tuple(report_dir / f"{source.stem}.ipynb" for source in sources)
    missing = [path.name for path in notebooks if not path.exists()]
    if missing:
        raise BookError(f"no executed notebooks {', '.join(missing)} in {report_dir}: build the book first "
                        "(`make book PROFILE=...` or `python -m cvae book --profile ...`)")
    parameters = {}
    for path in notebooks:
        try:
            values = json.loads(path.read_text())["metadata"]["papermill"]["parameters"]
        except (ValueError, KeyError) as error:
            raise BookError(f"{path} is not a notebook executed by `python -m cvae book` ({error!r}); rebuild the "
                            "book with `make book`") from None
        parameters[path.name] = values
    distinct = {json.dumps(values, sort_keys=True) for values in parameters.values()}
    if len(distinct) != 1:
        raise BookError(f"the notebooks in {report_dir} were executed with different parameters "
                        f"({sorted(distinct)}); rebuild them all with `make book PROFILE=...`")
    values = next(iter(parameters.values()))
    config = _config_of(values)
    return BuiltBook(report_dir=report_dir, notebooks=notebooks, parameters=dict(values),
                     profile=str(values.get("profile", "")), config_hash=config.config_hash(),
                     data_source=config.data_source)


def _config_of(values: dict):
    from cvae.report.chapter import notebook_config

    return notebook_config(values.get("profile", "smoke"), values.get("seed"), values.get("data_source", ""),
                           values.get("data_dir", ""), values.get("overrides", []))


def built_config(built: BuiltBook):
    """The chapters' Config (the same function the notebooks call, so the hash is theirs by construction)."""
    return _config_of(built.parameters)


__all__ = ["BuiltBook", "built_book", "built_config"]
