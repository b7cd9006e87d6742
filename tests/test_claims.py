"""The claims table: each rule gives each verdict from fixed metrics; sentences say what the table says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cvae.claims import CLAIMS, RULE, VERDICTS, claims_table, sentence, verdict_counts
from cvae.paths import PROJECT_ROOT
from cvae.spread import Spread, accuracy_interval, mean_interval, over_seeds, paired_relative_difference


def _seeds(mean: float, half: float, n: int = 3) -> Spread:
    return Spread(mean, half / 2, n, mean - half, mean + half, "seeds")


def evidence(**changes) -> dict:
    """Real-data evidence where every claim is reproduced; tests change one item at a time."""
    base = {
        "synthetic": False, "epochs": 150, "best_epoch": 79, "best_epoch_seeds": _seeds(80.0, 6.0),
        "latent": _seeds(0.05, 0.02), "deep": _seeds(0.01, 0.005),
        "aux_class": _seeds(0.34, 0.02), "aux_modality": _seeds(0.39, 0.03),
        "probe_modality": accuracy_interval(9_950, 10_000), "conditional_modality": accuracy_interval(1_950, 2_000),
        "conditional_class": accuracy_interval(600, 2_000), "class_chance": 1 / 21,
        "class_chance_within_modality": 3 / 21,
        "recon_ssim_path": 0.61, "recon_ssim_gain_path": mean_interval([0.1, 0.12, 0.09, 0.11, 0.1]),
    }
    base.update(changes)
    return base


def test_every_claim_of_the_original_has_a_row_in_order():
    table = claims_table(evidence())
    assert list(table.index) == [c.key for c in CLAIMS] == [
        "best_epoch", "latent", "deep", "aux_heads", "modality_clusters", "reconstructions", "samples"]
    assert list(table.columns) == ["claim", "original", "ours", "verdict", "reason"]
    assert set(table["verdict"]) == {"reproduced"}
    assert table.loc["best_epoch", "original"] == "epoch 79 of 150"
    assert "34%" in table.loc["aux_heads", "original"] and "39%" in table.loc["aux_heads", "original"]


@pytest.mark.parametrize("key, changes, verdict", [
    # the stand-in cannot test a claim about medical images, and a short schedule cannot test the best epoch
    ("modality_clusters", {"synthetic": True}, "not testable on this data"),
    ("reconstructions", {"synthetic": True}, "not testable on this data"),
    ("samples", {"synthetic": True}, "not testable on this data"),
    ("best_epoch", {"epochs": 30, "best_epoch": 12}, "not testable on this data"),
    # one run is not enough to compare runs
    ("best_epoch", {"best_epoch_seeds": None}, "inconclusive"),
    ("latent", {"latent": over_seeds([0.05, 0.06])}, "inconclusive"),
    ("latent", {"latent": None}, "inconclusive"),
    # the interval against the claim's threshold
    ("latent", {"latent": _seeds(0.01, 0.03)}, "inconclusive"),
    ("latent", {"latent": _seeds(-0.05, 0.02)}, "not reproduced"),
    ("deep", {"deep": _seeds(-0.04, 0.01)}, "not reproduced"),  # the deeper model is clearly better
    ("deep", {"deep": _seeds(0.0, 0.02)}, "inconclusive"),
    ("best_epoch", {"best_epoch_seeds": _seeds(148.0, 1.0)}, "not reproduced"),
    ("aux_heads", {"aux_class": _seeds(0.97, 0.01), "aux_modality": _seeds(0.99, 0.01)}, "not reproduced"),
    ("aux_heads", {"aux_class": _seeds(0.34, 0.2)}, "inconclusive"),
    ("aux_heads", {"aux_modality": over_seeds([0.39])}, "inconclusive"),
    ("modality_clusters", {"probe_modality": accuracy_interval(800, 1_000)}, "not reproduced"),
    ("modality_clusters", {"probe_modality": accuracy_interval(95, 100)}, "inconclusive"),
    ("reconstructions", {"recon_ssim_gain_path": mean_interval([-0.2, -0.1, -0.15, -0.12])}, "not reproduced"),
    ("reconstructions", {"recon_ssim_gain_path": mean_interval([-0.2, 0.2, -0.1, 0.1])}, "inconclusive"),
    ("samples", {"conditional_modality": accuracy_interval(1_000, 2_000)}, "not reproduced"),
    ("samples", {"conditional_class": accuracy_interval(60, 2_000)}, "not reproduced"),
    # above 1/21 but within what knowing the modality gives: the samples do not differ by class beyond it
    ("samples", {"conditional_class": accuracy_interval(200, 2_000)}, "not reproduced"),
    ("samples", {"conditional_modality": accuracy_interval(180, 200)}, "inconclusive"),
])
def test_each_rule_gives_each_verdict(key, changes, verdict):
    assert claims_table(evidence(**changes)).loc[key, "verdict"] == verdict


def test_the_stand_in_still_gets_verdicts_on_claims_about_the_model():
    table = claims_table(evidence(synthetic=True, latent=_seeds(-0.05, 0.02)))
    assert table.loc["latent", "verdict"] == "not reproduced"
    assert table.loc["aux_heads", "verdict"] == "reproduced"
    assert verdict_counts(table) == {"reproduced": 3, "not reproduced": 1, "inconclusive": 0,
                                     "not testable on this data": 3}
    assert table.loc["aux_heads", "reason"].endswith(
        "on the stand-in, a verdict about this pipeline, not about MedMNIST")
    # a claim about medical images gets no verdict from the stand-in, but the row still shows what it measured
    assert table.loc["modality_clusters", "ours"] == (
        "linear probe on mu reads the modality at 99.5% (n = 10,000 test images, 95% CI 99.3 to 99.6%) "
        "(on the stand-in)")
    assert "stand-in" not in claims_table(evidence()).loc["aux_heads", "reason"]


def test_a_comparison_says_which_run_had_the_lower_loss():
    lower = claims_table(evidence(latent=_seeds(-0.025, 0.043))).loc["latent", "ours"]
    assert lower == ("latent 64: best validation loss 2.5% lower than latent 128 "
                     "(difference -6.8% to +1.8%, 95% CI, 3 seeds)")
    higher = claims_table(evidence(deep=_seeds(0.017, 0.045))).loc["deep", "ours"]
    assert higher.startswith("the deeper model: best validation loss 1.7% higher than the original's")


def test_paired_relative_difference_and_the_verdict_use_the_same_seeds():
    paper = [30.0, 31.0, 29.5]
    small = [33.0, 33.5, 32.0]  # latent 64: about 8% higher loss on every seed
    spread = paired_relative_difference(small, paper)
    assert spread.n == 3 and spread.mean == pytest.approx((3 / 30 + 2.5 / 31 + 2.5 / 29.5) / 3)
    assert claims_table(evidence(latent=spread)).loc["latent", "verdict"] == "reproduced"
    with pytest.raises(ValueError, match="same seeds"):
        paired_relative_difference([1.0, 2.0], [1.0])


def test_sentences_state_the_tables_verdict_and_nothing_else():
    table = claims_table(evidence(synthetic=True, latent=_seeds(-0.05, 0.02)))
    text = sentence(table, "latent", "the synthetic stand-in")
    assert "is NOT REPRODUCED on the synthetic stand-in" in text
    assert sum(verdict.upper() in text for verdict in ("inconclusive", "not testable")) == 0
    assert "straddles" not in text and "clears 0" in text


VERDICT_WORDS = re.compile(r"\b(reproduced|inconclusive|not testable|supports?|supported|confirm(?:s|ed)?|"
                           r"refute[sd]?|most likely)\b", re.IGNORECASE)


def _prose_sources() -> dict[str, str]:
    """Markdown pages and the markdown cells of the chapter sources, without their glue roles."""
    import jupytext

    texts = {str(p.relative_to(PROJECT_ROOT)): p.read_text() for p in sorted((PROJECT_ROOT / "book").glob("*.md"))}
    for source in sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        notebook = jupytext.read(source)
        texts[str(source.relative_to(PROJECT_ROOT))] = "\n".join(
            c.source for c in notebook.cells if c.cell_type == "markdown")
    return {name: re.sub(r"\{glue:?\w*\}`[^`]*`", "", text) for name, text in texts.items()}


def test_no_page_words_a_verdict_by_hand():
    """Verdicts reach the pages only as glued sentences built from the claims table; prose never states one."""
    offending = [f"{name}: {line.strip()[:160]}" for name, text in _prose_sources().items()
                 for line in text.splitlines() if VERDICT_WORDS.search(line)]
    assert offending == [], "\n".join(offending)
    assert all(verdict in RULE for verdict in VERDICTS)


def test_chapter_summaries_state_what_the_numbers_show():
    from cvae.findings import reconstruction_summary, sampling_summary

    def gain(mean, low, high):
        return {"mean": mean, "sd": 0.1, "n": 500, "low": low, "high": high, "kind": "images"}

    evaluation = {
        "recon_ssim": {"pathmnist": 0.05, "tissuemnist": 0.4, "octmnist": 0.3},
        "recon_ssim_gain_over_class_mean": {"pathmnist": gain(-0.02, -0.03, -0.01),
                                            "tissuemnist": gain(0.05, 0.04, 0.06),
                                            "octmnist": gain(0.001, -0.002, 0.004)},
        "conditional_modality_accuracy": 0.5, "conditional_class_accuracy": 0.1,
        "generation_sizes": {"samples": 100},
    }
    text = reconstruction_summary(evaluation)
    assert "PathMNIST 0.05 (-0.020, 95% CI -0.030 to -0.010)" in text
    assert "For TissueMNIST the reconstructions keep more of the individual image than its class average" in text
    assert "for PathMNIST they are further from the image than its class average is" in text
    assert "for OCTMNIST they are indistinguishable from the class average." in text
    # Wilson 95% interval of 50/100: 40.4%-59.6%; of 10/100: 5.5%-17.4%
    assert sampling_summary(evaluation) == (
        "The evaluator assigns 50.0% (95% CI 40.4%-59.6%; chance 33.3%) of the samples to the modality they were "
        "conditioned on and 10.0% (95% CI 5.5%-17.4%; chance 4.8%, 14.3% among the right modality's classes) to "
        "their class, out of 100 samples.")


def test_an_accuracy_interval_over_seeds_stays_inside_zero_and_one():
    # 0.998, 1.0, 1.0: mean 0.99933, sd 0.001155, half-width 4.303 * 0.001155 / sqrt(3) = 0.00287
    free = over_seeds([0.998, 1.0, 1.0])
    assert free.high == pytest.approx(1.0022, abs=1e-4)
    bounded = over_seeds([0.998, 1.0, 1.0], bounds=(0.0, 1.0))
    assert bounded.high == 1.0 and bounded.low == pytest.approx(free.low) and bounded.mean == pytest.approx(0.99933, abs=1e-5)
