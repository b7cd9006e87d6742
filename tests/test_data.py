import shutil

import medmnist
import numpy as np
import pytest
import torch

from cvae.core.config import make_config
from cvae.core.labels import CLASS_NAMES, CLASS_OFFSETS, DATASETS, MODALITY_OF_CLASS, NUM_CLASSES, classes_of_modality
from cvae.data.errors import DataError
from cvae.data.loading import iterate_batches, load_data, rgb_to_gray, stratified_indices, summary
from cvae.data.synthetic import MARKER_FILE, OFFICIAL_SPLIT_SIZES


def synthetic_config(folder, **overrides):
    return make_config("smoke", {"data_dir": str(folder), **overrides})


def test_global_labels_and_modalities_follow_medmnist_info():
    assert NUM_CLASSES == 21
    assert CLASS_OFFSETS == {"pathmnist": 0, "tissuemnist": 9, "octmnist": 17}
    for modality, flag in enumerate(DATASETS):
        names = medmnist.INFO[flag]["label"]
        for local, name in names.items():
            global_label = CLASS_OFFSETS[flag] + int(local)
            assert CLASS_NAMES[global_label] == name
            assert MODALITY_OF_CLASS[global_label] == modality
    assert classes_of_modality(2) == [17, 18, 19, 20]


def test_gray_formula_on_known_pixels():
    pixels = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]]], dtype=np.uint8)
    gray = rgb_to_gray(pixels)
    assert gray.dtype == np.uint8
    assert gray.tolist() == [[[76, 150, 29, round(0.299 * 100 + 0.587 * 150 + 0.114 * 200)]]]


