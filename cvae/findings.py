"""What this build found: the evidence for each of the original's claims, the claims table, and the abstract.

The evidence comes from the main run (its summary and `evaluation.json`) and from the study (`cvae.study`); the
verdicts from `cvae.claims`' one rule. The abstract on the book's first page and every verdict sentence of the
chapters are built here from that table, so no page can word a claim more strongly than the table does.
"""

from __future__ import annotations

import pandas as pd

from .claims import CLAIMS, claims_table, sentence, verdict_counts
from .labels import NUM_CLASSES, within_modality_chance
from .spread import Spread, accuracy_interval
from .study import claim_evidence


def data_label(synthetic: bool) -> str:
    """How a page names this build's data: 'the synthetic stand-in' or 'MedMNIST'."""
    return "the synthetic stand-in" if synthetic else "MedMNIST"


def evidence(evaluation: dict, summary: dict, epochs: int, study: pd.DataFrame) -> dict:
    """The evidence `cvae.claims.claims_table` reads, from the main run's evaluation and summary (best epoch 0-based
    in the summary, 1-based here) and the study table."""
    n_test = int(evaluation.get("latent_test_images") or evaluation["generation_sizes"]["test"])
    n_samples = int(evaluation["generation_sizes"]["samples"])

    def rate(value: float, total: int) -> Spread:
        return accuracy_interval(round(value * total), total)

    gain = (evaluation.get("recon_ssim_gain_over_class_mean") or {}).get("pathmnist")
    return {
        "synthetic": bool(evaluation["synthetic_data"]), "epochs": int(epochs),
        "best_epoch": int(summary["best_epoch"]) + 1,
        **claim_evidence(study),
        "probe_modality": rate(evaluation["probe_modality_accuracy"], n_test),
        "conditional_modality": rate(evaluation["conditional_modality_accuracy"], n_samples),
        "conditional_class": rate(evaluation["conditional_class_accuracy"], n_samples),
        "class_chance": 1 / NUM_CLASSES, "class_chance_within_modality": within_modality_chance(),
        "recon_ssim_path": evaluation["recon_ssim"]["pathmnist"],
        "recon_ssim_gain_path": Spread.from_dict(gain) if gain else None,
    }


def table(evaluation: dict, summary: dict, epochs: int, study: pd.DataFrame) -> pd.DataFrame:
    """The claims table of this build (see `cvae.claims.claims_table`)."""
    return claims_table(evidence(evaluation, summary, epochs, study))


def verdict_sentence(claims: pd.DataFrame, key: str, synthetic: bool) -> str:
    """The one sentence a chapter may say about a claim: the table's verdict on this build's data."""
    return sentence(claims, key, data_label(synthetic))


def _listing(claims: pd.DataFrame, verdict: str) -> str:
    keys = [c.key for c in CLAIMS if claims.loc[c.key, "verdict"] == verdict]
    return "; ".join(claims.loc[key, "claim"] for key in keys) if keys else "none"


def _kept(summary: dict) -> str:
    kept = summary.get("checkpoint_epoch", summary["best_epoch"])
    if int(kept) == int(summary["best_epoch"]):
        return ", the checkpoint the later chapters evaluate"
    return (f" (the original's rule, which compares epochs under a changing KL weight); the later chapters evaluate "
            f"epoch {int(kept) + 1}, the lowest validation loss with the KL term at its final weight (see the method)")


