"""The claims table: each rule gives each verdict from fixed metrics; sentences say what the table says."""

from __future__ import annotations

import re

import pytest

from cvae.core.labels import DATASETS, MODALITY_OF_CLASS
from cvae.core.paths import PROJECT_ROOT
from cvae.core.spread import Spread, over_classes, over_seeds, paired_relative_difference
from cvae.study.claims import CLAIMS, RULE, TESTS, VERDICTS, claims_report, claims_table, sentence, verdict_counts
from cvae.study.evidence_gate import Learned, learning_gate


def _seeds(mean: float, half: float, n: int = 3) -> Spread:
    return Spread(mean, half / 2, n, mean - half, mean + half, "seeds")


def _classes(mean: float, half: float, n: int = 21) -> Spread:
    return Spread(mean, half, n, mean - half, mean + half, "classes")


LEARNED = {name: Learned(True) for name in ("main", "paper", "latent64", "deep")}


def _separated(modality: tuple[float, float], classes: tuple[float, float], points: int = 100, last=None) -> dict:
    """Neighbour agreement counts (successes, points) of 21 classes for PCA and t-SNE; `last` changes the last class
    of both methods and both targets."""
    def by_class(right: float) -> list[tuple[float, int]]:
        return [(right, points)] * 20 + [(last if last is not None else right, points)]
    return {"modality": {"PCA": by_class(modality[0]), "t-SNE": by_class(modality[1])},
            "class": {"PCA": by_class(classes[0]), "t-SNE": by_class(classes[1])}}


def evidence(**changes) -> dict:
    """Real-data evidence where every claim with a verdict is reproduced; tests change one item at a time."""
    base = {
        "synthetic": False, "epochs": 30, "best_epoch": 20,
        "latent": _seeds(0.05, 0.02), "deep": _seeds(0.01, 0.02),
        "aux_class": _seeds(0.06, 0.02), "aux_modality": _seeds(0.40, 0.03),
        "aux_main": {"class": 0.07, "modality": 0.41}, "aux_guess": 0.392,
        "separation": {"modality": {"PCA": _classes(0.97, 0.02), "t-SNE": _classes(0.99, 0.01)},
                       "class": {"PCA": _classes(0.30, 0.05), "t-SNE": _classes(0.35, 0.05)}},
        "separation_counts": _separated(modality=(99.0, 100.0), classes=(30.0, 35.0)),
        "probe_modality": _classes(0.995, 0.004), "probe_class": _classes(0.6, 0.1),
        "conditional_modality": _classes(0.99, 0.01), "conditional_class": _classes(0.3, 0.1),
        "modality_counts": [(100, 100)] * 20 + [(99, 100)],
        "class_chance": 1 / 21, "evaluator_accuracy": 0.6, "class_gap": _classes(0.30, 0.05),
        "recon_ssim_path": 0.61, "recon_ssim_gain_path": _classes(0.10, 0.02, 9),
        "learned": dict(LEARNED),
    }
    base.update(changes)
    return base


def test_every_claim_of_the_original_has_a_row_in_order_with_its_margin():
    table = claims_table(evidence())
    assert list(table.index) == [c.key for c in CLAIMS] == [
        "best_epoch", "latent", "deep", "aux_heads", "modality_clusters", "class_overlap", "reconstructions",
        "samples", "class_conditional"]
    assert list(table.columns) == ["claim", "original", "ours", "test", "margin", "verdict", "reason", "detectable",
                                   "runs_learned", "failing"]
    assert set(table.drop(index="best_epoch")["verdict"]) == {"reproduced"}
    assert table.loc["best_epoch", "verdict"] == "not testable at this scale"  # 30 epochs, not the original's 150
    assert all(table.loc[key, "margin"] == TESTS[key].margin_text for key in TESTS)
    assert table.loc["deep", "test"] == "no better" and table.loc["latent", "test"] == "clearly lower"
    assert table.loc["aux_heads", "test"] == "near chance"


def test_quotes_are_the_originals_words():
    original = (PROJECT_ROOT.parent / "shared" / "original-report.md")
    if not original.exists():
        pytest.skip("the original report lies beside the project in shared/")
    text = " ".join(original.read_text().split())
    for claim in CLAIMS:
        quoted = re.findall(r'"([^"]+)"', claim.original)
        assert quoted, claim.key
        for words in quoted:
            assert words in text, (claim.key, words)


