"""Helpers the chapter notebooks call: configuration from papermill parameters, the data notice, tables,
latent codes, example images and glue. Figures themselves live in `cvae.plots`.

Everything here returns plain Python / NumPy / pandas objects, so the notebooks stay a few lines per cell.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from .config import PROFILES, Config, make_config
from .data import MedMNISTData, Split, iterate_batches
from .labels import CLASS_NAMES, DATASETS, MODALITY_NAMES, MODALITY_OF_CLASS, NUM_CLASSES, classes_of_modality
from .paths import PROJECT_ROOT

REPORT_DIR_ENV = "CVAE_REPORT_DIR"
TIMINGS_FILE = "timings.json"

# The original report's numbers, quoted beside ours (never computed here).
ORIGINAL = {
    "best_epoch": 79,
    "aux_class_accuracy": 0.34,
    "aux_modality_accuracy": 0.39,
    "parameters": 1_155_993,
    "deep_parameters": 4_800_000,
    "train_total": 352_939,
}

# Where each setting comes from: (original value as the report states it, source, why).
_SOURCES: dict[str, tuple[str, str, str]] = {
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
    "a_l1": ("missing", "reproduction", "half weight: sharper edges without replacing the Gaussian term"),
    "a_perc": ("missing", "reproduction", "half weight on the sum over 32x7x7 frozen-CNN features"),
    "beta_max": ("missing", "reproduction", "unit-weight pixel sums imply sigma^2 = 0.5; beta < 1 tightens it"),
    "beta_warmup_epochs": ("20", "original", "beta = 0 before this epoch (profiles scale it with the epochs)"),
    "beta_ramp_epochs": ("100", "original", "linear ramp length (profiles scale it with the epochs)"),
    "gamma": ("missing", "reproduction", "class + modality cross-entropy in nats per sample, like the KL term"),
    "epochs": ("150", "original", "profiles shorten it"),
    "batch_size": ("256", "original", ""),
    "lr": ("5e-4", "original", "Adam"),
    "weight_decay": ("1e-5", "original", "Adam's L2 penalty"),
    "plateau_patience": ("8", "original", "ReduceLROnPlateau on the validation loss"),
    "plateau_factor": ("0.5", "original", "ReduceLROnPlateau"),
    "grad_clip": ("1.0", "original", "maximum gradient norm"),
    "seed": ("-", "reproduction", "every stochastic step is seeded"),
    "device": ("GPU", "reproduction", "auto: CUDA, then MPS, then CPU; not part of the config hash"),
    "autocast": ("not stated", "reproduction", "auto: bf16 autocast on CUDA and on CPUs with bf16 instructions (the fp32 "
                 "ablation shows what it costs)"),
    "channels_last": ("-", "reproduction", "NHWC memory layout, faster convolutions; not part of the config hash"),
    "compile": ("-", "reproduction", "torch.compile mode; not part of the config hash"),
    "fused_adam": ("-", "reproduction", "Adam's fused kernel; not part of the config hash"),
    "threads": ("-", "reproduction", "CPU threads (0 = all cores); not part of the config hash"),
}


# --------------------------------------------------------------------------------------------------------------
# notebook set-up and parameters
# --------------------------------------------------------------------------------------------------------------
def _warning_to_stdout(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"note ({category.__name__}): {message}", file=sys.stdout)


def setup_notebook() -> None:
    """Deliberate warning handling for chapter notebooks: warnings print once to stdout as a visible note
    (stderr output is treated as an error by the browser test); matplotlib gets readable defaults."""
    import matplotlib as mpl

    warnings.resetwarnings()
    warnings.simplefilter("once")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    warnings.showwarning = _warning_to_stdout
    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "figure.facecolor": "white",
                         "savefig.facecolor": "white", "font.size": 9})
    pd.set_option("display.precision", 4)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))


def notebook_config(profile: str = "smoke", seed: int | None = None, data_source: str = "", data_dir: str = "",
                    overrides: Iterable[str] = ()) -> Config:
    """The Config a chapter runs with: the profile, then `key=value` overrides, then seed/data source/folder."""
    items = list(overrides or [])
    if data_source:
        items.append(f"data_source={data_source}")
    if data_dir:
        items.append(f"data_dir={data_dir}")
    if seed is not None:
        items.append(f"seed={int(seed)}")
    return make_config(profile, items)


def open_chapter(profile: str = "smoke", seed: int | None = None, data_source: str = "", data_dir: str = "",
                 overrides: Iterable[str] = (), train_if_missing: bool = False):
    """Every chapter's first lines from its parameters: notebook settings, the config, the profile's finished run
    and the data notice. Returns (Config, Run). The run is trained here only with `train_if_missing` (the training
    chapter); elsewhere a missing run is a RunError that says which command trains it."""
    from .runs import RunError, is_finished, load_run, run_dir_for
    from .train import train

    setup_notebook()
    config = notebook_config(profile, seed, data_source, data_dir, overrides)
    run_dir = run_dir_for(config)
    if train_if_missing:
        run_dir = train(config, progress=False)
    elif not is_finished(run_dir):
        raise RunError(f"no finished training run for this chapter's configuration (hash {config.config_hash()}) in "
                       f"{run_dir.parent}: execute notebooks/02_training first, or run `python -m cvae book "
                       f"--profile {profile}` which executes the chapters in order.")
    run = load_run(run_dir)
    show_data_notice(run.summary["synthetic_data"], profile, config.config_hash())
    return config, run


def report_dir() -> Path:
    """Folder of the executed notebooks and the driver's timings ($CVAE_REPORT_DIR, default <project>/report)."""
    return Path(os.environ.get(REPORT_DIR_ENV) or PROJECT_ROOT / "report")


