"""The study a book runs beside its main run: the ablation variants over seeds, and the loss-weight search.

Every run of the study is an ordinary cached ablation run (`cvae.study.ablations`) at the profile's ablation scale:

- the runs behind the original's claims (`CLAIMED`: the paper's model, latent 64, the deeper model) are measured over
  `CLAIM_SEEDS` seeds, the aux-head diagnosis and factorial contrasts over `STUDY_SEEDS` (`variant_seeds`), so every
  verdict carries its spread (`cvae.core.spread`, `cvae.study.claims`);
- every other variant trains once, at the base seed;
- the loss-weight search (`cvae.study.weight_search`) is not part of a book build: `python -m cvae search` (`make search`)
  trains its candidates over `SEARCH_SEEDS` seeds and records its decision with the date and the machine
  (`run_search`); a candidate whose configuration equals a named variant (gamma = 0 is `no_aux`) is the same run.

`measure_runs` trains what is missing and measures every run once (`cvae.evaluation.run_evaluation.variant_metrics`, cached in the run
folder); the tables, spreads and learning gates below are read from its result.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from cvae.core.config import Config, ConfigError, make_config, parse_overrides
from cvae.core.labels import DATASETS
from cvae.core.loss import TERMS
from cvae.core.machine import machine_record
from cvae.core.paths import PROJECT_ROOT, runs_dir
from cvae.core.spread import Spread, over_seeds, paired_relative_difference, rate_over_classes
from cvae.data.loading import load_data
from cvae.evaluation.domain_evaluator import load_or_train_evaluator
from cvae.evaluation.run_evaluation import cached_variant_metrics, variant_metrics
from cvae.study.ablations import FACTORIAL, STANDARD, ablation_config
from cvae.study.evidence_gate import Learned, combine, modality_gate
from cvae.study.weight_search import RULE as SEARCH_RULE
from cvae.study.weight_search import candidates, decide, search_table
from cvae.training.precision import autocast_dtype, select_device
from cvae.training.run_pool import default_workers, train_together
from cvae.training.runs import atomic_write_text, is_finished, load_run, run_dir_for
from cvae.training.train import train

# seeds of every contrast behind a claim: a 95% t-interval over 5 seeds is +-1.24 sd wide, over 3 it is +-2.48 sd
CLAIM_SEEDS = 5
STUDY_SEEDS = 3  # seeds of the aux-head diagnosis and factorial contrasts, which no claim's verdict reads
# the smoke book tests the pipeline, not the claims: two seeds exercise every step (pairing, intervals) at a fraction
# of the cost; its runs do not learn, so the learning gate makes its seeded claims "not testable at this scale"
PROFILE_SEEDS = {"smoke": 2}
SEARCH_SEEDS = 3  # seeds of every candidate of the weight search and of the default it is compared with
# candidates per weight in the smoke profile's search: one (the grid value farthest from the default) runs every step
SEARCH_CANDIDATES = {"smoke": 1}
# the study's column that comparisons of runs read: the validation loss with the KL term at its final weight, at the
# kept checkpoint (one objective for every epoch and every run; the total under beta(t) changes meaning as beta ramps)
COMPARED = "kept_val_at_beta_max"


# the original's claims (latent size, depth, aux heads) and the diagnosis contrasts: measured over seeds
CLAIMED = ("paper", "latent64", "deep")
SEEDED = (*CLAIMED, "no_aux", "encoder_unconditioned", "gamma_10", *FACTORIAL)


def study_seeds(profile: str) -> int:
    """How many seeds a profile's study trains the diagnosis and factorial variants with."""
    return PROFILE_SEEDS.get(profile, STUDY_SEEDS)


def variant_seeds(profile: str, name: str) -> int:
    """How many seeds a profile's study trains one variant with: CLAIM_SEEDS behind a claim, 1 for an unseeded one."""
    if name not in SEEDED:
        return 1
    return PROFILE_SEEDS.get(profile, CLAIM_SEEDS if name in CLAIMED else STUDY_SEEDS)


