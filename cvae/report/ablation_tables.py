"""Tables of the study (`cvae.study.runner.run_study`: one row per run) for reading: the seeded claims, the weight search,
the other variants, the precision comparison, and the full table as a CSV download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cvae.core.config import LOSS_WEIGHTS
from cvae.core.formatting import signed, signed_percent, significant
from cvae.evaluation.examples import condition_spread
from cvae.study.ablations import FACTORIAL, STANDARD
from cvae.study.runner import COMPARED, SEEDED, paired_spread, run_gate, seed_spread
from cvae.study.weight_search import CRITERIA, CRITERION_NAMES


def _spread_cell(spread, digits: int, percent: bool = False) -> str:
    if spread is None:
        return "not trained"
    scale = 100 if percent else 1  # the header carries the unit: "aux class (%)"
    if spread.sd is None:
        return f"{spread.mean * scale:,.{digits}f}"
    return f"{spread.mean * scale:,.{digits}f} ± {spread.sd * scale:,.{digits}f}"


def seeded_table(study: pd.DataFrame) -> pd.DataFrame:
    """The variants measured over seeds: validation loss at the final KL weight at the kept checkpoint
    (mean ± sd), its paired change against the paper's model (mean and 95% interval), aux-head accuracy and how many
    seeds passed the learning gate; one row per variant (the seed count is the chapter's text)."""
    rows = {}
    for name in SEEDED:
        if name in FACTORIAL:  # the latent chapter's factorial, at its own schedule: not comparable with `paper`
            continue
        runs = study[study["name"] == name]
        if runs.empty:
            continue
        # a variant that reweights the loss has another validation total: its loss is not comparable
        change = paired_spread(study, name) if name != "paper" and not set(STANDARD[name]) & set(LOSS_WEIGHTS) else None
        rows[name] = {
            "loss at final β": _spread_cell(seed_spread(study, name, COMPARED), 1),
            "change (95% CI)": "—" if change is None else (
                signed_percent(change.mean) + (f" ({signed_percent(change.low)} to {signed_percent(change.high)})"
                                               if change.low is not None else "")),
            "aux class (%)": _spread_cell(seed_spread(study, name, "aux_class_accuracy"), 1, percent=True),
            "aux modality (%)": _spread_cell(seed_spread(study, name, "aux_modality_accuracy"), 1, percent=True),
            "learned": f"{sum(run_gate(row).ok for _, row in runs.iterrows())} of {len(runs)}",
        }
    return pd.DataFrame(rows).T.rename_axis("variant")


def search_display(search: pd.DataFrame) -> pd.DataFrame:
    """The weight search (`cvae.study.weight_search.search_table`) for reading: one row per candidate, each criterion's
    mean over seeds with its paired gain over the default, and the verdict against the default."""
    columns = {"weight": search["weight"], "value": search["value"].map(lambda v: f"{v:g}")}
    for column in CRITERIA:
        scale, digits = (100, 1) if "accuracy" in column else (1, 2 if "psnr" in column else 1)
        unit = " (%)" if "accuracy" in column else ""
        columns[CRITERION_NAMES[column] + unit] = [
            f"{scale * mean:,.{digits}f}" + ("" if current else f" ({scale * gain:+,.{digits}f})")
            for mean, gain, current in zip(search[column], search[f"{column}_gain"], search["current"])]
    columns["against the default"] = search["verdict"] + search["winner"].map(lambda w: "; winner" if w else "")
    return pd.DataFrame(columns).set_index(["weight", "value"])


def other_variants(study: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The paper's model and the named variants trained once (at the base seed), on the test split's criteria."""
    names = ["paper"] + [n for n in dict.fromkeys(study["name"]) if n not in SEEDED and "=" not in n]
    rows = {}
    for name in names:
        row = study[(study["name"] == name) & (study["seed"] == seed)]
        if row.empty:
            continue
        row = row.iloc[0]
        rows[name] = {"val loss at final β (per image)": f"{row[COMPARED]:,.1f}",
                      "PSNR (dB)": f"{row['recon_psnr']:.2f}", "SSIM": f"{row['recon_ssim']:.3f}",
                      "domain FID": significant(row["domain_fid"]),
                      "cond. class acc (%)": f"{100 * row['conditional_class_accuracy']:.1f}",
                      "train time (s)": f"{row['train_seconds']:,.0f}"}
    return pd.DataFrame(rows).T.rename_axis("variant (seed %d)" % seed)


PRECISION_METRICS = {  # study column -> label in the precision comparison
    COMPARED: "validation loss at the final β (per image)", "final_val_mse": "validation MSE (per image)",
    "recon_psnr": "reconstruction PSNR (dB)", "recon_ssim": "reconstruction SSIM", "domain_fid": "domain FID",
    "conditional_class_accuracy": "conditional class accuracy (%)", "train_seconds": "training time (s)",
}


def precision_differences(study: pd.DataFrame, seed: int) -> dict[str, tuple[float, float, float | None]]:
    """{criterion: (default precision, fp32, relative difference of the default against fp32 or None)} for the
    `paper` and `fp32` runs at the base seed, accuracies in %; empty when the fp32 run is absent."""
    rows = study[study["seed"] == seed].set_index("name")
    if not {"paper", "fp32"} <= set(rows.index):
        return {}
    out = {}
    for column, label in PRECISION_METRICS.items():
        if column in rows.columns:
            scale = 100.0 if "accuracy" in column else 1.0
            default, full = scale * float(rows.loc["paper", column]), scale * float(rows.loc["fp32", column])
            out[label] = (default, full, (default - full) / abs(full) if full else None)
    return out


def precision_table(study: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The `paper` (default precision) and `fp32` runs at the base seed side by side, with the relative difference of
    the default against fp32; a one-row note when the fp32 run is absent."""
    differences = precision_differences(study, seed)
    if not differences:
        return pd.DataFrame({"status": ["no fp32 run in this build (the default already trains in fp32 on this "
                                        "machine, or the variant was not selected)"]})
    return pd.DataFrame([{"metric": label, "default precision": significant(default), "fp32": significant(full),
                          "difference": f"{signed(100 * relative)}%" if relative is not None else "n/a"}
                         for label, (default, full, relative) in differences.items()]).set_index("metric")


NEAR_CONSTANT = 0.05  # a strip whose pixels vary less than this across the 21 classes looks like one gray tile


def condition_sentence(strips: dict[str, np.ndarray], main_strip: np.ndarray) -> str:
    """What the variants' sample strips show (`cvae.evaluation.examples.variant_strips`: name -> (21, 28, 28)): how
    many decode nearly one image whatever the class (`condition_spread` below NEAR_CONSTANT), beside the main run."""
    spreads = {name: condition_spread(strip) for name, strip in strips.items()}
    main_spread = condition_spread(main_strip)
    flat = [name for name, spread in spreads.items() if spread < NEAR_CONSTANT]
    main = (f"The main run's samples vary by {main_spread:.3f} in pixel standard deviation across the 21 classes, "
            f"on a 0 to 1 scale.")
    if not flat:
        return main + f" Every variant's samples vary by at least {NEAR_CONSTANT}, so each decodes the classes apart."
    which = "All the variants" if len(flat) == len(spreads) else f"Of the {len(spreads)} variants, {len(flat)}"
    return (main + f" {which} vary by less than {NEAR_CONSTANT}: their decoders give nearly one image whatever the "
            f"class, as their uniform strips show.")


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write a full table as CSV (the page links it for download); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6g")
    return path


__all__ = ["seeded_table", "search_display", "other_variants", "precision_differences", "precision_table", "write_csv",
           "PRECISION_METRICS", "NEAR_CONSTANT", "condition_sentence"]
