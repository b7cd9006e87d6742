"""What this build found: the evidence for each of the original's claims, the claims table, and the abstract.

The evidence comes from the main run (its summary and `evaluation.json`) and from the study (`cvae.study.runner`); the
verdicts from `cvae.study.claims`' one rule. The abstract on the book's first page and every verdict sentence of the
chapters are built here from that table, so no page can word a claim more strongly than the table does.
"""

from __future__ import annotations

import pandas as pd

from cvae.core.formatting import listed, percent, signed
from cvae.core.labels import DATASET_NAMES, DATASETS, MODALITY_OF_CLASS, NUM_CLASSES, classes_of_modality
from cvae.core.spread import RATE_CHANGE, Spread, over_classes, paired_difference, rate_over_classes
from cvae.study.claims import CLAIMS, TESTS, claims_table, sentence, verdict_counts
from cvae.study.evidence_gate import missed_text, modality_gate
from cvae.study.runner import claim_evidence


def data_label(synthetic: bool) -> str:
    """How a page names this build's data: 'the synthetic stand-in' or 'MedMNIST'."""
    return "the synthetic stand-in" if synthetic else "MedMNIST"


def main_run_gate(evaluation: dict):
    """The learning gate of the main run, modality by modality (`cvae.study.evidence_gate.modality_gate`), from its
    evaluation."""
    gains = evaluation.get("recon_ssim_gain_over_class_mean") or {}
    return modality_gate("main run", {flag: (gains.get(flag) or {}).get("low") for flag in DATASETS},
                         evaluation["conditional_class_accuracy_by_modality"])


def real_class_accuracy(evaluation: dict) -> Spread:
    """The evaluator's accuracy on real test images, class by class, as its mean over the classes (t-interval)."""
    return over_classes(evaluation["evaluator_test_accuracy_by_class"])


def class_gap(evaluation: dict) -> Spread:
    """How much more often the evaluator recognises a real test image's class than a sample's, paired by class: the
    mean over the 21 classes of (real accuracy - sample accuracy), with a t-interval over the classes."""
    samples = [row["class_accuracy"] for row in evaluation["conditional_per_class"]]
    return paired_difference(evaluation["evaluator_test_accuracy_by_class"], samples, RATE_CHANGE, kind="classes")


def evidence(evaluation: dict, summary: dict, epochs: int, study: pd.DataFrame) -> dict:
    """The evidence `cvae.study.claims.claims_table` reads, from the main run's evaluation and summary (best epoch 0-based
    in the summary, 1-based here) and the study table. Rates are over classes: per-class values, t-interval."""
    per_class = evaluation["conditional_per_class"]
    separation = evaluation.get("separation_2d") or {}
    gain = (evaluation.get("recon_ssim_gain_over_class_mean") or {}).get("pathmnist")
    study_part = claim_evidence(study)
    return {
        "synthetic": bool(evaluation["synthetic_data"]), "epochs": int(epochs),
        "best_epoch": int(summary["best_epoch"]) + 1,
        **study_part,
        "learned": {"main": main_run_gate(evaluation), **study_part["learned"]},
        "aux_main": {"class": evaluation["aux_class_accuracy"], "modality": evaluation["aux_modality_accuracy"]},
        "aux_guess": _study_guess(study, evaluation),
        "separation": {target: {method: rate_over_classes(values) for method, values in by_method.items()}
                       for target, by_method in separation.items()},
        "separation_counts": {target: {method: [(rate * points, points) for rate, points in
                                                zip(values, evaluation["separation_points"])]
                                       for method, values in by_method.items()}
                              for target, by_method in separation.items()},
        "probe_modality": rate_over_classes(evaluation["probe_modality_accuracy_by_class"]),
        "probe_class": rate_over_classes(evaluation["probe_class_accuracy_by_class"]),
        "conditional_modality": rate_over_classes([row["modality_accuracy"] for row in per_class]),
        "conditional_class": rate_over_classes([row["class_accuracy"] for row in per_class]),
        "modality_counts": [(round(row["modality_accuracy"] * row["samples"]), int(row["samples"]))
                            for row in per_class],
        "class_chance": 1 / NUM_CLASSES,
        "evaluator_accuracy": real_class_accuracy(evaluation).mean,
        "class_gap": class_gap(evaluation),
        "recon_ssim_path": evaluation["recon_ssim"]["pathmnist"],
        "recon_ssim_gain_path": Spread.from_dict(gain) if gain else None,
    }