def read_timings() -> dict:
    """Seconds per stage written by `cvae.book` (empty dict when the notebooks were run by hand)."""
    path = report_dir() / TIMINGS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


# --------------------------------------------------------------------------------------------------------------
# glue and the data notice
# --------------------------------------------------------------------------------------------------------------
def plain(value):
    """NumPy / torch scalars -> Python numbers (myst-nb glue cannot format NumPy 2 reprs)."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def glue(key: str, value, display: bool = False):
    """myst_nb.glue with NumPy/torch scalars converted; figures are closed after glueing. Returns None, so a glue
    call as a cell's last line does not display the value a second time."""
    from myst_nb import glue as _glue

    value = plain(value)
    _glue(key, value, display=display)
    if hasattr(value, "savefig"):
        import matplotlib.pyplot as plt

        plt.close(value)


def percent(value: float | None, digits: int = 1) -> str:
    """'34.1%' (or 'n/a' for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.{digits}f}%"


def data_notice_markdown(synthetic: bool, profile: str, config_hash: str) -> str:
    """MyST markdown of the admonition every page shows: a warning for the stand-in, a note for real data."""
    if synthetic:
        return ("```{warning} Synthetic data\n"
                f"This page was built with the **synthetic stand-in** (profile `{profile}`, config `{config_hash}`): "
                "MedMNIST-format images generated by `cvae.synthetic`, **not medical data**. Its numbers test the "
                "pipeline and say nothing about PathMNIST, TissueMNIST or OCTMNIST. Build with real data: "
                "`make book PROFILE=quick`.\n```\n")
    return ("```{note} Data\n"
            f"Built from the real MedMNIST files (profile `{profile}`, config `{config_hash}`); every number on this "
            "page was computed by that run.\n```\n")


def data_notice_html(synthetic: bool, profile: str, config_hash: str) -> str:
    """The same admonition as HTML (myst-nb renders only text/plain, HTML and images across documents)."""
    import html
    import re

    text = data_notice_markdown(synthetic, profile, config_hash).strip().splitlines()
    kind, title = re.match(r"```\{(\w+)\} (.*)", text[0]).groups()
    body = html.escape("\n".join(text[1:-1]))
    body = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", body)
    body = re.sub(r"`(.+?)`", r"<code>\1</code>", body)
    return (f'<div class="admonition {kind}"><p class="admonition-title">{html.escape(title)}</p>'
            f"<p>{body}</p></div>")


def show_data_notice(synthetic: bool, profile: str, config_hash: str):
    """Display the data admonition in the notebook; glue it as `data_notice` (HTML) for the prose pages."""
    from IPython.display import HTML, Markdown, display
    from myst_nb import glue as _glue

    _glue("data_notice", HTML(data_notice_html(synthetic, profile, config_hash)), display=False)
    display(Markdown(data_notice_markdown(synthetic, profile, config_hash)))


def markdown(text: str):
    """Display MyST markdown from a notebook cell (rendered as MyST by the book)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


