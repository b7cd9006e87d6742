"""The original report's claims, what this build measured for each, and a verdict by one rule stated once.

Every verdict in the book comes from `claims_table` (the discussion's table, the abstract, the chapters' sentences),
so a page can never say more than the table does. Each claim has a test and a margin fixed here, before any run
(`TESTS`, shown as a column of the table and explained in the discussion). The rule (`RULE`):

- **not testable on this data**: the claim is about what medical images look like and the build used the stand-in;
- **not testable at this scale**: a run behind the claim failed the learning gate (`cvae.study.evidence_gate`), or
  the claim needs the original's 150-epoch schedule and the build trained a shorter one;
- otherwise the 95% interval of our measurement is read against the margin: **reproduced** when it lies wholly on
  the claim's side, **not reproduced** when it lies wholly on the other side, **inconclusive** when it straddles the
  margin or when there is no interval (one seed, or identical values on every seed).

Every finding also states the smallest effect its spread could have detected (80% power, `Spread.detectable`), so an
inconclusive verdict says what it ruled out. Intervals are over seeds (paired) for comparisons of runs and over
classes for rates of samples and test images, whose outcomes cluster by class (`cvae.core.spread`). A verdict reached on
the stand-in is a verdict about this pipeline, not about MedMNIST, and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from cvae.core.formatting import percent, signed_percent
from cvae.core.original import ORIGINAL
from cvae.core.spread import Spread
from cvae.study.class_by_class import class_by_class, every_class_detectable, rates_text
from cvae.study.evidence_gate import GATE_CLASS_ABOVE_CHANCE, Learned, combine, missed_text

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable at this scale",
            "not testable on this data")
ORIGINAL_SCHEDULE_EPOCHS = 150


@dataclass(frozen=True)
class Test:
    """How a claim is judged: the test's name, its margin (in the measurement's units) and why that margin."""

    name: str
    margin: float
    margin_text: str
    why: str


TESTS: dict[str, Test] = {
    "best_epoch": Test("well before the end", 0.9, "best epoch before 90% of the schedule",
                       "'best results after 79 epochs' of 150 is 53%; the last tenth is what 'the end' means"),
    "latent": Test("clearly lower", 0.02, "latent 64's loss at least 2% above latent 128's",
                   "'reduces significantly' asks for a gain a reader would act on, and we take 2% of the loss as the "
                   "smallest such gain"),
    "deep": Test("no better", 0.05, "the deeper model's loss not more than 5% below the original's",
                 "the original concludes that its network already has enough capacity, which needs the deeper model "
                 "to be no better by more than a gain worth four times the parameters; a worse one supports it too"),
    "aux_heads": Test("near chance", 0.05, "the modality head within 5 points of a guess in the label proportions",
                      "the original's 39% is what such a guess scores on its validation mix; 5 points allow for "
                      "the mix and for noise"),
    "modality_clusters": Test("separated", 0.90, "at least 90% of 10 nearest 2-D neighbours share the modality, "
                              "in every class of both maps", "'separated quite well' means a "
                              "point's neighbours in the figure are of its modality, whatever its class"),
    "class_overlap": Test("overlapping", 0.50, "at most 50% of 10 nearest 2-D neighbours share the class, in every "
                          "class of both maps", "'highly overlapping' means most of a point's neighbours in the "
                          "figure are of other classes, whatever its class"),
    "reconstructions": Test("better than the class mean", 0.05, "SSIM at least 0.05 above the class-mean image",
                            "'work quite well' must beat the image that only knows the label, by a visible gap"),
    "samples": Test("distinguishable", 0.90, "the evaluator assigns at least 90% of each class's samples to their "
                    "modality", "'distinguishable' means an independent classifier tells the modalities apart, for "
                    "every class; judged class by class because samples share their class's fate"),
    "class_conditional": Test("challenging", 0.10, "real test images' class accuracy at least 10 points above the "
                              "samples', on average over classes", "'remains "
                              "challenging' means the samples carry their class clearly less often than real images "
                              "do, by a gap a reader would notice"),
}


@dataclass(frozen=True)
class Claim:
    """One claim of the original: our paraphrase, its words quoted verbatim, which runs are its evidence
    ('main' or study variants) and whether only medical images can test it."""

    key: str
    claim: str
    original: str
    runs: tuple[str, ...]
    about_images: bool


CLAIMS: tuple[Claim, ...] = (
    Claim("best_epoch", "the best validation loss comes well before the end of training",
          '"we get the best results after 79 epochs" (of 150)', ("main",), about_images=False),
    Claim("latent", "a 128-dimensional latent gives a clearly lower loss than a 64-dimensional one",
          '"the loss reduces significantly when using a latent dimension of 128 instead of 64"',
          ("paper", "latent64"), about_images=False),
    Claim("deep", "a deeper model of about 4.8 million parameters is no better",
          '"leads to results looking very similar to what we already had"', ("paper", "deep"), about_images=False),
    Claim("aux_heads", "the modality head reads near chance",
          '"modality classification gets stuck at around 39% (almost random probability)"', ("paper",),
          about_images=False),
    Claim("modality_clusters", "the modalities form separate clusters in the latent space",
          '"the modalities are separated quite well"', ("main",), about_images=True),
    Claim("class_overlap", "the classes overlap in the latent space",
          '"the classes are highly overlapping"', ("main",), about_images=True),
    Claim("reconstructions", "PathMNIST reconstructions work well",
          '"reconstruction examples from the PathMNIST subset that work quite well"', ("main",), about_images=True),
    Claim("samples", "samples of different modalities are distinguishable",
          '"the different modalities are distinguishable"', ("main",), about_images=True),
    Claim("class_conditional", "class-conditional generation remains challenging",
          '"class-conditional generation remains challenging"', ("main",), about_images=True),
)

# said beside the rule; the dated list of every change is cvae.study.rule_history, which a test ties to the margins
MARGINS_FIXED = ("before any run on real MedMNIST, which none of this project's machines could download; the "
                 "reproducibility chapter dates each margin and each later change")

RULE_STEPS = (  # the rule as the discussion lists it, one step an item
    "Each claim has a test, a margin and a number of seeds, set in the code before this build's runs and listed in "
    f"the table. The margins were fixed {MARGINS_FIXED}.",
    "A claim about what medical images look like is not testable on this data when the build used the synthetic "
    "stand-in.",
    "A claim is not testable at this scale when its test needs the original's 150-epoch schedule, or when a run "
    "behind it did not learn. A run has learned when, in each modality, its reconstructions beat the class-mean "
    "image, the 95% interval of the SSIM gain over that modality's classes lying above 0. In each modality the "
    f"evaluator must also find the conditioned class in its samples at least {100 * GATE_CLASS_ABOVE_CHANCE:.0f} "
    "points more often than chance among that modality's classes, a rate read as measured, without an interval. "
    "The aux-head factorial reads the reconstructions alone, pooled over modalities.",
    "Otherwise the claim is reproduced when the 95% interval of our measurement lies wholly on the claim's side of "
    "the margin, not reproduced when it lies wholly on the other side, and inconclusive when it straddles the margin "
    "or there is no interval.",
    "Comparisons of runs are paired by seed and use the validation loss at the final KL weight, at each run's kept "
    "checkpoint.",
    "A rate claimed for every class holds only if every class's interval lies on the claim's side of the margin. It "
    "fails if some class lies wholly on the other side at the Bonferroni level over the classes. A better class "
    "never lowers a verdict.",
    "The detectable effect is the smallest true difference the seeds or classes would have found with 80% power. "
    "Where it exceeds the margin, the data were too few to settle the claim unless the interval lies clear of it.",
)
RULE = " ".join(RULE_STEPS)


def rule_markdown() -> str:
    """The rule as a numbered Markdown list (`RULE_STEPS`), as the discussion shows it."""
    return "\n".join(f"{number}. {step}" for number, step in enumerate(RULE_STEPS, 1))


@dataclass(frozen=True)
class Finding:
    """Our measurement for one claim as text, its verdict, the reason the rule gives and the detectable effect."""

    ours: str
    verdict: str
    reason: str
    detectable: str = ""


def read_against(interval: Spread, margin: float, claimed_above: bool) -> str:
    """'reproduced' / 'not reproduced' when the interval lies wholly above or below the margin, 'inconclusive' when
    it straddles it or has no interval; `claimed_above` says on which side the claim lies."""
    if interval.low is None or interval.high is None:
        return "inconclusive"
    if interval.low > margin:
        return "reproduced" if claimed_above else "not reproduced"
    if interval.high < margin:
        return "not reproduced" if claimed_above else "reproduced"
    return "inconclusive"


def _no_interval(spread: Spread) -> str:
    return (f"identical on all {spread.n} seeds, so there is no interval" if spread.no_spread
            else f"{spread.n} seed{'s' if spread.n != 1 else ''} give no interval")


def detectable_text(spread: Spread, unit: str = "relative") -> str:
    """The smallest true effect the spread would find with 80% power: 'about 26%' of the loss, 'about 18 points' of a
    rate, 'about 0.02' of SSIM, said to rest on few seeds under 4 (the effect scales with the observed sd, which 2
    seeds estimate with one degree of freedom); 'not defined ...' without a spread."""
    effect = spread.detectable()
    if effect is None:
        return "not defined without an interval" if not spread.exact_bound else "not defined without a spread"
    if unit == "points":
        text = f"about {100 * effect:.0f} points" if effect >= 0.005 else "under 1 point"
    else:
        text = f"about {effect:.0%}" if unit == "relative" else f"about {effect:.2f}"
    return text + (f", from the spread of only {spread.n} seeds" if spread.kind == "seeds" and spread.n < 4 else "")


# why the best epoch says little even on the original's schedule: the total it minimises changes with the KL weight
SCHEDULE_CONFOUND = ("the KL weight grows until epoch "
                     f"{ORIGINAL['beta_warmup_epochs'] + ORIGINAL['beta_ramp_epochs']} of the original's schedule, so "
                     "an early lowest total loss partly reflects the schedule")


def _best_epoch(e: dict) -> Finding:
    ours = f"epoch {e['best_epoch']} of {e['epochs']}, one run"
    if e["epochs"] != ORIGINAL_SCHEDULE_EPOCHS:
        return Finding(ours, "not testable at this scale",
                       f"the test needs the original's {ORIGINAL_SCHEDULE_EPOCHS}-epoch schedule, which only the full "
                       f"profile trains; this build trained {e['epochs']} epochs. Even there, {SCHEDULE_CONFOUND}",
                       "not defined for one run")
    return Finding(ours, "inconclusive", f"one run of the full profile, and the rule needs an interval over seeds; "
                   f"besides, {SCHEDULE_CONFOUND}", "not defined for one run")


def _reconstruction_alone(spread: Spread | None) -> str:
    """The same comparison on the test split's reconstruction MSE, shown beside the judged loss and not judged: the
    loss holds a KL term summed over the latent dimensions, so a smaller latent can lower it without reconstructing
    better."""
    if spread is None or spread.low is None:
        return ""
    return (f"; reconstruction MSE alone, not judged: {signed_percent(spread.mean)}, 95% CI "
            f"{signed_percent(spread.low)} to {signed_percent(spread.high)}")


def _relative(key: str, claimed_above: bool, subject: str, baseline: str) -> Callable[[dict], Finding]:
    def finding(e: dict) -> Finding:
        spread: Spread | None = e.get(key)
        if spread is None:
            return Finding("not measured", "inconclusive", "the runs were not trained in this build")
        direction = "higher" if spread.mean > 0 else "lower"
        ours = f"{subject}: loss {percent(abs(spread.mean))} {direction} than {baseline}" + (
            f", 95% CI {signed_percent(spread.low)} to {signed_percent(spread.high)} over {spread.n} seeds"
            if spread.low is not None
            else f", {_no_interval(spread)}") + _reconstruction_alone(e.get(f"{key}_recon"))
        margin = TESTS[key].margin if key == "latent" else -TESTS[key].margin
        verdict = read_against(spread, margin, claimed_above)
        side = "straddles" if verdict == "inconclusive" else (
            "lies wholly above" if spread.low is not None and spread.low > margin else "lies wholly below")
        reason = f"{_no_interval(spread)}" if spread.low is None else f"the interval {side} {margin:+.0%}"
        if key == "deep" and verdict == "reproduced" and spread.low > 0:  # no better, and in fact reliably worse
            reason += "; the deeper model was worse, which 'no better' allows but 'very similar' does not"
        return Finding(ours, verdict, reason, detectable_text(spread, "relative"))
    return finding


def _aux_heads(e: dict) -> Finding:
    modality: Spread | None = e.get("aux_modality")
    cls: Spread | None = e.get("aux_class")
    guess = e["aux_guess"]
    main = e.get("aux_main") or {}
    ours = (f"main run, shown but not judged: modality {percent(main['modality'])}, class {percent(main['class'])}; "
            if main else "") + (
        f"study: modality {modality.text(1, percent=True)}" + (f"; class {percent(cls.mean)}" if cls else "")
        if modality else "study: not trained") + f"; a guess in the label proportions scores {percent(guess)}"
    if modality is None:
        return Finding(ours, "inconclusive", "the study's runs were not trained in this build")
    low, high = guess - TESTS["aux_heads"].margin, guess + TESTS["aux_heads"].margin
    if modality.low is None:
        verdict, reason = "inconclusive", _no_interval(modality)
    elif modality.exact_bound and (modality.mean > high or modality.mean < low) and low <= modality.high and \
            modality.low <= high:
        verdict = "inconclusive"
        reason = (f"every seed read {modality.mean:.0%}, outside the band, but {modality.n} identical seeds bound the "
                  f"mean only within {percent(modality.low)} to {percent(modality.high)}, which reaches into it; more "
                  "seeds would decide it")
    elif low <= modality.low and modality.high <= high:
        verdict, reason = "reproduced", "the interval lies inside the band around chance"
    elif modality.high < low or modality.low > high:
        verdict, reason = "not reproduced", "the interval lies outside the band around chance"
    else:
        verdict, reason = "inconclusive", "the interval straddles the band's edge"
    # the claim holds only inside the band, so an interval from a spread wider than the band can never show it, whatever
    # the head; a decided verdict, or a bound from identical seeds, needs no such warning
    narrow_enough = (modality.low is None or modality.exact_bound or verdict != "inconclusive"
                     or modality.high - modality.low <= high - low)
    band = "" if narrow_enough else (
        f"; the interval spans {100 * (modality.high - modality.low):.0f} points and the band "
        f"{100 * (high - low):.0f}, so at this spread even a head exactly at the guess could not be called near chance")
    return Finding(ours, verdict, reason, detectable_text(modality, "points") + band)


def _separation(target: str, test: str, claimed_above: bool) -> Callable[[dict], Finding]:
    """Judged class by class, like the samples (`cvae.study.class_by_class`): a class's test images are independent
    draws, and a point's share of neighbours with its label lies in [0, 1], so it varies no more than a yes-or-no
    outcome with the same mean; but the map is fitted to the same points, so the interval may be too narrow. PCA and
    t-SNE must agree."""
    def finding(e: dict) -> Finding:
        counts: dict[str, list[tuple[float, int]]] = e["separation_counts"][target]
        probe: Spread | None = e.get(f"probe_{target}")
        margin = TESTS[test].margin
        ours = "; ".join(f"{method}: {rates_text(by_class, claimed_above)}" for method, by_class in counts.items())
        ours = f"{target} of the 10 nearest 2-D neighbours, {ours}" + (
            f"; a linear probe on mu reads the {target} at {percent(probe.mean)}" if probe else "")
        judged = {method: class_by_class(by_class, margin, claimed_above) for method, by_class in counts.items()}
        verdicts = {verdict for verdict, _ in judged.values()}
        verdict = verdicts.pop() if len(verdicts) == 1 else "inconclusive"
        reason = "; ".join(f"{method}: {why}" for method, (_, why) in judged.items())
        detectable = "; ".join(f"{method} {every_class_detectable(by_class, margin, claimed_above, 'points')}"
                               for method, by_class in counts.items())
        return Finding(ours, verdict, reason, detectable)
    return finding


def _reconstructions(e: dict) -> Finding:
    spread: Spread = e["recon_ssim_gain_path"]
    ours = (f"PathMNIST SSIM {e['recon_ssim_path']:.3f}, {spread.mean:+.3f} over the class-mean image, "
            f"95% CI {spread.low:+.3f} to {spread.high:+.3f} over {spread.n} classes")
    verdict = read_against(spread, TESTS["reconstructions"].margin, claimed_above=True)
    return Finding(ours, verdict, "the interval over classes against the margin", detectable_text(spread, "ssim"))


def _samples(e: dict) -> Finding:
    """Judged class by class: a class's samples are independent draws, so each class gets an exact interval over its
    own samples, and the claim holds only if every class's interval lies above the margin."""
    cls: Spread = e["conditional_class"]
    counts: list[tuple[int, int]] = e["modality_counts"]
    margin = TESTS["samples"].margin
    ours = (f"modality {rates_text(counts, above=True).replace(' points', ' samples')}; class "
            f"{cls.text(1, percent=True)}, against chance {percent(e['class_chance'])}")
    verdict, reason = class_by_class(counts, margin, above=True)
    return Finding(ours, verdict, reason, every_class_detectable(counts, margin, above=True))