def _study_guess(study: pd.DataFrame, evaluation: dict) -> float:
    """What a modality head that guesses in the label proportions scores on the test split the study's paper runs
    were read on (their `modality_guess`), else on the main run's."""
    rows = study[study["name"] == "paper"] if "modality_guess" in study else study.iloc[0:0]
    return float(rows["modality_guess"].mean()) if len(rows) else float(evaluation["modality_guess"])


def table(evaluation: dict, summary: dict, epochs: int, study: pd.DataFrame) -> pd.DataFrame:
    """The claims table of this build (see `cvae.study.claims.claims_table`)."""
    return claims_table(evidence(evaluation, summary, epochs, study))


def verdict_sentence(claims: pd.DataFrame, key: str, synthetic: bool) -> str:
    """The one sentence a chapter may say about a claim: the table's verdict on this build's data."""
    return sentence(claims, key, data_label(synthetic))


def group_markdown(claims: pd.DataFrame, keys: list[str], synthetic: bool) -> str:
    """The discussion's words on a group of claims, as a Markdown list: one item per claim (`verdict_sentence`),
    except that claims with the same verdict for the same reason share one item, which names them and leaves what
    was measured to the claims table (the chapter says once that the table holds it); one item alone is a
    paragraph."""
    groups: dict[tuple[str, str], list[str]] = {}
    for key in keys:
        groups.setdefault((claims.loc[key, "verdict"], claims.loc[key, "reason"]), []).append(key)
    items = []
    for (verdict, reason), members in groups.items():
        if len(members) == 1:
            items.append(verdict_sentence(claims, members[0], synthetic))
            continue
        named = listed([f"that {claims.loc[key, 'claim']}" for key in members])
        where = "" if verdict == "not testable on this data" else f" on {data_label(synthetic)}"
        why = (reason.replace("the claim is", "each claim is", 1) if reason.startswith("the claim is")
               else f"for each, {reason}")
        two = len(members) == 2
        said = (f"{'Neither' if two else 'None of them'} is {verdict[4:]}" if verdict.startswith("not ")
                else f"{'Both' if two else 'All of them'} are {verdict}")
        items.append(f"The original claims {named}. {said}{where}, because {why}.")
    return items[0] if len(items) == 1 else "\n".join(f"- {item}" for item in items)


def verdict_line(claims: pd.DataFrame, synthetic: bool = False) -> str:
    """'8 claims of the original: 0 reproduced, 1 not reproduced, 2 inconclusive, 5 not testable on this data.'
    (zeros left out beyond the first two verdicts); on the stand-in it says that these verdicts judge the pipeline."""
    counts = verdict_counts(claims)
    parts = [f"{n} {verdict}" for verdict, n in counts.items() if n or verdict in ("reproduced", "not reproduced")]
    line = f"{len(claims)} claims of the original: " + ", ".join(parts) + "."
    if synthetic:
        line += " On the stand-in these verdicts test the pipeline, not MedMNIST."
    return line


def margins_markdown() -> str:
    """The margin of every claim and why it was chosen, as a Markdown list (one item per claim, in table order)."""
    return "\n".join(f"- {claim.claim[0].upper() + claim.claim[1:]}: {TESTS[claim.key].margin_text}. "
                     f"{TESTS[claim.key].why[0].upper() + TESTS[claim.key].why[1:]}." for claim in CLAIMS
                     if claim.key in TESTS)


def display_table(claims: pd.DataFrame, open_question: dict | None = None) -> pd.DataFrame:
    """The claims table for reading, indexed by the claim with the original's words: ours with the margin, and the
    verdict with the detectable effect. The reasons are the discussion's sections, said once there. `open_question`
    (`cvae.study.aux_factorial.claims_row`) adds the original's open question as a last row, not counted among its
    claims; no section discusses it, so its row keeps its reason."""
    if open_question is not None:
        claims = pd.concat([claims, pd.DataFrame([open_question], index=["open_question"])])
    rows = list(claims.iterrows())  # three columns, so that the table fits a printed page and a phone's width
    return pd.DataFrame({
        "claim: the original's words": [f"{row['claim']}: {row['original']}" for _, row in rows],
        "ours, and the margin": [f"{row['ours']}. Margin: {row['margin']}." for _, row in rows],
        "verdict, and the effect the seeds could detect": [  # no effect to detect where the data cannot test it
            row["verdict"] + (f": {row['reason']}" if key == "open_question" else "") + "."
            + (f" Detectable effect: {row['detectable']}." if row["verdict"] != "not testable on this data" else "")
            for key, row in rows],
    }).set_index("claim: the original's words")  # the table shows the index's name in its one header row