# --------------------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------------------
def dataset_table(data: MedMNISTData) -> pd.DataFrame:
    """Images per dataset and split as loaded (after any subset) beside the files' own sizes and the official ones."""
    import medmnist

    rows = []
    for modality, flag in enumerate(DATASETS):
        report = data.files[flag]
        row = {"dataset": MODALITY_NAMES[modality], "classes": len(classes_of_modality(modality))}
        for split in ("train", "val", "test"):
            row[f"{split} (used)"] = int((data.split(split).modalities == modality).sum())
        for split in ("train", "val", "test"):
            row[f"{split} (file)"] = int(report.sizes[split])
        row["train (official)"] = int(medmnist.INFO[flag]["n_samples"]["train"])
        row["MD5 matches"] = "yes" if report.md5_ok else "no"
        rows.append(row)
    table = pd.DataFrame(rows).set_index("dataset")
    total = table.select_dtypes("number").sum()
    table.loc["total"] = {**total.to_dict(), "MD5 matches": ""}
    return table


def class_count_table(data: MedMNISTData) -> pd.DataFrame:
    """Images per global class (index 'label name') and split as loaded."""
    index = [f"{label} {CLASS_NAMES[label]}"[:40] for label in range(NUM_CLASSES)]
    columns = {}
    for split in ("train", "val", "test"):
        counts = torch.bincount(data.split(split).labels, minlength=NUM_CLASSES).numpy()
        columns[split] = counts.astype(int)
    return pd.DataFrame(columns, index=index)


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
    table["trainable parameters"] = table["trainable parameters"].astype(int)
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
        rows.append({"setting": f.name, "this run": str(shown), "original": original, "source": source, "why": why})
    return pd.DataFrame(rows).set_index("setting")


def reference_table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A 'quantity | this run | original report' table from (quantity, ours, theirs) string triples."""
    return pd.DataFrame(rows, columns=["quantity", "this run", "original report"]).set_index("quantity")


# --------------------------------------------------------------------------------------------------------------
# latent codes and example images
# --------------------------------------------------------------------------------------------------------------
def balanced_indices(split: Split, per_class: int, seed: int = 0) -> torch.Tensor:
    """At most `per_class` indices of every global class, seeded; sorted (M,) int64."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split), generator=generator)
    chosen = [order[split.labels[order] == label][:per_class] for label in range(NUM_CLASSES)]
    return torch.sort(torch.cat(chosen)).values


@torch.no_grad()
def latent_means(model, split: Split, per_class: int = 150, seed: int = 0):
    """mu for a class-balanced sample of a split: (mu (M, latent) float32, labels (M,), modalities (M,)) NumPy."""
    model.eval()
    subset = split.subset(balanced_indices(split, per_class, seed))
    mus = []
    for images, labels, modalities in iterate_batches(subset, 1024):
        mu, _ = model.encode(images, labels, modalities)
        mus.append(mu)
    return torch.cat(mus).numpy(), subset.labels.numpy(), subset.modalities.numpy()


