"""The data folder reaches every chapter, ablation, evaluation, diagnosis and benchmark: the smoke book built from a
stand-in in a non-default folder, with the default folder empty and the network failing, looks nowhere else."""

from __future__ import annotations

import json

import pytest

TINY = ["epochs=2", "batch_size=128", "encoder_channels=8,16,32", "hidden_dim=64", "latent_dim=16",
        "class_embed_dim=16", "modality_embed_dim=8"]


def test_every_study_run_uses_the_data_folder_it_is_given(tmp_path):
    from cvae.study import runner as study

    runs = study.study_runs("smoke", extra=TINY, data_dir=str(tmp_path / "data"))
    assert len(runs) >= 13 and {run.config.data_dir for run in runs} == {str(tmp_path / "data")}


@pytest.mark.slow
def test_the_smoke_book_uses_only_the_data_folder_it_is_given(stand_in_dir, tmp_path, monkeypatch):
    import torchvision.datasets.utils

    from cvae.publish.book import build_book

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    default = tmp_path / "default-data"
    default.mkdir()
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):  # the kernels' network fails too
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    monkeypatch.setenv("CVAE_DATA_DIR", str(default))  # every default folder, real or stand-in, is this empty one
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CVAE_REPORT_DIR", str(tmp_path / "report"))
    log: list[str] = []
    report = build_book("smoke", data_dir=stand_in_dir, overrides=TINY, html=False, log=log.append)
    assert report == tmp_path / "report"
    assert sorted(p.name for p in report.glob("[0-9][0-9]_*.ipynb")) == [
        f"{stem}.ipynb" for stem in sorted(line.split()[1].rstrip(":") for line in log if line.endswith(" s"))]
    assert list(default.iterdir()) == []  # nothing looked for, downloaded or written in the default folder
    for notebook in report.glob("[0-9][0-9]_*.ipynb"):
        text = notebook.read_text()
        assert str(default) not in text, notebook.name
        assert json.loads(text)["metadata"]["papermill"]["parameters"]["data_dir"] == str(stand_in_dir)
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("run-*/summary.json")]
    assert len(summaries) >= 13 and {s["data_dir"] for s in summaries} == {str(stand_in_dir)}
    assert not list(report.glob(".*")) and not list(report.glob("*.failed.ipynb"))  # every write was whole
