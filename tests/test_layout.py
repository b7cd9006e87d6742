"""The README's map of the package matches the package: every module is on it, in its layer, and nothing else is."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

from cvae.core.paths import PROJECT_ROOT


def _package_map() -> dict[str, list[str]]:
    """{layer listed in the README's layout block for cvae/: the module names (or globs) on its line}."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = readme[readme.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    package = block[block.index("cvae/"):block.index("notebooks/")]
    listed: dict[str, list[str]] = {}
    continued = None  # the layer whose list of names ended with a comma: the next line goes on with it
    for line in package.splitlines()[1:]:
        match = re.match(r"^  ([a-z_]+)/\s+(.+)$", line)
        if match or continued:
            layer, names = (match.group(1), match.group(2)) if match else (continued, line.strip())
            listed.setdefault(layer, []).extend(name.strip() for name in names.split(",") if name.strip())
            continued = layer if names.rstrip().endswith(",") else None
    return listed


def _package_modules() -> dict[str, list[str]]:
    """{subpackage of cvae/: its modules}, read from the tree."""
    package = PROJECT_ROOT / "cvae"
    return {folder.name: sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("__"))
            for folder in sorted(package.iterdir()) if (folder / "__init__.py").exists()}


def test_the_readme_map_names_every_layer_and_module_of_the_package_and_nothing_else():
    listed, modules = _package_map(), _package_modules()
    assert list(listed) == list(_layers_top_down())[::-1], "the README lists the layers bottom-up, as .importlinter does"
    assert set(listed) == set(modules), f"layers: README {sorted(listed)}, tree {sorted(modules)}"
    for layer, names in modules.items():
        unlisted = [m for m in names if not any(fnmatch.fnmatch(m, name) for name in listed[layer])]
        assert unlisted == [], f"modules of cvae/{layer} missing from the README's layout: {unlisted}"
        stale = [name for name in listed[layer] if not any(fnmatch.fnmatch(m, name) for m in names)]
        assert stale == [], f"names in the README's cvae/{layer} line that are no module there: {stale}"


def test_the_package_has_no_module_outside_a_layer():
    loose = sorted(p.name for p in (PROJECT_ROOT / "cvae").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


def _layers_top_down() -> list[str]:
    """The layers of the contract in .importlinter, top first, without the cvae. prefix and the CLI."""
    text = (PROJECT_ROOT / ".importlinter").read_text()
    section = text[text.index("type = layers"):]
    section = section[section.index("layers =") + len("layers ="):]
    names = []
    for line in section.splitlines()[1:]:
        if not line.startswith((" ", "\t")) or not line.strip():
            break
        names.append(line.strip())
    return [name.removeprefix("cvae.") for name in names if name != "cvae.__main__"]


def test_the_layer_contract_holds_and_no_module_imports_in_a_circle():
    """`lint-imports` checks .importlinter: each layer imports only those below it; no circle among siblings."""
    lint = Path(sys.executable).parent / "lint-imports"
    completed = subprocess.run([str(lint) if lint.exists() else "lint-imports", "--no-cache"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in completed.stdout


MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _functions(path: Path) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method in a source file, decorators included."""
    import ast

    found = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                found.append((f"{prefix}{child.name}", child.end_lineno - start + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(path.read_text()), "")
    return found


def test_no_module_is_longer_than_a_long_read_and_no_function_longer_than_a_screen_and_a_half():
    sources = sorted((PROJECT_ROOT / "cvae").rglob("*.py")) + sorted((PROJECT_ROOT / "scripts").glob("*.py"))
    assert len(sources) > 50
    long_modules = {str(p.relative_to(PROJECT_ROOT)): n for p in sources
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long_modules == {}, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    long_functions = {f"{p.relative_to(PROJECT_ROOT)}:{name}": n for p in sources for name, n in _functions(p)
                      if n > MAX_FUNCTION_LINES}
    assert long_functions == {}, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_the_length_check_counts_a_function_and_a_method_by_their_lines(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f():\n    return 1\n\n\nclass C:\n    @property\n    def g(self):\n        x = 1\n"
                      "        return x\n")
    assert _functions(source) == [("f", 2), ("C.g", 4)]


def test_the_datasets_are_typed_once_and_every_per_dataset_table_covers_exactly_them():
    """`labels.DATASETS` is the one typed list; names, channels and classes come from medmnist.INFO, and each layer's
    table keyed by dataset (the stand-in's renderers, counts and spreads, the reference accuracies, the palette)
    names exactly those sets, so a fourth set added half-way fails here rather than at plot time."""
    from cvae.core import labels, original
    from cvae.core.medmnist_info import INFO
    from cvae.data import synthetic
    from cvae.report import plots

    assert labels.MODALITY_NAMES == tuple(INFO[flag]["python_class"] for flag in labels.DATASETS)
    assert labels.CHANNELS == {flag: INFO[flag]["n_channels"] for flag in labels.DATASETS} == {
        "pathmnist": 3, "tissuemnist": 1, "octmnist": 1}
    for table in (synthetic._RENDERERS, synthetic.OFFICIAL_CLASS_COUNTS, synthetic.SPREAD,
                  original.REFERENCE_RESNET18_28):
        assert tuple(table) == labels.DATASETS
    assert len(plots.class_colours()) == labels.NUM_CLASSES == 21
    assert len(plots.MODALITY_COLOURS) == labels.NUM_MODALITIES
    typed = re.compile(r'"(pathmnist|tissuemnist|octmnist)"\s*:\s*"(PathMNIST|TissueMNIST|OCTMNIST)"')
    retyped = [str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "cvae").rglob("*.py")
               if typed.search(p.read_text())]
    assert retyped == [], f"display names typed again (read cvae.core.labels.DATASET_NAMES): {retyped}"


def test_the_run_folders_file_names_are_typed_once_in_core_paths():
    import ast

    from cvae.core import paths

    names = {paths.CONFIG_FILE, paths.METRICS_FILE, paths.LAST_CHECKPOINT, paths.KEPT_CHECKPOINT, paths.SUMMARY_FILE,
             paths.DIVERGED_FILE, paths.DIGESTS_FILE, paths.LOSS_BALANCE_FILE, paths.EVALUATION_FILE,
             paths.VARIANT_METRICS_FILE}
    typed = []
    for path in sorted([*(PROJECT_ROOT / "cvae").rglob("*.py"), *(PROJECT_ROOT / "scripts").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                typed.append((str(path.relative_to(PROJECT_ROOT)), node.value))
    evaluator = ("cvae/evaluation/domain_evaluator.py", "summary.json")  # the evaluator's folder has its own summary
    assert sorted(set(typed) - {evaluator}) == sorted(("cvae/core/paths.py", name) for name in names)
