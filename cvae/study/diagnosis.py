"""The aux-head diagnosis: why might the original's auxiliary heads sit near chance? Contrasts measured over seeds.

The original's class head stayed near 34% and its modality head near 39% although the modalities cluster in its
latent space. Candidate causes, each tested on the study's runs (`cvae.study.runner`, the profile's ablation scale,
`cvae.study.runner.STUDY_SEEDS` seeds each) beside the paper's configuration (the control), and on the main run:

- heads that receive no gradient (`no_aux`, gamma = 0: a loss weight near 0, a detached head);
- the condition entering the encoder, so mu need not carry the labels (`encoder_unconditioned`);
- an aux loss too small beside the per-image reconstruction sums (`gamma_10`, gamma = 10);
- heads read in train mode (BatchNorm batch statistics, dropout) rather than eval mode;
- a collapsed posterior (no active latent units).

Every comparison is an interval (`cvae.core.spread`): over seeds for the contrasts, over classes for the main run's probe.
The six contrasts of the heads (three changes, two heads) are one family: a change counts as raising or lowering a
head only when its Holm-adjusted p-value is below 0.05, since the best of six is otherwise found by chance. A
finding states what the interval shows and nothing more; whether the original's claim reproduces is the claims
table's verdict (`cvae.study.claims`), quoted, never re-decided here.
"""

from __future__ import annotations

import pandas as pd

from cvae.core.formatting import percent, signed
from cvae.core.spread import RATE_CHANGE, Spread, holm, over_classes, over_seeds, paired_difference
from cvae.evaluation import metric_math
from cvae.study.runner import seed_spread

CONTRASTS = ("no_aux", "encoder_unconditioned", "gamma_10")  # each against the control, `paper`
CONTROL = "paper"
HEADS = ("aux_class_accuracy", "aux_modality_accuracy")
FAMILY_ALPHA = 0.05
PROBE_READS = 0.90  # "a probe reads the modality": its interval lies above 90%
STRONG_UNIT_NATS = 0.1  # a second, stricter count of used dimensions beside the active-unit threshold
TABLE_METRICS = {"aux_class_accuracy": "aux class, eval (%)", "aux_modality_accuracy": "aux modality, eval (%)",
                 "aux_class_accuracy_train_mode": "aux class, train mode (%)",
                 "aux_modality_accuracy_train_mode": "aux modality, train mode (%)",
                 "probe_class_accuracy": "probe class (%)", "probe_modality_accuracy": "probe modality (%)",
                 "recon_mse": "reconstruction MSE (per pixel)"}


def _values(study: pd.DataFrame, name: str, column: str) -> pd.Series:
    return study.loc[study["name"] == name].set_index("seed")[column].sort_index()


def contrast_seeds(study: pd.DataFrame) -> int:
    """How many seeds the diagnosis contrasts share with the control (the control may have more, for the claims)."""
    control = set(study.loc[study["name"] == CONTROL, "seed"])
    counts = [len(control & set(study.loc[study["name"] == name, "seed"])) for name in CONTRASTS
              if (study["name"] == name).any()]
    return min(counts) if counts else 0


def contrast(study: pd.DataFrame, name: str, column: str) -> Spread | None:
    """`name` minus the control in one column, paired by seed (absolute difference); None without both."""
    a, b = _values(study, name, column), _values(study, CONTROL, column)
    seeds = a.index.intersection(b.index)
    bounds = RATE_CHANGE if "accuracy" in column else None
    return paired_difference(list(a[seeds]), list(b[seeds]), bounds) if len(seeds) else None


