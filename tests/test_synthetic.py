"""The synthetic stand-in: class counts, each modality's character, safe writes, and (slow) its calibration."""

import json
import re

import numpy as np
import pytest

from cvae.__main__ import main
from cvae.core.config import make_config
from cvae.core.labels import CLASSES_PER_DATASET, DATASETS, MODALITY_OF_CLASS
from cvae.data import synthetic
from cvae.data.errors import DataError
from cvae.data.loading import load_data
from cvae.data.synthetic import MARKER_FILE, OFFICIAL_CLASS_COUNTS, OFFICIAL_SPLIT_SIZES, SPLITS, render, write_stand_in


def test_official_class_counts_add_up_to_the_official_split_sizes():
    assert OFFICIAL_SPLIT_SIZES == {
        "pathmnist": {"train": 89_996, "val": 10_004, "test": 7_180},
        "tissuemnist": {"train": 165_466, "val": 23_640, "test": 47_280},
        "octmnist": {"train": 97_477, "val": 10_832, "test": 1_000},
    }
    for flag in DATASETS:
        assert all(len(OFFICIAL_CLASS_COUNTS[flag][split]) == CLASSES_PER_DATASET[flag] for split in SPLITS)
    # NCT-CRC-HE-100K = PathMNIST train + val, per class (Kather et al.)
    path = OFFICIAL_CLASS_COUNTS["pathmnist"]
    assert [a + b for a, b in zip(path["train"], path["val"])] == [10407, 10566, 11512, 11557, 8896, 13536, 8763,
                                                                   10446, 14317]
    # the imbalance is real: TissueMNIST's largest class is 9x its smallest, OCT's training set is 47% normal
    tissue = OFFICIAL_CLASS_COUNTS["tissuemnist"]["train"]
    assert max(tissue) / min(tissue) == pytest.approx(9.05, abs=0.01)
    assert OFFICIAL_CLASS_COUNTS["octmnist"]["train"][3] / 97_477 == pytest.approx(0.472, abs=0.001)


def test_rendering_is_seeded_and_has_the_release_format():
    labels = np.arange(9).repeat(3)
    first, again, other = render("pathmnist", labels, seed=5), render("pathmnist", labels, seed=5), render(
        "pathmnist", labels, seed=6)
    assert first.dtype == np.uint8 and first.shape == (27, 28, 28, 3)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert render("octmnist", np.arange(4), seed=0).shape == (4, 28, 28)


def test_each_modality_has_its_character():
    path = render("pathmnist", np.arange(9).repeat(50), seed=0).reshape(-1, 3).mean(0) / 255
    tissue = render("tissuemnist", np.arange(8).repeat(50), seed=0) / 255
    oct_ = render("octmnist", np.arange(4).repeat(50), seed=0) / 255
    # H&E: both stains absorb green most, so patches are pink-purple (the real PathMNIST mean is 0.74, 0.53, 0.71)
    assert path[1] < path[0] - 0.1 and path[1] < path[2] - 0.1
    # kidney cells: a dark image with a brighter centre (the real TissueMNIST mean is 0.10)
    assert 0.06 < tissue.mean() < 0.2 and tissue[:, 10:18, 10:18].mean() > 2 * tissue[:, :4, :4].mean()
    # retina: dark vitreous at the top, bright bands below
    assert oct_[:, :4].mean() < 0.5 * oct_[:, 12:20].mean()


def parameters_of(flag, label, n=2000, spread=None):
    centres = {"pathmnist": synthetic._PATH_CENTRES, "tissuemnist": synthetic._TISSUE_CENTRES,
               "octmnist": synthetic._OCT_CENTRES}[flag]
    return synthetic._class_parameters(centres, np.full(n, label), np.random.default_rng(0),
                                       synthetic.SPREAD[flag] if spread is None else spread)


