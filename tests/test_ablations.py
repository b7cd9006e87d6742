"""Ablations and the study: variants differ where they say, seeds where they must, runs are shared and cached."""

import pandas as pd
import pytest

from cvae.ablations import STANDARD, ablation_config, convergence, run_ablation, variant_overrides
from cvae.config import ConfigError, config_diff, make_config
from cvae.runs import load_run
from cvae.study import (SEEDED, STUDY_SEEDS, claim_evidence, paired_spread, run_study, search_results, seed_spread,
                        study_runs, study_seeds)
from cvae.weight_search import GRID

# a tiny model; the smoke profile's ablation scale picks the images (and the main config's evaluator judges them)
TINY = {"epochs": 1, "encoder_channels": (8, 16, 32), "hidden_dim": 32, "class_embed_dim": 16,
        "modality_embed_dim": 8}


def test_standard_set_holds_the_claims_the_diagnosis_and_the_schedule_variant():
    assert {"paper", "latent64", "deep", "no_aux", "gamma_10", "encoder_unconditioned", "plateau_at_beta_max",
            "fp32"} == set(STANDARD)
    assert STANDARD["paper"] == {}
    assert set(SEEDED) <= set(STANDARD) and STUDY_SEEDS >= 3
    assert study_seeds("quick") == study_seeds("full") == 3 and study_seeds("smoke") == 2


def test_each_ablation_differs_from_paper_only_where_it_says():
    base = ablation_config("paper", "quick")
    for name, overrides in STANDARD.items():
        diff = config_diff(base, ablation_config(name, "quick"))
        expected = {k for k, v in overrides.items()
                    if make_config("quick").to_dict()[k] != (list(v) if isinstance(v, tuple) else v)}
        assert set(diff) == expected, name
    assert config_diff(base, ablation_config("a_l1=0.5", "quick")) == {"a_l1": (0.1, 0.5)}


def test_unknown_ablation_is_named():
    with pytest.raises(ConfigError, match="unknown ablation 'wide'"):
        ablation_config("wide", "smoke")
    with pytest.raises(ConfigError, match="unknown config key 'wide'"):
        variant_overrides("wide=1")


def test_the_study_seeds_the_claims_and_shares_coinciding_runs():
    runs = study_runs("quick", seed=5)
    names = [run.name for run in runs]
    for name in SEEDED:
        assert sorted(run.seed for run in runs if run.name == name) == [5, 6, 7], name
    assert all(run.seed == 5 for run in runs if run.name not in SEEDED)
    hashes = [run.config.config_hash() for run in runs]
    assert len(hashes) == len(set(hashes))  # every run once
    # gamma = 0 and 10 are the diagnosis variants themselves; every other candidate is its own run
    assert dict(next(r for r in runs if r.name == "no_aux" and r.seed == 5).weights) == {"gamma": 0.0}
    assert "gamma=0" not in names and "gamma=0.1" in names and "a_l1=0.5" in names and "a_l1=0.1" not in names
    candidates = sum(len(values) - 1 for values in GRID.values())
    weighted = sum(len(run.weights) for run in runs)
    assert weighted == candidates
    assert names[-STUDY_SEEDS:] == ["deep"] * STUDY_SEEDS  # the costliest last
    assert study_runs("quick", names=["paper"]) and not any(r.name == "fp32" for r in study_runs(
        "quick", precision_comparison=False))
    with pytest.raises(ConfigError, match="unknown study variant"):
        study_runs("quick", names=["paper", "wide"])


def _table() -> pd.DataFrame:
    rows = []
    for seed, (paper, small, deep) in enumerate(((30.0, 33.0, 30.3), (31.0, 33.5, 30.9), (29.5, 32.0, 29.8))):
        rows += [{"name": "paper", "seed": seed, "weights": "", "best_val_total": paper, "aux_class_accuracy": 0.8,
                  "aux_modality_accuracy": 0.97 + seed / 100},
                 {"name": "latent64", "seed": seed, "weights": "", "best_val_total": small},
                 {"name": "deep", "seed": seed, "weights": "", "best_val_total": deep}]
    rows.append({"name": "a_l1=0.1", "seed": 0, "weights": "a_l1=0.1", "best_val_total": 28.0})
    rows.append({"name": "no_aux", "seed": 0, "weights": "gamma=0", "best_val_total": 29.0})
    return pd.DataFrame(rows)


def test_spreads_are_paired_by_seed():
    table = _table()
    latent = paired_spread(table, "latent64")
    assert latent.n == 3 and latent.mean == pytest.approx((3 / 30 + 2.5 / 31 + 2.5 / 29.5) / 3)
    assert latent.low > 0  # latent 64 is worse on every seed
    assert seed_spread(table, "paper", "aux_modality_accuracy").mean == pytest.approx(0.98)
    evidence = claim_evidence(table)
    assert evidence["latent"] == latent and evidence["aux_class"].n == 3
    assert paired_spread(table, "fp32") is None and seed_spread(table, "fp32", "best_val_total") is None
    search = search_results(table, seed=0)
    assert set(zip(search["weight"], search["value"])) == {("", 0.0), ("a_l1", 0.1), ("gamma", 0.0)}


def test_convergence_counts_runs_still_improving_at_their_last_epoch():
    table = pd.DataFrame({"best_epoch": [12, 12, 7], "epochs": [12, 12, 12]})
    assert convergence(table).startswith("2 of 3 runs reached") and "12 epochs" in convergence(table)
    assert convergence(table.assign(best_epoch=12)).startswith("All 3 runs reached")
    assert convergence(table.assign(best_epoch=5)).startswith("Every run")


@pytest.mark.slow
def test_a_tiny_study_trains_once_and_reuses_its_runs(stand_in_dir, runs_dir, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(stand_in_dir))
    table = run_study("smoke", extra=TINY, names=["paper", "latent64"])
    assert sorted(table["name"]) == ["latent64"] * 2 + ["paper"] * 2  # the smoke book's two seeds
    assert {"recon_psnr", "domain_fid", "probe_class_accuracy", "conditional_class_accuracy", "eval_seconds",
            "train_seconds", "best_epoch"} <= set(table.columns)
    assert (table["best_epoch"] == 1).all()  # 1-based: one epoch trained
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

    from cvae.ablation_tables import seeded_table

    rows = [{"name": name, "seed": seed, "parameters": 1_155_993, "best_val_total": loss + seed,
             "aux_class_accuracy": 0.5, "aux_modality_accuracy": 1.0, "probe_class_accuracy": 0.9}
            for name, loss in (("paper", 100.0), ("latent64", 110.0)) for seed in range(3)]
    table = seeded_table(pd.DataFrame(rows))
    assert list(table.index) == ["paper", "latent64"]
    assert table.loc["paper", "parameters"] == "1,155,993"
    assert table.loc["latent64", "best val loss (per image)"] == "111.0 ± 1.0"
    assert table.loc["latent64", "aux class acc (%)"] == "50.0 ± 0.0"  # the unit is in the header
    assert table.loc["paper", "change vs paper (95% CI)"] == "—"
    assert table.loc["latent64", "change vs paper (95% CI)"].startswith("+9.9% (")