@pytest.mark.parametrize("key, changes, verdict", [
    # the stand-in cannot test a claim about medical images
    ("modality_clusters", {"synthetic": True}, "not testable on this data"),
    ("class_overlap", {"synthetic": True}, "not testable on this data"),
    ("reconstructions", {"synthetic": True}, "not testable on this data"),
    ("samples", {"synthetic": True}, "not testable on this data"),
    # the best epoch needs the original's schedule, and then seeds
    ("best_epoch", {"epochs": 150, "best_epoch": 79}, "inconclusive"),
    # "clearly lower": the whole interval beyond the 2% margin
    ("latent", {"latent": _seeds(0.01, 0.03)}, "inconclusive"),
    ("latent", {"latent": _seeds(0.002, 0.0005)}, "not reproduced"),  # a consistent 0.2%: not clearly lower
    ("latent", {"latent": _seeds(-0.05, 0.02)}, "not reproduced"),
    ("latent", {"latent": over_seeds([0.05, 0.051])}, "reproduced"),  # two seeds whose interval clears 2%
    ("latent", {"latent": over_seeds([0.05])}, "inconclusive"),  # one seed: no interval
    ("latent", {"latent": None}, "inconclusive"),
    # "no better": non-superiority with a 5% margin
    ("deep", {"deep": _seeds(0.021, 0.046)}, "reproduced"),  # -2.5% to +6.7%: an interval around 0 supports it
    ("deep", {"deep": _seeds(-0.10, 0.02)}, "not reproduced"),  # the deeper model clearly better
    ("deep", {"deep": _seeds(-0.05, 0.03)}, "inconclusive"),
    # "near chance": the modality head's interval inside 5 points around a guess in the label proportions
    ("aux_heads", {"aux_class": _seeds(0.97, 0.01), "aux_modality": _seeds(0.99, 0.01)}, "not reproduced"),
    ("aux_heads", {"aux_modality": _seeds(0.30, 0.03)}, "not reproduced"),  # below chance: it reads something too
    ("aux_heads", {"aux_modality": _seeds(0.44, 0.03)}, "inconclusive"),
    ("aux_heads", {"aux_modality": over_seeds([0.39])}, "inconclusive"),
    # separation in the 2-D embeddings, class by class over each class's points
    ("modality_clusters", {"separation_counts": _separated((60.0, 70.0), (30.0, 35.0))}, "not reproduced"),
    ("modality_clusters", {"separation_counts": _separated((60.0, 99.0), (30.0, 35.0))},
     "inconclusive"),  # PCA and t-SNE disagree
    ("modality_clusters", {"separation_counts": _separated((99.0, 100.0), (30.0, 35.0), last=93.0)}, "inconclusive"),
    ("class_overlap", {"separation_counts": _separated((99.0, 99.0), (80.0, 90.0))}, "not reproduced"),
    ("class_overlap", {"separation_counts": _separated((99.0, 99.0), (30.0, 35.0), last=45.0)}, "inconclusive"),
    ("reconstructions", {"recon_ssim_gain_path": _classes(0.02, 0.01, 9)}, "not reproduced"),
    ("reconstructions", {"recon_ssim_gain_path": _classes(0.06, 0.03, 9)}, "inconclusive"),
    ("samples", {"modality_counts": [(100, 100)] * 20 + [(79, 100)]}, "not reproduced"),
    # "remains challenging": real images' class accuracy at least 10 points above the samples', paired by class
    ("class_conditional", {"class_gap": _classes(0.12, 0.04)}, "inconclusive"),  # 8 to 16 points, margin 10
    ("class_conditional", {"class_gap": _classes(0.05, 0.03)}, "not reproduced"),  # 2 to 8 points
    ("class_conditional", {"class_gap": over_seeds([0.3] * 21, (-1.0, 1.0), kind="classes")}, "inconclusive"),
    ("samples", {"modality_counts": [(100, 100)] * 20 + [(80, 100)]}, "inconclusive"),  # not below at 0.05 / 21
    ("samples", {"modality_counts": [(100, 100)] * 20 + [(93, 100)]}, "inconclusive"),
])
def test_each_rule_gives_each_verdict(key, changes, verdict):
    assert claims_table(evidence(**changes)).loc[key, "verdict"] == verdict


def test_a_run_that_did_not_learn_makes_its_claim_not_testable_at_this_scale():
    gate = learning_gate("latent64 seed 1", 0.01, 1 / 21, 1 / 21)
    assert not gate.ok and gate.failing == "latent64 seed 1: sample class accuracy 4.8%, needs 9.8%"
    assert learning_gate("main run", -0.02, 0.5, 1 / 21).failing == (
        "main run: SSIM gain over the class-mean image not clearly above 0 (lower 95% bound -0.020)")
    assert learning_gate("main run", 0.02, 0.0981, 1 / 21).ok
    table = claims_table(evidence(learned={**LEARNED, "latent64": gate}))
    assert table.loc["latent", "verdict"] == "not testable at this scale"
    assert table.loc["latent", "reason"] == ("latent64 seed 1 failed the learning gate: sample class accuracy 4.8%, "
                                             "needs 9.8%")
    assert table.loc["latent", "failing"] == gate.failing
    assert not table.loc["latent", "runs_learned"] and table.loc["deep", "verdict"] == "reproduced"
    # the main run gates the claims it alone measures; a claim about images on the stand-in says so first
    table = claims_table(evidence(learned={**LEARNED, "main": Learned(False, "main run: x", ("x",), 1)}))
    assert table.loc["samples", "verdict"] == "not testable at this scale"
    assert table.loc["samples", "reason"] == "the main run failed the learning gate: x"
    several = Learned(False, "", ("reconstructions not clearly better than the class-mean image",), 4, 4)
    table = claims_table(evidence(learned={**LEARNED, "paper": several}))  # study runs are called study runs
    assert table.loc["latent", "reason"] == "4 of 5 study runs failed the learning gate on reconstructions"
    table = claims_table(evidence(synthetic=True, learned={**LEARNED, "main": Learned(False, "main run: x")}))
    assert table.loc["samples", "verdict"] == "not testable on this data"


