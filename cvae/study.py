"""The study a book runs beside its main run: the ablation variants over seeds and the loss-weight search.

Every run of the study is an ordinary cached ablation run (`cvae.ablations`) at the profile's ablation scale:

- the original's claims and the aux-head diagnosis are measured over `STUDY_SEEDS` seeds (two in the smoke book,
  `study_seeds`; `SEEDED`: the paper's
  model, latent 64, the deeper model, and the diagnosis contrasts gamma 0, gamma 10 and the unconditioned encoder), so
  every verdict carries its spread (`cvae.spread`, `cvae.claims`);
- every other variant, and every candidate of the weight search (`cvae.weight_search`), trains once, at the base
  seed; a candidate whose configuration equals a named variant (gamma = 0 is `no_aux`) is that same run.

`run_study` trains what is missing and measures every run once (`cvae.evaluate.variant_metrics`, cached in the run
folder); the tables and spreads below are read from its result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from .ablations import STANDARD, ablation_config
from .config import Config, ConfigError, make_config, parse_overrides
from .data import load_data
from .evaluate import cached_variant_metrics, variant_metrics
from .evaluator import load_or_train_evaluator
from .loss import TERMS
from .runs import is_finished, load_run, run_dir_for
from .spread import Spread, over_seeds, paired_relative_difference
from .train import autocast_dtype, select_device, train
from .weight_search import candidates, decide, search_table, winners

STUDY_SEEDS = 3  # seeds of every claim and diagnosis contrast (cvae.claims.MIN_SEEDS)
# the smoke book tests the pipeline, not the claims: two seeds exercise every step (pairing, intervals) at two thirds
# of the cost, and its verdicts on seeded claims are "inconclusive" by the rule
PROFILE_SEEDS = {"smoke": 2}
# candidates per weight in the smoke book's search: one (the grid value farthest from the default) runs every step
SEARCH_CANDIDATES = {"smoke": 1}


def study_seeds(profile: str) -> int:
    """How many seeds a profile's study trains each seeded variant with."""
    return PROFILE_SEEDS.get(profile, STUDY_SEEDS)
# the original's claims (latent size, depth, aux heads) and the diagnosis contrasts: measured over seeds
SEEDED = ("paper", "latent64", "deep", "no_aux", "encoder_unconditioned", "gamma_10")


@dataclass(frozen=True)
class StudyRun:
    """One run of the study: its variant name, seed, the weight-search coordinates it stands for, and its config."""

    name: str
    seed: int
    config: Config
    weights: tuple[tuple[str, float], ...] = ()  # (weight, value) of the search candidates this run is


def candidate_name(weight: str, value: float) -> str:
    """The variant name of a weight-search candidate: 'a_l1=0.1'."""
    return f"{weight}={value:g}"


def study_runs(profile: str, extra: dict | Iterable[str] = (), seed: int = 0, names: Iterable[str] | None = None,
               data_dir: str | Path | None = None, precision_comparison: bool = True) -> list[StudyRun]:
    """Every run of the study in training order (cheap variants first within a seed; seeds innermost last).

    `names` restricts it to some variants (candidate names such as 'a_l1=0.1' included); `precision_comparison`
    False drops the `fp32` variant (pointless where the default already trains in fp32)."""
    base = ablation_config("paper", profile, extra).replace(seed=seed)
    wanted = None if names is None else set(names)
    planned: list[StudyRun] = []
    for name in STANDARD:
        if name == "fp32" and not precision_comparison:
            continue
        seeds = range(seed, seed + study_seeds(profile)) if name in SEEDED else (seed,)
        for run_seed in seeds:
            planned.append(StudyRun(name, run_seed, ablation_config(name, profile, extra).replace(seed=run_seed)))
    by_hash = {(run.config.config_hash()): index for index, run in enumerate(planned)}
    for weight, value in candidates(base, SEARCH_CANDIDATES.get(profile)):
        config = base.replace(**{weight: value})
        index = by_hash.get(config.config_hash())
        if index is None:
            planned.append(StudyRun(candidate_name(weight, value), seed, config, ((weight, value),)))
            by_hash[config.config_hash()] = len(planned) - 1
        else:
            run = planned[index]
            planned[index] = StudyRun(run.name, run.seed, run.config, run.weights + ((weight, value),))
    if wanted is not None:
        unknown = wanted - {run.name for run in planned}
        if unknown:
            raise ConfigError(f"unknown study variant(s) {', '.join(sorted(unknown))}; known: "
                              f"{', '.join(dict.fromkeys(run.name for run in planned))}")
        planned = [run for run in planned if run.name in wanted]
    if data_dir:
        planned = [StudyRun(r.name, r.seed, r.config.replace(data_dir=str(data_dir)), r.weights) for r in planned]
    # deep (about 4x the others) last, so an interrupted build has the most runs done
    return sorted(planned, key=lambda run: (run.name == "deep", run.seed != seed))


