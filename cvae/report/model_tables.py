"""Tables of the training chapter: the architecture, every setting and its source, quantities beside the original's."""

from __future__ import annotations

from dataclasses import fields

import pandas as pd
import torch

from cvae.core.config import PROFILES, Config

# Where each setting comes from: (original value as the report states it, source, why).
_SOURCES: dict[str, tuple[str, str, str]] = {
    "datasets": ("Path, Tissue, OCT", "original", "the three MedMNIST sets, in modality order (ids 0, 1, 2)"),
    "data_source": ("MedMNIST", "profile", "real MedMNIST for quick/full; the labelled synthetic stand-in for smoke"),
    "train_per_class": ("all", "profile", "a stratified subset keeps the quick profile within an hour on a CPU"),
    "eval_per_class": ("all", "profile", "the same for validation and test"),
    "synthetic_per_class": ("-", "reproduction", "size of the offline stand-in (only read when data_source=synthetic)"),
    "data_dir": ("-", "reproduction", "where the .npz files live; not part of the config hash"),
    "latent_dim": ("128", "original", "d_z = 128"),
    "class_embed_dim": ("128", "original", "d_c = 128"),
    "modality_embed_dim": ("64", "original", "d_m = 64"),
    "encoder_channels": ("1->32->64->128", "original", "three stride-2 convolutions, kernel 4, padding 1"),
    "extra_convs_per_stage": ("0", "original", "0 is the original; >0 builds the deeper (~4.8M) ablation"),
    "hidden_dim": ("256", "original", "the 256-wide linear layer of encoder and decoder"),
    "encoder_conditioned": ("yes", "original", "the embeddings enter the encoder too (see the latent chapter)"),
    "perceptual_seed": ("unseeded", "reproduction", "the frozen random CNN is seeded so runs repeat"),
    "a_mse": ("missing", "reproduction", "per-sample sum over 784 pixels: the Gaussian log-likelihood term"),
    "a_l1": ("missing", "reproduction",
             "our choice: an earlier one-seed search on the stand-in moved it from 0.5 (the method chapter)"),
    "a_perc": ("missing", "reproduction", "half weight on the sum over 32x7x7 frozen-CNN features"),
    "beta_max": ("missing", "reproduction", "unit-weight pixel sums imply sigma^2 = 0.5; beta < 1 tightens it"),
    "beta_warmup_epochs": ("20", "original", "beta = 0 while t <= this (epoch e trains with t = e - 1, so beta is "
                                             "first non-zero in epoch warm-up + 2); profiles scale it"),
    "beta_ramp_epochs": ("100", "original", "linear ramp length (profiles scale it with the epochs)"),
    "gamma": ("missing", "reproduction", "class + modality cross-entropy in nats per sample, like the KL term"),
    "epochs": ("150", "original", "profiles shorten it"),
    "batch_size": ("256", "original", ""),
    "lr": ("5e-4", "original", "Adam"),
    "weight_decay": ("1e-5", "original", "Adam's L2 penalty"),
    "plateau_patience": ("8", "original", "ReduceLROnPlateau on the validation loss"),
    "plateau_factor": ("0.5", "original", "ReduceLROnPlateau"),
    "plateau_metric": ("validation loss", "reproduction", "the total, as the original presumably did; "
                       "total_at_beta_max ignores the beta ramp (the method chapter)"),
    "checkpoint_metric": ("validation loss", "reproduction", "total_at_beta_max: one objective for every epoch; "
                          "the original's total under beta(t) picks an epoch before the KL term weighs anything on a "
                          "short schedule (the training chapter reports both)"),
    "grad_clip": ("1.0", "original", "maximum gradient norm"),
    "batch_composition": ("not stated", "reproduction", "mixed: every batch mixes the three datasets; single is the "
                          "aux-head factorial's other level (the latent chapter)"),
    "seed": ("-", "reproduction", "every stochastic step is seeded"),
    "device": ("GPU", "reproduction", "auto: CUDA, then MPS, then CPU; not part of the config hash"),
    "autocast": ("not stated", "reproduction", "auto: bf16 autocast on CUDA and on CPUs with bf16 instructions (the fp32 "
                 "ablation shows what it costs)"),
    "channels_last": ("-", "reproduction", "NHWC memory layout, faster convolutions; not part of the config hash"),
    "compile": ("-", "reproduction", "torch.compile mode; not part of the config hash"),
    "fused_adam": ("-", "reproduction", "Adam's fused kernel; not part of the config hash"),
    "threads": ("-", "reproduction", "CPU threads (0 = all cores); not part of the config hash"),
    "cuda_graphs": ("-", "reproduction", "on one GPU, the whole step as a CUDA graph; not part of the config hash"),
}