def test_the_gate_holds_every_modality_to_its_own_classes():
    from cvae.study.evidence_gate import missed_text, modality_gate
    from cvae.study.findings import main_run_gate

    learned = {"pathmnist": 0.02, "tissuemnist": 0.03, "octmnist": 0.01}
    assert modality_gate("main run", learned, {"pathmnist": 0.17, "tissuemnist": 0.18, "octmnist": 0.31}).ok
    # PathMNIST's reconstructions no better than its class means: the run fails, whatever the other two did
    gate = modality_gate("main run", {**learned, "pathmnist": -0.01}, {"pathmnist": 0.5, "tissuemnist": 0.5,
                                                                      "octmnist": 0.5})
    assert not gate.ok and gate.failed_runs == 1
    assert gate.failing == ("main run: PathMNIST SSIM gain over the class-mean image not clearly above 0 (lower 95% "
                            "bound -0.010)")
    assert gate.missed == ("reconstructions no better than the class-mean image in PathMNIST",)
    # chance among a modality's own classes: 1/9, 1/8 and 1/4, each plus 5 points
    gate = modality_gate("main run", learned, {"pathmnist": 0.16, "tissuemnist": 0.176, "octmnist": 0.29})
    assert gate.missed == ("samples' class accuracy under chance plus 5 points in PathMNIST",
                           "samples' class accuracy under chance plus 5 points in OCTMNIST")
    both = (*gate.missed, "reconstructions no better than the class-mean image in OCTMNIST",
            "reconstructions no better than the class-mean image in PathMNIST")
    assert missed_text(both) == ("samples' class accuracy under chance plus 5 points and reconstructions no better "
                                 "than the class-mean image, in PathMNIST and OCTMNIST")
    assert missed_text(both, short=True) == "samples and reconstructions, in PathMNIST and OCTMNIST"
    every = tuple(f"{criterion} in {name}" for name in ("PathMNIST", "TissueMNIST", "OCTMNIST")
                  for criterion in ("reconstructions no better than the class-mean image", "x"))
    assert missed_text(every[:-1] + ("y in OCTMNIST",)) == (
        "reconstructions no better than the class-mean image in every modality; x in PathMNIST and TissueMNIST; y in "
        "OCTMNIST")
    evaluation = {"recon_ssim_gain_over_class_mean": {flag: {"low": low} for flag, low in learned.items()},
                  "conditional_class_accuracy_by_modality": {"pathmnist": 0.5, "tissuemnist": 0.5, "octmnist": 0.2}}
    assert main_run_gate(evaluation).failing == "main run: OCTMNIST sample class accuracy 20.0%, needs 30.0%"


def test_a_clustered_sample_set_gets_a_wide_interval_over_classes():
    # 21 classes, each all right or all wrong: 6 of 21 right is 28.6% of samples
    by_class = [1.0] * 6 + [0.0] * 15
    spread = over_classes(by_class)
    assert spread.mean == pytest.approx(6 / 21) and spread.kind == "classes"
    # sd 0.4629, t(0.975, 20) = 2.0860: 28.6% +- 21.1 points, where Wilson over 2,100 samples would give +-1.9
    assert spread.low == pytest.approx(0.0750, abs=1e-3) and spread.high == pytest.approx(0.4965, abs=1e-3)
    # the samples claim is judged class by class: two classes whose samples all fail are two failing classes
    table = claims_table(evidence(modality_counts=[(100, 100)] * 19 + [(0, 100)] * 2))
    assert table.loc["samples", "verdict"] == "not reproduced"  # 90.5% of all samples, but two classes at 0%
    assert table.loc["samples", "reason"] == ("2 of 21 classes lie wholly below 90%, at the Bonferroni level over the "
                                              "21 classes")


def test_the_samples_claim_is_judged_class_by_class_so_a_better_class_never_hurts():
    from cvae.core.spread import clopper_pearson, rate_over_classes

    # exact intervals over a class's own samples: 100 of 100 right bounds the rate at 0.025^(1/100) = 96.4%
    assert clopper_pearson(100, 100)[0] == pytest.approx(0.025 ** (1 / 100)) == pytest.approx(0.96378, abs=1e-5)
    assert clopper_pearson(96, 100)[0] == pytest.approx(0.90074, abs=1e-5)  # the fewest right that clear 90%
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    perfect = claims_table(evidence(conditional_modality=rate_over_classes([1.0] * 21),
                                    modality_counts=[(100, 100)] * 21))
    assert perfect.loc["samples", "verdict"] == "reproduced"
    assert perfect.loc["samples", "reason"] == "every class's interval lies above 90%, the lowest from 96.4%"
    # monotone: lowering one class from 100 to 97 right moves its lower bound down, never the verdict up
    for right in range(100, 89, -1):
        verdict = claims_table(evidence(modality_counts=[(100, 100)] * 20 + [(right, 100)])).loc["samples", "verdict"]
        assert verdict == ("reproduced" if right >= 96 else "inconclusive" if right >= 85 else "not reproduced")
    # with 100 samples a class needs 96 right to clear 90%; all 21 clear it together with 80% power from 98.7% up
    assert perfect.loc["samples", "detectable"] == "every class 8.7 points above the margin, at 98.7%"
    few = claims_table(evidence(modality_counts=[(30, 30)] * 21)).loc["samples"]  # 0.025^(1/30) = 88.4%
    assert few["verdict"] == "inconclusive" and few["detectable"] == "none: 30 samples per class cannot clear 90%"