def seeds_text(profile: str) -> str:
    """'5 seeds for the runs behind the claims, 3 for the diagnosis' (or the one count where they are equal)."""
    claims, others = variant_seeds(profile, "paper"), study_seeds(profile)
    if claims == others:
        return f"{claims} seeds"
    return f"{claims} seeds for the runs behind the claims and {others} for the aux-head diagnosis"


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

    `names` restricts it to some variants; `precision_comparison` False drops the `fp32` variant (pointless where the
    default already trains in fp32)."""
    planned: list[StudyRun] = []
    for name in STANDARD:
        if name == "fp32" and not precision_comparison:
            continue
        seeds = range(seed, seed + variant_seeds(profile, name))
        for run_seed in seeds:
            planned.append(StudyRun(name, run_seed, ablation_config(name, profile, extra).replace(seed=run_seed)))
    if names is not None:
        wanted = set(names)
        unknown = wanted - {run.name for run in planned}
        if unknown:
            raise ConfigError(f"unknown study variant(s) {', '.join(sorted(unknown))}; known: "
                              f"{', '.join(dict.fromkeys(run.name for run in planned))}")
        planned = [run for run in planned if run.name in wanted]
    return _ordered(planned, seed, data_dir)


def search_runs(profile: str, extra: dict | Iterable[str] = (), seed: int = 0,
                data_dir: str | Path | None = None) -> list[StudyRun]:
    """Every run of the weight search: the default and each candidate (one weight moved, `cvae.study.weight_search`) over
    SEARCH_SEEDS seeds; a candidate equal to a named variant keeps that variant's name (the same cached run)."""
    base = ablation_config("paper", profile, extra)
    named: dict[str, str] = {}
    for name in STANDARD:  # the first name of a config (a factorial variant may equal `paper` at some scale)
        named.setdefault(ablation_config(name, profile, extra).config_hash(), name)
    planned = []
    for run_seed in range(seed, seed + SEARCH_SEEDS):
        planned.append(StudyRun("paper", run_seed, base.replace(seed=run_seed)))
        for weight, value in candidates(base, SEARCH_CANDIDATES.get(profile)):
            config = base.replace(**{weight: value})
            name = named.get(config.config_hash(), candidate_name(weight, value))
            planned.append(StudyRun(name, run_seed, config.replace(seed=run_seed), ((weight, value),)))
    return _ordered(planned, seed, data_dir)


def _ordered(planned: list[StudyRun], seed: int, data_dir: str | Path | None) -> list[StudyRun]:
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
    main = main_config(profile, extra, data_dir)
    runs = study_runs(profile, extra, seed, names, data_dir, precision_comparison_possible(main))
    return measure_runs(runs, main, progress, default_workers(profile))


def main_config(profile: str, extra: dict | Iterable[str], data_dir: str | Path | None) -> Config:
    """The main run's config of a profile with `extra` overrides (and `data_dir`): the one whose evaluator judges
    every study run."""
    main = make_config(profile, extra if isinstance(extra, dict) else parse_overrides(extra))
    return main.replace(data_dir=str(data_dir)) if data_dir else main


def seeded_runs(profile: str, names: Iterable[str], seeds: Iterable[int], extra: dict | Iterable[str] = (),
                data_dir: str | Path | None = None) -> list[StudyRun]:
    """The study runs of the named variants at the given seeds (any seeds, not only the profile's), in training
    order; the same configs, hence the same cached runs, as `study_runs` where the two overlap."""
    seeds = list(seeds)
    planned = [StudyRun(name, run_seed, ablation_config(name, profile, extra).replace(seed=run_seed))
               for name in names for run_seed in seeds]
    return _ordered(planned, seeds[0] if seeds else 0, data_dir)


def measure_runs(runs: list[StudyRun], main: Config, progress: bool = False, workers: int = 1) -> pd.DataFrame:
    """Train what is missing of `runs` (`workers` at a time, `cvae.training.run_pool`), measure each once (judged by `main`'s
    evaluator); one row per run, in order."""
    if workers > 1:
        train_together([run.config for run in runs], workers, progress=progress)
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
           "epochs": finished.summary["epochs"], "best_total_epoch": finished.best_total_epoch + 1,  # 1-based
           "best_val_total": finished.summary["best_val_total"],
           "kept_epoch": finished.kept_epoch + 1,  # 1-based
           COMPARED: float(finished.metrics.loc[finished.metrics["epoch"] == finished.summary["checkpoint_epoch"],
                                                "val_total_at_beta_max"].iloc[0]),
           "train_seconds": finished.summary["train_seconds"], "run": finished.path.name}
    row.update({f"final_val_{term}": float(last[f"val_{term}"]) for term in (*TERMS, "total")})
    row.update({key: value for key, value in measured.items() if not isinstance(value, (dict, list))
                and key not in ("evaluation_key", "run")})
    row.update({f"read_{reading}_{head}": value for reading, heads in (measured.get("aux_readings") or {}).items()
                for head, value in heads.items()})
    return row


