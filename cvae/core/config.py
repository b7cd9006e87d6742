"""One dataclass holding every setting of a run, named profiles, `key=value` overrides and a stable hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, fields

from cvae.core.labels import DATASETS, registry

DATA_SOURCES = ("medmnist", "synthetic")
DEVICES = ("auto", "cpu", "cuda", "mps")
AUTOCAST_MODES = ("auto", "none", "bf16")  # auto = bf16 on CUDA and on CPUs with native bf16, else fp32
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # reduce-overhead = CUDA graphs
# what ReduceLROnPlateau watches and what picks the kept checkpoint: the validation total as the original
# (presumably) did, or the total with the KL term at beta_max, which does not rise merely because beta(t) ramps up
PLATEAU_METRICS = ("total", "total_at_beta_max")
# how the training batches are drawn: "mixed" = one shuffle of all images (every batch mixes the three datasets);
# "single" = every batch from one dataset (as with a loader per dataset), the batches in random order
BATCH_COMPOSITIONS = ("mixed", "single")
# fields added after runs were cached: hashed only when they differ from their default, so every earlier run keeps
# its config hash (and its folder)
HASHED_WHEN_CHANGED = ("batch_composition", "datasets")
# how a run is executed, not what it computes: left out of the config hash, like device and data_dir. `autocast` is
# not among them: bf16 changes the numbers a run computes (slightly), so the precision asked for names the run and
# an fp32 run can sit beside a bf16 one (the `fp32` ablation).
PERFORMANCE_FIELDS = ("channels_last", "compile", "fused_adam", "threads", "cuda_graphs")
# the weight fields of cvae.core.loss.LOSS_TERMS (a test keeps the two equal; config validates without importing torch)
LOSS_WEIGHTS = ("a_mse", "a_l1", "a_perc", "beta_max", "gamma")
MAX_LOSS_WEIGHT = 1e6  # upper bound of every loss weight


class ConfigError(ValueError):
    """A configuration value or profile name the user gave is not valid."""


@dataclass(frozen=True)
class Config:
    """Every setting of a training run; the defaults are the original report's values (see the method chapter)."""

    # --- data ---------------------------------------------------------------------------------------------
    datasets: tuple[str, ...] = DATASETS  # the MedMNIST sets, in modality order; the book's study needs the paper's
    data_source: str = "medmnist"  # "medmnist" (real files) or "synthetic" (the labelled offline stand-in)
    train_per_class: int = 0  # stratified subset: at most this many training images per global class (0 = all)
    eval_per_class: int = 0  # the same for the validation and test splits (0 = all)
    synthetic_per_class: int = 300  # stand-in images per class and split (0 = the official split sizes)
    data_dir: str = ""  # data folder; "" = $CVAE_DATA_DIR, else ~/.medmnist (real) or data/synthetic-* (stand-in)

    # --- model (the original's architecture; only these knobs change it) ------------------------------------
    latent_dim: int = 128
    class_embed_dim: int = 128
    modality_embed_dim: int = 64
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    extra_convs_per_stage: int = 0  # 3x3 stride-1 conv blocks after each down/up-sampling conv ("deep" variant)
    hidden_dim: int = 256
    encoder_conditioned: bool = True  # the original feeds the class/modality embeddings to the encoder too
    perceptual_seed: int = 1234  # seeds the frozen, untrained perceptual CNN

    # --- loss (the original's weight table is missing; these are this reproduction's choices) --------------
    a_mse: float = 1.0  # per-sample sum over 784 pixels: the Gaussian log-likelihood up to a constant
    a_l1: float = 0.1  # per-sample sum; the weight search moved it from 0.5 (results/weight_search_quick.json)
    a_perc: float = 0.5  # per-sample sum over 32x7x7 frozen-CNN features
    beta_max: float = 0.1  # < 1: unit-weight pixel sums imply a very broad likelihood (sigma^2 = 0.5)
    beta_warmup_epochs: int = 20  # beta = 0 before this epoch
    beta_ramp_epochs: int = 100  # then linear to beta_max over this many epochs
    gamma: float = 1.0  # weight of class + modality cross-entropy (nats per sample, like KL)

    # --- training -------------------------------------------------------------------------------------------
    epochs: int = 150
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 1e-5
    plateau_patience: int = 8
    plateau_factor: float = 0.5
    plateau_metric: str = "total"  # see PLATEAU_METRICS and the method chapter
    # which validation quantity picks checkpoint_best.pt, the model every later chapter evaluates: the total at
    # beta_max compares epochs under one objective; the original's rule (the total under beta(t)) picks an epoch before
    # the KL term weighs anything when the schedule is short (epoch 5 of 30 on the quick book)
    checkpoint_metric: str = "total_at_beta_max"
    grad_clip: float = 1.0
    batch_composition: str = "mixed"  # see BATCH_COMPOSITIONS; "single" is the aux-head factorial's other level
    seed: int = 0
    device: str = "auto"  # auto picks cuda, then mps, then cpu

    # --- numerical precision (part of the config hash) -------------------------------------------------------
    # "auto" = bf16 autocast on CUDA and on CPUs with native bf16 instructions (on the 2-core development CPU
    # 1.4-1.7x per step, 1.1-1.3x per training run, validation losses within 1%: see the `fp32` ablation), fp32
    # elsewhere; "none" = fp32 everywhere; "bf16" = bf16 autocast everywhere
    autocast: str = "auto"

    # --- performance switches (how it runs, not what it computes; not part of the config hash) ---------------
    channels_last: bool = True  # NHWC memory format for the convolutions: +8% on this CPU, deterministic
    compile: str = "none"  # torch.compile mode of the model: none, default, reduce-overhead (CUDA graphs), max-autotune
    # Adam's fused kernel (CUDA and CPU) instead of the foreach/for-loop update: 1.15x per epoch on a GPU with
    # cuda_graphs (results/gpu_study.json), 1.02-1.05x on the 2-core CPU
    fused_adam: bool = True
    threads: int = 0  # CPU threads for training (torch.set_num_threads); 0 = torch's default (all cores)
    # one CUDA device (no DDP, no compile): capture the whole training step as a CUDA graph (cvae.training.graphed_step),
    # so a step costs one launch instead of a few hundred (6.3x per epoch on an H200); ignored on the CPU
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Inverse of `to_dict`; unknown keys are an error."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        converted = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
        return cls(**converted)

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def config_hash(self) -> str:
        """Stable 10-hex-digit hash of every field but `device`, `data_dir` and the PERFORMANCE_FIELDS (where and how
        fast a run trains or finds its files does not change what it is; the data's MD5s are checked and recorded
        separately). The precision asked for (`autocast`) is hashed as written: "auto" resolves per machine, and the
        run's summary records the precision it actually used."""
        defaults = Config.__dataclass_fields__
        payload = {k: v for k, v in self.to_dict().items() if k not in ("device", "data_dir", *PERFORMANCE_FIELDS)
                   and not (k in HASHED_WHEN_CHANGED and _same(v, defaults[k].default))}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _same(value, default) -> bool:
    return (tuple(value) if isinstance(value, list) else value) == default


