"""Ablations and the study: variants differ where they say, seeds where they must, runs are shared and cached."""

import pandas as pd
import pytest

from cvae.core.config import ConfigError, config_diff, make_config
from cvae.study.ablations import FACTORIAL, STANDARD, ablation_config, convergence, run_ablation, variant_overrides
from cvae.study.runner import (CLAIM_SEEDS, CLAIMED, COMPARED, SEARCH_SEEDS, SEEDED, STUDY_SEEDS, claim_evidence,
                               paired_spread, run_study, search_results, search_runs, seed_spread, seeds_text,
                               study_runs, study_seeds, variant_seeds)
from cvae.study.weight_search import GRID
from cvae.training.runs import load_run
from study_rows import learned_columns

# a tiny model; the smoke profile's ablation scale picks the images (and the main config's evaluator judges them)
TINY = {"epochs": 1, "encoder_channels": (8, 16, 32), "hidden_dim": 32, "class_embed_dim": 16,
        "modality_embed_dim": 8}


def test_standard_set_holds_the_claims_the_diagnosis_and_the_schedule_variant():
    assert {"paper", "latent64", "deep", "no_aux", "gamma_10", "encoder_unconditioned", "single_batches",
            "single_batches_unconditioned", "plateau_at_beta_max", "fp32"} == set(STANDARD)
    assert STANDARD["paper"] == {}
    assert set(SEEDED) <= set(STANDARD) and STUDY_SEEDS >= 3 and CLAIM_SEEDS >= 5
    assert study_seeds("quick") == study_seeds("full") == 3 and study_seeds("smoke") == 2
    assert [variant_seeds("quick", name) for name in ("paper", "latent64", "deep", "no_aux", "single_batches",
                                                      "fp32")] == [5, 5, 5, 3, 3, 1]
    assert variant_seeds("smoke", "paper") == variant_seeds("smoke", "no_aux") == 2
    assert seeds_text("quick") == "5 seeds for the runs behind the claims and 3 for the aux-head diagnosis"
    assert seeds_text("smoke") == "2 seeds"


def test_each_ablation_differs_from_paper_only_where_it_says():
    base = ablation_config("paper", "quick")
    for name, overrides in STANDARD.items():
        diff = config_diff(base, ablation_config(name, "quick"))
        expected = {k for k, v in overrides.items()
                    if make_config("quick").to_dict()[k] != (list(v) if isinstance(v, tuple) else v)}
        if name in FACTORIAL:  # and the factorial's longer schedule
            expected |= {"epochs", "beta_warmup_epochs", "beta_ramp_epochs"}
        assert set(diff) == expected, name
    assert config_diff(base, ablation_config("a_l1=0.5", "quick")) == {"a_l1": (0.1, 0.5)}


def test_unknown_ablation_is_named():
    with pytest.raises(ConfigError, match="unknown ablation 'wide'"):
        ablation_config("wide", "smoke")
    with pytest.raises(ConfigError, match="unknown config key 'wide'"):
        variant_overrides("wide=1")


def test_the_study_seeds_the_claims_and_leaves_the_search_out():
    runs = study_runs("quick", seed=5)
    names = [run.name for run in runs]
    for name in SEEDED:
        expected = [5, 6, 7, 8, 9] if name in CLAIMED else [5, 6, 7]
        assert sorted(run.seed for run in runs if run.name == name) == expected, name
    assert all(run.seed == 5 for run in runs if run.name not in SEEDED)
    hashes = [run.config.config_hash() for run in runs]
    assert len(hashes) == len(set(hashes))  # every run once
    assert not any("=" in name for name in names) and not any(run.weights for run in runs)
    assert len(runs) == 5 * len(CLAIMED) + 3 * (len(SEEDED) - len(CLAIMED)) + len(STANDARD) - len(SEEDED) == 32
    assert names[-CLAIM_SEEDS:] == ["deep"] * CLAIM_SEEDS  # the costliest last
    assert study_runs("quick", names=["paper"]) and not any(r.name == "fp32" for r in study_runs(
        "quick", precision_comparison=False))
    with pytest.raises(ConfigError, match="unknown study variant"):
        study_runs("quick", names=["paper", "wide"])