def architecture_table(model: torch.nn.Module, batch: int = 2) -> pd.DataFrame:
    """One row per block of the CVAE: its layers, output shape for a (batch,1,28,28) input, trainable parameters.

    Derived from the module itself (forward hooks), so it always matches the code that trained.
    """
    blocks = ["class_embedding", "modality_embedding", "encoder_convs", "encoder_hidden", "to_mu", "to_logvar",
              "decoder_hidden", "decoder_convs", "class_head", "modality_head", "perceptual"]
    shapes: dict[str, tuple] = {}

    def recorder(name):
        def hook(module, inputs, output) -> None:  # returns None: the output is left unchanged
            shapes.setdefault(name, tuple(output.shape[1:]))
        return hook

    handles = [getattr(model, name).register_forward_hook(recorder(name)) for name in blocks]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        images = torch.zeros(batch, 1, 28, 28)
        labels = torch.zeros(batch, dtype=torch.long)
        output = model(images, labels, labels)
        model.perceptual(output.recon)
    model.train(was_training)
    for handle in handles:
        handle.remove()
    rows = []
    for name in blocks:
        module = getattr(model, name)
        layers = [type(m).__name__ for m in module.modules() if not list(m.children())] or [type(module).__name__]
        compact = []
        for layer in layers:
            if compact and compact[-1][0] == layer:
                compact[-1][1] += 1
            else:
                compact.append([layer, 1])
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
        rows.append({
            "block": name,
            "layers": ", ".join(f"{n}x{k}" if k > 1 else n for n, k in compact),
            "output shape": "x".join(map(str, shapes.get(name, ()))),
            "trainable parameters": int(trainable),
            "note": f"frozen ({frozen:,} parameters, not counted)" if frozen else "",
        })
    table = pd.DataFrame(rows).set_index("block")
    table.loc["total", "trainable parameters"] = int(table["trainable parameters"].sum())
    table["trainable parameters"] = table["trainable parameters"].map(lambda n: f"{int(n):,}")  # "1,155,993"
    return table.fillna("")


def hyperparameter_table(config: Config, profile: str | None = None) -> pd.DataFrame:
    """Every Config field: this run's value, the original report's value and where the value comes from."""
    base = Config()
    profile_keys = set(PROFILES.get(profile or "", {}))
    rows = []
    for f in fields(Config):
        value = getattr(config, f.name)
        original, source, why = _SOURCES.get(f.name, ("-", "reproduction", ""))
        if f.name in profile_keys and source == "original" and value != getattr(base, f.name):
            source, why = f"profile {profile}", f"original {original}; {why}".rstrip("; ")
        elif value != getattr(base, f.name) and f.name not in profile_keys and f.name not in ("data_dir", "device"):
            source = "override"
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else (value if value != "" else "(default)")
        if f.name == "data_dir" and value:
            shown = _folder_for_reader(value)
        elif f.name in ("train_per_class", "eval_per_class") and value == 0:  # 0 is the field's "no cap"
            shown = "all"
        rows.append({"setting": f.name, "this run": str(shown), "original": original, "source": source, "why": why})
    return pd.DataFrame(rows).set_index("setting")


def _folder_for_reader(folder: str) -> str:
    """A data folder as a reader can use it: relative to the project when inside it, else no local path at all."""
    from pathlib import Path

    from cvae.core.paths import PROJECT_ROOT

    try:
        return str(Path(folder).resolve().relative_to(PROJECT_ROOT.resolve()))
    except ValueError:
        return "(a folder outside the project)"