def test_neighbouring_classes_overlap_instead_of_copying_each_other():
    # stroma (7) and smooth muscle (5): a few stroma images lie nearer muscle's centre than their own (borderline
    # cases, as at the edge of a real muscle layer), most do not
    stroma = parameters_of("pathmnist", 7)
    centre_stroma, centre_muscle = synthetic._PATH_CENTRES[7], synthetic._PATH_CENTRES[5]
    nearer_muscle = np.linalg.norm(stroma - centre_muscle, axis=1) < np.linalg.norm(stroma - centre_stroma, axis=1)
    assert 0.005 < nearer_muscle.mean() < 0.3
    # no two classes of a modality share a centre: no class is a relabelled copy of another
    for centres in (synthetic._PATH_CENTRES, synthetic._TISSUE_CENTRES, synthetic._OCT_CENTRES):
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(centres))
        assert gaps.min() > 0.1


# --- safe writes ----------------------------------------------------------------------------------------------

def fake_real_files(folder):
    folder.mkdir()
    for flag in DATASETS:
        (folder / f"{flag}.npz").write_bytes(b"real MedMNIST bytes")
    return folder


def test_refuses_to_overwrite_unmarked_npz_files(tmp_path):
    folder = fake_real_files(tmp_path / "medmnist")
    with pytest.raises(DataError, match=r"medmnist holds octmnist.npz, pathmnist.npz, tissuemnist.npz without the "
                                        r"stand-in marker .* synth --out NEW_DIR"):
        write_stand_in(folder, per_class=2, progress=False)
    assert all((folder / f"{flag}.npz").read_bytes() == b"real MedMNIST bytes" for flag in DATASETS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["medmnist"]


def test_synth_command_refuses_real_looking_files_with_one_line(tmp_path, capsys):
    folder = fake_real_files(tmp_path / "medmnist")
    assert main(["synth", "--out", str(folder), "--per-class", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(folder) in err and "--out NEW_DIR" in err
    assert (folder / "pathmnist.npz").read_bytes() == b"real MedMNIST bytes"


def test_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"holds files that are not part of a stand-in \(notes.txt\)"):
        write_stand_in(tmp_path, per_class=2, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("value", ["0", "-3"])
def test_synth_per_class_must_be_positive_and_points_at_official_sizes(tmp_path, capsys, value):
    assert main(["synth", "--out", str(tmp_path / "d"), "--per-class", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--per-class must be a positive number" in err and "--official-sizes" in err
    assert not (tmp_path / "d").exists()


def test_official_sizes_stay_reachable_from_the_config(monkeypatch):
    # synthetic_per_class=0 keeps meaning the official sizes in a profile (the data folder says so too)
    from cvae.data.loading import resolve_data_dir

    monkeypatch.delenv("CVAE_DATA_DIR", raising=False)
    config = make_config("quick", {"data_source": "synthetic", "synthetic_per_class": 0})
    assert config.synthetic_per_class == 0 and resolve_data_dir(config).name == "synthetic-official"


def test_rewrites_an_earlier_stand_in_in_place(tmp_path):
    folder = write_stand_in(tmp_path / "data", per_class=2, seed=0, progress=False)
    write_stand_in(folder, per_class=3, seed=1, progress=False)
    marker = json.loads((folder / MARKER_FILE).read_text())
    assert marker["per_class"] == 3 and marker["seed"] == 1 and marker["generator_version"] == 2
    assert marker["class_counts"]["octmnist"]["test"] == [3, 3, 3, 3]
    with np.load(folder / "octmnist.npz") as npz:
        assert npz["val_labels"].shape == (12, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folders left


def test_a_rewrite_gives_the_same_bytes_so_runs_trained_on_it_stay_valid(tmp_path):
    import hashlib
    import time

    first = write_stand_in(tmp_path / "a", per_class=2, seed=0, progress=False)
    time.sleep(2.1)  # a zip entry's time stamp has a 2-second resolution
    second = write_stand_in(tmp_path / "b", per_class=2, seed=0, progress=False)
    for flag in ("pathmnist", "tissuemnist", "octmnist"):
        digests = {hashlib.md5((folder / f"{flag}.npz").read_bytes()).hexdigest() for folder in (first, second)}
        assert len(digests) == 1, flag  # the MD5 a run records does not change when the stand-in is rewritten


class Killed(KeyboardInterrupt):
    pass


def kill_on_second_save(monkeypatch):
    real_save, calls = synthetic._save_npz, []

    def save(path, arrays):
        calls.append(path.name)
        if len(calls) == 2:
            raise Killed()
        real_save(path, arrays)

    monkeypatch.setattr(synthetic, "_save_npz", save)


def test_a_killed_write_leaves_nothing(tmp_path, monkeypatch):
    kill_on_second_save(monkeypatch)
    with pytest.raises(Killed):
        write_stand_in(tmp_path / "data", per_class=2, progress=False)
    assert list(tmp_path.iterdir()) == []  # no folder, no .npz.tmp, no npz files without the marker


def test_a_killed_rewrite_keeps_the_earlier_stand_in(tmp_path, monkeypatch):
    folder = write_stand_in(tmp_path / "data", per_class=2, progress=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    kill_on_second_save(monkeypatch)
    with pytest.raises(Killed):
        write_stand_in(folder, per_class=5, progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_the_next_write_cleans_up_after_a_hard_kill(tmp_path):
    # what SIGKILL leaves: a complete-looking temporary sibling of a process that no longer runs
    leftover = tmp_path / ".data.synth-new-999999999"
    leftover.mkdir()
    (leftover / "pathmnist.npz").write_bytes(b"partial")
    write_stand_in(tmp_path / "data", per_class=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_damaged_stand_in_is_not_silently_rebuilt(tmp_path):
    folder = write_stand_in(tmp_path / "data", per_class=4, seed=3, progress=False)
    kept = (folder / "pathmnist.npz").read_bytes()
    (folder / "octmnist.npz").unlink()
    config = make_config("smoke", {"data_dir": str(folder)})  # smoke's own size is 300 per class
    message = (f"{folder} is a synthetic stand-in missing octmnist.npz; rebuild it with: "
               f"python -m cvae synth --out {folder} --per-class 4 --seed 3")
    with pytest.raises(DataError, match=re.escape(message) + "$"):
        load_data(config, progress=False)
    assert (folder / "pathmnist.npz").read_bytes() == kept and not (folder / "octmnist.npz").exists()


# --- calibration ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_quick_evaluator_scores_the_published_resnet18_accuracies(tmp_path, monkeypatch):
    """The project's evaluator, trained exactly as the quick profile trains it, lands within 0.05 of MedMNIST v2's
    ResNet-18 (28 px) test accuracy on every set. Only the images the evaluator uses are rendered: 3,200 training
    images per class (3,000 to train on, 200 held out) and the official test split (7,180 / 47,280 / 1,000 images,
    the real class proportions), which leaves a binomial standard error of 0.003 / 0.002 / 0.014 on the accuracies."""
    from cvae.evaluation.domain_evaluator import (REFERENCE_RESNET18_28, evaluator_settings_for,
                                                  load_or_train_evaluator, predict)

    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "runs"))
    config = make_config("quick", {"data_source": "synthetic", "synthetic_per_class": 0,
                                   "data_dir": str(tmp_path / "data")})
    settings = evaluator_settings_for(config)
    assert (settings.train_per_class, settings.width, settings.steps) == (3000, 32, 3000)
    used = settings.train_per_class + settings.reference_per_class
    counts = {flag: {"train": [used] * k, "val": [20] * k, "test": OFFICIAL_CLASS_COUNTS[flag]["test"]}
              for flag, k in CLASSES_PER_DATASET.items()}
    write_stand_in(tmp_path / "data", counts=counts, progress=False)
    evaluator, data = load_or_train_evaluator(config, progress=False)
    accuracy = evaluator.summary["test_accuracy"]
    print("evaluator test accuracy on the stand-in:", accuracy)
    assert evaluator.summary["train_images"] == 21 * 3000
    for flag, reference in REFERENCE_RESNET18_28.items():
        assert abs(accuracy[flag] - reference) <= 0.05, (flag, accuracy[flag], reference)
    # the difficulty is within modalities: the modality itself stays obvious
    predicted_modality = np.asarray(MODALITY_OF_CLASS)[predict(evaluator.model, data.test.images)]
    assert np.mean(predicted_modality == data.test.modalities.numpy()) >= 0.99