def test_stand_in_has_the_real_format(stand_in_dir):
    for flag in DATASETS:
        with np.load(stand_in_dir / f"{flag}.npz") as npz:
            assert sorted(npz.files) == sorted(f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels"))
            images, labels = npz["train_images"], npz["train_labels"]
            tail = (28, 28, 3) if flag == "pathmnist" else (28, 28)
            assert images.dtype == np.uint8 and images.shape == (40 * len(medmnist.INFO[flag]["label"]),) + tail
            assert labels.dtype == np.uint8 and labels.shape == (len(images), 1)
            assert np.bincount(labels[:, 0]).tolist() == [40] * len(medmnist.INFO[flag]["label"])


def test_stand_in_read_back_through_the_real_loader(stand_in_dir):
    data = load_data(synthetic_config(stand_in_dir), progress=False)
    assert data.synthetic
    for split in (data.train, data.val, data.test):
        assert split.images.dtype == torch.uint8 and split.images.shape == (840, 28, 28)
        assert torch.bincount(split.labels, minlength=21).tolist() == [40] * 21
        assert torch.equal(split.modalities, torch.tensor(MODALITY_OF_CLASS)[split.labels])
    counts = summary(data)
    assert counts["pathmnist"] == {"train": 360, "val": 360, "test": 360, "classes": 9, "md5_ok": False}
    assert counts["global_classes"] == 21
    # the Path images went through the gray formula
    with np.load(stand_in_dir / "pathmnist.npz") as npz:
        first = np.nonzero(npz["train_labels"][:, 0] >= 0)[0][0]
        assert torch.equal(data.train.images[first], torch.from_numpy(rgb_to_gray(npz["train_images"][first:first + 1])[0]))


def test_stratified_subset_counts_and_seed(stand_in_dir):
    data = load_data(synthetic_config(stand_in_dir, train_per_class=10, eval_per_class=5), progress=False)
    assert torch.bincount(data.train.labels, minlength=21).tolist() == [10] * 21
    assert torch.bincount(data.val.labels, minlength=21).tolist() == [5] * 21
    labels = torch.tensor([0] * 5 + [1] * 2)
    assert torch.bincount(labels[stratified_indices(labels, 3, seed=0)]).tolist() == [3, 2]
    assert torch.equal(stratified_indices(labels, 3, seed=1), stratified_indices(labels, 3, seed=1))


def test_batches_are_float_in_unit_range_with_matching_labels(stand_in_dir):
    data = load_data(synthetic_config(stand_in_dir), progress=False)
    images, labels, modalities = next(iterate_batches(data.train, 64, shuffle=True,
                                                      generator=torch.Generator().manual_seed(0)))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert torch.equal(modalities, torch.tensor(MODALITY_OF_CLASS)[labels])
    assert sum(len(b[1]) for b in iterate_batches(data.train, 256)) == 840


def test_missing_data_offline_names_files_folder_and_the_alternative(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(DataError) as caught:
        load_data(make_config("quick", {"data_dir": str(tmp_path)}), progress=False)
    message = str(caught.value)
    for flag in DATASETS:
        assert f"{flag}.npz" in message and medmnist.INFO[flag]["url"] in message
    assert str(tmp_path) in message and "PROFILE=smoke" in message and "name resolution" in message


@pytest.fixture
def copy_of_stand_in(stand_in_dir, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(stand_in_dir, target)
    return target


def test_corrupt_file_is_a_clear_error(copy_of_stand_in):
    (copy_of_stand_in / "octmnist.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match=r"octmnist.npz cannot be read .* corrupt or incomplete"):
        load_data(synthetic_config(copy_of_stand_in), progress=False)


def test_file_missing_a_split_key_is_a_clear_error(copy_of_stand_in):
    path = copy_of_stand_in / "tissuemnist.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "val_labels"}
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"missing the key\(s\) val_labels"):
        load_data(synthetic_config(copy_of_stand_in), progress=False)


def test_labels_out_of_range_are_a_clear_error(copy_of_stand_in):
    path = copy_of_stand_in / "octmnist.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["test_labels"][0, 0] = 7
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"labels in \[0, 7\], but octmnist has 4 classes"):
        load_data(synthetic_config(copy_of_stand_in), progress=False)


@pytest.mark.parametrize("bad", [2.7, float("nan")])
def test_float_or_nan_labels_are_refused_not_truncated(copy_of_stand_in, bad):
    path = copy_of_stand_in / "octmnist.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["train_labels"] = arrays["train_labels"].astype(np.float64)
    arrays["train_labels"][0, 0] = bad
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"octmnist\.npz: train_labels are float64, not integers; .* integer labels"):
        load_data(synthetic_config(copy_of_stand_in), progress=False)


def test_stand_in_never_passes_for_real_data(copy_of_stand_in):
    assert (copy_of_stand_in / MARKER_FILE).exists()
    with pytest.raises(DataError, match="synthetic stand-in"):
        load_data(make_config("quick", {"data_dir": str(copy_of_stand_in)}), progress=False)


def test_real_format_files_without_marker_are_loaded_as_real_with_md5_warning(copy_of_stand_in):
    (copy_of_stand_in / MARKER_FILE).unlink()
    with pytest.warns(UserWarning, match="not the official"):
        data = load_data(make_config("quick", {"data_dir": str(copy_of_stand_in)}), progress=False)
    assert not data.synthetic
    assert not any(report.md5_ok for report in data.files.values())


def test_official_sizes_sum_to_the_papers_training_total():
    assert sum(sizes["train"] for sizes in OFFICIAL_SPLIT_SIZES.values()) == 352_939


def test_a_relative_data_folder_is_resolved_once_against_the_callers_folder(tmp_path, monkeypatch):
    from cvae.data.loading import resolve_data_dir

    monkeypatch.chdir(tmp_path)
    folder = resolve_data_dir(make_config("smoke", ["data_dir=reldata"]))
    assert folder.is_absolute() and folder == tmp_path / "reldata"  # the book hands this path to its kernels


def test_model_input_and_to_uint8_are_inverse_on_every_grey_level():
    from cvae.data.loading import model_input, to_uint8

    images = torch.arange(256, dtype=torch.uint8).repeat(7)[:2 * 784].view(2, 28, 28)  # every level, 6 times or more
    before = images.clone()
    scaled = model_input(images)
    assert scaled.shape == (2, 1, 28, 28) and scaled.dtype == torch.float32
    assert scaled.min() == 0 and scaled.max() == 1 and scaled[0, 0, 0, 1] == 1 / 255
    assert torch.equal(to_uint8(scaled[:, 0]), images) and torch.equal(images, before)
    assert to_uint8(torch.tensor([-0.2, 0.5, 1.3])).tolist() == [0, 128, 255]


def test_every_stratified_subset_reads_one_seeded_order_per_class():
    from cvae.data.loading import shuffled_by_class

    labels = torch.tensor([2, 0, 2, 1, 2, 0, 2, 1, 1, 2])
    groups = shuffled_by_class(labels, seed=5)
    assert list(groups) == [0, 1, 2]
    assert {k: sorted(v.tolist()) for k, v in groups.items()} == {0: [1, 5], 1: [3, 7, 8], 2: [0, 2, 4, 6, 9]}
    order = torch.randperm(10, generator=torch.Generator().manual_seed(5)).tolist()
    assert groups[2].tolist() == [i for i in order if labels[i] == 2]  # the permutation's order, per class
    assert stratified_indices(labels, 2, seed=5).tolist() == sorted([*groups[0][:2].tolist(), *groups[1][:2].tolist(),
                                                                     *groups[2][:2].tolist()])
