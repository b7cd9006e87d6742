"""The evaluation orchestration: helpers on a tiny model, the diagnosis rules, and one slow end-to-end smoke run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cvae.core.config import make_config
from cvae.core.labels import MODALITY_OF_CLASS, NUM_CLASSES
from cvae.core.model import CVAE
from cvae.data.loading import Split
from cvae.evaluation import inference
from cvae.evaluation import run_evaluation as evaluate
from cvae.study import diagnosis
from study_rows import learned_columns

REQUIRED_KEYS = {
    "evaluator_test_accuracy", "reference_resnet18_28", "domain_fid", "domain_kid", "domain_fid_floor",
    "conditional_class_accuracy", "conditional_modality_accuracy", "conditional_per_class", "recon_mse", "recon_psnr",
    "recon_ssim", "aux_class_accuracy", "aux_modality_accuracy", "aux_class_accuracy_train_mode",
    "aux_modality_accuracy_train_mode", "probe_class_accuracy", "probe_modality_accuracy", "baselines",
    "silhouette_modality", "silhouette_class", "active_units", "kl_per_dimension", "tstr_accuracy",
    "trtr_accuracy", "synthetic_data", "augmentation_by_fraction", "recon_ssim_gain_over_class_mean",
    "recon_ssim_class_mean_baseline", "loss_scales", "latent_test_images",
}
FLAGS = ("pathmnist", "tissuemnist", "octmnist")


def _tiny_split(per_class: int = 4) -> Split:
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(labels), 28, 28), dtype=torch.uint8, generator=generator)
    return Split(images, labels, torch.tensor(MODALITY_OF_CLASS)[labels])


def _tiny_model() -> CVAE:
    torch.manual_seed(0)
    return CVAE(make_config("smoke")).eval()


def test_latent_codes_shapes_and_order():
    split = _tiny_split()
    mu, labels, modalities = inference.latent_codes(_tiny_model(), split)
    assert mu.shape == (len(split), 128) and mu.dtype == np.float32
    assert np.array_equal(labels, split.labels.numpy()) and np.array_equal(modalities, split.modalities.numpy())


def test_conditional_samples_are_seeded_and_labelled():
    model = _tiny_model()
    images, labels, modalities = inference.generate_conditional_samples(model, per_class=3, seed=5)
    again, _, _ = inference.generate_conditional_samples(model, per_class=3, seed=5)
    assert images.shape == (63, 1, 28, 28) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(images, again)
    assert labels.tolist() == [c for c in range(NUM_CLASSES) for _ in range(3)]
    assert modalities.tolist() == [MODALITY_OF_CLASS[c] for c in labels.tolist()]


def test_the_figures_examples_are_the_inference_codes_own_outputs():
    from types import SimpleNamespace

    from cvae.data.loading import stratified_indices
    from cvae.evaluation import examples

    model, split = _tiny_model(), _tiny_split()
    mu, labels, _ = examples.latent_means(model, split, per_class=2, seed=1)
    assert mu.shape == (2 * NUM_CLASSES, 128) and np.bincount(labels, minlength=NUM_CLASSES).tolist() == [2] * 21
    chosen = stratified_indices(split.labels, 2, 1).numpy()  # the stratified draw, encoded as the whole split is
    assert np.allclose(mu, inference.latent_codes(model, split)[0][chosen], atol=1e-5)
    originals, recons = examples.reconstruction_examples(model, split, per_modality=3)
    assert sorted(originals) == [0, 1, 2] and all(recons[m].shape == (3, 28, 28) for m in recons)
    samples = examples.generated_by_class(model, per_class=2, seed=5)
    images, _, _ = inference.generate_conditional_samples(model, 2, seed=5)
    assert np.array_equal(samples[20], images[-2:, 0].numpy())  # the last class's two samples, same draw
    strips = examples.variant_strips({"paper": SimpleNamespace(model=lambda which: model)}, seed=5)
    assert strips["paper"].shape == (NUM_CLASSES, 28, 28)


def test_reconstruct_and_aux_heads_leave_the_model_unchanged():
    model, split = _tiny_model(), _tiny_split()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    originals, recons = inference.reconstruct(model, split)
    assert originals.shape == recons.shape == (len(split), 1, 28, 28)
    eval_mode = inference.aux_head_accuracy(model, split)
    train_mode = inference.aux_head_accuracy(model, split, train_mode=True, batch_size=16)
    assert all(0 <= v <= 1 for v in (*eval_mode.values(), *train_mode.values()))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN running stats untouched


def _study(no_aux_heads: float, unconditioned_probe: float, gamma10_gain: float) -> pd.DataFrame:
    """A study table of the diagnosis runs over three seeds (small seed-to-seed noise)."""
    rows = []
    for seed, noise in enumerate((-0.005, 0.0, 0.005)):
        base = {"aux_class_accuracy": 0.80 + noise, "aux_modality_accuracy": 0.97 + noise,
                "aux_class_accuracy_train_mode": 0.81 + noise, "aux_modality_accuracy_train_mode": 0.98 + noise,
                "probe_class_accuracy": 0.85 + noise, "probe_modality_accuracy": 0.99 + noise / 10, "recon_mse": 0.010 + noise / 10,
                "latent_test_images": 2100, **learned_columns()}
        rows.append({"name": "paper", "seed": seed, **base})
        # the variants' noise differs from the control's: a paired difference identical on every seed has no interval
        rows.append({"name": "no_aux", "seed": seed, **base, "aux_modality_accuracy": no_aux_heads + 2 * noise,
                     "aux_class_accuracy": 0.05 + 2 * noise})
        rows.append({"name": "encoder_unconditioned", "seed": seed, **base,
                     "probe_class_accuracy": unconditioned_probe + 2 * noise})
        rows.append({"name": "gamma_10", "seed": seed, **base, "aux_class_accuracy": 0.80 + gamma10_gain + 2 * noise,
                     "recon_mse": 0.011 + noise / 5})
    return pd.DataFrame(rows)


EVALUATION = {"baselines": {"modality_majority": 0.47, "modality_chance": 1 / 3}, "aux_modality_accuracy": 0.97,
              "aux_class_accuracy": 0.8, "aux_modality_accuracy_train_mode": 0.98, "aux_class_accuracy_train_mode": 0.81,
              "probe_modality_accuracy": 0.99, "probe_modality_accuracy_by_class": [0.98, 1.0, 0.99] * 7,
              "active_units": 40, "kl_per_dimension": [0.5] * 30 + [0.05] * 98,
              "latent_test_images": 2100, "generation_sizes": {"test": 2100}}


def test_diagnosis_findings_state_what_the_intervals_show():
    study = _study(no_aux_heads=0.38, unconditioned_probe=0.95, gamma10_gain=0.06)
    found = diagnosis.findings(EVALUATION, study)
    assert any("gamma = 0" in f and "the original's symptom" in f and "not the original" not in f for f in found)
    assert any("Labels kept out of the encoder" in f and "mu holds less of the class" in f for f in found)
    assert "Posterior: 40 of 128 latent dimensions carry more than 0.01 nats and 30 more than 0.1 nats." in found
    fix = diagnosis.best_fix(study)
    assert fix["variant"] == "gamma_10" and fix["metric"] == "aux_class_accuracy"
    assert fix["gain"].mean == pytest.approx(0.06) and fix["gain"].low > 0
    assert "gamma_10 raises the aux class accuracy most" in diagnosis.summary(study)


def test_diagnosis_says_no_when_the_seeds_cannot_resolve_a_change():
    study = _study(no_aux_heads=0.96, unconditioned_probe=0.85, gamma10_gain=0.0)
    found = diagnosis.findings(EVALUATION, study)
    assert any("not the original's symptom" in f for f in found)
    assert any("Labels kept out of the encoder" in f and "no change the seeds can resolve" in f for f in found)
    assert diagnosis.best_fix(study) is None
    # no change raises the heads; the one that lowers them beyond the seeds' spread is named with its interval
    # -0.755, -0.750, -0.745: sd 0.005, half-width 4.303 * 0.005 / sqrt(3) = 1.24 points
    assert diagnosis.summary(study) == (
        "After Holm's correction over the 6 contrasts of the heads, no tested change raises one. Lowering them: no_aux "
        "lowers the aux class accuracy by 75.0 percentage points, unadjusted 95% CI 73.8 to 76.2.")
    table = diagnosis.spread_table(study)
    assert list(table.index) == ["paper", "no_aux", "encoder_unconditioned", "gamma_10"]
    # 0.795, 0.800, 0.805: sd 0.005, half-width t(0.975, 2) * 0.005 / sqrt(3) = 4.303 * 0.002887 = 0.0124
    assert (table["seeds"] == 3).all() and table.loc["paper", "aux class, eval (%)"] == "80.0 (78.8 to 81.2)"
    assert table.loc["paper", "reconstruction MSE (per pixel)"] == "0.0100 (0.0088 to 0.0112)"  # 0.0095, 0.0100, 0.0105


def test_plain_converts_numpy_and_non_finite():
    out = evaluate._plain({"a": np.float32(0.5), "b": np.int64(3), "c": [np.bool_(True)], "d": float("inf"),
                           "e": np.arange(2)})
    assert out == {"a": 0.5, "b": 3, "c": [True], "d": None, "e": [0, 1]}
    assert json.loads(json.dumps(out)) == out


@pytest.mark.slow
def test_evaluate_run_on_smoke_end_to_end_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "runs"))
    config = make_config("smoke")
    result = evaluate.evaluate_run(config, progress=False)
    assert REQUIRED_KEYS <= set(result)
    assert json.loads(json.dumps(result)) == result  # plain JSON
    assert set(FLAGS) <= set(result["evaluator_test_accuracy"])
    for key in ("domain_fid", "domain_kid", "domain_fid_floor"):
        assert set(result[key]) == {*FLAGS, "overall"}
    for key in ("recon_mse", "recon_psnr", "recon_ssim"):
        assert set(FLAGS) <= set(result[key])
    assert set(FLAGS) <= set(result["tstr_accuracy_by_modality"])
    assert len(result["conditional_per_class"]) == NUM_CLASSES
    assert len(result["evaluator_test_accuracy_by_class"]) == NUM_CLASSES
    assert all(0.0 <= value <= 1.0 for value in result["evaluator_test_accuracy_by_class"])
    assert len(result["kl_per_dimension"]) == config.latent_dim
    assert result["synthetic_data"] is True
    # the mechanism works on the stand-in (issue 4, must-have 8): mu carries the modality, and the conditional
    # accuracy is the per-class table's weighted mean. (Whether a 3-epoch smoke model's prior samples carry their
    # modality is a result, not a property of the pipeline: on the calibrated stand-in they mostly do not.)
    assert result["probe_modality_accuracy"] >= 0.95
    per_class = result["conditional_per_class"]
    samples = sum(row["samples"] for row in per_class)
    assert samples == result["generation_sizes"]["samples"] == NUM_CLASSES * result["generation_sizes"][
        "samples_per_class"]
    assert result["conditional_modality_accuracy"] == pytest.approx(
        sum(row["modality_accuracy"] * row["samples"] for row in per_class) / samples)
    # generated sets are farther from the test set than held-out real images are
    assert result["domain_fid"]["overall"] > result["domain_fid_floor"]["overall"]
    fractions = result["augmentation_by_fraction"]
    assert fractions["fractions"] == [0.01, 0.1, 1.0] and len(fractions["rows"]) == 3 * 2 * 2  # smoke: 2 seeds
    gain = result["recon_ssim_gain_over_class_mean"]["pathmnist"]
    assert gain["kind"] == "classes" and gain["n"] == 9 and gain["low"] <= gain["mean"] <= gain["high"]
    assert (tmp_path / "runs" / result["run"] / "evaluation.json").exists()

    def no_loading(*args, **kwargs):
        raise AssertionError("a cached evaluation loaded the data again")

    monkeypatch.setattr(evaluate, "load_data", no_loading)
    assert evaluate.evaluate_run(config, progress=False) == result  # served from evaluation.json
    path = tmp_path / "runs" / result["run"] / "evaluation.json"
    edited = json.loads(path.read_text())
    edited["recon_psnr"]["overall"] += 1.0  # a hand-edited number is never served
    path.write_text(json.dumps(edited))
    with pytest.raises(AssertionError, match="loaded the data again"):
        evaluate.evaluate_run(config, progress=False)


def test_augmentation_gain_is_stated_in_percentage_points_with_its_interval():
    from cvae.report.augmentation_tables import fraction_sentence, fraction_summary, fraction_table

    rows = [{"fraction": 0.01, "seed": seed, "arm": arm, "overall": value}
            for seed, (real, both) in enumerate([(0.50, 0.55), (0.52, 0.56), (0.48, 0.54)])
            for arm, value in (("real_only", real), ("real_plus_synthetic", both))]
    summary = fraction_summary({"rows": rows})
    gain = summary[summary["arm"] == "gain"].iloc[0]
    assert gain["mean"] == pytest.approx(0.05)  # paired: (0.05 + 0.04 + 0.06) / 3
    # sd 0.01 over 3 seeds: half-width 4.303 * 0.01 / sqrt(3) = 2.5 points
    assert fraction_sentence(summary) == (
        "Adding the samples changed the test accuracy by +5.0 points at 1% of the real images, 95% CI +2.5 to +7.5. "
        "Each change is over 3 seeds. The samples helped at 1% of the real images, where the interval excludes zero.")
    wild = rows + [{"fraction": 0.1, "seed": seed, "arm": arm, "overall": value}  # gains +0.9, -0.8, +0.9
                   for seed, (real, both) in enumerate([(0.05, 0.95), (0.9, 0.1), (0.05, 0.95)])
                   for arm, value in (("real_only", real), ("real_plus_synthetic", both))]
    said = fraction_sentence(fraction_summary({"rows": wild}))
    assert ("95% CI +2.5 to +7.5; and by +33.3 at 10%, with an interval that spans every change a rate can make. "
            "Each") in said  # a change stays in +-100 points, and an interval that covers all of it says nothing
    assert ("Each change is over 3 seeds. The samples helped at 1% of the real images, where the interval excludes "
            "zero.") in said
    assert said.endswith("below its 50.0% with 1%: with a fixed number of training steps it did not use the extra "
                         "images, so these gains say little about augmentation.")  # real only: 33.3% at 10%
    table = fraction_table(summary)
    assert list(table.index.get_level_values("classifier")) == ["real only", "real + generated", "gain"]
    assert table.loc[("1%", "gain"), "unit"] == "points" and table.loc[("1%", "gain"), "mean"] == "+5.0"
    assert table.loc[("1%", "real only"), "mean"] == "50.0" and table.loc[("1%", "real only"), "unit"] == "%"
    assert fraction_table(fraction_summary({"rows": wild})).loc[("10%", "gain"), "95% CI"] == "uninformative"
    # gains +1, -1 and 0 points: sd 1 point, so 80% power needs 5.653 * 1 / sqrt(3) = 3.3 points
    even = [{"fraction": 0.01, "seed": seed, "arm": arm, "overall": 0.5 + (gain if arm != "real_only" else 0.0)}
            for seed, gain in enumerate([0.01, -0.01, 0.0]) for arm in ("real_only", "real_plus_synthetic")]
    assert fraction_sentence(fraction_summary({"rows": even})).endswith(
        "neither helped nor hurt detectably. With 80% power the seeds would have found a change of about 3 points at "
        "1% of the real images.")
    # each share of the real images has its own spread, so each states its own detectable change
    two = even + [{**row, "fraction": 0.1, "overall": 0.5 + 3 * (row["overall"] - 0.5)} for row in even]
    assert fraction_sentence(fraction_summary({"rows": two})).endswith(
        "a change of about 3 points at 1% of the real images and 10 at 10%.")
    # a gain of -0.04 points is shown as +0.0, never -0.0
    flat = [{"fraction": 0.01, "seed": seed, "arm": arm, "overall": real - (0.0004 if arm != "real_only" else 0.0)}
            for seed, real in enumerate([0.50, 0.52, 0.48]) for arm in ("real_only", "real_plus_synthetic")]
    assert "by +0.0 points at 1% of the real images, with no interval." in fraction_sentence(
        fraction_summary({"rows": flat}))


def test_the_diagnosis_says_nothing_from_runs_that_did_not_learn():
    study = _study(no_aux_heads=0.38, unconditioned_probe=0.95, gamma10_gain=0.06)
    for column in learned_columns():  # samples at chance
        if column.startswith("conditional_class_accuracy"):
            study.loc[study["name"] == "paper", column] = 1 / 21
    assert diagnosis.summary(study) == (
        "3 of the 12 diagnosis runs failed the learning gate, so their contrasts say nothing about the heads.")
    found = diagnosis.findings(EVALUATION, study)  # the numbers stay, read in points; no clause interprets them
    assert not any("symptom" in f or "holds" in f or "differ" in f or "resolve" in f for f in found)
    labels_out = next(f for f in found if f.startswith("Labels kept out of the encoder"))
    assert labels_out.startswith("Labels kept out of the encoder: the class probe on mu changes by +10.0 points, 95% CI")
    assert labels_out.endswith(" over 3 seeds against the control.")


def test_a_cached_result_is_served_only_while_its_content_key_and_checkpoint_are_unchanged(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from cvae.training.runs import KEPT_CHECKPOINT

    monkeypatch.setattr(evaluate, "is_finished", lambda folder: True)
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path))
    judge = SimpleNamespace(path=tmp_path / "evaluator-0123456789")
    judge.path.mkdir()
    (judge.path / "summary.json").write_text('{"finished_at": "2026-12-06T21:00:00"}')
    (tmp_path / KEPT_CHECKPOINT).write_bytes(b"weights of epoch 7")
    path = tmp_path / "variant_metrics.json"
    stored = evaluate._store(path, {"evaluation_key": "k1", "recon_psnr": 21.5}, judge)
    assert evaluate._cached(path, "k1") == stored and stored["recon_psnr"] == 21.5
    assert evaluate._cached(path, "k2") is None  # other evaluator, settings or code
    path.write_text(path.read_text().replace("21.5", "25.5"))  # edited by hand
    assert evaluate._cached(path, "k1") is None
    evaluate._store(path, {"evaluation_key": "k1", "recon_psnr": 21.5}, judge)
    (judge.path / "summary.json").write_text('{"finished_at": "2026-12-06T22:30:00.5"}')  # the evaluator retrained
    assert evaluate._cached(path, "k1") is None
    evaluate._store(path, {"evaluation_key": "k1", "recon_psnr": 21.5}, judge)
    (tmp_path / KEPT_CHECKPOINT).write_bytes(b"weights of epoch 10")  # retrained since (another size: the digest
    # cache of one process is keyed by inode, size and mtime, and an mtime may not move within one clock tick)
    assert evaluate._cached(path, "k1") is None
    path.write_text('{"evaluation_key": "k1", "recon')  # truncated
    assert evaluate._cached(path, "k1") is None


def test_the_evaluation_key_follows_the_code_that_computes_it(monkeypatch):
    from cvae.evaluation.run_metrics import evaluation_settings_for

    config = make_config("smoke")
    settings = evaluation_settings_for(config)
    before = evaluate.evaluation_key(config, settings)
    monkeypatch.setattr(evaluate, "source_digest", lambda modules: "another version of the metric code")
    assert evaluate.evaluation_key(config, settings) != before
    assert {"evaluation.run_evaluation", "evaluation.metric_math", "evaluation.run_metrics",
            "evaluation.domain_evaluator"} <= set(evaluate.EVALUATION_MODULES)


def test_the_evaluator_is_retrained_on_other_data_and_when_damaged(stand_in_dir, runs_dir, tmp_path, monkeypatch):
    import shutil

    from cvae.data.loading import load_data
    from cvae.evaluation import domain_evaluator as evaluator_module

    trained = []

    def quick_classifier(images, labels, steps, batch_size, lr, weight_decay, seed, device, **kwargs):
        trained.append(len(images))
        return evaluator_module.DomainClassifier(kwargs["width"])

    monkeypatch.setattr(evaluator_module, "train_classifier", quick_classifier)
    config = make_config("smoke", [f"data_dir={stand_in_dir}", "data_source=synthetic"])
    data = load_data(evaluator_module.evaluator_data_config(config), progress=False)
    first, _ = evaluator_module.load_or_train_evaluator(config, data, progress=False)
    evaluator_module.load_or_train_evaluator(config, data, progress=False)
    assert len(trained) == 1 and set(first.summary["data_md5"]) == {"pathmnist", "tissuemnist", "octmnist"}
    other = tmp_path / "other"
    shutil.copytree(stand_in_dir, other)
    with np.load(other / "octmnist.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["train_images"][0] = 255 - arrays["train_images"][0]
    np.savez(other / "octmnist.npz", **arrays)
    changed = load_data(evaluator_module.evaluator_data_config(config.replace(data_dir=str(other))), progress=False)
    evaluator_module.load_or_train_evaluator(config, changed, progress=False)  # same folder name, other data
    assert len(trained) == 2
    (first.path / evaluator_module.EVALUATOR_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match=r"evaluator\.pt is damaged .*training the evaluator again"):
        evaluator_module.load_or_train_evaluator(config, changed, progress=False)
    assert len(trained) == 3



def test_the_diagnosis_counts_the_seeds_its_contrasts_share_with_the_control():
    study = _study(no_aux_heads=0.38, unconditioned_probe=0.95, gamma10_gain=0.06)
    assert diagnosis.contrast_seeds(study) == 3
    more_control = study[study["name"] == "paper"].assign(seed=lambda t: t["seed"] + 3)  # the claims' extra seeds
    assert diagnosis.contrast_seeds(pd.concat([study, more_control])) == 3
    assert diagnosis.contrast_seeds(study[study["name"] == "paper"]) == 0


def test_the_augmentation_sentence_warns_when_more_real_images_did_not_help_the_real_only_classifier():
    from cvae.report.augmentation_tables import fraction_sentence, fraction_summary

    def rows(accuracies):
        return [{"fraction": fraction, "seed": seed, "arm": arm, "overall": accuracy + 0.01 * seed}
                for fraction, accuracy in accuracies.items() for seed in range(3)
                for arm in ("real_only", "real_plus_synthetic")]

    rising = fraction_sentence(fraction_summary({"rows": rows({0.01: 0.3, 0.1: 0.5, 1.0: 0.7})}))
    assert "say little about augmentation" not in rising
    falling = fraction_sentence(fraction_summary({"rows": rows({0.01: 0.3, 0.1: 0.42, 1.0: 0.4})}))
    assert falling.endswith("The real-only classifier scored 41.0% with 100% of the real images, below its 43.0% "
                            "with 10%: with a fixed number of training steps it did not use the extra images, so "
                            "these gains say little about augmentation.")


def test_the_shares_where_the_samples_hurt_are_listed_as_a_reader_lists_them():
    from cvae.report.augmentation_tables import fraction_sentence, fraction_summary

    rows = [{"fraction": fraction, "seed": seed, "arm": arm,
             "overall": 0.5 + 0.01 * seed + 0.1 * fraction
             - (0.05 + 0.005 * seed if arm != "real_only" and fraction > 0.05 else 0)}
            for fraction in (0.01, 0.1, 1.0) for seed in range(3) for arm in ("real_only", "real_plus_synthetic")]
    assert "The samples hurt at 10% and 100% of the real images, where the interval excludes zero." in (
        fraction_sentence(fraction_summary({"rows": rows})))
