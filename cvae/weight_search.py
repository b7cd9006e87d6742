"""Choosing the loss weights by a rule written down before it was run (the original's weight table is missing).

The search moves one weight at a time around the current default, the others held, at the profile's ablation scale
and one seed (the runs are ordinary cached ablation runs: a candidate equal to a standard ablation is the same run).
Every candidate is judged on criteria that do not contain the weights themselves (a weighted validation loss would
favour whatever the weights make small):

- reconstruction: PSNR and SSIM of the test reconstructions (two criteria);
- generation: domain FID of the samples (lower is better) and the evaluator's conditional class accuracy;
- latent: the accuracy of a linear probe reading the class from mu.

The rule (`RULE`, printed in the ablations chapter): for each weight, rank its candidates on each criterion (1 = best,
ties share their mean rank) and average the five ranks; the candidate with the lowest mean rank wins, and a tie with
the current value keeps the current value. The default takes each weight's winner. If more than one weight changes,
the combination must also beat the current default by the same rule (ranking the two), otherwise only the change with
the largest rank gain is taken.
"""

from __future__ import annotations

import pandas as pd

from .config import Config

# candidate values per weight; the current default must be one of them (checked by `candidates`)
GRID: dict[str, tuple[float, ...]] = {
    "a_l1": (0.0, 0.1, 0.5),
    "a_perc": (0.0, 0.5, 5.0),
    "beta_max": (0.01, 0.1, 0.3, 1.0),
    "gamma": (0.0, 0.1, 1.0, 10.0),
}
# criterion -> +1 when higher is better, -1 when lower is better
CRITERIA: dict[str, int] = {"recon_psnr": +1, "recon_ssim": +1, "domain_fid": -1, "conditional_class_accuracy": +1,
                            "probe_class_accuracy": +1}
CRITERION_NAMES = {"recon_psnr": "reconstruction PSNR (dB)", "recon_ssim": "reconstruction SSIM",
                   "domain_fid": "domain FID", "conditional_class_accuracy": "conditional class accuracy",
                   "probe_class_accuracy": "linear-probe class accuracy"}

RULE = (
    "For each weight, its candidates are ranked on each of five criteria that do not contain the weights: "
    "reconstruction PSNR and SSIM on the test split, the domain FID of samples (lower is better), the evaluator's "
    "conditional class accuracy, and the class accuracy of a linear probe on mu (1 = best; ties share their mean "
    "rank). The candidate with the lowest mean rank wins; a tie with the current value keeps it. The default takes "
    "each weight's winner; if more than one weight changes, the combination must also beat the current default by "
    "the same rule, otherwise only the change with the largest rank gain is taken."
)


def candidates(base: Config, per_weight: int | None = None) -> list[tuple[str, float]]:
    """(weight, value) of every candidate other than the base itself, one weight at a time; ValueError if a base
    weight is not in its grid (the search must be centred on the default). `per_weight` keeps only that many per
    weight, farthest from the default first (the smoke book runs one)."""
    out = []
    for weight, values in GRID.items():
        current = float(getattr(base, weight))
        if current not in values:
            raise ValueError(f"the default {weight}={current:g} is not in the search grid {values}")
        others = [float(value) for value in values if value != current]
        if per_weight is not None:
            position = values.index(current)
            others = sorted(others, key=lambda v: -abs(values.index(v) - position))[:per_weight]
        out += [(weight, value) for value in others]
    return out


def mean_ranks(rows: pd.DataFrame) -> pd.Series:
    """Mean rank over CRITERIA (1 = best) of each row of a table holding the criteria columns."""
    ranks = [(-sign * rows[column]).rank(method="average") for column, sign in CRITERIA.items()]
    return pd.concat(ranks, axis=1).mean(axis=1)


def search_table(results: pd.DataFrame, base: Config) -> pd.DataFrame:
    """One row per (weight, value) including the current value, with the criteria, each line's mean rank and the
    winner flag. `results` has columns weight, value and the CRITERIA (the base appears once with weight '' or is
    repeated per weight); the base row is the one whose value equals the default for every weight."""
    lines = []
    for weight in GRID:
        current = float(getattr(base, weight))
        line = results[(results["weight"] == weight) | (results["weight"] == "")].copy()
        line.loc[line["weight"] == "", "value"] = current
        line["weight"] = weight
        line = line.drop_duplicates("value").sort_values("value")
        line["mean_rank"] = mean_ranks(line)
        line["current"] = line["value"] == current
        best = line["mean_rank"].min()
        winners = line[line["mean_rank"] == best]
        winner_value = current if current in set(winners["value"]) else float(winners["value"].iloc[0])
        line["winner"] = line["value"] == winner_value
        lines.append(line)
    return pd.concat(lines, ignore_index=True)


def winners(table: pd.DataFrame) -> dict[str, dict]:
    """{weight: {value, current, rank_gain}} for each weight whose winner differs from the current value."""
    out = {}
    for weight, line in table.groupby("weight", sort=False):
        win, cur = line[line["winner"]].iloc[0], line[line["current"]].iloc[0]
        if not bool(win["current"]):
            out[weight] = {"value": float(win["value"]), "current": float(cur["value"]),
                           "rank_gain": float(cur["mean_rank"] - win["mean_rank"])}
    return out


def decide(table: pd.DataFrame, combined: pd.Series | None = None, base_row: pd.Series | None = None) -> dict:
    """The rule's decision: {weight: value} to change (empty = keep the default). With several winners, `combined`
    (the criteria of the combination's run) is ranked against `base_row` (the default's)."""
    won = winners(table)
    if len(won) <= 1:
        return {weight: entry["value"] for weight, entry in won.items()}
    if combined is not None and base_row is not None:
        pair = pd.DataFrame([base_row[list(CRITERIA)], combined[list(CRITERIA)]], index=["default", "combined"])
        ranks = mean_ranks(pair)
        if ranks["combined"] < ranks["default"]:
            return {weight: entry["value"] for weight, entry in won.items()}
    weight = max(won, key=lambda w: won[w]["rank_gain"])
    return {weight: won[weight]["value"]}


def decision_sentence(table: pd.DataFrame, base: Config, data_label: str) -> str:
    """What the rule decides on this build's search, as one sentence naming the default and any winner."""
    defaults = ", ".join(f"{w} = {getattr(base, w):g}" for w in GRID)
    won = winners(table)
    if not won:
        return f"On {data_label}, the rule keeps every default ({defaults}): no candidate ranks above it."
    changes = ", ".join(f"{w} from {e['current']:g} to {e['value']:g} (mean rank {e['rank_gain']:.1f} better)"
                        for w, e in won.items())
    tail = ("" if len(won) == 1 else "; with several winners the rule also needs their combination, which this "
            f"book does not train, so it would take the largest single gain, {decide(table)}")
    return (f"On {data_label}, the rule would change {changes}{tail}. The defaults ({defaults}) come from one earlier "
            f"round of this search on the stand-in (results/weight_search_quick.json); this build's round, around "
            f"those defaults and with one seed per candidate, is shown here, not adopted: a single seed cannot say "
            f"whether the gain would hold for another.")


__all__ = ["GRID", "CRITERIA", "CRITERION_NAMES", "RULE", "candidates", "mean_ranks", "search_table", "winners",
           "decide", "decision_sentence"]