def test_neighbour_separation_is_judged_class_by_class_so_a_better_class_never_hurts():
    # a point's share of its 10 neighbours with its modality, summed over a class's 100 points: 100 of 100 bounds the
    # class at 0.025^(1/100) = 96.4%, where 21 classes at 100% bounded the old rate over classes only at 83.9%
    table = claims_table(evidence(separation_counts=_separated((100.0, 100.0), (0.0, 0.0))))
    assert table.loc["modality_clusters", "verdict"] == table.loc["class_overlap", "verdict"] == "reproduced"
    assert table.loc["modality_clusters", "reason"] == ("PCA: every class's interval lies above 90%, the lowest from "
                                                        "96.4%; t-SNE: every class's interval lies above 90%, the "
                                                        "lowest from 96.4%")
    assert table.loc["class_overlap", "reason"].startswith("PCA: every class's interval lies below 50%, the highest "
                                                           "up to 3.6%")
    # one class of 21 gets worse, step by step: 96 of 100 clear 90% (lower bound 90.07%); 80 still reach it at the
    # Bonferroni level over 21 classes (upper bound 90.41% at 1 - 0.05/21), 79 do not (89.69%)
    for right in (100.0, 99.0, 97.5, 96.0, 95.9, 93.0, 90.0, 84.0, 80.0, 79.0, 70.0):
        verdict = claims_table(evidence(separation_counts=_separated((100.0, 100.0), (30.0, 30.0), last=right)))
        assert verdict.loc["modality_clusters", "verdict"] == (
            "reproduced" if right >= 96 else "inconclusive" if right >= 80 else "not reproduced"), right
    ours = table.loc["modality_clusters", "ours"]
    assert ours.startswith("modality of the 10 nearest 2-D neighbours, PCA: 100% over classes, lowest class 100% "
                           "of its 100 points; t-SNE: ")
    assert table.loc["modality_clusters", "detectable"] == ("PCA every class 8.7 points above the margin, at 98.7%; "
                                                            "t-SNE every class 8.7 points above the margin, at 98.7%")
    # 39 of 100 keep the upper bound under 50% (49.3%); all 21 classes at 28.7% do so with 80% power
    assert table.loc["class_overlap", "detectable"].startswith("PCA every class 21.3 points below the margin, at 28.7%")


def test_the_aux_head_row_says_when_its_interval_is_too_wide_to_ever_show_near_chance():
    # 90.5% +- 6.1 over 2 seeds: t(0.975, 1) = 12.71, half-width 54.6 points, cut at 100%: 35.9% to 100%
    from cvae.core.spread import rate_over_classes

    wide = rate_over_classes([0.862, 0.948], kind="seeds")
    assert wide.high == 1.0 and round(100 * wide.low) == 36
    row = claims_table(evidence(aux_modality=wide)).loc["aux_heads"]
    assert row["detectable"].endswith(f"; the interval spans {100 * (1.0 - wide.low):.0f} points and the band 10, so "
                                      "at this spread even a head exactly at the guess could not be called near chance")
    assert "band" not in claims_table(evidence(aux_modality=_seeds(0.40, 0.03))).loc["aux_heads", "detectable"]
    # 100% on each of 5 seeds bounds the mean above 47.8%, wholly outside the band: decided, no warning
    identical = claims_table(evidence(aux_modality=rate_over_classes([1.0] * 5, kind="seeds"))).loc["aux_heads"]
    assert identical["verdict"] == "not reproduced" and "band" not in identical["detectable"]


def test_the_margins_are_the_ones_the_dated_history_says_were_fixed():
    # changing a margin must also add a row to cvae.study.rule_history, which the reproducibility chapter shows
    from cvae.study.claims import MARGINS_FIXED
    from cvae.study.rule_history import RULE_CHANGES, history_table

    assert {key: test.margin for key, test in TESTS.items()} == {
        "best_epoch": 0.9, "latent": 0.02, "deep": 0.05, "aux_heads": 0.05, "modality_clusters": 0.90,
        "class_overlap": 0.50, "reconstructions": 0.05, "samples": 0.90, "class_conditional": 0.10}
    assert MARGINS_FIXED in RULE and "reproducibility chapter dates each margin" in MARGINS_FIXED
    commits = [change.commit for change in RULE_CHANGES]
    assert commits[:2] == ["15fd6c2", "89f5704"] and "70bc335" in commits  # the margins, the head, the last row's
    assert all(len(commit) == 7 and int(commit, 16) >= 0 for commit in commits) and len(set(commits)) == len(commits)
    assert history_table().shape == (len(RULE_CHANGES), 2)
    assert history_table().index[0] == "15fd6c2, 6 December 2026"


