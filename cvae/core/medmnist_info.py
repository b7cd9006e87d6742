"""`medmnist.INFO` and medmnist's default folder, read from the installed package's `info.py` alone.

`import medmnist` runs the package's `__init__`, which imports its evaluator and with it scikit-learn: about 0.8 s
in every chapter notebook, most of which only need the dataset facts. The full package is imported only where it
is used (downloading, versions).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load_info():
    if "medmnist.info" in sys.modules:  # the package is already imported: use its module
        return sys.modules["medmnist.info"]
    spec = importlib.util.find_spec("medmnist")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the medmnist package is not installed: pip install medmnist (or make env)")
    path = Path(list(spec.submodule_search_locations)[0]) / "info.py"
    module_spec = importlib.util.spec_from_file_location("cvae._medmnist_info_module", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


_INFO_MODULE = _load_info()
INFO: dict = _INFO_MODULE.INFO
DEFAULT_ROOT: str = _INFO_MODULE.DEFAULT_ROOT

__all__ = ["INFO", "DEFAULT_ROOT"]
