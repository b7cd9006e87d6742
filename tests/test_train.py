import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from cvae.core.config import make_config
from cvae.core.model import CVAE
from cvae.data.loading import iterate_batches, load_data
from cvae.training import precision
from cvae.training.epochs import build_optimizer, train_step
from cvae.training.precision import autocast_dtype
from cvae.training.runs import KEPT_CHECKPOINT, LAST_CHECKPOINT, RunError, atomic_torch_save, is_finished, load_run
from cvae.training.train import train


def tiny_config(folder, **overrides):
    values = {"data_dir": str(folder), "epochs": 2, "batch_size": 128, "encoder_channels": (8, 16, 32),
              "hidden_dim": 64, "latent_dim": 16, "class_embed_dim": 16, "modality_embed_dim": 8}
    values.update(overrides)
    return make_config("smoke", values)


def test_one_optimizer_step_changes_every_trained_weight(stand_in_dir):
    config = tiny_config(stand_in_dir)
    data = load_data(config, progress=False)
    torch.manual_seed(0)
    model = CVAE(config)
    optimizer, _ = build_optimizer(model, config)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    perceptual_before = [p.clone() for p in model.perceptual.parameters()]
    terms = train_step(model, optimizer, next(iterate_batches(data.train, 64)), config, beta=0.1)
    assert set(terms) == {"mse", "l1", "perceptual", "kl", "class_ce", "modality_ce", "total"}
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert unchanged == []
    assert all(torch.equal(a, b) for a, b in zip(perceptual_before, model.perceptual.parameters()))


def test_checkpoint_round_trip_restores_config_and_every_tensor(tmp_path):
    config = make_config("smoke", {"latent_dim": 32})
    model = CVAE(config)
    for module in model.modules():  # make running stats non-trivial too
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_()
    atomic_torch_save({"model": model.state_dict(), "config": config.to_dict(), "epoch": 3}, tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=False)
    restored = CVAE(type(config).from_dict(state["config"]))
    restored.load_state_dict(state["model"])
    assert type(config).from_dict(state["config"]) == config
    original, loaded = model.state_dict(), restored.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)


def test_short_run_learns_and_is_reused(stand_in_dir, runs_dir):
    config = tiny_config(stand_in_dir, epochs=4, beta_warmup_epochs=1, beta_ramp_epochs=2)
    run_dir = train(config, progress=False)
    assert run_dir.parent == runs_dir and is_finished(run_dir)
    run = load_run(run_dir)
    assert list(run.metrics["epoch"]) == [0, 1, 2, 3]
    assert run.metrics["val_mse"].iloc[-1] < run.metrics["val_mse"].iloc[0]
    assert run.metrics["val_total"].iloc[1] < run.metrics["val_total"].iloc[0]  # both at beta = 0
    assert list(run.metrics["beta"]) == pytest.approx([0.0, 0.0, 0.05, 0.1])
    assert run.summary["synthetic_data"] is True
    # the original's rule (lowest total under beta(t)) is reported; the kept checkpoint is the lowest total at beta_max
    at_beta_max = run.metrics["val_total"] + (0.1 - run.metrics["beta"]) * run.metrics["val_kl"]
    assert run.metrics["val_total_at_beta_max"].tolist() == pytest.approx(at_beta_max.tolist())
    assert run.summary["best_epoch"] == int(run.metrics["val_total"].idxmin())
    assert run.summary["checkpoint_epoch"] == int(at_beta_max.idxmin())
    assert torch.load(run_dir / KEPT_CHECKPOINT, weights_only=False)["epoch"] == run.summary["checkpoint_epoch"]
    assert (run.best_total_epoch, run.kept_epoch) == (run.summary["best_epoch"], run.summary["checkpoint_epoch"])
    kept, last = run.model("kept"), run.model("last")  # the kept checkpoint and the last epoch's weights
    assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), last.state_dict().values())) == (
        run.kept_epoch == 3)
    stamp = (run_dir / "summary.json").stat().st_mtime_ns
    assert train(config, progress=False) == run_dir
    assert (run_dir / "summary.json").stat().st_mtime_ns == stamp  # reused, not retrained


def test_the_original_checkpoint_rule_keeps_the_lowest_total(stand_in_dir, runs_dir):
    config = tiny_config(stand_in_dir, epochs=3, beta_warmup_epochs=0, beta_ramp_epochs=2, checkpoint_metric="total")
    run = load_run(train(config, progress=False))
    assert run.summary["checkpoint_epoch"] == run.summary["best_epoch"] == int(run.metrics["val_total"].idxmin())
    assert torch.load(run.path / KEPT_CHECKPOINT, weights_only=False)["epoch"] == run.summary["best_epoch"]