PROFILES: dict[str, dict] = {
    # tests, CI and the offline demo: the synthetic stand-in, a few hundred images per class, 3 epochs
    "smoke": dict(
        data_source="synthetic", synthetic_per_class=300, train_per_class=0, eval_per_class=0,
        epochs=3, beta_warmup_epochs=1, beta_ramp_epochs=1,
    ),
    # a student laptop: real data, 1,000 training images per class, the beta schedule scaled to 30 epochs
    "quick": dict(
        data_source="medmnist", train_per_class=1000, eval_per_class=200,
        epochs=30, beta_warmup_epochs=4, beta_ramp_epochs=20,
    ),
    # the paper's run: all 352,939 training images, 150 epochs
    "full": dict(data_source="medmnist"),
}

# What each profile's ablations train on: smaller than the main run where the budget needs it (the page says so).
ABLATION_SCALE: dict[str, dict] = {
    # the smoke book exercises every step of the study on a few hundred images: its numbers test the pipeline only
    "smoke": {"train_per_class": 40, "eval_per_class": 20, "epochs": 2, "beta_warmup_epochs": 1,
              "beta_ramp_epochs": 1},
    # about 76,000 training samples per run: the 32 runs of the study (5 seeds behind each claim, 3 for the diagnosis,
    # two at a time on two cores) fit the quick book's budget with the main run, its evaluation and the stand-in's
    # generation (README: measured times)
    "quick": {"train_per_class": 300, "eval_per_class": 100, "epochs": 12, "beta_warmup_epochs": 2,
              "beta_ramp_epochs": 8},
    "full": {},
}