# the claims the study's smaller runs decide, as the abstract names them when those runs fail the learning gate
STUDY_CLAIM_NAMES = {"latent": "the latent-size claim", "deep": "the depth claim",
                     "aux_heads": "the modality-head claim"}


def abstract(claims: pd.DataFrame, evaluation: dict, summary: dict, epochs: int, profile: str,
             train_images: int, seeds: int) -> str:
    """The abstract (MyST markdown, at most 150 words): the verdict line first, then what was trained and the
    headline numbers beside their baselines, all read from this build; `seeds` is the seeds of each contrast."""
    synthetic = bool(evaluation["synthetic_data"])
    data = "a synthetic stand-in for MedMNIST" if synthetic else "PathMNIST, TissueMNIST and OCTMNIST"
    ssim = evaluation["recon_ssim"]["overall"]
    baseline = (evaluation.get("recon_ssim_class_mean_baseline") or {}).get("overall")
    evaluator = real_class_accuracy(evaluation).mean
    gate = main_run_gate(evaluation)
    gain = (evaluation.get("recon_ssim_gain_over_class_mean") or {}).get("overall")
    gain_text = (f", a gain of {signed(gain['mean'], 3)}, 95% CI {signed(gain['low'], 3)} to "
                 f"{signed(gain['high'], 3)} over classes" if gain and gain.get("low") is not None else "")
    samples = over_classes([row["class_accuracy"] for row in evaluation["conditional_per_class"]])
    samples_interval = f", 95% CI {percent(samples.low)} to {percent(samples.high)}" if samples.low is not None else ""
    parts = [
        f"**{verdict_line(claims, synthetic)}**",
        f"We retrained the original's conditional VAE once on {data}, {train_images:,} training images for {epochs} "
        f"epochs with profile `{profile}`, and compared variants over {seeds} seeds. Margins were fixed before any "
        f"run on MedMNIST.",
        f"Overall, reconstructions reach SSIM {ssim:.3f}" + (f" against {baseline:.3f} for each image's class mean" if
                                                     baseline is not None else "") + f"{gain_text}. "
        f"Averaged over classes, a separate classifier recognises the class of {percent(samples.mean)} of "
        f"samples{samples_interval}, and of {percent(evaluator)} of test images, against chance at "
        f"{percent(within_modality_chance())} within the right modality.",
    ]
    gated = [STUDY_CLAIM_NAMES[key] for key in STUDY_CLAIM_NAMES
             if claims.loc[key, "verdict"] == "not testable at this scale"]
    every = len(gated) == len(STUDY_CLAIM_NAMES)  # then the runs need no names, and the abstract stays within 150
    if not gate.ok:
        parts.append(f"The main run failed the learning gate: {missed_text(gate.missed)}."
                     + (" The study's runs failed it too." if every else
                        f" The study's runs behind {listed(gated)} failed it too." if gated else ""))
    elif every:
        parts.append("The study's runs failed the learning gate, so its three claims were not tested.")
    elif gated:
        parts.append(f"The study's runs behind {listed(gated)} failed the learning gate, so "
                     + ("that claim was" if len(gated) == 1 else "those claims were") + " not tested.")
    return "\n\n".join(parts)


def reconstruction_summary(evaluation: dict) -> str:
    """The reconstruction chapter's summary from its numbers: per modality, the test SSIM and whether the
    reconstructions beat each image's class-mean image (SSIM gain, 95% interval over classes)."""
    gains = evaluation.get("recon_ssim_gain_over_class_mean") or {}
    groups: dict[str, list[str]] = {"better": [], "worse": [], "same": []}
    parts = []
    for flag, name in DATASET_NAMES.items():
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
    said = [f"for {listed(names)} {wording[group]}" for group, names in groups.items() if names]
    if said:
        sentences.append("; ".join(said)[0].upper() + "; ".join(said)[1:] + ".")
    return " ".join(sentences)