@pytest.mark.slow
def test_smoke_scale_run_separates_modalities_in_mu(stand_in_dir, runs_dir):
    config = make_config("smoke", {"data_dir": str(stand_in_dir), "epochs": 3})
    run = load_run(train(config, progress=False))
    assert run.metrics["val_total"].iloc[1] < run.metrics["val_total"].iloc[0]
    model = run.model("kept")
    data = load_data(config, progress=False)
    with torch.no_grad():
        codes = {name: torch.cat([model.encode(x, y, m)[0] for x, y, m in iterate_batches(data.split(name), 512)])
                 for name in ("train", "test")}
    probe = LogisticRegression(max_iter=2000).fit(codes["train"].numpy(), data.train.modalities.numpy())
    accuracy = probe.score(codes["test"].numpy(), data.test.modalities.numpy())
    assert accuracy >= 0.95


def test_interrupted_run_resumes_to_the_same_metrics(stand_in_dir, tmp_path, monkeypatch):
    config = tiny_config(stand_in_dir, epochs=3, beta_warmup_epochs=1, beta_ramp_epochs=1)
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "straight"))
    straight = load_run(train(config, progress=False))
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "resumed"))
    partial = train(config, progress=False, stop_after_epoch=0)
    assert (partial / LAST_CHECKPOINT).exists() and not is_finished(partial)
    with pytest.raises(RunError, match="has not finished; rerun the same training command to resume"):
        load_run(partial)
    resumed = load_run(train(config, progress=False))
    timing = ["seconds", "train_samples_per_s"]
    pd.testing.assert_frame_equal(straight.metrics.drop(columns=timing), resumed.metrics.drop(columns=timing))
    a, b = straight.model("last").state_dict(), resumed.model("last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_config_and_seed_repeat_exactly(stand_in_dir, tmp_path, monkeypatch):
    config = tiny_config(stand_in_dir, epochs=1)
    results = []
    for name in ("a", "b"):
        monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / name))
        results.append(load_run(train(config, progress=False)).metrics.drop(columns=["seconds", "train_samples_per_s"]))
    pd.testing.assert_frame_equal(*results)
    assert np.isfinite(results[0].to_numpy(dtype=float)).all()


def test_autocast_auto_uses_bf16_on_cuda_and_only_on_cpus_with_native_bf16(monkeypatch):
    auto, fp32, bf16 = (make_config("smoke", {"autocast": mode}) for mode in ("auto", "none", "bf16"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype(auto, "cpu") is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype(auto, "cpu") is None
    assert autocast_dtype(bf16, "cpu") is torch.bfloat16  # asked for explicitly: emulated if need be
    assert autocast_dtype(auto, "cuda") is torch.bfloat16
    assert autocast_dtype(fp32, "cuda") is None and autocast_dtype(fp32, "cpu") is None


def _expected_rates(watched, lr0: float) -> list[float]:
    """ReduceLROnPlateau with patience 0, factor 0.5 and its default relative threshold 1e-4: the rate of each epoch
    from the quantity it watched in the epochs before."""
    rates, best = [lr0], float("inf")
    for value in list(watched)[:-1]:
        improved = value < best * (1 - 1e-4)
        best = min(best, value) if improved else best
        rates.append(rates[-1] if improved else rates[-1] * 0.5)
    return rates


def test_plateau_at_beta_max_reaches_the_scheduler(stand_in_dir, runs_dir):
    """`plateau_at_beta_max` changes what ReduceLROnPlateau watches: each run's learning-rate trace is the one its own
    watched quantity implies (the total under beta(t), or the total at beta_max), and with a KL weight that jumps
    from 0 to 50 the two traces differ."""
    common = dict(epochs=4, beta_warmup_epochs=1, beta_ramp_epochs=1, beta_max=50.0, plateau_patience=0)
    watched_total = load_run(train(tiny_config(stand_in_dir, **common), progress=False)).metrics
    at_beta_max = load_run(train(tiny_config(stand_in_dir, plateau_metric="total_at_beta_max", **common),
                                 progress=False)).metrics
    assert list(watched_total["lr"]) == pytest.approx(_expected_rates(watched_total["val_total"], 5e-4))
    assert list(at_beta_max["lr"]) == pytest.approx(_expected_rates(at_beta_max["val_total_at_beta_max"], 5e-4))
    assert list(watched_total["lr"]) != pytest.approx(list(at_beta_max["lr"]))


def test_every_watchable_metric_names_a_metrics_column():
    from cvae.core.config import PLATEAU_METRICS
    from cvae.training.summary import WATCHED_COLUMNS

    assert tuple(WATCHED_COLUMNS) == PLATEAU_METRICS
    assert WATCHED_COLUMNS == {"total": "val_total", "total_at_beta_max": "val_total_at_beta_max"}