def seed_spread(table: pd.DataFrame, name: str, column: str) -> Spread | None:
    """The spread over seeds of one column for one variant (None when the variant is absent). A rate that came out
    identical on every seed (all heads right, say) has no spread over seeds; at 0% or 100% it gets the
    distribution-free bound over the seeds themselves (`cvae.core.spread.rate_over_classes`), so zero spread never
    reads as certainty."""
    rows = table.loc[table["name"] == name].sort_values("seed")
    values = rows[column].dropna()
    if not len(values):
        return None
    if "accuracy" in column:  # a rate's interval stays inside [0, 1]; identical extremes get the distribution-free bound
        return rate_over_classes(list(values), kind="seeds")
    return over_seeds(list(values))


def paired_spread(table: pd.DataFrame, name: str, baseline: str = "paper", column: str = COMPARED) -> Spread | None:
    """The relative difference (name - baseline) / |baseline| of a column over the seeds both were trained at."""
    if column not in table:
        return None
    rows = table[table["name"].isin([name, baseline])].pivot_table(index="seed", columns="name", values=column)
    if name not in rows or baseline not in rows:
        return None
    rows = rows.dropna()
    return paired_relative_difference(list(rows[name]), list(rows[baseline])) if len(rows) else None


def run_gate(row: dict | pd.Series) -> Learned:
    """The learning gate of one study run, modality by modality (`cvae.study.evidence_gate.modality_gate`), from its
    measured row (`recon_ssim_gain_low_<flag>`, `conditional_class_accuracy_<flag>`)."""
    def value(column: str) -> float | None:
        found = row.get(column)
        return None if found is None or pd.isna(found) else float(found)

    return modality_gate(f"{row['name']} seed {int(row['seed'])}",
                         {flag: value(f"recon_ssim_gain_low_{flag}") for flag in DATASETS},
                         {flag: value(f"conditional_class_accuracy_{flag}") for flag in DATASETS})


def variant_gate(table: pd.DataFrame, name: str) -> Learned:
    """Whether every seed of a variant passed the learning gate (the failing runs named when not)."""
    return combine([run_gate(row) for _, row in table[table["name"] == name].iterrows()])


def claim_evidence(table: pd.DataFrame) -> dict:
    """The study's part of the claims' evidence: latent and deep (paired relative differences of the validation loss
    at the final KL weight, at each run's kept checkpoint, against the paper's model, and of the test split's
    reconstruction MSE, shown beside it), the aux heads of the paper's
    model (eval mode, test split) over seeds, and the learning gate of each variant behind a claim."""
    return {"latent": paired_spread(table, "latent64"), "deep": paired_spread(table, "deep"),
            "latent_recon": paired_spread(table, "latent64", column="recon_mse"),
            "deep_recon": paired_spread(table, "deep", column="recon_mse"),
            "aux_class": seed_spread(table, "paper", "aux_class_accuracy"),
            "aux_modality": seed_spread(table, "paper", "aux_modality_accuracy"),
            "learned": {name: variant_gate(table, name) for name in ("paper", "latent64", "deep")
                        if (table["name"] == name).any()}}


def search_results(table: pd.DataFrame) -> pd.DataFrame:
    """The weight search's input: one row per run and (weight, value) coordinate; the default (the paper's model)
    has weight ''."""
    rows = []
    for _, row in table.iterrows():
        if row["name"] == "paper":
            rows.append({**row.to_dict(), "weight": "", "value": 0.0})
        for item in filter(None, str(row["weights"]).split(";")):
            weight, value = item.split("=")
            rows.append({**row.to_dict(), "weight": weight, "value": float(value)})
    return pd.DataFrame(rows)


def search_record_path(profile: str, extra: dict | Iterable[str] = ()) -> Path:
    """Where `run_search` records the search around a profile's default: runs/weight_search-<config hash>.json."""
    return runs_dir() / f"weight_search-{ablation_config('paper', profile, extra).config_hash()}.json"


