"""Fast tests of cvae.report.plots: every figure function returns a Figure with the expected axes and images."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)  # tests only; the book's kernels keep the inline backend

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from cvae.core.config import make_config
from cvae.core.labels import NUM_CLASSES, class_label, classes_of_modality
from cvae.core.loss import TERMS
from cvae.core.model import CVAE
from cvae.report import ablation_tables, chapter, model_tables, notices, plots, study_plots
from cvae.study.runner import COMPARED


def _metrics(epochs: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for epoch in range(epochs):
        row = {"epoch": epoch, "beta": 0.1 * epoch / epochs, "lr": 5e-4}
        for term in (*TERMS, "total"):
            row[f"train_{term}"] = float(rng.uniform(1, 10))
            row[f"val_{term}"] = float(rng.uniform(1, 10))
        row.update(val_class_acc=0.3, val_modality_acc=0.9)
        rows.append(row)
    return pd.DataFrame(rows)


def _images_of(ax) -> list:
    return ax.get_images()


def test_loss_curves_has_a_panel_per_term_and_marks_the_best_epoch():
    fig = plots.loss_curves(_metrics(5), best_epoch=2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(TERMS) + 2  # six terms, the total, the aux accuracies
    first = fig.axes[0]
    assert len(first.get_lines()) == 3  # train, validation, best-epoch marker
    marker = first.get_lines()[2]
    assert list(marker.get_xdata()) == [3, 3]  # 0-based epoch 2 shown as epoch 3
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)


def test_reconstructions_one_mosaic_per_modality():
    originals = {m: np.random.default_rng(m).random((6, 28, 28)) for m in range(3)}
    fig = plots.reconstructions(originals, originals)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        (image,) = _images_of(ax)
        assert image.get_array().shape == (2 * 29 - 1, 6 * 29 - 1)  # 2 rows (originals, recons) x 6


def test_class_grid_rows_are_modalities_columns_are_classes_with_a_key_of_names():
    images = {label: np.full((4, 28, 28), label * 10, dtype=np.uint8) for label in range(NUM_CLASSES)}
    fig = plots.class_grid(images, per_cell=4)
    assert len(fig.axes) == 3 * 9
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(shown) == NUM_CLASSES  # 9 + 8 + 4 classes, the rest hidden
    titles = [ax.get_title() for ax in shown]
    assert titles[:9] == [str(label) for label in classes_of_modality(0)]
    assert titles[9] == str(classes_of_modality(1)[0])
    (key,) = fig.texts
    flat = " ".join(key.get_text().split())
    assert flat.startswith("PathMNIST: 0 adipose · 1 background")
    assert all(class_label(label) in flat for label in range(NUM_CLASSES))  # every name, whole


def test_latent_scatter_two_panels_with_legends_outside():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, 200)
    modalities = np.asarray([0 if l < 9 else 1 if l < 17 else 2 for l in labels])
    fig = plots.latent_scatter(rng.normal(size=(200, 2)), modalities, labels, "PCA")
    assert len(fig.axes) == 2
    by_modality, by_class = fig.legends
    assert [t.get_text() for t in by_modality.get_texts()] == ["PathMNIST", "TissueMNIST", "OCTMNIST"]
    assert [t.get_text() for t in by_class.get_texts()] == [class_label(l) for l in np.unique(labels)]


def test_gray_conversion_and_small_figures():
    rgb = np.random.default_rng(0).integers(0, 255, (5, 28, 28, 3), dtype=np.uint8)
    from cvae.data.loading import rgb_to_gray

    fig = plots.gray_conversion(rgb, rgb_to_gray(rgb))
    assert len(fig.axes) == 2 and all(len(ax.get_images()) == 1 for ax in fig.axes)
    assert len(plots.kl_per_dimension(np.linspace(0, 1, 16)).axes[0].patches) == 16
    fig = study_plots.overlaid_curves({"a": _metrics(3), "b": _metrics(3)})  # no reference run: one line each
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 1]
    strips = {"a": np.zeros((21, 28, 28)), "b": np.ones((21, 28, 28))}
    assert len(study_plots.variant_samples(strips).axes) == 2


def test_mosaic_layout_and_scaling():
    tiles = np.stack([np.full((28, 28), 255, np.uint8), np.zeros((28, 28), np.uint8)])
    canvas = plots.mosaic(tiles, 1, 2)
    assert canvas.shape == (28, 57)
    assert canvas[0, 0] == pytest.approx(1.0) and canvas[0, 29] == pytest.approx(0.0)
    assert canvas[0, 28] == pytest.approx(1.0)  # white padding


def test_architecture_table_matches_the_model_count():
    config = make_config("smoke")
    model = CVAE(config)
    table = model_tables.architecture_table(model)
    from cvae.core.model import count_parameters

    assert table.loc["total", "trainable parameters"] == f"{count_parameters(model):,}" == "1,155,993"
    assert table.loc["encoder_convs", "output shape"] == "1152"
    assert table.loc["decoder_convs", "output shape"] == "1x28x28"
    assert "frozen" in table.loc["perceptual", "note"]
    # the hooks left the model's forward unchanged
    out = model.eval()(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    assert out.recon.shape == (2, 1, 28, 28)


def test_hyperparameter_table_lists_every_field_with_its_source():
    from dataclasses import fields

    from cvae.core.config import Config

    table = model_tables.hyperparameter_table(make_config("smoke"), "smoke")
    assert list(table.index) == [f.name for f in fields(Config)]
    assert table.loc["a_mse", "source"] == "reproduction" and table.loc["a_mse", "original"] == "missing"
    assert table.loc["lr", "source"] == "original"
    assert table.loc["epochs", "source"] == "profile smoke" and table.loc["epochs", "this run"] == "3"
    uncapped = model_tables.hyperparameter_table(make_config("smoke", {"train_per_class": 0, "eval_per_class": 0}))
    assert uncapped.loc["train_per_class", "this run"] == "all" == uncapped.loc["eval_per_class", "this run"]


def test_data_notice_is_titled_for_each_kind_of_data():
    text = notices.data_notice_markdown(True, "smoke", "abc", built_with="profile=smoke, seed=0")
    assert text.startswith("```{admonition} Synthetic data\n:class: warning\n") and "not medical data" in text
    assert text.rstrip().endswith("Built with `profile=smoke, seed=0`.\n```")
    unofficial = notices.data_notice_markdown(False, "quick", "abc", unofficial=["octmnist"])
    assert unofficial.startswith("```{admonition} Not the official MedMNIST files\n:class: warning\n")
    assert "The OCTMNIST file(s)" in unofficial
    assert notices.data_notice_markdown(False, "quick", "abc").startswith("```{admonition} Data\n:class: note\n")
    assert notices.data_caption(True) == "the synthetic stand-in, not medical data"
    assert notices.data_caption(False, ["pathmnist"]) == "MedMNIST files that differ from the official release"
    html = notices.data_notice_html(True, "smoke", "abc", built_with="profile=smoke")
    assert html.count("<p>") == 2 and '<p class="admonition-title">Synthetic data</p>' in html


def test_built_with_line_names_parameters_but_no_local_path():
    from cvae.report.chapter import built_with

    assert built_with("quick", 1, "", "/home/me/data", ["epochs=3"]) == (
        "profile=quick, seed=1, data_source=profile default, data_dir=custom, epochs=3")
    from cvae.core.paths import default_data_dir

    # the book passes the folder it resolved and repeats data_source among the overrides: each key shows once
    default = str(default_data_dir("synthetic", 0))
    assert built_with("quick", 0, "synthetic", default, ["data_source=synthetic", "synthetic_per_class=0"]) == (
        "profile=quick, seed=0, data_source=synthetic, synthetic_per_class=0")


def test_the_data_chapter_opens_one_context_with_its_data_and_notice(stand_in_dir, monkeypatch):
    shown = []
    monkeypatch.setattr(chapter, "show_data_notice", lambda *args: shown.append(args))
    context, data = chapter.open_data_chapter("smoke", 3, "synthetic", str(stand_in_dir), ["epochs=2"])
    assert (context.profile, context.seed, context.config.seed, context.config.epochs) == ("smoke", 3, 3, 2)
    assert context.run is None and len(data.train) == 840 and data.synthetic
    assert context.extra == ["epochs=2", "data_source=synthetic", "seed=3"]  # what every ablation run shares
    assert context.built_with == "profile=smoke, seed=3, data_source=synthetic, data_dir=custom, epochs=2"
    assert shown == [(True, "smoke", context.config.config_hash(), [], context.built_with)]


def test_a_chapter_without_its_training_run_says_which_notebook_trains_it(runs_dir):
    from cvae.training.runs import RunError

    with pytest.raises(RunError, match=r"no finished training run .* execute notebooks/02_training first"):
        chapter.open_chapter("smoke", 0)


def test_precision_table_puts_the_default_beside_fp32_with_the_relative_difference():
    table = pd.DataFrame([{"name": "paper", "seed": 0, COMPARED: 101.0, "recon_psnr": 19.8,
                           "train_seconds": 60.0},
                          {"name": "fp32", "seed": 0, COMPARED: 100.0, "recon_psnr": 20.0,
                           "train_seconds": 100.0},
                          {"name": "paper", "seed": 1, COMPARED: 90.0, "recon_psnr": 21.0,
                           "train_seconds": 60.0}])
    shown = ablation_tables.precision_table(table, seed=0)
    assert shown.loc["validation loss at the final β (per image)", "difference"] == "+1.0%"
    assert shown.loc["reconstruction PSNR (dB)", "difference"] == "-1.0%"
    assert shown.loc["training time (s)", "difference"] == "-40.0%"
    same = table.assign(conditional_class_accuracy=1 / 21 - 1e-9 * (table["name"] == "paper"))
    accuracy = ablation_tables.precision_table(same, seed=0).loc["conditional class accuracy (%)"]
    assert accuracy.tolist() == ["4.76", "4.76", "+0.0%"]  # in %, and a change that rounds to zero has no minus
    assert shown.loc["validation loss at the final β (per image)"].tolist()[:2] == ["101", "100"]  # 3 digits
    assert "SSIM" not in " ".join(shown.index)  # a column the table lacks is left out, not invented
    assert "status" in ablation_tables.precision_table(table[table["name"] == "paper"], seed=0).columns


def test_the_precision_sentence_gives_the_largest_difference_of_a_result_and_the_time_apart():
    from types import SimpleNamespace

    from cvae.report.performance import precision_sentence

    table = pd.DataFrame([{"name": "paper", "seed": 0, COMPARED: 101.0, "recon_psnr": 19.8, "train_seconds": 60.0},
                          {"name": "fp32", "seed": 0, COMPARED: 100.0, "recon_psnr": 20.2, "train_seconds": 100.0}])
    differences = ablation_tables.precision_differences(table, seed=0)
    bf16 = SimpleNamespace(summary={"precision": "bf16-autocast"})
    # PSNR -0.4 / 20.2 = -1.98%, the loss +1.0%; the time's -40% is not a result, nor said: one run each
    assert precision_sentence(bf16, differences) == (
        "This machine trains the default under bf16 autocast. The same variant trained in fp32 on the same profile, "
        "scale and seed differs from it by at most 2.0%, in reconstruction PSNR (dB), over 2 criteria. This is one "
        "seed, so the difference is not set against run-to-run noise. What each precision does to speed is the switch "
        "study's measurement, not these two runs'.")
    assert "no native bf16" in precision_sentence(SimpleNamespace(summary={"precision": "fp32"}), differences)


def test_the_switch_sentence_names_the_largest_gain_or_that_this_build_did_not_measure_it():
    from cvae.report.performance import switches_sentence

    result = {"repeats": 3, "steps": 6, "device_name": "a 2-core CPU", "date": "2026-12-08T01:00:00+00:00",
              "rows": [{"switch": "baseline", "relative_to_baseline": 1.0},
                       {"switch": "channels_last", "relative_to_baseline": 1.234},
                       {"switch": "bf16", "relative_to_baseline": 0.9}]}
    said = switches_sentence(result)
    assert "medians of 3 rounds of 6 steps, on a 2-core CPU on 2026-12-08." in said
    assert "The largest gain, 1.23 times the baseline's samples per second, came from channels_last." in said
    assert switches_sentence(None).startswith("This build did not measure what each performance switch gives")


def test_epoch_table_counts_from_one_and_keeps_first_best_and_last_epochs():
    from cvae.report.model_tables import epoch_table, metrics_for_download

    metrics = pd.DataFrame({
        "epoch": range(6), "beta": [0, 0, 0.05, 0.1, 0.1, 0.1], "lr": [5e-4] * 5 + [2.5e-4],
        "train_total": [100.0, 90, 80, 70, 60, 1234.56], "val_total": [50.0, 40, 30, 20, 25, 26],
        "val_mse": [1.0] * 6, "val_kl": [2.0] * 6, "val_class_acc": [0.1234] * 6, "val_modality_acc": [0.5] * 6,
        "seconds": [2.25] * 6, "train_mse": [0.0] * 6, "val_total_at_beta_max": [60.0, 50, 40, 30, 27, 26],
    })
    table = epoch_table(metrics, best_epoch=3, last=2)
    assert list(table.index) == ["1", "4 (lowest total, kept)", "5", "6"]
    assert table.loc["6", "train loss"] == "1,234.6" and table.loc["6", "learning rate"] == "0.00025"
    assert table.loc["6", "val loss at final β"] == "26.0"
    assert table.loc["4 (lowest total, kept)", "class acc (%)"] == 12.3 and table.loc["1", "β"] == "0"
    assert list(epoch_table(metrics, best_epoch=1, last=1, kept_epoch=3).index) == [
        "1", "2 (lowest total)", "4 (kept)", "6"]
    assert "train_mse" not in table.columns and len(table.columns) == 9
    assert list(metrics_for_download(metrics)["epoch"]) == [1, 2, 3, 4, 5, 6]


def test_hyperparameter_table_shows_no_local_path():
    from cvae.core.paths import PROJECT_ROOT
    from cvae.report.model_tables import hyperparameter_table

    inside = hyperparameter_table(make_config("smoke", {"data_dir": str(PROJECT_ROOT / "data" / "synthetic-300pc")}))
    assert inside.loc["data_dir", "this run"] == "data/synthetic-300pc"
    outside = hyperparameter_table(make_config("smoke", {"data_dir": "/home/someone/medmnist"}))
    assert outside.loc["data_dir", "this run"] == "(a folder outside the project)"


def test_kept_checkpoint_sentence_says_when_the_run_was_still_improving():
    from cvae.report.model_tables import kept_checkpoint_sentence

    metrics = pd.DataFrame({"epoch": range(4), "beta": [0.0, 0.05, 0.1, 0.1]})
    summary = {"best_epoch": 0, "checkpoint_epoch": 3, "checkpoint_metric": "total_at_beta_max"}
    text = kept_checkpoint_sentence(summary, metrics)
    assert text.startswith("The later chapters evaluate the checkpoint of epoch 4, the lowest validation loss")
    assert "The original's rule would keep epoch 1, trained with β = 0;" in text
    assert text.endswith("It is the last epoch, so the run was still improving: the later chapters evaluate a model "
                         "that had not converged.")
    assert "still improving" not in kept_checkpoint_sentence({**summary, "checkpoint_epoch": 2}, metrics)


def test_the_21_class_colours_keep_each_modalitys_classes_apart():
    from cvae.core.labels import classes_of_modality

    colours = plots.class_colours()
    assert len(colours) == NUM_CLASSES and len(set(colours)) == NUM_CLASSES
    for modality in range(3):
        members = [np.asarray(colours[label][:3]) for label in classes_of_modality(modality)]
        closest = min(np.linalg.norm(a - b) for i, a in enumerate(members) for b in members[i + 1:])
        assert closest > 0.15, (modality, closest)  # one hue in nine lightness steps: 0.099 apart in RGB


def test_the_class_balance_sentence_says_what_the_counts_show():
    from cvae.report.data_tables import class_balance_sentence

    even = pd.DataFrame({"train": [40] * 21})
    assert class_balance_sentence(even, 40) == "Every class has 40 training images."
    uneven = pd.DataFrame({"train": [1000] * 15 + [600, 300, 136, 90, 80, 1000]})
    assert class_balance_sentence(uneven, 1000) == (
        "Training images per class range from 80 to 1,000: the subset keeps at most 1,000 per class, which cuts 16 "
        "of the 21 classes, and the other 5 keep all their images.")
    assert class_balance_sentence(uneven, 0) == "Training images per class range from 80 to 1,000, as in the files."


def test_the_variant_samples_sentence_counts_the_strips_that_do_not_change_with_the_class():
    from cvae.evaluation.examples import condition_spread

    flat = np.full((21, 28, 28), 0.5)
    nearly_flat = np.stack([np.full((28, 28), 0.5 + 0.01 * (label % 2)) for label in range(21)])  # spread 0.005
    varied = np.stack([np.full((28, 28), label / 20) for label in range(21)])  # 0, 0.05, ..., 1
    assert condition_spread(flat) == 0.0 and condition_spread(nearly_flat) < 0.005
    assert condition_spread(varied) == pytest.approx(np.std(np.arange(21) / 20))  # 0.303
    said = ablation_tables.condition_sentence({"paper": nearly_flat, "deep": varied, "fp32": flat}, varied)
    assert said == ("The main run's samples vary by 0.303 in pixel standard deviation across the 21 classes, on a 0 to "
                    "1 scale. Of the 3 variants, 2 vary by less than 0.05: their decoders give nearly one image whatever "
                    "the class, as their uniform strips show.")
    assert ablation_tables.condition_sentence({"paper": varied}, varied).endswith("so each decodes the classes apart.")