def _class_conditional(e: dict) -> Finding:
    """The gap between the evaluator's class accuracy on real test images and on samples, paired by class (t-interval
    over classes), against the margin: 'challenging' holds when the whole interval lies above it."""
    cls: Spread = e["conditional_class"]
    gap: Spread = e["class_gap"]
    margin = TESTS["class_conditional"].margin
    ours = (f"samples' class accuracy {percent(cls.mean)}, real test images' {percent(e['evaluator_accuracy'])}, "
            f"means over classes; gap {gap.points()}, chance {percent(e['class_chance'])}")
    verdict = read_against(gap, margin, claimed_above=True)
    side = {"reproduced": "lies wholly above", "not reproduced": "lies wholly below"}.get(verdict, "straddles")
    reason = (f"the gap's interval over classes {side} {100 * margin:.0f} points" if gap.low is not None
              else "no interval over classes")
    return Finding(ours, verdict, reason, detectable_text(gap, "points"))


_FINDERS: dict[str, Callable[[dict], Finding]] = {
    "best_epoch": _best_epoch,
    "latent": _relative("latent", claimed_above=True, subject="latent 64", baseline="latent 128"),
    "deep": _relative("deep", claimed_above=True, subject="the deeper model", baseline="the original's"),
    "aux_heads": _aux_heads,
    "modality_clusters": _separation("modality", "modality_clusters", claimed_above=True),
    "class_overlap": _separation("class", "class_overlap", claimed_above=False),
    "reconstructions": _reconstructions,
    "samples": _samples,
    "class_conditional": _class_conditional,
}