def precision_comparison_possible(config: Config) -> bool:
    """Whether this machine trains the default in bf16, so that the `fp32` variant compares two precisions (on a
    machine without native bf16 the default already is fp32 and the variant would repeat it)."""
    return autocast_dtype(config, select_device(config.device)) is not None


def run_study(profile: str, extra: dict | Iterable[str] = (), seed: int = 0, names: Iterable[str] | None = None,
              data_dir: str | Path | None = None, progress: bool = False) -> pd.DataFrame:
    """Train (or reuse) every study run and measure it once; one row per run (see `study_row`). Every run is judged
    by the main configuration's evaluator (the profile with `extra`, not the ablation scale)."""
    main = make_config(profile, extra if isinstance(extra, dict) else parse_overrides(extra))
    if data_dir:
        main = main.replace(data_dir=str(data_dir))
    runs = study_runs(profile, extra, seed, names, data_dir, precision_comparison_possible(main))
    loaded: dict[tuple, object] = {}  # the data of one seed serves every variant at that seed
    evaluator = None
    rows: dict[int, dict] = {}

    def data_key(run: StudyRun) -> tuple:
        c = run.config
        return (c.seed, c.data_source, c.synthetic_per_class, c.train_per_class, c.eval_per_class, c.data_dir)

    # runs that share their data run one after another (the data of a seed is loaded once), rows keep study order
    for index, run in sorted(enumerate(runs), key=lambda item: tuple(map(str, data_key(item[1])))):
        if is_finished(run_dir_for(run.config)) and (measured := cached_variant_metrics(run.config, main)):
            rows[index] = study_row(run, load_run(run_dir_for(run.config)), measured)
            continue  # trained and measured before: no data to load
        if data_key(run) not in loaded:
            loaded.clear()  # one seed's data at a time
            loaded[data_key(run)] = load_data(run.config, progress=progress)
        data = loaded[data_key(run)]
        run_dir = train(run.config, data=data, progress=progress, record_balance=False)
        if evaluator is None:
            evaluator, _ = load_or_train_evaluator(main, None, progress=progress, device=select_device(main.device))
        measured = variant_metrics(run.config, data=data, evaluator=evaluator, evaluator_config=main,
                                   progress=progress)
        rows[index] = study_row(run, load_run(run_dir), measured)
    return pd.DataFrame([rows[index] for index in range(len(runs))])


def study_row(run: StudyRun, finished, measured: dict) -> dict:
    """The table row of one finished study run: name, seed, weights, config hash, training numbers and the
    measured numbers (`variant_metrics`)."""
    last = finished.metrics.iloc[-1]
    row = {"name": run.name, "seed": run.seed, "weights": ";".join(f"{w}={v:g}" for w, v in run.weights),
           "config_hash": run.config.config_hash(), "parameters": finished.summary["parameters"],
           "epochs": finished.summary["epochs"], "best_epoch": finished.summary["best_epoch"] + 1,  # 1-based
           "best_val_total": finished.summary["best_val_total"],
           "train_seconds": finished.summary["train_seconds"], "run": finished.path.name}
    row.update({f"final_val_{term}": float(last[f"val_{term}"]) for term in (*TERMS, "total")})
    row.update({key: value for key, value in measured.items() if not isinstance(value, (dict, list))
                and key not in ("evaluation_key", "run")})
    return row