def test_the_rule_and_the_interval_list_say_no_history_and_name_every_interval_the_book_uses():
    from cvae.study.claims import rule_markdown
    from cvae.study.interval_methods import INTERVALS, intervals_markdown

    assert "commit" not in rule_markdown() and "December" not in rule_markdown()
    assert [" ".join(line.split()[:4]) for line in intervals_markdown().split("\n")] == [
        "- Over seeds: a", "- Over classes: a", "- Within a class:", "- Many tests at", "- A rate that",
        "- Notation: every interval"]
    assert "100% in each of 2 seeds gives 15.8% to 100%" in INTERVALS[4]  # 0.025 ** (1 / 2) = 0.158
    assert "leave out the variation between training seeds" in INTERVALS[1]


def test_the_discussion_says_a_shared_verdict_once_for_the_claims_that_share_it():
    from cvae.study.findings import group_markdown

    images = ["modality_clusters", "class_overlap", "reconstructions", "samples"]
    said = group_markdown(claims_table(evidence(synthetic=True)), images, synthetic=True)
    assert said.count("\n") == 0 and said.count("medical images") == 1
    assert said == ("The original claims that the modalities form separate clusters in the latent space, that the "
                    "classes overlap in the latent space, that PathMNIST reconstructions work well and that samples "
                    "of different modalities are distinguishable. None of them is testable on this data, "
                    "because each claim is about medical images and this build used the synthetic stand-in.")
    two = group_markdown(claims_table(evidence(synthetic=True)), images[:2], synthetic=True)
    assert "overlap in the latent space. Neither is testable on this data, because each claim" in two
    table = claims_table(evidence(deep=_seeds(-0.10, 0.02)))  # different verdicts: one item each, with the numbers
    said = group_markdown(table, ["latent", "deep"], synthetic=False).split("\n")
    assert len(said) == 2 and said[0].startswith("- A 128-dimensional latent gives a clearly lower loss")
    assert said[1].startswith("- A deeper model of about 4.8 million parameters is no better: not reproduced on "
                              "MedMNIST") and "Measured: " in said[1]


def test_the_claims_table_names_every_column_it_prints():
    import re

    import html

    from cvae.report.chapter import table
    from cvae.study.findings import display_table

    shown = table(display_table(claims_table(evidence())), "Claims.", stacked=True)._repr_html_()
    headers = [html.unescape(cell) for cell in re.findall(r"<th>([^<]*)</th>", shown.split("</thead>")[0])]
    assert headers == ["claim: the original's words", "ours, and the margin",
                       "verdict, and the effect the seeds could detect"]


def test_the_claims_table_leaves_each_reason_to_the_discussions_sections():
    from cvae.study.findings import display_table

    table = claims_table(evidence(synthetic=True))
    verdicts = list(display_table(table)["verdict, and the effect the seeds could detect"])
    assert not any(row["reason"] in verdict for verdict, (_, row) in zip(verdicts, table.iterrows()))
    assert verdicts[-1] == "not testable on this data."  # no detectable effect where the data cannot test it
    assert verdicts[0].startswith(f"{table.iloc[0]['verdict']}. Detectable effect: ")


def test_a_change_of_a_rate_keeps_its_interval_within_plus_minus_one_and_prints_in_percent():
    from cvae.core.spread import RATE_CHANGE, paired_difference

    wide = paired_difference([0.95, 0.1, 0.95], [0.05, 0.9, 0.05], RATE_CHANGE)  # +0.9, -0.8, +0.9: half-width 2.4
    assert wide.mean == pytest.approx(1 / 3) and (wide.low, wide.high) == (-1.0, 1.0)
    assert paired_difference([0.95, 0.1, 0.95], [0.05, 0.9, 0.05]).low < -1.0  # unbounded without RATE_CHANGE
    assert over_seeds([0.795, 0.8, 0.805]).cell(1, percent=True) == "80.0 (78.8 to 81.2)"
    assert wide.spans_all and wide.cell(1, percent=True) == "33.3 (uninformative)"
    assert wide.text(1, percent=True) == "33.3%; over 3 seeds the 95% CI spans every value it can take"
    assert wide.points() == "+33.3 points, with a 95% CI over 3 seeds that spans every change a rate can make"
    assert over_seeds([0.0005, -0.0004]).points().startswith("+0.0 points, 95% CI ")  # no minus zero
    # 0.2 and 0.6 over 2 seeds: half-width 12.706 * 0.2828 / sqrt(2) = 2.54, clipped to (0, 1) on both sides
    assert over_seeds([0.2, 0.6], (0.0, 1.0)).spans_all
    assert not over_seeds([0.998, 1.0, 1.0], (0.0, 1.0)).spans_all  # clipped above only: still says something


