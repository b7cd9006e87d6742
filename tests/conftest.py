"""Shared fixtures: a small synthetic stand-in written once per session, and a private runs folder per test."""

from __future__ import annotations

import pytest

from cvae.data.synthetic import write_stand_in


@pytest.fixture(scope="session")
def stand_in_dir(tmp_path_factory):
    """A MedMNIST-format synthetic stand-in with 40 images per class and split (840 per split)."""
    return write_stand_in(tmp_path_factory.mktemp("stand_in"), per_class=40, seed=0, progress=False)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """An empty runs folder for this test (CVAE_RUNS_DIR)."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("CVAE_RUNS_DIR", str(folder))
    return folder
