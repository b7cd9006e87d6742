"""What a search says about the loss weights (the original's weight table is missing, so the defaults are our choice).

The search moves one weight at a time around the current default, the others held, at the profile's ablation scale
and over `cvae.study.SEARCH_SEEDS` seeds (its runs are ordinary cached ablation runs; `python -m cvae search` trains
them, outside the book build). Every candidate is judged on criteria that do not contain the weights (a weighted
loss would favour whatever the weights make small), all measured on the validation split, never on the test split:

- reconstruction PSNR of the validation images (SSIM is left out: it ranked the candidates as PSNR did, r = 0.95 on
  the earlier search, so it would count the same evidence twice);
- the domain FID of samples against the validation images (lower is better);
- the evaluator's conditional class accuracy of the samples.

The linear probe's class accuracy is left out as well: it read 100% for every candidate of the earlier search.

The rule (`RULE`, printed in the ablations chapter and written before the search was run): a candidate is better
than the default on a criterion when the 95% interval of its paired difference over seeds lies wholly on the better
side of 0, worse when it lies wholly on the other side. A candidate beats the default when it is better on at least
one criterion and worse on none. Each weight's winner is the candidate that beats the default on the most criteria
(ties: the value closest to the default). A change is adopted only for one weight at a time, the one whose winner is
better on the most criteria, because combinations of changes were not trained.
"""

from __future__ import annotations

import pandas as pd

from .config import Config
from .spread import over_seeds

# candidate values per weight; the current default must be one of them (checked by `candidates`)
GRID: dict[str, tuple[float, ...]] = {
    "a_l1": (0.0, 0.1, 0.5),
    "a_perc": (0.0, 0.5, 5.0),
    "beta_max": (0.01, 0.1, 0.3, 1.0),
    "gamma": (0.0, 0.1, 1.0, 10.0),
}
# criterion -> +1 when higher is better, -1 when lower is better (all on the validation split)
CRITERIA: dict[str, int] = {"val_recon_psnr": +1, "val_domain_fid": -1, "conditional_class_accuracy": +1}
CRITERION_NAMES = {"val_recon_psnr": "reconstruction PSNR (dB)", "val_domain_fid": "domain FID",
                   "conditional_class_accuracy": "sample class accuracy"}

RULE = (
    "Each weight is moved alone around its default and every candidate is trained with the same seeds as the "
    "default. Three criteria that do not contain the weights are measured on the validation split: reconstruction "
    "PSNR, the domain FID of samples and the evaluator's class accuracy on samples. A candidate is better on a "
    "criterion when the 95% interval of its paired difference from the default lies wholly on the better side of "
    "zero, and worse when it lies wholly on the other side. It beats the default when it is better on at least one "
    "criterion and worse on none. A change is adopted for one weight only, the one whose winner is better on the most "
    "criteria, since combinations were not trained."
)


def candidates(base: Config, per_weight: int | None = None) -> list[tuple[str, float]]:
    """(weight, value) of every candidate other than the base itself, one weight at a time; ValueError if a base
    weight is not in its grid (the search must be centred on the default). `per_weight` keeps only that many per
    weight, farthest from the default first (the smoke profile runs one)."""
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


def _compare(candidate: pd.DataFrame, default: pd.DataFrame) -> dict:
    """Per criterion: the mean, the paired difference from the default (signed so that + is better) and its 95%
    interval over the seeds both share; and how many criteria are better and worse."""
    seeds = sorted(set(candidate["seed"]) & set(default["seed"]))
    a, b = candidate.set_index("seed").loc[seeds], default.set_index("seed").loc[seeds]
    row: dict = {"seeds": len(seeds), "better": 0, "worse": 0}
    for column, sign in CRITERIA.items():
        spread = over_seeds([sign * (x - y) for x, y in zip(a[column], b[column])])
        row[column] = float(a[column].mean())
        row[f"{column}_gain"] = spread.mean
        row[f"{column}_low"], row[f"{column}_high"] = spread.low, spread.high
        if spread.low is not None and spread.low > 0:
            row["better"] += 1
        elif spread.high is not None and spread.high < 0:
            row["worse"] += 1
    return row


def _verdict(row: dict) -> str:
    if row["current"]:
        return "default"
    if row["better"] and not row["worse"]:
        return f"better on {row['better']}, worse on none"
    if row["worse"] and not row["better"]:
        return f"worse on {row['worse']}"
    if row["better"]:
        return f"better on {row['better']}, worse on {row['worse']}"
    return "no difference beyond the seeds' spread"


def search_table(results: pd.DataFrame, base: Config) -> pd.DataFrame:
    """One row per (weight, value), the default included: the criteria's means over seeds, each paired gain with its
    interval, the counts of better and worse criteria, the verdict against the default and the winner flag.
    `results` has columns weight ('' for the default's runs), value, seed and the CRITERIA."""
    default = results[results["weight"] == ""]
    lines = []
    for weight in GRID:
        current = float(getattr(base, weight))
        line = []
        for value, runs in results[results["weight"] == weight].groupby("value"):
            line.append({"weight": weight, "value": float(value), "current": False, **_compare(runs, default)})
        line.append({"weight": weight, "value": current, "current": True, **_compare(default, default)})
        frame = pd.DataFrame(line).sort_values("value")
        frame["verdict"] = [_verdict(row) for row in frame.to_dict(orient="records")]
        beats = frame[(~frame["current"]) & (frame["better"] > 0) & (frame["worse"] == 0)]
        winner = current
        if len(beats):
            beats = beats.assign(distance=(beats["value"] - current).abs())
            winner = float(beats.sort_values(["better", "distance"], ascending=[False, True])["value"].iloc[0])
        frame["winner"] = frame["value"] == winner
        lines.append(frame)
    return pd.concat(lines, ignore_index=True)


def winners(table: pd.DataFrame) -> dict[str, dict]:
    """{weight: {value, current, better}} for each weight whose winner beats the default."""
    out = {}
    for weight, line in table.groupby("weight", sort=False):
        win, cur = line[line["winner"]].iloc[0], line[line["current"]].iloc[0]
        if not bool(win["current"]):
            out[weight] = {"value": float(win["value"]), "current": float(cur["value"]), "better": int(win["better"])}
    return out


def decide(table: pd.DataFrame) -> dict:
    """The rule's decision: {weight: value} to change (empty = keep every default); one weight at most."""
    won = winners(table)
    if not won:
        return {}
    weight = max(won, key=lambda w: won[w]["better"])
    return {weight: won[weight]["value"]}


def decision_sentence(record: dict | None, base: Config, data_label: str) -> str:
    """What the search says about our choice of defaults, as plain sentences: the last recorded search (date,
    machine, seeds) and its decision, or how to run it when none is recorded."""
    defaults = ", ".join(f"{w} = {getattr(base, w):g}" for w in GRID)
    if record is None:
        return (f"The defaults ({defaults}) are our choice. This build did not run the search around them; "
                f"make search PROFILE=... trains it over three seeds and this section then shows its result.")
    decision = record["decision"]
    when = f"on {record['date'][:10]} on a {record['machine']['processor']} machine, {record['seeds']} seeds"
    if not decision:
        said = "no candidate beats the default on any criterion without losing on another, so the rule keeps them"
    else:
        said = "the rule would change " + ", ".join(f"{w} to {v:g}" for w, v in decision.items())
    return f"The defaults ({defaults}) are our choice. The search recorded {when} on {data_label}: {said}."


__all__ = ["GRID", "CRITERIA", "CRITERION_NAMES", "RULE", "candidates", "search_table", "winners", "decide",
           "decision_sentence"]