def _gate(claim: Claim, evidence: dict) -> Learned:
    gates = evidence.get("learned") or {}
    return combine([gates[name] for name in claim.runs if name in gates])


def _gate_reason(claim: Claim, learned: Learned) -> str:
    """Which runs failed the learning gate and on what: 'the main run failed the learning gate: ...', '4 of 4 study
    runs failed the learning gate on reconstructions and samples, in every modality' (the rule states the criteria)."""
    if learned.failed_runs > 1:
        runs = "runs" if "main" in claim.runs else "study runs"
        return (f"{learned.failed_runs} of {learned.runs} {runs} failed the learning gate on "
                f"{missed_text(learned.missed, short=True)}")
    name, _, details = learned.failing.partition(": ")
    return f"{'the ' if name.startswith('main run') else ''}{name} failed the learning gate: {details}"


def assess(claim: Claim, evidence: dict) -> tuple[Finding, Learned]:
    """The finding for one claim from the build's evidence (see `claims_table` for the keys), and its gate."""
    learned = _gate(claim, evidence)
    try:
        finding = _FINDERS[claim.key](evidence)
    except (KeyError, TypeError, AttributeError):
        finding = Finding("not measured", "inconclusive", "this build did not measure it")
    if claim.about_images and evidence["synthetic"]:
        return Finding(finding.ours, "not testable on this data",
                       "the claim is about medical images and this build used the synthetic stand-in",
                       finding.detectable), learned
    if not learned.ok and finding.verdict != "not testable at this scale":  # a reason of its own comes first
        return Finding(finding.ours, "not testable at this scale", _gate_reason(claim, learned),
                       finding.detectable), learned
    if evidence["synthetic"] and finding.verdict in ("reproduced", "not reproduced", "inconclusive"):
        finding = Finding(finding.ours, finding.verdict, f"{finding.reason}; on the stand-in this judges the pipeline",
                          finding.detectable)
    return finding, learned