def spread_table(study: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% t-interval over seeds of the diagnosis metrics, rates in % ('41.2 (38.0 to 44.4)') and the MSE
    as it is ('0.0108 (0.0097 to 0.0118)'), one column per variant (control first), with the number of seeds."""
    rows = {}
    for name in (CONTROL, *CONTRASTS):
        if not (study["name"] == name).any():
            continue
        row = {}
        for column, label in TABLE_METRICS.items():
            rate = "accuracy" in column
            spread = over_seeds(list(_values(study, name, column)), (0.0, 1.0) if rate else None)
            row[label] = spread.cell(1, percent=True) if rate else spread.cell(4)
        row["seeds"] = int((study["name"] == name).sum())
        rows[name] = row
    return pd.DataFrame(rows).T


def _sign(spread: Spread | None) -> int:
    """+1 / -1 when the interval lies above / below 0, 0 when it straddles 0 or is missing."""
    if spread is None or spread.low is None:
        return 0
    return 1 if spread.low > 0 else -1 if spread.high < 0 else 0


def _study_gate(study: pd.DataFrame):
    """The learning gate over the control and every contrast run of the study (`cvae.study.evidence_gate.combine`)."""
    from cvae.study.evidence_gate import combine
    from cvae.study.runner import variant_gate

    return combine([variant_gate(study, name) for name in (CONTROL, *CONTRASTS) if (study["name"] == name).any()])


def findings(evaluation: dict, study: pd.DataFrame) -> list[str]:
    """The diagnosis as sentences, each stating what its interval shows; when the study's runs did not learn, the
    numbers alone, since an interval from runs that did not learn shows nothing about the heads."""
    out = []
    learned = _study_gate(study).ok
    baselines = evaluation["baselines"]
    majority = max(baselines["modality_majority"], baselines["modality_chance"])
    probe_modality = over_classes(evaluation["probe_modality_accuracy_by_class"])
    out.append(
        f"Main run, test split, eval mode: the aux modality head reads {percent(evaluation['aux_modality_accuracy'])} "
        f"against a majority share of {percent(majority)}; a linear probe on the same mu reads "
        f"{probe_modality.text(1, percent=True)}; the aux class head {percent(evaluation['aux_class_accuracy'])}.")
    gap = [signed(100 * (evaluation[f"aux_{head}_accuracy_train_mode"] - evaluation[f"aux_{head}_accuracy"]))
           for head in ("modality", "class")]
    control_gap = paired_train_eval_gap(study)
    out.append(
        f"Train mode minus eval mode (BatchNorm batch statistics, dropout): {gap[0]} points (modality) and "
        f"{gap[1]} points (class) on the main run; on the control runs {control_gap.points()} (modality)"
        + ("." if not learned else ": the two readings differ." if _sign(control_gap)
           else ": no difference the seeds can resolve."))
    active = evaluation["active_units"]
    strong = metric_math.active_units(evaluation["kl_per_dimension"], STRONG_UNIT_NATS)
    out.append(f"Posterior: {active} of {len(evaluation['kl_per_dimension'])} latent dimensions carry more than "
               f"{metric_math.ACTIVE_UNIT_THRESHOLD} nats and {strong} more than {STRONG_UNIT_NATS} nats"
               + (" (collapsed)." if active == 0 else "."))
    if (study["name"] == "no_aux").any():
        heads = seed_spread(study, "no_aux", "aux_modality_accuracy")
        probe = seed_spread(study, "no_aux", "probe_modality_accuracy")
        symptom = heads.high is not None and heads.high < majority and probe.low is not None and probe.low > PROBE_READS
        out.append(
            f"Heads without gradient (gamma = 0) read the modality at {heads.text(1, percent=True)}. A probe on the "
            f"same mu reads {probe.text(1, percent=True)}"
            + ("." if not learned else ": heads below the majority baseline on a latent a probe reads, the "
               "original's symptom." if symptom else ": not the original's symptom at this spread."))
    if (study["name"] == "encoder_unconditioned").any():
        probe_gain = contrast(study, "encoder_unconditioned", "probe_class_accuracy")
        out.append(
            f"Labels kept out of the encoder: the class probe on mu changes by {probe_gain.points()} against the "
            f"control" + ("." if not learned else {1: ": with the labels at the encoder, mu holds less of the class.",
                                                   -1: ": mu holds more of the class when the encoder sees the labels.",
                                                   0: ": no change the seeds can resolve."}[_sign(probe_gain)]))
    if (study["name"] == "gamma_10").any():
        class_gain = contrast(study, "gamma_10", "aux_class_accuracy")
        mse_change = contrast(study, "gamma_10", "recon_mse")
        out.append(f"Aux weight x10 (gamma = 10): the aux class head changes by {class_gain.points()} and the "
                   f"reconstruction MSE by {mse_change.text(4)} against the control.")
    return out


def paired_train_eval_gap(study: pd.DataFrame) -> Spread:
    """Train-mode minus eval-mode modality accuracy of the control runs, over seeds."""
    rows = study.loc[study["name"] == CONTROL].sort_values("seed")
    return paired_difference(list(rows["aux_modality_accuracy_train_mode"]), list(rows["aux_modality_accuracy"]),
                             RATE_CHANGE)


def family(study: pd.DataFrame) -> list[dict]:
    """Every contrast of the family (each change against the control, on each head) with its interval and its
    Holm-adjusted p-value; `direction` is +1 / -1 where the adjusted p-value is below FAMILY_ALPHA, else 0."""
    tests = [{"variant": name, "metric": column, "gain": contrast(study, name, column)}
             for name in CONTRASTS if (study["name"] == name).any() for column in HEADS]
    tests = [test for test in tests if test["gain"] is not None]
    adjusted = holm([test["gain"].p_value(0.0) for test in tests])
    for test, p in zip(tests, adjusted):
        test["p_holm"] = p
        test["direction"] = (1 if test["gain"].mean > 0 else -1) if p is not None and p < FAMILY_ALPHA else 0
    return tests


def best_fix(study: pd.DataFrame) -> dict | None:
    """The contrast that raises an aux head after Holm's correction, the largest such mean gain; with its
    reconstruction-MSE change. None when no contrast does."""
    raised = [test for test in family(study) if test["direction"] == 1]
    if not raised:
        return None
    best = max(raised, key=lambda test: test["gain"].mean)
    return {**best, "recon_mse_change": contrast(study, best["variant"], "recon_mse")}


def lowering(study: pd.DataFrame) -> list[str]:
    """For each contrast that lowers an aux head after Holm's correction, its larger drop: 'no_aux lowers the aux
    modality accuracy by 68.3 percentage points, unadjusted 95% CI 60.1 to 76.5'."""
    out = []
    for name in CONTRASTS:
        drops = [test for test in family(study) if test["variant"] == name and test["direction"] == -1]
        if drops:
            test = min(drops, key=lambda item: item["gain"].mean)
            gain = test["gain"]
            out.append(f"{name} lowers the {test['metric'].replace('_', ' ')} by {-100 * gain.mean:.1f} percentage "
                       f"points, unadjusted 95% CI {-100 * gain.high:.1f} to {-100 * gain.low:.1f}")
    return out


def summary(study: pd.DataFrame) -> str:
    """The diagnosis paragraph: the fix the intervals show, or, when no change raises the heads, which changes lower
    them (what could produce the original's low readings); the claim's verdict is the discussion's."""
    gate = _study_gate(study)
    if not gate.ok:
        return (f"{gate.failed_runs} of the {gate.runs} diagnosis runs failed the learning gate, so their "
                "contrasts say nothing about the heads.")
    fix = best_fix(study)
    if fix is None:
        lowered = lowering(study)
        return (f"After Holm's correction over the {len(family(study))} contrasts of the heads, no tested change "
                "raises one." + (f" Lowering them: {'; '.join(lowered)}." if lowered else ""))
    return (f"Of the tested changes, {fix['variant']} raises the {fix['metric'].replace('_', ' ')} most: "
            f"{fix['gain'].text(3)}, at a reconstruction-MSE change of {fix['recon_mse_change'].text(4)}.")


__all__ = ["CONTRASTS", "CONTROL", "HEADS", "contrast", "spread_table", "findings", "family", "best_fix", "lowering",
           "summary",
           "paired_train_eval_gap"]
