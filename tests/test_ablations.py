import pytest
import pandas as pd

from cvae.ablations import STANDARD, ablation_config, ablation_table, claims, convergence, run_ablation
from cvae.config import ConfigError, config_diff, make_config
from cvae.runs import load_run

TINY = {"epochs": 1, "encoder_channels": (8, 16, 32), "hidden_dim": 32, "class_embed_dim": 16,
        "modality_embed_dim": 8, "train_per_class": 20, "eval_per_class": 20}


def test_standard_set_covers_the_issue():
    assert {"paper", "latent64", "deep", "no_l1", "no_perceptual", "no_aux"} <= set(STANDARD)
    assert len({v["beta_max"] for v in STANDARD.values() if "beta_max" in v}) >= 3
    assert len({v["gamma"] for v in STANDARD.values() if "gamma" in v} - {0.0}) >= 2
    assert STANDARD["paper"] == {}


def test_each_ablation_differs_from_paper_only_where_it_says():
    base = ablation_config("paper", "quick")
    for name, overrides in STANDARD.items():
        diff = config_diff(base, ablation_config(name, "quick"))
        expected = {k for k, v in overrides.items() if make_config("quick").to_dict()[k] != (list(v) if isinstance(v, tuple) else v)}
        assert set(diff) == expected, name


def test_unknown_ablation_is_named():
    with pytest.raises(ConfigError, match="unknown ablation 'wide'"):
        ablation_config("wide", "smoke")


def test_two_tiny_ablations_table_and_cache(stand_in_dir, runs_dir, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(stand_in_dir))
    dirs = {name: run_ablation(name, "smoke", extra=TINY, progress=False) for name in ("paper", "latent64")}
    table = ablation_table("smoke", ["paper", "latent64", "no_l1"], extra=TINY)
    assert list(table["ablation"]) == ["paper", "latent64"]  # no_l1 was not trained: left out
    configs = {name: load_run(path).config for name, path in dirs.items()}
    assert config_diff(configs["paper"], configs["latent64"]) == {"latent_dim": (128, 64)}
    assert table.loc[1, "changes"] == "latent_dim=64"
    assert table["parameters"].iloc[1] < table["parameters"].iloc[0]  # a smaller latent: fewer parameters
    stamps = {name: (path / "summary.json").stat().st_mtime_ns for name, path in dirs.items()}
    for name in dirs:  # rerun: nothing retrains
        assert run_ablation(name, "smoke", extra=TINY, progress=False) == dirs[name]
        assert (dirs[name] / "summary.json").stat().st_mtime_ns == stamps[name]


def _claims_table(paper: float, latent64: float, deep: float, best_epochs=(14, 14, 9)) -> pd.DataFrame:
    return pd.DataFrame({"ablation": ["paper", "latent64", "deep"], "best_val_total": [paper, latent64, deep],
                         "parameters": [1_155_993, 1_094_425, 4_799_257], "epochs": [15, 15, 15],
                         "best_epoch": list(best_epochs)})


def test_claims_follow_the_two_percent_rule():
    # latent64 3% worse than paper: supports "128 is better"; deep 1% worse: supports "no better"
    supported = claims(_claims_table(100.0, 103.0, 101.0))
    assert "(+3.0%): this supports" in supported["latent"]
    assert "4,799,257 parameters" in supported["deep"] and "(+1.0%): this supports" in supported["deep"]
    # latent64 1% worse (within the margin) and deep 5% better: neither claim holds
    refuted = claims(_claims_table(100.0, 101.0, 95.0))
    assert "(+1.0%): this does not support" in refuted["latent"]
    assert "(-5.0%): this does not support" in refuted["deep"]
    assert "untested" in claims(_claims_table(100.0, 101.0, 95.0).iloc[:1])["latent"]


def test_convergence_names_the_variants_still_improving_at_their_last_epoch():
    sentence = convergence(_claims_table(100.0, 101.0, 95.0, best_epochs=(14, 14, 9)))
    assert sentence.startswith("2 of 3 variants (paper, latent64) reached") and "15 epochs" in sentence
    assert convergence(_claims_table(1, 1, 1, best_epochs=(14, 14, 14))).startswith("All 3 variants reached")
    assert convergence(_claims_table(1, 1, 1, best_epochs=(3, 4, 5))).startswith("Every variant")
