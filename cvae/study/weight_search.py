"""What a search says about the loss weights (the original's weight table is missing, so the defaults are our choice).

The search moves one weight at a time around the current default, the others held, at the profile's ablation scale
and over `cvae.study.runner.SEARCH_SEEDS` seeds (its runs are ordinary cached ablation runs; `python -m cvae search` trains
them, outside the book build). Every candidate is judged on criteria that do not contain the weights (a weighted
loss would favour whatever the weights make small), all measured on the validation split, never on the test split:

- reconstruction PSNR of the validation images (SSIM is left out: it ranked the candidates as PSNR did, r = 0.95 on
  the earlier search, so it would count the same evidence twice);
- the domain FID of samples against the validation images (lower is better);
- the evaluator's conditional class accuracy of the samples.

The linear probe's class accuracy is left out as well: it read 100% for every candidate of the earlier search.

The rule (`RULE`, printed in the ablations chapter and written before the search was run): a candidate is better
than the default on a criterion when the 95% interval of its paired difference over seeds lies wholly on the better
side of 0, worse when it lies wholly on the other side. Each test is
Holm-corrected over every candidate and criterion. A candidate beats the default when it is better on at least one
criterion and worse on none. Each weight's winner is the candidate that beats the default on the most criteria
(ties: the value closest to the default). A change is adopted only for one weight at a time, the one whose winner is
better on the most criteria, because combinations of changes were not trained; a tie between weights changes none.
"""

from __future__ import annotations

import pandas as pd

from cvae.core.config import Config
from cvae.core.spread import holm, over_seeds