def embed_2d(mu: np.ndarray, method: str = "PCA", seed: int = 0) -> tuple[np.ndarray, dict]:
    """2-D embedding of mu by 'PCA' or 't-SNE' and facts about it (explained variance for PCA)."""
    if method == "PCA":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(mu)
        return pca.transform(mu), {"explained_variance": [float(v) for v in pca.explained_variance_ratio_]}
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(5, (len(mu) - 1) // 4)))
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                         max_iter=750).fit_transform(mu)
        return embedding, {"perplexity": perplexity}
    raise ValueError(f"method must be 'PCA' or 't-SNE', got {method!r}")


@torch.no_grad()
def reconstruction_examples(model, split: Split, per_modality: int = 10, seed: int = 0):
    """Originals and reconstructions (from mu, no sampling) per modality: two dicts {m: (n,28,28) float [0,1]}."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    originals, recons = {}, {}
    for m in range(len(MODALITY_NAMES)):
        members = torch.nonzero(split.modalities == m).flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[:per_modality]]
        subset = split.subset(chosen)
        images, labels, modalities = next(iterate_batches(subset, len(subset)))
        mu, _ = model.encode(images, labels, modalities)
        originals[m] = images[:, 0].numpy()
        recons[m] = model.decode(mu, labels, modalities)[:, 0].numpy()
    return originals, recons


@torch.no_grad()
def generated_by_class(model, per_class: int = 4, seed: int = 0) -> dict[int, np.ndarray]:
    """per_class samples from the prior for every global class: {label: (n,28,28) float [0,1]}."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    return {label: model.sample(label, MODALITY_OF_CLASS[label], per_class, generator=generator)[:, 0].numpy()
            for label in range(NUM_CLASSES)}


def real_by_class(split: Split, per_class: int = 4, seed: int = 0) -> dict[int, np.ndarray]:
    """per_class real images of every global class from a split: {label: (n,28,28) uint8}."""
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for label in range(NUM_CLASSES):
        members = torch.nonzero(split.labels == label).flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[:per_class]]
        result[label] = split.images[chosen].numpy()
    return result


def pathmnist_rgb_examples(data: MedMNISTData, n: int = 8) -> np.ndarray:
    """n RGB PathMNIST test images read from the raw .npz (the model only sees their luma): (n,28,28,3) uint8."""
    with np.load(data.files["pathmnist"].path) as npz:
        images = npz["test_images"]
        labels = npz["test_labels"][:, 0]
    picks = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)][:n]
    return images[picks]


# --------------------------------------------------------------------------------------------------------------
# evaluation results (cvae.evaluate), read defensively: a missing metric shows as n/a, never as a made-up number
# --------------------------------------------------------------------------------------------------------------
def evaluation(config: Config) -> dict | None:
    """`cvae.evaluate.evaluate_run(config)` (cached in the run folder), or None if that module is not installed."""
    import importlib.util

    if importlib.util.find_spec("cvae.evaluate") is None:
        print("note: cvae.evaluate is not available in this version; evaluation tables are empty.")
        return None
    from .evaluate import evaluate_run

    return evaluate_run(config, progress=False)


def lookup(result: dict | None, *keys):
    """result[k1][k2]... or None when any level is missing."""
    value = result
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return plain(value)