def learning_rate_sentence(metrics) -> str:
    """When ReduceLROnPlateau changed the learning rate, from a run's metrics (epochs 1-based)."""
    rates = list(metrics["lr"])
    changes = [(int(epoch) + 1, rate) for epoch, rate, before in zip(metrics["epoch"][1:], rates[1:], rates[:-1])
               if rate != before]
    if not changes:
        return f"the learning rate stayed at {rates[0]:g} for all {len(rates)} epochs."
    listed = ", ".join(f"{rate:g} from epoch {epoch}" for epoch, rate in changes)
    return f"the learning rate started at {rates[0]:g} and was lowered to {listed} (of {len(rates)} epochs)."


# (metrics.csv column, header) of the per-epoch summary; the full 22 columns are the chapter's CSV download
# (val loss at the final β is what picks the kept checkpoint; the time per epoch is in the CSV)
_EPOCH_COLUMNS = (("beta", "β"), ("lr", "learning rate"), ("train_total", "train loss"), ("val_total", "val loss"),
                  ("val_total_at_beta_max", "val loss at final β"), ("val_mse", "val MSE"), ("val_kl", "val KL"),
                  ("val_class_acc", "class acc (%)"), ("val_modality_acc", "modality acc (%)"))


def epoch_table(metrics: pd.DataFrame, best_epoch: int, last: int = 3, kept_epoch: int | None = None) -> pd.DataFrame:
    """The first, the best, the kept and the last `last` epochs of a run (epochs counted from 1, losses per image,
    accuracies of the validation set in %), one row each; `best_epoch` (the lowest validation total) and
    `kept_epoch` (the kept checkpoint's) are 0-based as in metrics.csv."""
    kept = int(best_epoch if kept_epoch is None else kept_epoch)
    wanted = sorted({0, int(best_epoch), kept, *list(metrics["epoch"].astype(int))[-last:]})
    rows = metrics.set_index(metrics["epoch"].astype(int)).loc[wanted]
    table = pd.DataFrame({header: rows[column] for column, header in _EPOCH_COLUMNS})
    for header in ("class acc (%)", "modality acc (%)"):
        table[header] = (100 * table[header]).round(1)
    table["β"] = table["β"].map(lambda value: f"{value:.3g}")
    table["learning rate"] = table["learning rate"].map(lambda value: f"{value:.3g}")
    for header in ("train loss", "val loss", "val loss at final β", "val MSE", "val KL"):
        table[header] = table[header].map(lambda value: f"{value:,.1f}")
    marks = {int(best_epoch): "lowest total"}
    marks[kept] = "kept" if kept != int(best_epoch) else "lowest total, kept"
    table.index = [f"{epoch + 1}" + (f" ({marks[epoch]})" if epoch in marks else "") for epoch in wanted]
    table.index.name = "epoch"
    return table


def kept_checkpoint_sentence(summary: dict, metrics: pd.DataFrame) -> str:
    """Which epoch's checkpoint the later chapters evaluate, by which rule, and its beta against the original rule's
    epoch (a run summary with best_epoch, checkpoint_epoch, checkpoint_metric; metrics.csv's rows)."""
    best, kept = int(summary["best_epoch"]), int(summary["checkpoint_epoch"])
    beta = dict(zip(metrics["epoch"].astype(int), metrics["beta"]))
    if summary["checkpoint_metric"] == "total":
        return (f"The later chapters evaluate the checkpoint of epoch {kept + 1}, the lowest validation total "
                f"(the original's rule, `checkpoint_metric=total`).")
    rule = "the lowest validation loss with the KL term at its final weight"
    last = int(metrics["epoch"].max())
    still = (" It is the last epoch, so the run was still improving: the later chapters evaluate a model that had "
             "not converged." if kept == last else "")
    if kept == best:
        return f"The later chapters evaluate the checkpoint of epoch {kept + 1}, which is also {rule}.{still}"
    return (f"The later chapters evaluate the checkpoint of epoch {kept + 1}, {rule}, trained with β = "
            f"{beta[kept]:.3g}. The original's rule would keep epoch {best + 1}, trained with β = {beta[best]:.3g}; "
            f"the method chapter says why this build does not.{still}")


def metrics_for_download(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every per-epoch column of metrics.csv with the epoch counted from 1, as in the text and the plots."""
    return metrics.assign(epoch=metrics["epoch"].astype(int) + 1)


__all__ = [
    "architecture_table", "hyperparameter_table", "learning_rate_sentence", "epoch_table",
    "kept_checkpoint_sentence", "metrics_for_download",
]
