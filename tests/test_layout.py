"""The README's map of the package matches the package: every module is on it and everything on it is a module."""

from __future__ import annotations

import fnmatch
import re

from cvae.paths import PROJECT_ROOT


def _package_map() -> dict[str, str]:
    """{name listed in the README's layout block for cvae/: its line}."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = readme[readme.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    package = block[block.index("cvae/"):block.index("notebooks/")]
    listed = {}
    for line in package.splitlines()[1:]:
        match = re.match(r"^  ([a-z_*][a-z_0-9*, ]*?)(?:\s{2,}|$)", line)
        if match:
            for name in match.group(1).split(","):
                listed[name.strip()] = line
    return listed


def test_the_readme_map_names_every_module_of_the_package_and_nothing_else():
    modules = sorted(p.stem for p in (PROJECT_ROOT / "cvae").glob("*.py") if not p.stem.startswith("__"))
    listed = _package_map()
    assert len(listed) >= 30
    unlisted = [m for m in modules if not any(fnmatch.fnmatch(m, name) for name in listed)]
    assert unlisted == [], f"modules missing from the README's layout: {unlisted}"
    stale = [name for name in listed if not any(fnmatch.fnmatch(m, name) for m in modules)]
    assert stale == [], f"names in the README's layout that are no module: {stale}"
