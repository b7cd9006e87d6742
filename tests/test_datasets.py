"""The datasets are one registry: a fourth MedMNIST set trains through it alone, and the paper's three are unchanged."""

import numpy as np
import pytest
import torch

from cvae.core.config import ConfigError, make_config, parse_overrides
from cvae.core.labels import DATASETS, PAPER, registry
from cvae.core.medmnist_info import INFO
from cvae.core.model import CVAE
from cvae.data.loading import load_data, summary
from cvae.data.synthetic import SPLITS, render
from cvae.training.runs import load_run
from cvae.training.train import train

FOUR = (*DATASETS, "bloodmnist")  # BloodMNIST: RGB, 8 classes
PER_CLASS = 6  # images per class and split in the test's files


def write_medmnist_files(folder, flags, per_class=PER_CLASS):
    """MedMNIST-format .npz files for `flags`: the stand-in's renderers for the paper's sets, class-dependent
    brightness for any other (RGB where medmnist.INFO says so)."""
    rng = np.random.default_rng(0)
    for flag in flags:
        classes, rgb = len(INFO[flag]["label"]), INFO[flag]["n_channels"] == 3
        arrays = {}
        for split in SPLITS:
            labels = np.repeat(np.arange(classes), per_class)
            if flag in DATASETS:
                images = render(flag, labels, seed=SPLITS.index(split))
            else:
                shape = (len(labels), 28, 28, 3) if rgb else (len(labels), 28, 28)
                levels = (labels * 255 // classes).reshape(-1, *[1] * (len(shape) - 1))
                images = np.clip(levels + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.astype(np.uint8)[:, None]
        np.savez(folder / f"{flag}.npz", **arrays)
    return folder


def four_dataset_config(folder, **overrides):
    values = {"data_source": "medmnist", "datasets": FOUR, "data_dir": str(folder), "epochs": 1,
              "beta_warmup_epochs": 0, "beta_ramp_epochs": 1, "batch_size": 64, "encoder_channels": (8, 16, 32),
              "hidden_dim": 64, "latent_dim": 16, "class_embed_dim": 16, "modality_embed_dim": 8}
    values.update(overrides)
    return make_config("smoke", values)


def test_a_fourth_medmnist_set_trains_one_epoch_through_the_registry_alone(tmp_path, runs_dir):
    config = four_dataset_config(write_medmnist_files(tmp_path, FOUR))
    with pytest.warns(UserWarning, match="not the official"):  # hand-written files are not the official release
        data = load_data(config, progress=False)
    classes = 9 + 8 + 4 + 8
    assert len(data.train) == classes * PER_CLASS
    assert data.train.labels.unique().tolist() == list(range(classes))
    assert torch.bincount(data.train.modalities).tolist() == [9 * PER_CLASS, 8 * PER_CLASS, 4 * PER_CLASS,
                                                              8 * PER_CLASS]
    blood = data.train.modalities == 3
    assert data.train.labels[blood].min().item() == 21 and data.train.labels[blood].max().item() == 28
    assert summary(data)["bloodmnist"] == {"train": 48, "val": 48, "test": 48, "classes": 8, "md5_ok": False}
    assert summary(data)["global_classes"] == 29

    with pytest.warns(UserWarning, match="not the official"):
        run = load_run(train(config, data_dir=tmp_path, progress=False, record_balance=False))
    model = run.model("kept")
    assert model.class_embedding.num_embeddings == 29 and model.modality_embedding.num_embeddings == 4
    assert model.class_head[-1].out_features == 29 and model.modality_head[-1].out_features == 4
    assert run.summary["epochs"] == 1 and len(run.metrics) == 1
    assert np.isfinite(run.metrics["val_total"]).all()
    assert list(run.summary["data_md5"]) == list(FOUR)
    assert run.config.datasets == FOUR


def test_the_paper_default_keeps_its_parameters_and_its_config_hashes():
    trained = [p for name, p in CVAE(make_config("full")).named_parameters() if not name.startswith("perceptual")]
    assert sum(p.numel() for p in trained) == 1_155_993
    # the run folders of every profile are named by these; they were computed before the `datasets` field existed
    assert {p: make_config(p).config_hash() for p in ("smoke", "quick", "full")} == \
        {"smoke": "eea31777ba", "quick": "204462bddf", "full": "739d12af1d"}
    four = make_config("smoke", {"datasets": FOUR})
    assert four.config_hash() != make_config("smoke").config_hash()
    assert make_config("smoke", {"datasets": list(DATASETS)}).config_hash() == make_config("smoke").config_hash()


def test_the_registry_derives_every_fact_from_medmnist_info():
    four = registry(FOUR)
    assert four.names == ("PathMNIST", "TissueMNIST", "OCTMNIST", "BloodMNIST")
    assert four.class_offsets == {"pathmnist": 0, "tissuemnist": 9, "octmnist": 17, "bloodmnist": 21}
    assert four.num_classes == 29 and four.num_modalities == 4
    assert four.classes_of_modality(3) == list(range(21, 29))
    assert four.class_names[21:] == [INFO["bloodmnist"]["label"][str(i)] for i in range(8)]
    assert four.modality_of_class.count(3) == 8
    assert PAPER.num_classes == 21 and registry(DATASETS) is PAPER


def test_datasets_override_parses_and_rejects_what_is_not_a_2d_medmnist_set():
    assert parse_overrides(["datasets=PathMNIST, bloodmnist"]) == {"datasets": ("pathmnist", "bloodmnist")}
    for bad in (("pathmnist", "organmnist3d"), ("pathmnist", "nosuchmnist"), ("pathmnist", "pathmnist"), ()):
        with pytest.raises(ConfigError, match="datasets must be distinct 2D MedMNIST flags"):
            make_config("smoke", {"datasets": bad})


def test_the_evaluation_refuses_a_run_on_other_datasets_in_one_line(tmp_path):
    from cvae.evaluation.run_evaluation import evaluate_run

    with pytest.raises(ConfigError, match=r"the evaluation covers the paper's datasets \(pathmnist, tissuemnist, "
                                          r"octmnist\), but this run trains on .*bloodmnist"):
        evaluate_run(four_dataset_config(tmp_path))