def claims_table(evidence: dict) -> pd.DataFrame:
    """One row per claim: claim, original (quoted), ours, test, margin, verdict, reason, detectable, runs_learned,
    failing; indexed by claim key.

    `evidence` keys: synthetic (bool); epochs and best_epoch (1-based) of the main run; latent, deep (Spread of the
    paired relative difference of the validation loss at the final KL weight, positive = higher loss than the
    paper's model); aux_class, aux_modality (Spread over the study's seeds), aux_main {class, modality} (the main
    run), aux_guess (what a modality head guessing in the label proportions scores); separation {modality|class:
    {method: Spread over classes}} and separation_counts {modality|class: {method: [(agreeing neighbour share summed
    over a class's points, points)] per class}}; probe_modality, probe_class, conditional_modality, conditional_class
    (Spread over classes); modality_counts [(samples of the right modality, samples)] per class; class_chance;
    evaluator_accuracy (on real test images, mean over classes); class_gap (Spread over classes of the real images'
    class accuracy less the samples', paired by class); recon_ssim_path (float) and recon_ssim_gain_path (Spread
    over classes); learned {run group: Learned}."""
    rows = []
    for claim in CLAIMS:
        finding, learned = assess(claim, evidence)
        test = TESTS.get(claim.key)
        rows.append({"key": claim.key, "claim": claim.claim, "original": claim.original, "ours": finding.ours,
                     "test": test.name if test else "", "margin": test.margin_text if test else "",
                     "verdict": finding.verdict, "reason": finding.reason, "detectable": finding.detectable,
                     "runs_learned": learned.ok, "failing": learned.failing})
    return pd.DataFrame(rows).set_index("key")