def test_zero_spread_is_not_called_certain():
    same = over_seeds([0.05, 0.05, 0.05])
    assert same.no_spread and same.low is None and same.detectable() is None
    table = claims_table(evidence(latent=same))
    assert table.loc["latent", "verdict"] == "inconclusive"
    assert table.loc["latent", "reason"] == "identical on all 3 seeds, so there is no interval"
    assert "0.050 in each of the 3 seeds, which gives no interval" in same.text(3)


def test_every_verdict_states_the_effect_its_spread_could_detect():
    spread = over_seeds([0.01, 0.03, 0.02])  # sd 0.01: noncentrality 5.653 at 2 df, times 0.01 / sqrt(3)
    assert spread.detectable() == pytest.approx(5.653 * 0.01 / 3 ** 0.5, rel=1e-3)
    table = claims_table(evidence(latent=spread))
    # the effect scales with an sd that 3 seeds estimate with 2 degrees of freedom: said with it
    assert table.loc["latent", "detectable"] == f"about {spread.detectable():.0%}, from the spread of only 3 seeds"
    assert table.loc["aux_heads", "detectable"].endswith(" points, from the spread of only 3 seeds")
    five = claims_table(evidence(latent=over_seeds([0.01, 0.03, 0.02, 0.01, 0.03])))
    two = claims_table(evidence(latent=over_seeds([0.01, 0.03])))
    # sd 0.01414 over 2 seeds: noncentrality 16.33 at 1 degree of freedom, 16.33 * 0.01414 / sqrt(2) = 0.163
    assert two.loc["latent", "detectable"] == "about 16%, from the spread of only 2 seeds"
    assert five.loc["latent", "detectable"] == "about 2%"  # 3.514 * 0.01 / sqrt(5) = 0.0157


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_a_true_effect_of_the_detectable_size_is_found_four_times_in_five(seeds):
    """Simulated t-tests at the effect `detectable` names, with the sd known to be 1: the two-sided 5% test rejects
    in 80% of 40,000 draws (binomial sd 0.2 points)."""
    import numpy as np
    from scipy import stats

    effect = Spread(0.0, 1.0, seeds, -1.0, 1.0, "seeds").detectable()
    draws = np.random.default_rng(0).normal(effect, 1.0, size=(40_000, seeds))
    t = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / np.sqrt(seeds))
    rejected = np.mean(np.abs(t) > stats.t.ppf(0.975, seeds - 1))
    assert rejected == pytest.approx(0.80, abs=0.01)


def test_the_stand_in_still_gets_verdicts_on_claims_about_the_model():
    table = claims_table(evidence(synthetic=True, latent=_seeds(-0.05, 0.02)))
    assert table.loc["latent", "verdict"] == "not reproduced"
    assert table.loc["aux_heads", "verdict"] == "reproduced"
    assert verdict_counts(table) == {"reproduced": 2, "not reproduced": 1, "inconclusive": 0,
                                     "not testable at this scale": 1, "not testable on this data": 5}
    assert table.loc["aux_heads", "reason"].endswith("on the stand-in this judges the pipeline")
    # a claim about medical images gets no verdict from the stand-in, but the row still shows what it measured
    assert table.loc["modality_clusters", "ours"].startswith("modality of the 10 nearest 2-D neighbours, PCA: 99.0% "
                                                             "over classes, lowest class 99.0% of its 100 points")
    assert table.loc["modality_clusters", "ours"].endswith("a linear probe on mu reads the modality at 99.5%")
    assert table.loc["modality_clusters", "reason"] == ("the claim is about medical images and this build used the "
                                                        "synthetic stand-in")
    assert "stand-in" not in claims_table(evidence()).loc["aux_heads", "reason"]


def test_the_aux_claim_shows_the_main_run_and_the_study_each_labelled():
    ours = claims_table(evidence()).loc["aux_heads", "ours"]
    assert ours == ("main run, shown but not judged: modality 41.0%, class 7.0%; study: modality 40.0%, 95% CI 37.0% to 43.0% over 3 "
                    "seeds; class 6.0%; a guess in the label proportions scores 39.2%")


def test_the_best_epoch_gives_its_own_reason_even_when_the_main_run_failed_the_gate():
    failed = {**LEARNED, "main": Learned(False, "main run: x", ("x",), 1)}
    row = claims_table(evidence(epochs=3, best_epoch=2, learned=failed)).loc["best_epoch"]
    assert row["verdict"] == "not testable at this scale"
    assert row["reason"].startswith("the test needs the original's 150-epoch schedule, which only the full profile "
                                    "trains; this build trained 3 epochs. Even there, the KL weight grows until epoch "
                                    "120")


