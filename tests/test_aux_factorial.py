"""The aux-head factorial: baselines from the official split sizes, batches from one dataset, side-effect-free
readings, and the verdict rule on fixed numbers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cvae.core.config import make_config
from cvae.core.labels import MODALITY_OF_CLASS, NUM_CLASSES
from cvae.core.model import CVAE
from cvae.data.loading import Split
from cvae.evaluation.inference import READINGS, aux_head_readings
from cvae.study.aux_factorial import (CELLS, READ_NAMES, checks, checks_markdown, describe, factorial_rows,
                                      guess_baselines, learned, official_baselines, reconstruction_sentence, report,
                                      run_learned, verdict)
from cvae.study.evidence_gate import Learned
from cvae.training.epochs import single_dataset_batches
from study_rows import learned_columns


def test_the_baselines_of_the_originals_validation_split():
    baselines = official_baselines()
    # Path 10,004, Tissue 23,640, OCT 10,832 of 44,476: sum of squared shares 0.2249^2 + 0.5315^2 + 0.2435^2
    assert baselines["modality"]["images"] == 10_004 + 23_640 + 10_832 == 44_476
    assert baselines["modality"]["sum_of_squared_shares"] == pytest.approx(
        (10_004 ** 2 + 23_640 ** 2 + 10_832 ** 2) / 44_476 ** 2)
    assert round(100 * baselines["modality"]["sum_of_squared_shares"], 1) == 39.2
    assert round(100 * baselines["modality"]["majority"], 1) == 53.2
    assert round(100 * baselines["class"]["majority"], 1) == 17.0  # TissueMNIST's largest class: 7,582 images
    balanced = guess_baselines([1] * NUM_CLASSES)
    assert balanced["class"]["sum_of_squared_shares"] == pytest.approx(1 / 21)
    assert balanced["modality"]["sum_of_squared_shares"] == pytest.approx((9 ** 2 + 8 ** 2 + 4 ** 2) / 21 ** 2)


def test_single_dataset_batches_cover_every_image_once_and_never_mix():
    modalities = torch.tensor(MODALITY_OF_CLASS).repeat_interleave(10)  # 210 images
    batches = single_dataset_batches(modalities, 32, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(batches).tolist()) == list(range(210))
    assert all(len(set(modalities[b].tolist())) == 1 for b in batches)
    # 90, 80 and 40 images: 3 + 3 + 2 batches, the last of each dataset shorter
    assert len(batches) == 8 and sorted(len(b) for b in batches) == [8, 16, 26, 32, 32, 32, 32, 32]
    again = single_dataset_batches(modalities, 32, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_a_single_batches_config_has_its_own_hash_and_the_default_keeps_the_old_one():
    smoke = make_config("smoke")
    assert smoke.config_hash() == "eea31777ba"  # the smoke run's folder from before batch_composition existed
    assert smoke.replace(batch_composition="single").config_hash() != smoke.config_hash()


def test_reading_the_heads_is_free_of_side_effects():
    model = CVAE(make_config("smoke")).eval()
    labels = torch.arange(NUM_CLASSES).repeat(6)
    split = Split(torch.randint(0, 255, (len(labels), 28, 28), dtype=torch.uint8, generator=torch.Generator()
                                .manual_seed(1)), labels, torch.tensor(MODALITY_OF_CLASS)[labels])
    before = {name: value.clone() for name, value in model.state_dict().items()}
    readings = aux_head_readings(model, split, batch_size=32, seed=3)
    assert set(readings) == {*READINGS, "eval_z", "eval_local_labels"}
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())  # BN stats too
    assert not model.training
    assert readings == aux_head_readings(model, split, batch_size=32, seed=3)  # seeded


def _rows(cell_values: dict, gain_low: dict | None = None) -> pd.DataFrame:
    """A study table with three seeds per trained cell; `cell_values` maps (batches, encoder, read) to (class,
    modality) means; every other reading sits at 99%; the probe reads the modality at 99-100%; the test split's
    modality guess is 36.5% (class-balanced stand-in); every reading's SSIM gain is 0.1 with lower bound 0.05
    unless `gain_low` maps (batches, encoder, read) to another lower bound."""
    rows = []
    for (batches, encoder), name in CELLS.items():
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            row = {"name": name, "seed": seed, "probe_modality_accuracy": 1.0 - abs(noise) / 10,
                   "modality_guess": GUESS, **learned_columns()}
            for read in READ_NAMES:
                cls, modality = cell_values.get((batches, encoder, read), (0.99, 0.99))
                row[f"read_{read}_class"], row[f"read_{read}_modality"] = cls + noise, modality + noise
                row[f"read_{read}_ssim_gain"] = 0.1
                row[f"read_{read}_ssim_gain_low"] = (gain_low or {}).get((batches, encoder, read), 0.05)
            rows.append(row)
    return pd.DataFrame(rows)


GUESS = (9 ** 2 + 8 ** 2 + 4 ** 2) / 21 ** 2


def test_the_verdict_names_the_cell_that_brings_the_modality_head_to_chance():
    study = _rows({("single", "conditioned", "train_mixed"): (0.90, 0.37)})
    decided = verdict(factorial_rows(study), GUESS)
    assert decided["verdict"] == "explained" and decided["cell"] == ["single", "conditioned", "train_mixed"]
    assert decided["sentence"].startswith("Explained: trained on one-dataset batches with the conditioned encoder, "
                                          "heads read in "
                                          "train mode, mixed batches, the modality head reads what a guess in the "
                                          "label proportions scores, 36.5%")
    assert verdict(factorial_rows(_rows({})), GUESS)["verdict"] == "not explained"
    assert describe(("single", "conditioned", "train_single")) == ("trained on one-dataset batches with the "
                                                                   "conditioned encoder, heads read in train mode on "
                                                                   "such batches")
    # the control must restore the head: when mixed batches read in eval mode sit at chance too, it is only partly
    low_control = _rows({("single", "conditioned", "train_mixed"): (0.35, 0.37),
                         ("mixed", "conditioned", "eval"): (0.35, 0.37)})
    assert verdict(factorial_rows(low_control), GUESS)["verdict"] == "partly explained"
    # a cell whose mean lies in the band but whose interval crosses its edge: the seeds cannot tell
    wide = _rows({("single", "conditioned", "train_mixed"): (0.90, GUESS + 0.03)})
    wide.loc[(wide["name"] == "single_batches") & (wide["seed"] == 2), "read_train_mixed_modality"] = GUESS + 0.12
    undecided = verdict(factorial_rows(wide), GUESS)
    assert undecided["verdict"] == "inconclusive" and undecided["cell"] == ["single", "conditioned", "train_mixed"]
    assert undecided["sentence"].startswith("Inconclusive: trained on one-dataset batches with the conditioned "
                                            "encoder, heads read in train mode, mixed batches, the modality head's "
                                            "95% interval, ")
    gated = verdict(factorial_rows(study), GUESS, Learned(False, "x", failed_runs=2, runs=12))
    assert gated["verdict"] == "not testable at this scale" and "2 of 12 runs" in gated["sentence"]


def test_the_checks_stated_with_the_design_are_computed():
    study = _rows({("single", "conditioned", "eval"): (0.5, 0.40)})
    lines = checks(factorial_rows(study))
    assert lines[0].startswith("One-dataset batches changes the modality head by -59.0 points")
    # a cell equal to the base on every seed: said in words, not as "+0.0 points, no interval"
    assert len(lines) == 3 and lines[1] == ("Reading in train mode on one-dataset batches leaves the modality head "
                                            "unchanged on all 3 seeds.")


def test_the_json_report_has_the_keys_the_issue_names():
    out = report(_rows({}))
    assert {"cells", "baselines", "verdict", "rule", "checks", "design"} <= set(out)
    assert len(out["cells"]) == len(CELLS) * 3 * len(READ_NAMES)
    assert set(out["cells"][0]) == {"batches", "encoder", "read", "seed", "class_acc", "modality_acc",
                                    "probe_modality_acc", "recon_ssim_gain"}
    assert out["runs_learned"] == {"value": True, "failing": ""}
    assert out["baselines"]["this_split_modality_guess"] == pytest.approx(GUESS)


def test_no_checks_are_printed_from_runs_that_did_not_learn():
    rows = factorial_rows(_rows({}))
    assert checks_markdown(rows, {"verdict": "not testable at this scale"}) == ""
    assert checks_markdown(rows, {"verdict": "not explained"}).startswith("The checks stated with the design")
    # two cells read near the guess, both with reconstructions worse than the class mean: counted either way, but
    # only runs that learned get the reading that the head's drop goes with a broken decoder
    broken = _rows({("single", "conditioned", "train_mixed"): (0.9, 0.37),
                    ("single", "conditioned", "eval"): (0.9, 0.36)})
    for read in ("train_mixed", "eval"):
        broken.loc[broken["name"] == "single_batches", f"read_{read}_ssim_gain"] = -0.2
    rows = factorial_rows(broken)
    counted = ("In 2 of 12 cells the mean modality head lies within 5 points of the guess, 36.5%. Read the same way, "
               "the reconstructions of 2 of them are worse than the class-mean image, with mean SSIM gains of ")
    assert reconstruction_sentence(rows, GUESS, learned=False).startswith(counted)
    assert reconstruction_sentence(rows, GUESS, learned=False).endswith("-0.200.")
    assert reconstruction_sentence(rows, GUESS).endswith(" every reading that brings the modality head that low also "
                                                         "breaks the decoder.")


def test_the_gate_reads_each_run_the_way_it_was_trained():
    # one-dataset runs that break in eval mode but reconstruct in train mode on one-dataset batches pass
    broken_in_eval = {(batches, encoder, read): -0.1 for batches, encoder in CELLS for read in ("eval", "train_mixed")
                      if batches == "single"}
    assert learned(_rows({}, broken_in_eval)).ok
    assert learned(_rows({}, broken_in_eval)).runs == 12
    # the same runs failing in their own reading fail the gate, each named with its bound
    failing = _rows({}, {("single", "conditioned", "train_single"): -0.02})
    gate = learned(failing)
    assert not gate.ok and gate.failed_runs == 3
    row = failing[(failing["name"] == "single_batches") & (failing["seed"] == 0)].iloc[0]
    assert run_learned(row).failing == ("single_batches seed 0: SSIM gain over the class-mean image in train mode, one "
                                        "dataset per batch not clearly above 0 (lower 95% bound -0.020)")
    # a mixed-batch run is read in eval mode
    assert not learned(_rows({}, {("mixed", "unconditioned", "eval"): 0.0})).ok
    assert learned(_rows({}, {("mixed", "unconditioned", "train_single"): -0.5})).ok


def test_the_readings_measure_reconstructions_the_same_way_against_class_means():
    model = CVAE(make_config("smoke")).eval()
    labels = torch.arange(NUM_CLASSES).repeat(4)
    images = torch.randint(0, 255, (len(labels), 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    split = Split(images, labels, torch.tensor(MODALITY_OF_CLASS)[labels])
    # class means equal to each class's first image: that image's baseline SSIM is 1
    means = images[:NUM_CLASSES].float().div(255).unsqueeze(1)
    readings = aux_head_readings(model, split, batch_size=32, seed=0, class_means=means)
    for read in READINGS:
        assert {"ssim_gain", "ssim_gain_low"} <= set(readings[read])
        assert -1.0 <= readings[read]["ssim_gain"] < 0.0  # a quarter of the images are their own baseline (SSIM 1)
        assert readings[read]["ssim_gain_low"] < readings[read]["ssim_gain"]
    assert "ssim_gain" not in readings["eval_z"]
    assert "ssim_gain" not in aux_head_readings(model, split, batch_size=32, seed=0)["eval"]


def test_the_open_question_is_the_last_row_of_the_claims_table_and_not_a_claim():
    from cvae.study.aux_factorial import claims_row
    from cvae.study.findings import display_table

    row = claims_row(_rows({("single", "conditioned", "train_mixed"): (0.90, 0.37)}))
    assert row["verdict"] == "explained"
    assert row["ours"].startswith("deciding: trained on one-dataset batches with the conditioned encoder, heads read in "
                                  "train mode, mixed "
                                  "batches, modality head 37.0%, 95% CI")
    assert row["reason"].startswith("trained on one-dataset batches") and not row["reason"].endswith(".")
    # the 80%-power effect of the claims table: sd 0.01 over 3 seeds, (4.303 + 1.061) * 0.01 / sqrt(3) = 3.1 points
    assert row["detectable"] == "about 3 points, from the spread of only 3 seeds, in the deciding cell"
    claims = pd.DataFrame([{"claim": "c", "original": '"o"', "ours": "x", "margin": "m", "verdict": "reproduced",
                            "reason": "r", "detectable": "d"}], index=["latent"])
    table = display_table(claims, row)
    assert len(table) == 2 and table.index[-1].startswith("why the heads read near chance: \"It is not clear")
    verdicts = table["verdict, and the effect the seeds could detect"]
    assert verdicts.iloc[-1].startswith("explained: trained on one-dataset batches")
    assert verdicts.iloc[0] == "reproduced. Detectable effect: d." and list(table.columns) == [
        "ours, and the margin", "verdict, and the effect the seeds could detect"]
    assert table.iloc[0]["ours, and the margin"] == "x. Margin: m."
    assert len(display_table(claims)) == 1


def test_the_cells_share_their_seeds_when_the_papers_model_trains_more_for_the_claims():
    study = _rows({})
    extra = study[study["name"] == "paper"].assign(seed=lambda t: t["seed"] + 3)  # seeds 3-5 of the control only
    extra.loc[:, "read_eval_modality"] = 0.0  # would move the cell's mean if it were read
    balanced = factorial_rows(pd.concat([study, extra], ignore_index=True))
    assert sorted(set(balanced["seed"])) == [0, 1, 2] and len(balanced) == len(factorial_rows(study))
    assert learned(pd.concat([study, extra])).runs == 12


def test_a_probe_that_reads_every_seed_perfectly_counts_as_reading_the_modality():
    study = _rows({("single", "conditioned", "train_mixed"): (0.90, 0.37)}).assign(probe_modality_accuracy=1.0)
    decided = verdict(factorial_rows(study), GUESS)  # zero spread over seeds: no interval, every seed at 100%
    assert decided["verdict"] == "explained" and decided["cell"] == ["single", "conditioned", "train_mixed"]
