"""`python -m cvae sample`: classes by name or number, a grid and MedMNIST-format files the loader reads back, clear
errors, the same images for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from cvae.__main__ import main
from cvae.core.config import ConfigError
from cvae.core.labels import CLASS_NAMES, CLASS_OFFSETS
from cvae.data.loading import _read_npz
from cvae.evaluation.sampling import draw, read_marker, resolve_classes
from cvae.training.runs import load_run

TINY = ["--set", "epochs=1", "--set", "encoder_channels=8,16,32", "--set", "hidden_dim=32",
        "--set", "class_embed_dim=16", "--set", "modality_embed_dim=8", "--set", "latent_dim=16"]


def test_classes_resolve_by_number_name_and_modality():
    assert resolve_classes(["drusen"], None) == [CLASS_NAMES.index("drusen")] == [19]
    assert resolve_classes(["19", "DRUSEN"], None) == [19]
    assert resolve_classes(None, "octmnist") == [17, 18, 19, 20]
    assert resolve_classes(None, None) == list(range(21))
    with pytest.raises(ConfigError, match="class 'wibble' matches no class"):
        resolve_classes(["wibble"], None)
    with pytest.raises(ConfigError, match="class 21 is outside the global labels 0-20"):
        resolve_classes(["21"], None)
    with pytest.raises(ConfigError, match=r"class adipose \(0\) is not a class of octmnist"):
        resolve_classes(["adipose"], "octmnist")
    with pytest.raises(ConfigError, match="unknown modality 'xray'"):
        resolve_classes(None, "xray")


@pytest.fixture
def tiny_run(stand_in_dir, runs_dir, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(stand_in_dir))
    assert main(["train", "--profile", "smoke", *TINY]) == 0
    return next(runs_dir.glob("run-*"))


def test_sample_writes_a_grid_and_files_the_loader_reads_back(tiny_run, tmp_path, capsys):
    out, folder = tmp_path / "grid.png", tmp_path / "generated"
    assert main(["sample", "--run", str(tiny_run), "--modality", "octmnist", "--class", "drusen", "--class", "17",
                 "--n", "5", "--out", str(out), "--npz", str(folder)]) == 0
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in folder.iterdir()) == ["octmnist.npz"]
    arrays = _read_npz(folder / "octmnist.npz", "octmnist")  # the project's own checks: keys, dtypes, shapes, range
    assert arrays["train_images"].shape == (10, 28, 28) and arrays["train_images"].dtype == np.uint8
    assert arrays["train_labels"].shape == (10, 1) and arrays["train_labels"].dtype == np.uint8
    assert sorted(set(arrays["train_labels"].ravel())) == [0, 19 - CLASS_OFFSETS["octmnist"]]  # local labels
    assert arrays["val_images"].shape == (0, 28, 28) and arrays["test_labels"].shape == (0, 1)
    marker = read_marker(folder / "octmnist.npz")
    summary = load_run(tiny_run).summary
    assert marker["generated"] is True and marker["config_hash"] == summary["config_hash"]
    assert marker["run"] == tiny_run.name and marker["dataset"] == "octmnist"
    assert "10 samples of 2 classes" in capsys.readouterr().out


def test_pathmnist_samples_are_rgb_like_the_real_file(tiny_run, tmp_path):
    assert main(["sample", "--run", str(tiny_run), "--class", "adipose", "--n", "3", "--npz", str(tmp_path)]) == 0
    arrays = _read_npz(tmp_path / "pathmnist.npz", "pathmnist")
    images = arrays["train_images"]
    assert images.shape == (3, 28, 28, 3) and (images[..., 0] == images[..., 2]).all()


def test_the_same_seed_gives_the_same_images(tiny_run):
    model = load_run(tiny_run).model("kept")
    first, labels = draw(model, [3, 19], 4, temperature=0.7, seed=11)
    again, _ = draw(model, [3, 19], 4, temperature=0.7, seed=11)
    other, _ = draw(model, [3, 19], 4, temperature=0.7, seed=12)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert labels.tolist() == [3] * 4 + [19] * 4
    with pytest.raises(ConfigError, match="--n must be at least 1"):
        draw(model, [3], 0)
    with pytest.raises(ConfigError, match="--temperature must be positive"):
        draw(model, [3], 2, temperature=0.0)


@pytest.mark.parametrize("args, message", [
    (["--class", "wibble", "--out", "x.png"], "error: class 'wibble' matches no class"),
    (["--modality", "octmnist", "--class", "adipose", "--out", "x.png"], "error: class adipose (0) is not a class of"),
    (["--run", "no-such-run", "--out", "x.png"], "error: no finished run in no-such-run"),
    (["--class", "drusen"], "error: nothing to write"),
])
def test_each_bad_input_ends_in_one_line_and_exit_2(runs_dir, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--profile", "smoke", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