def sampling_summary(evaluation: dict) -> str:
    """The sampling chapter's summary: how often the evaluator assigns samples to their modality and class, with
    95% intervals over the 21 classes (samples of one class share their fate) and chance levels, and how far real
    test images of the same class lead."""
    per_class = evaluation["conditional_per_class"]

    def rate(column: str, what: str, chance: float) -> str:
        spread = over_classes([row[column] for row in per_class])
        interval = (f", 95% CI {percent(spread.low)} to {percent(spread.high)} over classes" if spread.low is not None
                    else "")
        return f"{percent(spread.mean)} to {what}{interval}, where chance is {percent(chance)}"

    samples = int((evaluation.get("generation_sizes") or {}).get("samples") or 0)
    return (f"Of {samples:,} samples, the evaluator assigns "
            f"{rate('modality_accuracy', 'the modality they were conditioned on', 1 / 3)}, and "
            f"{rate('class_accuracy', 'their class', 1 / NUM_CLASSES)}. A guess among the classes of the right "
            f"modality would be right {percent(within_modality_chance())} of the time, averaged over classes. It "
            f"recognises the class of "
            f"{percent(real_class_accuracy(evaluation).mean)} of real test images, so real images lead the samples "
            f"of the same class by {class_gap(evaluation).points()}. {_gap_by_modality(evaluation)}")


def within_modality_chance() -> float:
    """The class accuracy of a guess among the classes of the right modality, averaged over the 21 classes:
    (9 * 1/9 + 8 * 1/8 + 4 * 1/4) / 21 = 3/21."""
    return sum(1 / len(classes_of_modality(MODALITY_OF_CLASS[label])) for label in range(NUM_CLASSES)) / NUM_CLASSES


def _gap_by_modality(evaluation: dict) -> str:
    """'The lead differs by modality: +56.0 points in PathMNIST, +21.0 in TissueMNIST and -23.0 in OCTMNIST.' (the
    mean over each modality's classes of real accuracy less the samples')."""
    gaps: dict[str, list[float]] = {}
    for row, real in zip(evaluation["conditional_per_class"], evaluation["evaluator_test_accuracy_by_class"]):
        gaps.setdefault(row["modality"], []).append(real - row["class_accuracy"])
    parts = [f"{signed(100 * sum(values) / len(values))}{' points' if not index else ''} in {DATASET_NAMES[flag]}"
             for index, (flag, values) in enumerate((flag, gaps[flag]) for flag in DATASETS if flag in gaps)]
    return f"The lead differs by modality: {listed(parts)}." if len(parts) > 1 else ""


def separation_sentence(evaluation: dict) -> str:
    """What the PCA and t-SNE figures show, measured: the share of each point's nearest 2-D neighbours that have its
    modality and its class, as a mean over classes with its 95% interval."""
    separation = evaluation["separation_2d"]
    k = evaluation.get("separation_neighbours", 10)

    def said(target: str) -> str:
        parts = []
        for method, values in separation[target].items():
            spread = over_classes(values)
            interval = f" ({spread.low:.0%} to {spread.high:.0%})" if spread.low is not None else ""
            parts.append(f"{spread.mean:.0%}{interval} in the {method}")
        return " and ".join(parts)

    return (f"Of each point's {k} nearest neighbours in these figures, {said('modality')} share its modality. "
            f"{said('class')[0].upper() + said('class')[1:]} share its class. Both are means over the {NUM_CLASSES} "
            f"classes, with 95% intervals over them.")


def schedule_sentence(first: int, full: int, epochs: int, best: int) -> str:
    """This build's KL schedule in words (1-based epochs): when the weight is first non-zero and when it is full,
    and the epoch of the lowest validation total."""
    when = (f"zero until epoch {first}, where it takes its full value at once" if first == full else
            f"first non-zero in epoch {first} and full in epoch {full}")
    return (f"In this build's schedule of {epochs} epochs, the KL weight is {when}, and the lowest validation total "
            f"came in epoch {best}.")


__all__ = ["data_label", "evidence", "table", "verdict_sentence", "group_markdown", "verdict_line", "abstract",
           "main_run_gate", "reconstruction_summary", "sampling_summary", "separation_sentence", "schedule_sentence",
           "margins_markdown", "display_table"]