def test_the_search_trains_every_candidate_with_the_defaults_seeds_and_shares_named_runs():
    runs = search_runs("quick", seed=5)
    candidates = sum(len(values) - 1 for values in GRID.values())
    assert len(runs) == SEARCH_SEEDS * (1 + candidates) == 33
    for name in {run.name for run in runs}:
        assert sorted(run.seed for run in runs if run.name == name) == [5, 6, 7], name
    # gamma = 0 and 10 are the diagnosis variants themselves: the same cached runs under their names
    no_aux = next(r for r in runs if r.name == "no_aux" and r.seed == 6)
    assert dict(no_aux.weights) == {"gamma": 0.0}
    assert no_aux.config.config_hash() == ablation_config("no_aux", "quick").replace(seed=6).config_hash()
    assert {r.name for r in runs} >= {"paper", "gamma_10", "gamma=0.1", "a_l1=0.5"}
    assert "a_l1=0.1" not in {r.name for r in runs}  # the default is the paper's run
    assert len(search_runs("smoke")) == SEARCH_SEEDS * (1 + len(GRID))  # one candidate per weight


def _table() -> pd.DataFrame:
    rows = []
    learned = {**learned_columns(), "latent_test_images": 2100}
    for seed, (paper, small, deep) in enumerate(((30.0, 33.0, 30.3), (31.0, 33.5, 30.9), (29.5, 32.0, 29.8))):
        rows += [{"name": "paper", "seed": seed, "weights": "", COMPARED: paper, "aux_class_accuracy": 0.8,
                  "aux_modality_accuracy": 0.97 + seed / 100, **learned},
                 {"name": "latent64", "seed": seed, "weights": "", COMPARED: small, **learned},
                 {"name": "deep", "seed": seed, "weights": "", COMPARED: deep, **learned,
                  "conditional_class_accuracy_octmnist": 0.2 if seed == 2 else 0.5}]
    rows.append({"name": "a_l1=0.1", "seed": 0, "weights": "a_l1=0.1", COMPARED: 28.0, **learned})
    rows.append({"name": "no_aux", "seed": 0, "weights": "gamma=0", COMPARED: 29.0, **learned})
    return pd.DataFrame(rows)


def test_spreads_are_paired_by_seed_and_runs_gated():
    table = _table()
    latent = paired_spread(table, "latent64")
    assert latent.n == 3 and latent.mean == pytest.approx((3 / 30 + 2.5 / 31 + 2.5 / 29.5) / 3)
    assert latent.low > 0  # latent 64 is worse on every seed
    assert seed_spread(table, "paper", "aux_modality_accuracy").mean == pytest.approx(0.98)
    evidence = claim_evidence(table)
    assert evidence["latent"] == latent and evidence["aux_modality"].n == 3 and evidence["aux_class"].no_spread
    assert paired_spread(table, "fp32") is None and seed_spread(table, "fp32", COMPARED) is None
    # one seed of the deeper model samples OCTMNIST's classes near chance: its claim's runs did not all learn
    assert evidence["learned"]["paper"].ok and evidence["learned"]["latent64"].ok
    assert not evidence["learned"]["deep"].ok
    # the gate holds each modality to its own chance: OCTMNIST's samples at 20% fail it (4 classes: 25% + 5 points),
    # though the 40% pooled over modalities would clear 9.8%
    assert evidence["learned"]["deep"].failing == "deep seed 2: OCTMNIST sample class accuracy 20.0%, needs 30.0%"
    assert evidence["learned"]["deep"].missed == ("samples' class accuracy under chance plus 5 points in OCTMNIST",)
    search = search_results(table)
    assert set(zip(search["weight"], search["value"])) == {("", 0.0), ("a_l1", 0.1), ("gamma", 0.0)}


def test_an_accuracy_identical_on_every_seed_is_never_certain():
    table = _table()
    spread = seed_spread(table, "paper", "aux_class_accuracy")  # 0.8 on all three seeds: no interval at all
    assert spread.no_spread and spread.low is None and spread.detectable() is None
    table.loc[table["name"] == "paper", "aux_class_accuracy"] = 1.0  # 100% on all three: the bound over seeds
    spread = seed_spread(table, "paper", "aux_class_accuracy")
    assert spread.exact_bound and spread.high == 1.0 and spread.low == pytest.approx(0.025 ** (1 / 3))  # 0.292
    assert "in each of the 3 seeds, so the 95% interval is 29.2% to 100%" in spread.text(1, percent=True)
    # the bound is the worst case, a rate that is either 0% or 100%: at the bound, three 100% readings have chance 2.5%
    assert spread.low ** 3 == pytest.approx(0.025)


def test_convergence_counts_runs_still_improving_at_their_last_epoch():
    table = pd.DataFrame({"kept_epoch": [12, 12, 7], "best_total_epoch": [3, 3, 3], "epochs": [12, 12, 12]})
    assert convergence(table).startswith("2 of 3 runs reached") and "12 epochs" in convergence(table)
    assert convergence(table.assign(kept_epoch=12)).startswith("All 3 runs reached")
    assert convergence(table.assign(kept_epoch=5, best_total_epoch=12)).startswith("Every run")  # the kept epoch decides