# The aux-head factorial's one-dataset cells (`cvae.study.aux_factorial`) train three times the ablation scale's epochs
# where it is short. Read the way they were trained, such runs reconstructed no better than the class-mean image
# after 12 epochs (quick stand-in, 3 seeds) and one of 3 seeds still failed after 24, so the factorial said nothing.
FACTORIAL_SCALE: dict[str, dict] = {
    "quick": {"epochs": 36, "beta_warmup_epochs": 6, "beta_ramp_epochs": 24},
}


def _validate(cfg: Config) -> None:
    hints = typing.get_type_hints(Config)
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        expected = hints[f.name]
        if expected is bool and not isinstance(value, bool):
            raise ConfigError(f"{f.name} must be true or false, got {value!r}")
        if expected is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"{f.name} must be an integer, got {value!r}")
        if expected is float and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ConfigError(f"{f.name} must be a number, got {value!r}")
        if expected is float and not math.isfinite(value):  # nan fails every comparison below
            raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
        if expected is str and not isinstance(value, str):
            raise ConfigError(f"{f.name} must be a string, got {value!r}")
    if cfg.data_source not in DATA_SOURCES:
        raise ConfigError(f"data_source must be one of {', '.join(DATA_SOURCES)}, got {cfg.data_source!r}")
    if cfg.device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {cfg.device!r}")
    if cfg.autocast not in AUTOCAST_MODES:
        raise ConfigError(f"autocast must be one of {', '.join(AUTOCAST_MODES)}, got {cfg.autocast!r}")
    if cfg.compile not in COMPILE_MODES:
        raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {cfg.compile!r}")
    try:
        registry(tuple(cfg.datasets))  # the registry's own check: distinct 2D MedMNIST flags, at least one
    except (ValueError, TypeError):
        raise ConfigError(f"datasets must be distinct 2D MedMNIST flags (such as {','.join(DATASETS)}), "
                          f"got {cfg.datasets!r}") from None
    if not cfg.encoder_channels or any((not isinstance(c, int)) or c <= 0 for c in cfg.encoder_channels):
        raise ConfigError(f"encoder_channels must be positive integers, got {cfg.encoder_channels!r}")
    if len(cfg.encoder_channels) != 3:
        raise ConfigError("encoder_channels must have exactly 3 entries (28 -> 14 -> 7 -> 3)")
    for name in ("latent_dim", "class_embed_dim", "modality_embed_dim", "hidden_dim", "epochs", "batch_size",
                 "beta_ramp_epochs"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(cfg, name)!r}")
    for name in (*LOSS_WEIGHTS, "weight_decay", "train_per_class",
                 "eval_per_class", "synthetic_per_class", "extra_convs_per_stage", "beta_warmup_epochs",
                 "plateau_patience", "threads"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)!r}")
    if not 0 < cfg.lr < 1:
        raise ConfigError(f"lr must be in (0, 1), got {cfg.lr!r}")
    if cfg.batch_composition not in BATCH_COMPOSITIONS:
        raise ConfigError(f"batch_composition must be one of {', '.join(BATCH_COMPOSITIONS)}, "
                          f"got {cfg.batch_composition!r}")
    if cfg.plateau_metric not in PLATEAU_METRICS:
        raise ConfigError(f"plateau_metric must be one of {', '.join(PLATEAU_METRICS)}, got {cfg.plateau_metric!r}")
    if cfg.checkpoint_metric not in PLATEAU_METRICS:
        raise ConfigError(f"checkpoint_metric must be one of {', '.join(PLATEAU_METRICS)}, "
                          f"got {cfg.checkpoint_metric!r}")
    if not 0 < cfg.plateau_factor < 1:
        raise ConfigError(f"plateau_factor must be in (0, 1), got {cfg.plateau_factor!r}")
    if cfg.grad_clip <= 0:
        raise ConfigError(f"grad_clip must be positive, got {cfg.grad_clip!r}")
    # a weight this large makes a float32 loss overflow to inf in the first step (pixel sums are ~10-100 per image)
    for name in LOSS_WEIGHTS:
        if getattr(cfg, name) > MAX_LOSS_WEIGHT:
            raise ConfigError(f"{name} must be at most {MAX_LOSS_WEIGHT:g}, got {getattr(cfg, name)!r}")
    if cfg.weight_decay >= 1:
        raise ConfigError(f"weight_decay must be below 1 (the paper's is 1e-05), got {cfg.weight_decay!r}")
    for name in ("seed", "perceptual_seed"):  # NumPy's seed range; torch's generators take it too
        if not 0 <= getattr(cfg, name) < 2**32:
            raise ConfigError(f"{name} must be in [0, 2**32), got {getattr(cfg, name)!r}")
    if cfg.threads > 4096:
        raise ConfigError(f"threads must be at most 4096 (0 = all cores), got {cfg.threads!r}")