def test_a_comparison_says_which_run_had_the_lower_loss():
    lower = claims_table(evidence(latent=_seeds(-0.025, 0.043))).loc["latent", "ours"]
    assert lower == "latent 64: loss 2.5% lower than latent 128, 95% CI -6.8% to +1.8% over 3 seeds"
    higher = claims_table(evidence(deep=_seeds(0.017, 0.045))).loc["deep", "ours"]
    assert higher.startswith("the deeper model: loss 1.7% higher than the original's")


def test_paired_relative_difference_and_the_verdict_use_the_same_seeds():
    paper = [30.0, 31.0, 29.5]
    small = [33.0, 33.5, 32.0]  # latent 64: about 8% higher loss on every seed
    spread = paired_relative_difference(small, paper)
    assert spread.n == 3 and spread.mean == pytest.approx((3 / 30 + 2.5 / 31 + 2.5 / 29.5) / 3)
    assert claims_table(evidence(latent=spread)).loc["latent", "verdict"] == "reproduced"
    with pytest.raises(ValueError, match="same seeds"):
        paired_relative_difference([1.0, 2.0], [1.0])


def test_sentences_state_the_tables_verdict_in_plain_type():
    table = claims_table(evidence(synthetic=True, latent=_seeds(-0.05, 0.02)))
    text = sentence(table, "latent", "the synthetic stand-in")
    assert text.startswith("A 128-dimensional latent gives a clearly lower loss than a 64-dimensional one: not "
                           "reproduced on the synthetic stand-in, because the interval lies wholly below +2%; on the "
                           "stand-in this judges the pipeline. Measured: latent 64: loss ")
    assert "NOT" not in text and "straddles" not in text
    # a claim about images names the data once, in its reason
    images = sentence(table, "samples", "the synthetic stand-in")
    # a claim the data could not test leaves its numbers to the table: they are not evidence
    assert images == ("Samples of different modalities are distinguishable: not testable on this data, because the "
                      "claim is about medical images and this build used the synthetic stand-in.")


def test_the_json_report_carries_what_the_readme_names():
    records = claims_report(claims_table(evidence()))
    assert [r["key"] for r in records] == [c.key for c in CLAIMS]
    for record in records:
        assert {"margin", "test", "verdict", "detectable_effect", "runs_learned"} <= set(record)
        assert set(record["runs_learned"]) == {"value", "failing"}


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
    from cvae.study.findings import reconstruction_summary, sampling_summary

    def gain(mean, low, high):
        return {"mean": mean, "sd": 0.1, "n": 9, "low": low, "high": high, "kind": "classes"}

    evaluation = {
        "recon_ssim": {"pathmnist": 0.05, "tissuemnist": 0.4, "octmnist": 0.3},
        "recon_ssim_gain_over_class_mean": {"pathmnist": gain(-0.02, -0.03, -0.01),
                                            "tissuemnist": gain(0.05, 0.04, 0.06),
                                            "octmnist": gain(0.001, -0.002, 0.004)},
        "conditional_per_class": [{"modality_accuracy": 1.0 if c % 2 else 0.0, "class_accuracy": 0.5,
                                   "modality": DATASETS[MODALITY_OF_CLASS[c]]} for c in range(21)],
        "evaluator_test_accuracy_by_class": [0.9 if c % 2 else 0.8 for c in range(21)],
        "generation_sizes": {"samples": 2100},
    }
    text = reconstruction_summary(evaluation)
    assert "PathMNIST 0.05 (-0.020, 95% CI -0.030 to -0.010)" in text
    assert "For TissueMNIST the reconstructions keep more of the individual image than its class average" in text
    assert "for PathMNIST they are further from the image than its class average is" in text
    assert "for OCTMNIST they are indistinguishable from the class average." in text
    # 10 of 21 classes right: 47.6%, sd 0.5118, t(0.975, 20) 2.0860 -> +-23.3 points over classes
    assert sampling_summary(evaluation) == (
        "Of 2,100 samples, the evaluator assigns 47.6% to the modality they were conditioned on, 95% CI 24.3% to 70.9% "
        "over classes, where chance is 33.3%, and 50.0% to their class, where chance is 4.8%. A guess among the "
        "classes of the right modality would be right 14.3% of the time, averaged over classes. It recognises the class "
        "of 84.8% of real test images, so real images lead the samples of the same class by +34.8 points, 95% CI "
        "+32.4 to +37.1 over 21 classes. The lead differs by modality: +34.4 points in PathMNIST, +35.0 in "
        "TissueMNIST and +35.0 in OCTMNIST.")
    # the lead, paired by class: 10 classes +40, 11 classes +30 points; mean 34.76, sd 5.118, half 2.086 * 5.118 /
    # sqrt(21) = 2.33 points. By modality: classes 0-8 (4 odd) 310/9 = 34.4, 9-16 (4 odd) 280/8 = 35.0, 17-20 (2 odd)
    # 140/4 = 35.0


def test_an_accuracy_interval_over_seeds_stays_inside_zero_and_one():
    # 0.998, 1.0, 1.0: mean 0.99933, sd 0.001155, half-width 4.303 * 0.001155 / sqrt(3) = 0.00287
    free = over_seeds([0.998, 1.0, 1.0])
    assert free.high == pytest.approx(1.0022, abs=1e-4)
    bounded = over_seeds([0.998, 1.0, 1.0], bounds=(0.0, 1.0))
    assert bounded.high == 1.0 and bounded.low == pytest.approx(free.low) and bounded.mean == pytest.approx(0.99933, abs=1e-5)