FAMILY_ALPHA = 0.05  # Holm's family: every candidate on every criterion

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
    "criterion when its paired difference from the default, over seeds, is significant at 5% in the better "
    "direction after Holm's correction over every candidate and criterion, and worse when it is significant in the "
    "other direction. It beats the default when it is better on at least one criterion and worse on none; 'worse on none' "
    "means no harm the seeds could detect, not a proof of none. A change is adopted for one weight only, the one whose "
    "winner is better on the most criteria, since combinations were not trained; when two weights tie, none changes. "
    "SSIM and the linear probe's class accuracy were dropped before this search, after an earlier single-seed round "
    "found SSIM ranking the candidates as PSNR did and the probe at 100% for all."
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
    """Per criterion: the mean, the paired difference from the default (signed so that + is better), its 95%
    interval and its p-value over the seeds both share."""
    seeds = sorted(set(candidate["seed"]) & set(default["seed"]))
    a, b = candidate.set_index("seed").loc[seeds], default.set_index("seed").loc[seeds]
    row: dict = {"seeds": len(seeds)}
    for column, sign in CRITERIA.items():
        spread = over_seeds([sign * (x - y) for x, y in zip(a[column], b[column])])
        row[column] = float(a[column].mean())
        row[f"{column}_gain"] = spread.mean
        row[f"{column}_low"], row[f"{column}_high"] = spread.low, spread.high
        row[f"{column}_p"] = spread.p_value(0.0)
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
    interval, the counts of criteria better and worse after Holm's correction over every candidate and criterion,
    the verdict against the default and the winner flag. `results` has columns weight ('' for the default's runs),
    value, seed and the CRITERIA."""
    default = results[results["weight"] == ""]
    rows = []
    for weight in GRID:
        current = float(getattr(base, weight))
        for value, runs in results[results["weight"] == weight].groupby("value"):
            rows.append({"weight": weight, "value": float(value), "current": False, **_compare(runs, default)})
        rows.append({"weight": weight, "value": current, "current": True, **_compare(default, default)})
    table = pd.DataFrame(rows)
    tests = [(i, column) for i in table.index for column in CRITERIA if not table.loc[i, "current"]]
    p_values = [table.loc[i, f"{column}_p"] for i, column in tests]
    adjusted = holm([None if p is None or pd.isna(p) else float(p) for p in p_values])
    table["better"], table["worse"] = 0, 0
    for (i, column), p in zip(tests, adjusted):
        if p is not None and p < FAMILY_ALPHA:
            table.loc[i, "better" if table.loc[i, f"{column}_gain"] > 0 else "worse"] += 1
    table["verdict"] = [_verdict(row) for row in table.to_dict(orient="records")]
    table["winner"] = False
    for weight, line in table.groupby("weight", sort=False):
        current = float(getattr(base, weight))
        beats = line[(~line["current"]) & (line["better"] > 0) & (line["worse"] == 0)]
        winner = current
        if len(beats):
            beats = beats.assign(distance=(beats["value"] - current).abs())
            winner = float(beats.sort_values(["better", "distance"], ascending=[False, True])["value"].iloc[0])
        table.loc[line.index, "winner"] = line["value"] == winner
    order = table["weight"].map(list(GRID).index)
    return table.assign(order=order).sort_values(["order", "value"]).drop(columns="order").reset_index(drop=True)


def winners(table: pd.DataFrame) -> dict[str, dict]:
    """{weight: {value, current, better}} for each weight whose winner beats the default."""
    out = {}
    for weight, line in table.groupby("weight", sort=False):
        win, cur = line[line["winner"]].iloc[0], line[line["current"]].iloc[0]
        if not bool(win["current"]):
            out[weight] = {"value": float(win["value"]), "current": float(cur["value"]), "better": int(win["better"])}
    return out


def decide(table: pd.DataFrame) -> dict:
    """The rule's decision: {weight: value} to change (empty = keep every default); one weight at most, and none when
    two weights tie for the most criteria better."""
    won = winners(table)
    if not won:
        return {}
    most = max(entry["better"] for entry in won.values())
    leaders = [weight for weight, entry in won.items() if entry["better"] == most]
    return {leaders[0]: won[leaders[0]]["value"]} if len(leaders) == 1 else {}


def _gains(record: dict) -> str:
    """'The winner, a_perc = 5, is better on reconstruction PSNR (dB) by +0.0531, 95% CI +0.0137 to +0.0926, and
    worse on none.' for each weight the record's decision changes (gains signed so that positive is better)."""
    parts = []
    for weight, value in record["decision"].items():
        row = next(r for r in record["table"] if r["weight"] == weight and r["value"] == value)
        better = [f"{CRITERION_NAMES[c]} by {row[c + '_gain']:+.3g}, 95% CI {row[c + '_low']:+.3g} to "
                  f"{row[c + '_high']:+.3g}" for c in CRITERIA if row.get(c + "_low") is not None
                  and row[c + "_low"] > 0]  # gains are signed so that positive is better
        parts.append(f"The winner, {weight} = {value:g}, is better on {'; '.join(better) or 'one criterion'}, and "
                     "worse on none.")
    return " ".join(parts)


def decision_sentence(record: dict | None, base: Config, data_label: str) -> str:
    """What the search says about our choice of defaults, as plain sentences: the last recorded search (date,
    machine, seeds) and its decision, or how to run it when none is recorded."""
    defaults = ", ".join(f"{w} = {getattr(base, w):g}" for w in GRID)
    if record is None:
        return f"This build did not run the search around our defaults, {defaults}, so they stand untested."
    decision = record["decision"]
    machine = record.get("machine_text") or f"a machine with {record['machine']['processor']}"
    when = f"A search over {record['seeds']} seeds on {data_label}, recorded on {record['date'][:10]} on {machine}"
    if record.get("recorded_in"):
        when += f" and kept in {record['recorded_in']}, which this build did not rerun,"
    if not decision:
        said = "no candidate beats the default on any criterion without losing on another, so the rule keeps them"
    else:
        said = "the rule would change " + ", ".join(f"{w} to {v:g}" for w, v in decision.items())
    sentence = f"Our defaults are {defaults}. {when} found that {said}."
    if decision and record.get("data_source") == "synthetic":
        sentence += (f" {_gains(record)} We depart from the rule, fixed before the search, and keep the defaults: the"
                     " search ran on synthetic images, a default for medical images should be decided on medical"
                     " images, and the rule has no minimum effect, so a gain this small can decide it. The same search"
                     " on real MedMNIST, with a minimum effect added, should decide.")
    elif decision:
        sentence += " This build still trains with the defaults above until they are changed in cvae/core/config.py."
    return sentence


__all__ = ["GRID", "CRITERIA", "CRITERION_NAMES", "RULE", "candidates", "search_table", "winners", "decide",
           "decision_sentence"]