def require_paper_datasets(config: Config, what: str) -> None:
    """ConfigError unless the config trains on the paper's three sets: `what` (the evaluation, sampling) reads the
    21 classes and 3 modalities of `cvae.core.labels.PAPER`; training alone follows `config.datasets`."""
    if tuple(config.datasets) != DATASETS:
        raise ConfigError(f"{what} covers the paper's datasets ({', '.join(DATASETS)}), but this run trains on "
                          f"{', '.join(config.datasets)}; train it with `python -m cvae train`, or drop the datasets "
                          "override to evaluate.")


def parse_value(key: str, text: str):
    """Convert the text of a `key=value` override to the field's type, or raise ConfigError naming the key."""
    hints = typing.get_type_hints(Config)
    if key not in hints:
        known = ", ".join(f.name for f in fields(Config))
        raise ConfigError(f"unknown config key {key!r}; known keys: {known}")
    expected = hints[key]
    try:
        if expected is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        if expected is int:
            return int(text)
        if expected is float:
            return float(text)
        if expected is str:
            return text
        if expected == tuple[str, ...]:  # "pathmnist,tissuemnist,octmnist"
            return tuple(part.strip().lower() for part in text.split(",") if part.strip())
        # tuple[int, ...]: "32,64,128"
        return tuple(int(part) for part in text.replace("(", "").replace(")", "").split(",") if part.strip())
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(expected, "comma-separated integers")
        raise ConfigError(f"{key} must be {kind}, got {text!r}") from None


def parse_overrides(items: typing.Iterable[str]) -> dict:
    """Parse `["key=value", ...]` into a typed dict; every error names the offending item."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        overrides[key.strip()] = parse_value(key.strip(), text.strip())
    return overrides


def make_config(profile: str = "quick", overrides: dict | typing.Iterable[str] | None = None) -> Config:
    """The profile's config with overrides applied (a dict of typed values or `key=value` strings)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    values = dict(PROFILES[profile])
    if overrides:
        if not isinstance(overrides, dict):
            overrides = parse_overrides(overrides)
        for key in overrides:
            if key not in {f.name for f in fields(Config)}:
                raise ConfigError(f"unknown config key {key!r}")
        values.update(overrides)
    try:
        return Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})
    except TypeError as error:  # pragma: no cover - guarded by the key check above
        raise ConfigError(str(error)) from None


def config_diff(a: Config, b: Config) -> dict:
    """Fields whose values differ: {name: (a_value, b_value)}."""
    da, db = a.to_dict(), b.to_dict()
    return {k: (da[k], db[k]) for k in da if da[k] != db[k]}


__all__ = ["Config", "ConfigError", "require_paper_datasets", "PROFILES", "ABLATION_SCALE", "FACTORIAL_SCALE",
           "make_config", "parse_overrides", "config_diff"]
