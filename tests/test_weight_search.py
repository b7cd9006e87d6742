"""The loss-weight search: candidates around the default, ranks on fixed numbers, the rule's decision."""

from __future__ import annotations

import pandas as pd
import pytest

from cvae.config import make_config
from cvae.weight_search import GRID, candidates, decide, mean_ranks, search_table, winners


def _row(weight, value, psnr, ssim, fid, cond, probe):
    return {"weight": weight, "value": value, "recon_psnr": psnr, "recon_ssim": ssim, "domain_fid": fid,
            "conditional_class_accuracy": cond, "probe_class_accuracy": probe}


def test_candidates_move_one_weight_at_a_time_around_the_default():
    base = make_config("quick")
    found = candidates(base)
    assert len(found) == sum(len(v) - 1 for v in GRID.values()) == 10
    assert ("a_l1", 0.0) in found and ("a_l1", base.a_l1) not in found
    assert ("gamma", 10.0) in found and ("beta_max", 1.0) in found
    with pytest.raises(ValueError, match="a_l1=0.25 is not in the search grid"):
        candidates(base.replace(a_l1=0.25))


def test_mean_rank_counts_each_criterion_once_with_its_direction():
    rows = pd.DataFrame([_row("a_l1", 0.0, 20, 0.5, 30, 0.5, 0.5), _row("a_l1", 0.5, 21, 0.6, 20, 0.6, 0.6)])
    assert list(mean_ranks(rows)) == [2.0, 1.0]  # the second is better on all five (lower FID included)
    rows.loc[1, "domain_fid"] = 40.0  # now worse on FID only
    assert list(mean_ranks(rows)) == pytest.approx([1.8, 1.2])


def test_the_rule_keeps_the_default_on_a_tie_and_takes_a_clear_winner():
    base = make_config("quick", {"a_l1": 0.5, "a_perc": 0.5, "beta_max": 0.1, "gamma": 1.0})
    results = pd.DataFrame([
        _row("", 0.0, 20.0, 0.60, 30.0, 0.50, 0.96),  # the default
        _row("a_l1", 0.0, 20.5, 0.62, 29.0, 0.52, 0.91),  # better on all but the probe
        _row("a_l1", 0.1, 20.2, 0.61, 29.5, 0.51, 0.90),
        _row("a_perc", 0.0, 20.0, 0.60, 30.0, 0.50, 0.96),  # identical to the default: a tie
        _row("a_perc", 5.0, 19.0, 0.55, 35.0, 0.45, 0.85),
        _row("beta_max", 0.01, 21.0, 0.65, 40.0, 0.40, 0.95),
        _row("beta_max", 0.3, 19.5, 0.58, 25.0, 0.55, 0.88),
        _row("beta_max", 1.0, 18.0, 0.50, 20.0, 0.60, 0.80),
        _row("gamma", 0.0, 20.0, 0.60, 30.0, 0.45, 0.85),
        _row("gamma", 0.1, 20.0, 0.60, 30.0, 0.48, 0.88),
        _row("gamma", 10.0, 19.0, 0.57, 31.0, 0.49, 0.95),
    ])
    table = search_table(results, base)
    assert set(table["weight"]) == set(GRID) and len(table) == 3 + 3 + 4 + 4
    won = winners(table)
    assert set(won) == {"a_l1"} and won["a_l1"]["value"] == 0.0 and won["a_l1"]["rank_gain"] == pytest.approx(1.4)
    assert bool(table[(table.weight == "a_perc") & (table.value == 0.5)]["winner"].iloc[0])  # the tie keeps 0.5
    assert decide(table) == {"a_l1": 0.0}


def test_several_winners_need_the_combination_to_beat_the_default():
    base = make_config("quick")
    results = pd.DataFrame([
        _row("", 0.0, 20.0, 0.60, 30.0, 0.50, 0.90),
        _row("a_l1", 0.0, 20.5, 0.62, 29.0, 0.52, 0.91),  # gain 2.0
        _row("a_l1", 0.1, 19.0, 0.50, 35.0, 0.40, 0.80),
        _row("a_perc", 0.0, 20.2, 0.61, 29.8, 0.51, 0.89),  # better on four of five
        _row("a_perc", 5.0, 19.0, 0.55, 35.0, 0.45, 0.85),
    ])
    table = search_table(results, base)
    assert set(winners(table)) == {"a_l1", "a_perc"}
    default = results.iloc[0]
    better = pd.Series(_row("", 0, 21.0, 0.63, 28.0, 0.53, 0.92))
    worse = pd.Series(_row("", 0, 19.0, 0.55, 33.0, 0.45, 0.85))
    assert decide(table, better, default) == {"a_l1": 0.0, "a_perc": 0.0}
    assert decide(table, worse, default) == {"a_l1": 0.0}  # the single largest gain
    assert decide(table) == {"a_l1": 0.0}  # the combination not trained yet: the single largest gain