def abstract(claims: pd.DataFrame, evaluation: dict, summary: dict, epochs: int, profile: str,
             train_images: int, seeds: int) -> str:
    """The abstract (MyST markdown): what was reproduced, what was not, what this data could not test, and the
    headline numbers, all read from this build; `seeds` is the number of seeds of each contrast of the study."""
    synthetic = bool(evaluation["synthetic_data"])
    counts = verdict_counts(claims)
    data = ("the labelled synthetic stand-in (not medical images: its numbers test the pipeline)" if synthetic
            else "MedMNIST (PathMNIST, TissueMNIST, OCTMNIST)")
    psnr, ssim = evaluation["recon_psnr"], evaluation["recon_ssim"]
    parts = [
        f"We retrained the conditional VAE of the original course report on {data}: {train_images:,} training images, "
        f"profile `{profile}`, {epochs} epochs, lowest validation loss {summary['best_val_total']:,.1f} per image in "
        f"epoch {int(summary['best_epoch']) + 1}{_kept(summary)}. Each of the original's {len(claims)} claims was "
        f"judged by one rule "
        f"(95% intervals over {seeds} seeds, or over the test images), stated in the discussion.",
        f"**Reproduced** ({counts['reproduced']}): {_listing(claims, 'reproduced')}.",
        f"**Not reproduced** ({counts['not reproduced']}): {_listing(claims, 'not reproduced')}.",
        f"**Inconclusive** ({counts['inconclusive']}): {_listing(claims, 'inconclusive')}.",
        f"**Not testable on this data** ({counts['not testable on this data']}): "
        f"{_listing(claims, 'not testable on this data')}.",
        f"Headline numbers: reconstruction PSNR {psnr['pathmnist']:.1f} / {psnr['tissuemnist']:.1f} / "
        f"{psnr['octmnist']:.1f} dB and SSIM {ssim['pathmnist']:.2f} / {ssim['tissuemnist']:.2f} / "
        f"{ssim['octmnist']:.2f} (PathMNIST / TissueMNIST / OCTMNIST); the evaluator assigns "
        f"{evaluation['conditional_modality_accuracy']:.1%} of the samples to their modality and "
        f"{evaluation['conditional_class_accuracy']:.1%} to their class (chance {1 / NUM_CLASSES:.1%}, "
        f"{within_modality_chance():.1%} among the right modality's classes); the "
        f"auxiliary heads read {evaluation['aux_class_accuracy']:.1%} (class) and "
        f"{evaluation['aux_modality_accuracy']:.1%} (modality) against the original's about 34% and 39%.",
    ]
    return "\n\n".join(parts)


_MODALITY_NAMES = {"pathmnist": "PathMNIST", "tissuemnist": "TissueMNIST", "octmnist": "OCTMNIST"}


def reconstruction_summary(evaluation: dict) -> str:
    """The reconstruction chapter's summary from its numbers: per modality, the test SSIM and whether the
    reconstructions beat each image's class-mean image (per-image SSIM gain, 95% interval over test images)."""
    gains = evaluation.get("recon_ssim_gain_over_class_mean") or {}
    groups: dict[str, list[str]] = {"better": [], "worse": [], "same": []}
    parts = []
    for flag, name in _MODALITY_NAMES.items():
        ssim = evaluation["recon_ssim"][flag]
        gain = Spread.from_dict(gains[flag]) if flag in gains else None
        if gain is None or gain.low is None:
            parts.append(f"{name} {ssim:.2f}")
            continue
        parts.append(f"{name} {ssim:.2f} ({gain.mean:+.3f}, 95% CI {gain.low:+.3f} to {gain.high:+.3f})")
        groups["better" if gain.low > 0 else "worse" if gain.high < 0 else "same"].append(name)
    sentences = ["Test SSIM of the reconstructions, and its gain over each image's class-mean image: "
                 + ", ".join(parts) + "."]
    wording = {"better": "the reconstructions keep more of the individual image than its class average",
               "same": "they are indistinguishable from the class average",
               "worse": "they are further from the image than its class average is"}
    said = [f"for {_join(names)} {wording[group]}" for group, names in groups.items() if names]
    if said:
        sentences.append("; ".join(said)[0].upper() + "; ".join(said)[1:] + ".")
    return " ".join(sentences)


def sampling_summary(evaluation: dict) -> str:
    """The sampling chapter's summary: how often the evaluator assigns samples to their modality and class, with
    95% Wilson intervals over the samples and chance levels."""
    n = int((evaluation.get("generation_sizes") or {}).get("samples") or 0)

    def rate(key: str, chance: str) -> str:
        value = evaluation[key]
        interval = accuracy_interval(round(value * n), n) if n else None
        spread = f"95% CI {interval.low:.1%}-{interval.high:.1%}; " if interval else ""
        return f"{value:.1%} ({spread}chance {chance})"

    class_chance = f"{1 / NUM_CLASSES:.1%}, {within_modality_chance():.1%} among the right modality's classes"
    return (f"The evaluator assigns {rate('conditional_modality_accuracy', f'{1 / 3:.1%}')} of the samples to the "
            f"modality they were conditioned on and {rate('conditional_class_accuracy', class_chance)} to their class"
            + (f", out of {n:,} samples." if n else "."))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


__all__ = ["data_label", "evidence", "table", "verdict_sentence", "abstract", "reconstruction_summary",
           "sampling_summary"]
