"""The evaluation orchestration: helpers on a tiny model, the verdict rules, and one slow end-to-end smoke run."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from cvae import evaluate
from cvae.config import make_config
from cvae.data import Split
from cvae.labels import MODALITY_OF_CLASS, NUM_CLASSES
from cvae.model import CVAE

REQUIRED_KEYS = {
    "evaluator_test_accuracy", "reference_resnet18_28", "domain_fid", "domain_kid", "domain_fid_floor",
    "conditional_class_accuracy", "conditional_modality_accuracy", "conditional_per_class", "recon_mse", "recon_psnr",
    "recon_ssim", "aux_class_accuracy", "aux_modality_accuracy", "aux_class_accuracy_train_mode",
    "aux_modality_accuracy_train_mode", "probe_class_accuracy", "probe_modality_accuracy", "baselines",
    "silhouette_modality", "silhouette_class", "active_units", "kl_per_dimension", "augmentation", "tstr_accuracy",
    "trtr_accuracy", "synthetic_data", "diagnosis",
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
    mu, labels, modalities = evaluate.latent_codes(_tiny_model(), split)
    assert mu.shape == (len(split), 128) and mu.dtype == np.float32
    assert np.array_equal(labels, split.labels.numpy()) and np.array_equal(modalities, split.modalities.numpy())


def test_conditional_samples_are_seeded_and_labelled():
    model = _tiny_model()
    images, labels, modalities = evaluate.generate_conditional_samples(model, per_class=3, seed=5)
    again, _, _ = evaluate.generate_conditional_samples(model, per_class=3, seed=5)
    assert images.shape == (63, 1, 28, 28) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(images, again)
    assert labels.tolist() == [c for c in range(NUM_CLASSES) for _ in range(3)]
    assert modalities.tolist() == [MODALITY_OF_CLASS[c] for c in labels.tolist()]


def test_reconstruct_and_aux_heads_leave_the_model_unchanged():
    model, split = _tiny_model(), _tiny_split()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    originals, recons = evaluate.reconstruct(model, split)
    assert originals.shape == recons.shape == (len(split), 1, 28, 28)
    eval_mode = evaluate.aux_head_accuracy(model, split)
    train_mode = evaluate.aux_head_accuracy(model, split, train_mode=True, batch_size=16)
    assert all(0 <= v <= 1 for v in (*eval_mode.values(), *train_mode.values()))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN running stats untouched


def _diagnosis(base_modality: float, g0_modality: float, g0_probe: float, unc_probe_class: float) -> dict:
    common = {"aux_class_accuracy": 0.9, "probe_class_accuracy": 0.9, "probe_modality_accuracy": 1.0,
              "recon_mse": 10.0, "aux_modality_accuracy": base_modality, "aux_class_accuracy_train_mode": 0.9,
              "aux_modality_accuracy_train_mode": base_modality}
    return {
        "base": dict(common), "control": dict(common),
        "baselines": {"modality_majority": 0.43, "modality_chance": 1 / 3},
        "reproduces_original": base_modality < 0.48,
        "batchnorm_gap": {"class": 0.0, "modality": 0.01},
        "posterior_collapse": {"active_units": 40, "latent_dim": 128, "kl_total": 30.0},
        "loss_scales": {"reconstruction_to_aux_ratio": 500.0},
        "variants": {
            "gamma_0": {**common, "overrides": {"gamma": 0.0}, "aux_class_accuracy": 0.05,
                        "aux_modality_accuracy": g0_modality, "probe_modality_accuracy": g0_probe},
            "encoder_unconditioned": {**common, "overrides": {"encoder_conditioned": False},
                                      "probe_class_accuracy": unc_probe_class},
        },
    }


def test_verdict_follows_the_numbers():
    findings, verdict, fix = evaluate.diagnosis_verdict(_diagnosis(0.99, 0.38, 0.99, 0.9))
    assert "does not reproduce" in verdict and "gamma=0" in verdict and fix is None
    assert any("reproduces the original's symptom" in f for f in findings)
    # an untrained head that happens to be right explains nothing
    _, verdict, _ = evaluate.diagnosis_verdict(_diagnosis(0.99, 0.99, 0.99, 0.9))
    assert "gamma=0" not in verdict
    # a failing head on a readable latent, fixed by the unconditioned encoder: reproduced, with the fix named
    diagnosis = _diagnosis(0.39, 0.38, 0.99, 0.99)
    diagnosis["variants"]["encoder_unconditioned"]["aux_modality_accuracy"] = 0.98
    findings, verdict, fix = evaluate.diagnosis_verdict(diagnosis)
    assert "reproduces" in verdict and "does not" not in verdict and "the heads, not the latent" in verdict
    assert fix["overrides"] == {"encoder_conditioned": False}
    assert any("lets mu drop them" in f for f in findings)


def test_diagnosis_scale_matches_the_ablations_scale_for_plain_profiles_only():
    from cvae.ablations import ablation_overrides_for_profile

    assert evaluate.diagnosis_scale(make_config("smoke")) == ablation_overrides_for_profile("smoke")
    assert evaluate.diagnosis_scale(make_config("smoke", {"latent_dim": 64})) == {}
    # the quick profile on the stand-in at official sizes, another seed, fp32: still the quick profile's scale
    stand_in = make_config("quick", {"data_source": "synthetic", "synthetic_per_class": 0, "seed": 3,
                                     "autocast": "none"})
    assert evaluate.diagnosis_scale(stand_in) == ablation_overrides_for_profile("quick")
    assert evaluate.diagnosis_scale(make_config("quick", {"epochs": 10})) == {}


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
    assert set(FLAGS) <= set(result["augmentation"])
    assert len(result["conditional_per_class"]) == NUM_CLASSES
    assert len(result["kl_per_dimension"]) == config.latent_dim
    assert result["synthetic_data"] is True
    # the mechanism works on the stand-in (issue 4, must-have 8)
    assert result["probe_modality_accuracy"] >= 0.95
    assert result["conditional_modality_accuracy"] >= 0.9
    # generated sets are farther from the test set than held-out real images are
    assert result["domain_fid"]["overall"] > result["domain_fid_floor"]["overall"]
    assert isinstance(result["diagnosis"]["verdict"], str) and result["diagnosis"]["verdict"]
    assert (tmp_path / "runs" / result["run"] / "evaluation.json").exists()
    tick = time.perf_counter()
    again = evaluate.evaluate_run(config, progress=False)
    assert time.perf_counter() - tick < 20
    assert again == result