@pytest.mark.slow
def test_a_tiny_study_trains_once_and_reuses_its_runs(stand_in_dir, runs_dir, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(stand_in_dir))
    table = run_study("smoke", extra=TINY, names=["paper", "latent64"])
    assert sorted(table["name"]) == ["latent64"] * 2 + ["paper"] * 2  # the smoke book's two seeds
    assert {"recon_psnr", "domain_fid", "probe_class_accuracy", "conditional_class_accuracy", "eval_seconds",
            "train_seconds", "best_total_epoch", COMPARED, "kept_epoch", "recon_ssim_gain", "val_recon_psnr",
            "val_domain_fid"} <= set(table.columns)
    assert (table["best_total_epoch"] == 1).all() and (table["kept_epoch"] == 1).all()  # 1-based: one epoch trained
    small = table[table["name"] == "latent64"]["parameters"].iloc[0]
    assert small < table[table["name"] == "paper"]["parameters"].iloc[0]  # a smaller latent: fewer parameters
    folders = [runs_dir / run for run in table["run"]]
    stamps = {path: (path / "summary.json").stat().st_mtime_ns for path in folders}
    again = run_study("smoke", extra=TINY, names=["paper", "latent64"])
    pd.testing.assert_frame_equal(again, table)
    assert all((path / "summary.json").stat().st_mtime_ns == stamp for path, stamp in stamps.items())
    assert run_ablation("paper", "smoke", extra=TINY, progress=False).name in set(table["run"])
    assert load_run(folders[0]).config.seed in (0, 1, 2)


def test_seeded_table_reads_each_variant_over_its_seeds():
    import pandas as pd

    from cvae.report.ablation_tables import seeded_table

    rows = [{"name": name, "seed": seed, "parameters": 1_155_993, COMPARED: loss + seed,
             "aux_class_accuracy": 0.5, "aux_modality_accuracy": 1.0, "probe_class_accuracy": 0.9,
             **learned_columns(0.1, 0.04 if seed == 0 else 0.5)}
            for name, loss in (("paper", 100.0), ("latent64", 110.0)) for seed in range(3)]
    table = seeded_table(pd.DataFrame(rows))
    assert list(table.index) == ["paper", "latent64"]
    assert table.loc["latent64", "loss at final β"] == "111.0 ± 1.0"
    assert table.loc["latent64", "aux class (%)"] == "50.0 ± 0.0"  # the sd is zero, said as such
    assert table.loc["paper", "change (95% CI)"] == "—"
    assert table.loc["latent64", "change (95% CI)"].startswith("+9.9% (")
    assert table.loc["paper", "learned"] == "2 of 3"


def test_three_perfect_heads_are_inconclusive_against_the_chance_band_and_say_why():
    from cvae.core.spread import rate_over_classes
    from cvae.study.claims import _aux_heads

    perfect = rate_over_classes([1.0, 1.0, 1.0], kind="seeds")  # bound 29.2% to 100%, reaching the band
    finding = _aux_heads({"aux_modality": perfect, "aux_class": None, "aux_guess": 0.365})
    assert finding.verdict == "inconclusive"
    assert finding.reason == ("every seed read 100%, outside the band, but 3 identical seeds bound the mean only "
                              "within 29.2% to 100%, which reaches into it; more seeds would decide it")
    five = rate_over_classes([1.0] * 5, kind="seeds")  # 0.025^(1/5) = 47.8%: clear of the band's top, 41.5%
    assert _aux_heads({"aux_modality": five, "aux_class": None, "aux_guess": 0.365}).verdict == "not reproduced"


def test_the_one_dataset_cells_train_three_times_the_quick_ablation_epochs():
    quick = ablation_config("single_batches", "quick")
    assert (quick.epochs, quick.beta_warmup_epochs, quick.beta_ramp_epochs) == (36, 6, 24)
    assert ablation_config("single_batches_unconditioned", "quick").epochs == 36
    assert ablation_config("paper", "quick").epochs == ablation_config("encoder_unconditioned", "quick").epochs == 12
    assert ablation_config("single_batches", "smoke").epochs == ablation_config("paper", "smoke").epochs == 2


def test_the_factorial_caption_says_a_shared_scale_once():
    from cvae.study.ablations import factorial_scale_text, scale_text

    assert factorial_scale_text("smoke") == f"Every cell trains at {scale_text('smoke')}."
    assert factorial_scale_text("quick").startswith("The one-dataset cells train at train_per_class=300, "
                                                    "eval_per_class=100, epochs=36,")
    assert factorial_scale_text("quick").endswith(", the mixed cells at train_per_class=300, eval_per_class=100, "
                                                  "epochs=12, beta_warmup_epochs=2, beta_ramp_epochs=8.")