def seed_spread(table: pd.DataFrame, name: str, column: str) -> Spread | None:
    """The spread over seeds of one column for one variant (None when the variant is absent)."""
    values = table.loc[table["name"] == name].sort_values("seed")[column].dropna()
    bounds = (0.0, 1.0) if "accuracy" in column else None  # a rate's interval stays inside [0, 1]
    return over_seeds(list(values), bounds) if len(values) else None


def paired_spread(table: pd.DataFrame, name: str, baseline: str = "paper",
                  column: str = "best_val_total") -> Spread | None:
    """The relative difference (name - baseline) / |baseline| of a column over the seeds both were trained at."""
    rows = table[table["name"].isin([name, baseline])].pivot_table(index="seed", columns="name", values=column)
    if name not in rows or baseline not in rows:
        return None
    rows = rows.dropna()
    return paired_relative_difference(list(rows[name]), list(rows[baseline])) if len(rows) else None


def claim_evidence(table: pd.DataFrame) -> dict:
    """The study's part of the claims' evidence: latent and deep (paired relative differences of the best validation
    loss against the paper's model) and the aux heads of the paper's model (eval mode, test split) over seeds."""
    return {"latent": paired_spread(table, "latent64"), "deep": paired_spread(table, "deep"),
            "aux_class": seed_spread(table, "paper", "aux_class_accuracy"),
            "aux_modality": seed_spread(table, "paper", "aux_modality_accuracy")}


def search_results(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The weight search's input: rows of the base seed with their (weight, value) coordinates; the base run (the
    paper's model) has weight ''."""
    rows = []
    at_seed = table[table["seed"] == seed]
    for _, row in at_seed.iterrows():
        if row["name"] == "paper":
            rows.append({**row.to_dict(), "weight": "", "value": 0.0})
        for item in filter(None, str(row["weights"]).split(";")):
            weight, value = item.split("=")
            rows.append({**row.to_dict(), "weight": weight, "value": float(value)})
    return pd.DataFrame(rows)





def study_report(table: pd.DataFrame, profile: str, extra: dict | Iterable[str], seed: int) -> dict:
    """The study as plain JSON: every run, the claims over seeds (Spread dicts) and the weight search with the rule's
    decision. Keys: runs, claims {latent, deep, aux_class, aux_modality}, weight_search {table, winners, decision}."""
    base = ablation_config("paper", profile, extra).replace(seed=seed)
    search = search_table(search_results(table, seed), base)
    claims = {key: (spread.to_dict() if spread is not None else None)
              for key, spread in claim_evidence(table).items()}
    columns = [c for c in search.columns if c in ("weight", "value", "mean_rank", "current", "winner",
                                                   "recon_psnr", "recon_ssim", "domain_fid",
                                                   "conditional_class_accuracy", "probe_class_accuracy")]
    return json.loads(json.dumps({
        "profile": profile, "seed": seed, "runs": table.to_dict(orient="records"), "claims": claims,
        "weight_search": {"table": search[columns].to_dict(orient="records"), "winners": winners(search),
                          "decision": decide(search)},
    }, default=float))


def format_report(report: dict) -> str:
    """The study report as a few readable lines."""
    lines = [f"study of profile {report['profile']}: {len(report['runs'])} runs"]
    for key, spread in report["claims"].items():
        if spread is None:
            lines.append(f"  {key:14s} not trained")
        else:
            lines.append(f"  {key:14s} {Spread.from_dict(spread).text(4)}")
    decision = report["weight_search"]["decision"]
    lines.append("  weight search: " + (", ".join(f"{k} -> {v:g}" for k, v in decision.items()) if decision
                                        else "keeps every default"))
    return "\n".join(lines)


__all__ = ["STUDY_SEEDS", "PROFILE_SEEDS", "SEARCH_CANDIDATES", "study_seeds", "SEEDED", "StudyRun", "study_runs", "run_study", "study_row", "seed_spread",
           "paired_spread", "claim_evidence", "search_results", "candidate_name", "study_report", "format_report",
           "precision_comparison_possible"]