def number(value, digits: int = 3) -> str:
    """A number as text with `digits` decimals ('n/a' for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):,.{digits}f}"


def _unavailable(what: str) -> pd.DataFrame:
    return pd.DataFrame({"status": [f"{what}: not available (cvae.evaluate missing or metric not computed)"]})


_MODALITY_KEYS = {"pathmnist": "PathMNIST", "tissuemnist": "TissueMNIST", "octmnist": "OCTMNIST", "overall": "overall"}


def _per_modality(result: dict | None, columns: dict[str, str]) -> pd.DataFrame:
    frame = {}
    for key, title in columns.items():
        values = lookup(result, key)
        if isinstance(values, dict):
            frame[title] = {_MODALITY_KEYS.get(k, k): plain(v) for k, v in values.items()}
    return pd.DataFrame(frame) if frame else pd.DataFrame()


def reconstruction_table(result: dict | None) -> pd.DataFrame:
    """MSE / PSNR / SSIM of test reconstructions per modality."""
    table = _per_modality(result, {"recon_mse": "MSE", "recon_psnr": "PSNR (dB)", "recon_ssim": "SSIM"})
    return table if len(table) else _unavailable("reconstruction metrics")


def distance_table(result: dict | None) -> pd.DataFrame:
    """Domain FID / KID of samples against real test images per modality, with the real-vs-real floor."""
    table = _per_modality(result, {"domain_fid": "domain FID", "domain_fid_floor": "FID floor (real vs real)",
                                   "domain_kid": "domain KID", "domain_kid_floor": "KID floor (real vs real)"})
    return table if len(table) else _unavailable("domain FID/KID")


def conditional_table(result: dict | None) -> pd.DataFrame:
    """One row per class: label, name, modality, class_accuracy, modality_accuracy of its samples."""
    rows = lookup(result, "conditional_per_class")
    return pd.DataFrame(rows) if rows else pd.DataFrame()


def latent_table(result: dict | None, run=None) -> pd.DataFrame:
    """Class and modality accuracy read from mu: aux heads, linear probe, chance and majority baselines."""
    rows = []
    for what in ("class", "modality"):
        rows.append({
            "target": what,
            "aux head (eval mode, test)": lookup(result, f"aux_{what}_accuracy"),
            "linear probe on mu (test)": lookup(result, f"probe_{what}_accuracy"),
            "chance": lookup(result, "baselines", f"{what}_chance"),
            "majority class": lookup(result, "baselines", f"{what}_majority"),
            "original report (aux head)": report_original(what),
        })
    table = pd.DataFrame(rows).set_index("target")
    return table


def report_original(what: str) -> str:
    """The original's quoted aux-head accuracy as text ('about 34%')."""
    return f"about {percent(ORIGINAL[f'aux_{what}_accuracy'], 0)}"


def diagnosis_markdown(result: dict | None):
    """The evaluation's diagnosis (findings, verdict, suggested fix) as MyST markdown (an IPython Markdown object).

    The sentences are assembled by `cvae.evaluate.diagnosis_verdict` from the measured numbers, not typed here."""
    from IPython.display import Markdown

    diagnosis = lookup(result, "diagnosis")
    if not isinstance(diagnosis, dict):
        return Markdown("*No diagnosis: the evaluation module is not available.*\n")
    lines = ["**Diagnosis of the auxiliary heads** (assembled from the measured numbers):", ""]
    for finding in diagnosis.get("findings") or []:
        lines.append(f"- {finding}")
    if diagnosis.get("verdict"):
        lines += ["", f"**Verdict.** {diagnosis['verdict']}"]
    fix = diagnosis.get("fix")
    if fix:
        shown = fix if isinstance(fix, str) else ", ".join(f"{k}: {v}" for k, v in fix.items()) \
            if isinstance(fix, dict) else str(fix)
        lines += ["", f"**Suggested fix.** {shown}"]
    return Markdown("\n".join(lines) + "\n")