def claims_report(table: pd.DataFrame) -> list[dict]:
    """The claims as JSON records: key, claim, original, ours, test, margin, verdict, reason, detectable_effect and
    runs_learned {value, failing}."""
    return [{"key": key, "claim": row["claim"], "original": row["original"], "ours": row["ours"],
             "test": row["test"], "margin": row["margin"], "verdict": row["verdict"], "reason": row["reason"],
             "detectable_effect": row["detectable"],
             "runs_learned": {"value": bool(row["runs_learned"]), "failing": row["failing"]}}
            for key, row in table.iterrows()]


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many claims got each verdict: {verdict: count} over VERDICTS (zeros included)."""
    counts = table["verdict"].value_counts()
    return {verdict: int(counts.get(verdict, 0)) for verdict in VERDICTS}


def sentence(table: pd.DataFrame, key: str, data_label: str) -> str:
    """Two sentences stating a claim's verdict from the table: '<Claim>: not reproduced on <data>, because <reason>.
    Measured: <ours>.' The only way the book words a verdict. A claim the data could not test leaves its
    measurement to the table, since it is not evidence either way."""
    row = table.loc[key]
    claim = row["claim"][0].upper() + row["claim"][1:]
    verdict = row["verdict"] if row["verdict"] == "not testable on this data" else f"{row['verdict']} on {data_label}"
    measured = "" if row["verdict"].startswith("not testable") else f" Measured: {row['ours']}."
    return f"{claim}: {verdict}, because {row['reason']}.{measured}"


__all__ = ["CLAIMS", "Claim", "Finding", "RULE", "RULE_STEPS", "rule_markdown",
           "TESTS", "Test", "VERDICTS", "assess", "claims_report", "claims_table", "detectable_text", "read_against",
           "sentence", "verdict_counts"]