def test_the_gate_counts_every_run_behind_a_claim():
    from cvae.study.evidence_gate import combine

    failing = learning_gate("x seed 0", -0.1, 0.0, 1 / 21)
    paper = combine([failing, learning_gate("x seed 1", -0.1, 0.0, 1 / 21)])
    latent = combine([learning_gate("y seed 0", 0.1, 0.5, 1 / 21), learning_gate("y seed 1", -0.1, 0.5, 1 / 21)])
    both = combine([paper, latent])
    assert both.failing == ("3 of 4 runs: reconstructions not clearly better than the class-mean image and sample "
                            "class accuracy below 9.8%")
    assert combine([latent]).failing == ("y seed 1: SSIM gain over the class-mean image not clearly above 0 (lower "
                                         "95% bound -0.100)")


def test_the_kl_schedule_is_said_once_whether_it_ramps_or_jumps():
    from cvae.study.findings import schedule_sentence

    assert schedule_sentence(6, 25, 30, 5) == ("In this build's schedule of 30 epochs, the KL weight is first non-zero "
                                               "in epoch 6 and full in epoch 25, and the lowest validation total came "
                                               "in epoch 5.")
    assert "zero until epoch 3, where it takes its full value at once" in schedule_sentence(3, 3, 3, 2)


def test_latent_and_depth_show_the_reconstruction_error_alone_beside_the_judged_loss():
    # the loss sums its KL term over the latent dimensions: the MSE alone shows whether reconstructions differ
    recon = over_seeds([0.10, 0.12, 0.11])  # mean +11.0%, sd 1.0%: 4.303 * 0.01 / sqrt(3) = 2.48%
    table = claims_table(evidence(latent_recon=recon))
    assert table.loc["latent", "ours"].endswith("; reconstruction MSE alone, not judged: +11.0%, 95% CI +8.5% to "
                                                "+13.5%")
    assert table.loc["latent", "verdict"] == claims_table(evidence()).loc["latent", "verdict"]  # not judged
    assert "reconstruction MSE" not in claims_table(evidence()).loc["deep", "ours"]  # absent: nothing said
    # mean -2.52%, sd 1%: half-width 2.484%, so the upper end is -0.036%, which rounds to zero without a minus
    near_zero = claims_table(evidence(latent_recon=over_seeds([-0.0352, -0.0252, -0.0152])))
    assert near_zero.loc["latent", "ours"].endswith("not judged: -2.5%, 95% CI -5.0% to +0.0%")


def test_a_deeper_model_reliably_worse_is_no_better_and_the_reason_says_it_was_worse():
    worse = claims_table(evidence(deep=_seeds(0.021, 0.012, n=5)))  # +0.9% to +3.3%: worse, not merely similar
    assert worse.loc["deep", "verdict"] == "reproduced"
    assert worse.loc["deep", "reason"] == ("the interval lies wholly above -5%; the deeper model was worse, which 'no "
                                           "better' allows but 'very similar' does not")
    around_zero = claims_table(evidence(deep=_seeds(0.021, 0.046)))
    assert around_zero.loc["deep", "reason"] == "the interval lies wholly above -5%"


def test_the_abstract_names_the_claims_whose_study_runs_failed_the_gate():
    from cvae.study.findings import abstract

    gain = {"mean": 0.1, "sd": 0.02, "n": 9, "low": 0.05, "high": 0.15, "kind": "classes"}
    evaluation = {
        "synthetic_data": True, "recon_ssim": {"overall": 0.6}, "recon_ssim_class_mean_baseline": {"overall": 0.5},
        "recon_ssim_gain_over_class_mean": {flag: gain for flag in (*DATASETS, "overall")},
        "conditional_per_class": [{"class_accuracy": 0.5} for _ in range(21)],
        "conditional_class_accuracy_by_modality": {flag: 0.9 for flag in DATASETS},
        "evaluator_test_accuracy_by_class": [0.8] * 21,
    }
    table = claims_table(evidence(synthetic=True, deep=_seeds(0.0, 0.02)))
    table.loc["deep", "verdict"] = "not testable at this scale"
    said = abstract(table, evaluation, {}, 30, "quick", 21000, 5)
    assert said.endswith("The study's runs behind the depth claim failed the learning gate, so that claim was not "
                         "tested.")
    table.loc["latent", "verdict"] = "not testable at this scale"
    assert abstract(table, evaluation, {}, 30, "quick", 21000, 5).endswith(
        "behind the latent-size claim and the depth claim failed the learning gate, so those claims were not tested.")
    table.loc["aux_heads", "verdict"] = "not testable at this scale"
    assert abstract(table, evaluation, {}, 30, "quick", 21000, 5).endswith(
        "The study's runs failed the learning gate, so its three claims were not tested.")