def diagnosis_table(result: dict | None) -> pd.DataFrame:
    """Aux-head and probe accuracy of the control run and each diagnosis variant (trained at the ablation scale)."""
    diagnosis = lookup(result, "diagnosis")
    if not isinstance(diagnosis, dict):
        return pd.DataFrame()
    rows = {}
    for name, values in {"control (paper settings)": diagnosis.get("control") or {},
                         **(diagnosis.get("variants") or {})}.items():
        rows[name] = {k: plain(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return pd.DataFrame(rows).T


def augmentation_table(result: dict | None) -> pd.DataFrame:
    """Per modality: accuracy with real training images only and with real plus generated ones."""
    values = lookup(result, "augmentation")
    if not isinstance(values, dict):
        return pd.DataFrame()
    table = pd.DataFrame({_MODALITY_KEYS.get(k, k): {kk.replace("_", " "): plain(vv) for kk, vv in v.items()}
                          for k, v in values.items() if isinstance(v, dict)}).T
    return table


def tstr_table(result: dict | None) -> pd.DataFrame:
    """Per modality: train-on-synthetic and train-on-real (same size) accuracy on the real test split."""
    table = _per_modality(result, {"tstr_accuracy_by_modality": "train on synthetic (TSTR)",
                                   "trtr_accuracy_by_modality": "train on real, same size (TRTR)"})
    if not len(table):
        return _unavailable("TSTR")
    table.loc["overall"] = [lookup(result, "tstr_accuracy"), lookup(result, "trtr_accuracy")]
    return table


def placeholder_figure(text: str):
    """A small figure that says what is missing (keeps the numbered figure and its caption in place)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 1.2))
    fig.patch.set_facecolor("white")
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


# --------------------------------------------------------------------------------------------------------------
# ablations (cvae.ablations trains them)
# --------------------------------------------------------------------------------------------------------------
def run_overrides(seed: int, data_source: str, overrides: Iterable[str]) -> list[str]:
    """The chapter parameters that ablation runs must share with the main run, as key=value strings."""
    items = list(overrides or [])
    if data_source:
        items.append(f"data_source={data_source}")
    if int(seed) != Config().seed:
        items.append(f"seed={int(seed)}")
    return items


def load_runs(run_dirs: dict) -> dict:
    """{name: run folder} -> {name: Run}."""
    from .runs import load_run

    return {name: load_run(path) for name, path in run_dirs.items()}


ABLATION_COLUMNS = {  # ablation_table column -> heading of the chapter's table
    "changes": "change", "parameters": "parameters", "best_epoch": "best epoch", "best_val_total": "best val loss",
    "final_val_mse": "val MSE", "final_val_kl": "val KL", "recon_psnr": "PSNR (dB)", "recon_ssim": "SSIM",
    "domain_fid": "domain FID", "conditional_class_accuracy": "cond. class acc", "conditional_modality_accuracy":
    "cond. modality acc", "aux_class_accuracy": "aux class acc", "aux_modality_accuracy": "aux modality acc",
    "probe_class_accuracy": "probe class acc", "probe_modality_accuracy": "probe modality acc",
    "train_seconds": "train time (s)",
}


def ablation_display(table: pd.DataFrame):
    """The ablations table for reading: the columns above, best epoch 1-based, numbers rounded; a pandas Styler."""
    shown = table.set_index("ablation")[[c for c in ABLATION_COLUMNS if c in table.columns]].copy()
    shown["best_epoch"] = shown["best_epoch"] + 1  # 1-based, as the original counts epochs
    shown = shown.rename(columns=ABLATION_COLUMNS)
    formats = {heading: "{:.3f}" for heading in shown.columns if "acc" in heading or heading == "SSIM"}
    formats.update({"parameters": "{:,}", "best val loss": "{:.1f}", "val MSE": "{:.2f}", "val KL": "{:.1f}",
                    "PSNR (dB)": "{:.1f}", "domain FID": "{:.1f}", "train time (s)": "{:.0f}"})
    styler = shown.style.format({k: v for k, v in formats.items() if k in shown.columns})
    return styler.set_table_attributes('class="dataframe"')  # the theme's table styling, like a plain DataFrame


def ablation_numbers(table: pd.DataFrame) -> dict[str, str]:
    """Formatted numbers the prose quotes (best validation loss, validation MSE, parameters of each variant), from
    `cvae.ablations.ablation_table` (one row per variant, column `ablation`); 'n/a' for a variant not trained."""
    numbers = {}
    rows = table.reset_index() if "ablation" not in table.columns else table
    for _, row in rows.iterrows():
        key = str(row.get("ablation", row.get("variant"))).replace(".", "_")
        best = row.get("best_val_total", row.get("best val total"))
        mse = row.get("final_val_mse", row.get("val mse"))
        numbers[f"abl_{key}_best_val"] = number(best, 1)
        numbers[f"abl_{key}_val_mse"] = number(mse, 2)
        numbers[f"abl_{key}_parameters"] = f"{int(row['parameters']):,}"
    for name in ("paper", "latent64", "deep"):
        for suffix in ("best_val", "val_mse", "parameters"):
            numbers.setdefault(f"abl_{name}_{suffix}", "n/a")
    return numbers


@torch.no_grad()
def variant_strips(runs: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """One prior sample per global class from each run's best model: {name: (21,28,28)}."""
    strips = {}
    for name, run in runs.items():
        model = run.model("best")
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(NUM_CLASSES, model.latent_dim, generator=generator)
        labels = torch.arange(NUM_CLASSES)
        modalities = torch.tensor(MODALITY_OF_CLASS)
        strips[name] = model.decode(z, labels, modalities)[:, 0].numpy()
    return strips


# --------------------------------------------------------------------------------------------------------------
# reproducibility
# --------------------------------------------------------------------------------------------------------------
def book_command(profile: str, overrides: Iterable[str] = ()) -> str:
    """The command that rebuilds this book."""
    extra = "".join(f" --set {item}" for item in overrides or [])
    return f"python -m cvae book --profile {profile}{extra}" if extra else f"make book PROFILE={profile}"


def profile_table() -> pd.DataFrame:
    """The named profiles and what they change."""
    return pd.DataFrame([{"profile": name, "changes": ", ".join(f"{k}={v}" for k, v in values.items())}
                         for name, values in PROFILES.items()]).set_index("profile")


def data_files_table(run) -> pd.DataFrame:
    """Per data file: MD5 of the file used, whether it matches the official release."""
    import medmnist

    rows = []
    for flag in DATASETS:
        rows.append({"file": f"{flag}.npz", "MD5": run.summary["data_md5"].get(flag, ""),
                     "official MD5": medmnist.INFO[flag]["MD5"],
                     "matches": "yes" if run.summary["data_md5_ok"].get(flag) else "no"})
    return pd.DataFrame(rows).set_index("file")


def environment_table(run) -> pd.DataFrame:
    """Versions of the packages that matter and the hardware of this build (and of the training run)."""
    import platform
    from importlib import metadata

    rows = {"python": platform.python_version(), "platform": platform.platform(),
            "CPU cores": str(os.cpu_count()), "torch threads": str(torch.get_num_threads()),
            "CUDA device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "training device": str(run.summary.get("device")),
            "training precision": str(run.summary.get("precision"))}
    for package in ("torch", "torchvision", "numpy", "medmnist", "scikit-learn", "torchmetrics", "matplotlib",
                    "pandas", "jupyter-book", "myst-nb", "sphinx", "papermill", "jupytext"):
        try:
            rows[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            rows[package] = "not installed"
    return pd.DataFrame({"value": rows})


def timing_table(run) -> pd.DataFrame:
    """Seconds per build stage (from the driver's timings.json) and the recorded training time."""
    timings = read_timings()
    rows = [{"stage": name, "seconds": round(float(value), 1)} for name, value in timings.get("stages", {}).items()]
    if timings.get("previous_html_seconds") is not None:
        rows.append({"stage": "HTML (previous build)", "seconds": round(float(timings["previous_html_seconds"]), 1)})
    rows.append({"stage": "training epochs (run folder)", "seconds": round(float(run.summary["train_seconds"]), 1)})
    return pd.DataFrame(rows).set_index("stage")


def benchmark_table() -> pd.DataFrame:
    """`cvae.bench.load_or_run_benchmark()` as a table, or a note when that module is not available."""
    import importlib.util

    if importlib.util.find_spec("cvae.bench") is None:
        return pd.DataFrame({"status": ["cvae.bench is not available in this version"]})
    from .bench import load_or_run_benchmark

    # a cached `make bench` result if there is one, else a short measurement (2 repeats of 6 steps) that fits the
    # smoke budget; `make bench` measures properly (5 repeats of 12 steps)
    result = load_or_run_benchmark(profile="smoke", repeats=2, steps=6, warmup=1)
    return pd.DataFrame({"value": {k: plain(v) for k, v in result.items() if not isinstance(v, (dict, list))}})

PRECISION_METRICS = {  # ablation_table column -> label in the precision comparison
    "best_val_total": "best validation loss (per image)", "final_val_mse": "validation MSE (per image)",
    "final_val_kl": "validation KL (nats per image)", "recon_psnr": "reconstruction PSNR (dB)",
    "recon_ssim": "reconstruction SSIM", "domain_fid": "domain FID", "conditional_class_accuracy":
    "conditional class accuracy", "conditional_modality_accuracy": "conditional modality accuracy",
    "train_seconds": "training time (s)",
}


def precision_table(table: pd.DataFrame) -> pd.DataFrame:
    """The `paper` (default precision) and `fp32` rows of an ablation table side by side, with the relative
    difference of the default against fp32; a note instead when either run is missing."""
    rows = table.set_index("ablation") if "ablation" in table.columns else table
    if not {"paper", "fp32"} <= set(rows.index):
        return pd.DataFrame({"status": ["the `paper` and `fp32` ablations were not both trained in this build"]})
    out = []
    for column, label in PRECISION_METRICS.items():
        if column not in rows.columns:
            continue
        default, full = float(rows.loc["paper", column]), float(rows.loc["fp32", column])
        out.append({"metric": label, "default precision (paper)": round(default, 4), "fp32": round(full, 4),
                    "difference": f"{(default - full) / abs(full):+.1%}" if full else "n/a"})
    return pd.DataFrame(out).set_index("metric")


def switch_table() -> pd.DataFrame:
    """The switch study (`cvae.bench.load_or_run_switches`, cached): samples/s, ratio to the fp32 NCHW baseline and
    utilization of each switch on this machine, measured interleaved in one run. Glues `switches_date` and
    `switches_device` for the prose."""
    from .bench import load_or_run_switches

    result = load_or_run_switches(profile="smoke", repeats=3, steps=6)
    table = pd.DataFrame([{"switch": row["switch"], "samples/s": round(row["samples_per_s"]),
                           "x baseline": round(row["relative_to_baseline"], 2),
                           "utilization (fp32 matmul)": round(row["utilization"], 2)} for row in result["rows"]])
    glue("switches_date", result["date"][:10])
    glue("switches_device", result["device_name"])
    return table.set_index("switch")


__all__ = [
    "ORIGINAL", "setup_notebook", "notebook_config", "open_chapter", "report_dir", "read_timings", "glue", "plain", "percent",
    "data_notice_markdown", "data_notice_html", "show_data_notice", "markdown", "dataset_table", "class_count_table",
    "architecture_table", "hyperparameter_table", "reference_table", "balanced_indices", "latent_means", "embed_2d",
    "reconstruction_examples", "generated_by_class", "real_by_class", "pathmnist_rgb_examples", "evaluation",
    "lookup", "number", "reconstruction_table", "distance_table", "conditional_table", "latent_table",
    "diagnosis_markdown", "diagnosis_table", "augmentation_table", "tstr_table", "placeholder_figure", "run_overrides", "load_runs",
    "ablation_numbers", "ablation_display", "variant_strips", "book_command", "profile_table", "data_files_table",
    "environment_table", "timing_table", "benchmark_table", "switch_table", "precision_table",
]