def run_search(profile: str, extra: dict | Iterable[str] = (), seed: int = 0, data_dir: str | Path | None = None,
               progress: bool = False) -> dict:
    """Train (or reuse) every run of the weight search, decide by `cvae.study.weight_search`'s rule and record the result
    with the date and the machine (`search_record_path`); returns the record."""
    main = main_config(profile, extra, data_dir)
    table = measure_runs(search_runs(profile, extra, seed, data_dir), main, progress, default_workers(profile))
    base = ablation_config("paper", profile, extra)
    search = search_table(search_results(table), base)
    record = json.loads(json.dumps({
        "profile": profile, "overrides": extra if isinstance(extra, dict) else list(extra),
        "data_source": base.data_source, "base_config_hash": base.config_hash(), "seeds": SEARCH_SEEDS,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_record(),
        "rule": SEARCH_RULE, "table": search.astype(object).where(search.notna(), None).to_dict(orient="records"),
        "decision": decide(search),
        "defaults": {weight: float(getattr(base, weight)) for weight in search["weight"].unique()},
    }, default=float))
    atomic_write_text(search_record_path(profile, extra), json.dumps(record, indent=2))
    return record


def load_search_record(profile: str, extra: dict | Iterable[str] = ()) -> dict | None:
    """The last search around this profile's default: the one `make search` recorded here, else one kept in
    `results/` for the same default (same config hash; `recorded_in` then names the file), else None."""
    path = search_record_path(profile, extra)
    try:
        if path.exists():
            return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        pass  # a damaged record is as good as none: the chapter says how to make it again
    wanted = ablation_config("paper", profile, extra).config_hash()
    for kept in sorted((PROJECT_ROOT / "results").glob("weight_search*.json")):
        try:
            outer = json.loads(kept.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        record = outer.get("record") if isinstance(outer, dict) else None
        if isinstance(record, dict) and record.get("base_config_hash") == wanted and record.get("seeds") == SEARCH_SEEDS:
            return {**record, "recorded_in": f"results/{kept.name}", "machine_text": outer.get("machine")}
    return None


def study_report(table: pd.DataFrame, profile: str, seed: int, claims: list[dict] | None = None) -> dict:
    """The study as plain JSON: every run, the study's spreads (Spread dicts), the learning gate of each variant
    behind a claim and, when given, the claims (`cvae.study.claims.claims_report`)."""
    evidence = claim_evidence(table)
    spreads = {key: (spread.to_dict() if spread is not None else None)
               for key, spread in evidence.items() if key != "learned"}
    return json.loads(json.dumps({
        "profile": profile, "seed": seed, "runs": table.to_dict(orient="records"), "spreads": spreads,
        "runs_learned": {name: gate.to_dict() for name, gate in evidence["learned"].items()},
        "claims": claims or [],
    }, default=float))


def format_report(report: dict) -> str:
    """The study report as a few readable lines: the run count, then each claim's verdict with its margin."""
    lines = [f"study of profile {report['profile']}: {len(report['runs'])} runs"]
    for claim in report["claims"]:
        lines.append(f"  {claim['key']:18s} {claim['verdict']:27s} {claim['ours']}")
        lines.append(f"  {'':18s} margin: {claim['margin']}; detectable: {claim['detectable_effect']}")
    return "\n".join(lines)


def format_search(record: dict) -> str:
    """The search record as a few readable lines: each candidate's verdict, then the decision."""
    lines = [f"weight search around the {record['profile']} default, {record['seeds']} seeds, {record['date']}"]
    for row in record["table"]:
        lines.append(f"  {row['weight']:9s} {row['value']:<6g} {row['verdict']}")
    decision = record["decision"]
    lines.append("decision: " + (", ".join(f"{k} -> {v:g}" for k, v in decision.items()) if decision
                                 else "keep every default"))
    return "\n".join(lines)


__all__ = ["CLAIM_SEEDS", "CLAIMED", "variant_seeds", "seeds_text", "STUDY_SEEDS", "PROFILE_SEEDS", "SEARCH_SEEDS", "SEARCH_CANDIDATES", "COMPARED", "study_seeds", "SEEDED",
           "StudyRun", "study_runs", "search_runs", "run_study", "measure_runs", "study_row", "seed_spread",
           "paired_spread", "run_gate", "variant_gate", "claim_evidence", "search_results", "candidate_name",
           "run_search", "search_record_path", "load_search_record", "study_report", "format_report", "format_search",
           "precision_comparison_possible", "main_config", "seeded_runs"]
