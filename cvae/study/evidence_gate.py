"""The learning gate: whether a run is evidence at all, before any claim is read from it.

A run is evidence only if, in each modality, its reconstructions keep more of each image than the image's class mean
does (the lower end of the 95% interval over the modality's classes of the SSIM gain above 0) and, where its samples
are measured, the evaluator finds the conditioned class in them clearly more often than chance among the modality's
classes (`modality_gate`). A run that learned two modalities and not the third is not evidence about the model. A
claim whose runs fail it is not testable at this scale (`cvae.study.claims`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from cvae.core.formatting import listed, percent
from cvae.core.labels import DATASET_NAMES, DATASETS, PAPER

GATE_SSIM_GAIN = 0.0
GATE_CLASS_ABOVE_CHANCE = 0.05


@dataclass(frozen=True)
class Learned:
    """Whether the runs behind a claim passed the learning gate; when not, what failed (`failing`: one line) and the
    short names of the criteria missed (`missed`)."""

    ok: bool
    failing: str = ""
    missed: tuple[str, ...] = ()
    failed_runs: int = 0
    runs: int = 1

    def to_dict(self) -> dict:
        """{'value': bool, 'failing': str} for the JSON report."""
        return {"value": self.ok, "failing": self.failing}


def learning_gate(name: str, ssim_gain_low: float | None, class_accuracy: float | None = None,
                  chance: float | None = None, reading: str = "") -> Learned:
    """The gate for one run: the lower end of the 95% interval over classes of its SSIM gain over the class-mean
    image above GATE_SSIM_GAIN, and, when `class_accuracy` is given, sample class accuracy at least
    GATE_CLASS_ABOVE_CHANCE above `chance`. `reading` names how the reconstructions were read when it is not the
    usual eval mode (the aux-head factorial reads each run the way it was trained). `failing` names the run and the
    criteria it missed."""
    details, missed = _missed(ssim_gain_low, class_accuracy, chance, reading)
    return Learned(not missed, f"{name}: {' and '.join(details)}" if missed else "", tuple(missed), int(bool(missed)))


def _missed(ssim_gain_low: float | None, class_accuracy: float | None, chance: float | None,
            reading: str = "") -> tuple[list[str], list[str]]:
    """The gate's criteria a run missed: (details with its numbers, short names)."""
    details, missed = [], []
    if ssim_gain_low is None or not ssim_gain_low > GATE_SSIM_GAIN:
        missed.append("reconstructions, read the way the run was trained, not clearly better than the class-mean "
                      "image" if reading else "reconstructions not clearly better than the class-mean image")
        where = f" in {reading}" if reading else ""
        bound = "no interval" if ssim_gain_low is None else f"lower 95% bound {ssim_gain_low:+.3f}"
        details.append(f"SSIM gain over the class-mean image{where} not clearly above 0 ({bound})"
                       if reading or ssim_gain_low is not None else missed[-1])
    needed = None if class_accuracy is None else chance + GATE_CLASS_ABOVE_CHANCE
    if needed is not None and not class_accuracy >= needed:
        missed.append(f"sample class accuracy below {percent(needed)}")
        details.append(f"sample class accuracy {percent(class_accuracy)}, needs {percent(needed)}")
    return details, missed


MODALITY_CRITERIA = ("reconstructions no better than the class-mean image",
                     f"samples' class accuracy under chance plus {100 * GATE_CLASS_ABOVE_CHANCE:.0f} points")


def modality_gate(name: str, gains_low: Mapping[str, float | None],
                  class_accuracy: Mapping[str, float | None] | None = None) -> Learned:
    """The gate for one run, modality by modality: `learning_gate`'s criteria on each modality's SSIM gain (lower 95%
    bound over its classes, {dataset flag: bound}) and, when given, its samples' class accuracy ({flag: rate}) against
    chance among its own classes (1/9, 1/8, 1/4). The run passes only if every modality does; `failing` names the
    modalities that did not with their numbers, `missed` the criteria as 'criterion in Modality'."""
    details, missed = [], []
    for modality, flag in enumerate(DATASETS):
        accuracy = None if class_accuracy is None else class_accuracy.get(flag)
        chance = 1 / len(PAPER.classes_of_modality(modality))
        found, short = _missed(gains_low.get(flag), accuracy, chance)
        details += [f"{DATASET_NAMES[flag]} {detail}" for detail in found]
        missed += [f"{MODALITY_CRITERIA[criterion.startswith('sample')]} in {DATASET_NAMES[flag]}"
                   for criterion in short]
    return Learned(not missed, f"{name}: {'; '.join(details)}" if missed else "", tuple(missed), int(bool(missed)))


def missed_text(missed: tuple[str, ...], short: bool = False) -> str:
    """The criteria runs missed, each said once, with the modalities that missed them: 'reconstructions no better than
    the class-mean image and samples' class accuracy under chance plus 5 points, in every modality'; `short` names the
    gate's criteria by what they read ('reconstructions and samples, in every modality'), for a table whose rule
    states them."""
    where: dict[str, list[str]] = {}
    for item in missed:
        modality = next((name for name in DATASET_NAMES.values() if item.endswith(f" in {name}")), "")
        criterion = item[:-len(f" in {modality}")] if modality else item
        criterion = _short_name(criterion) if short else criterion
        where.setdefault(criterion, [])
        if modality and modality not in where[criterion]:
            where[criterion].append(modality)
    groups: dict[tuple[str, ...], list[str]] = {}
    for criterion, modalities in where.items():  # criteria missed in the same modalities share one clause
        groups.setdefault(tuple(m for m in DATASET_NAMES.values() if m in modalities), []).append(criterion)
    return "; ".join(" and ".join(criteria) + ((", in " if len(criteria) > 1 else " in ") + _listed(list(modalities))
                                               if modalities else "") for modalities, criteria in groups.items())


def _short_name(criterion: str) -> str:
    """A gate criterion by what it reads: 'reconstructions' or 'samples' (the rule states the rest)."""
    return next((name for prefix, name in (("reconstruction", "reconstructions"), ("sample", "samples"))
                 if criterion.startswith(prefix)), criterion)


def _listed(names: list[str]) -> str:
    return "every modality" if len(names) == len(DATASET_NAMES) else listed(names)


def combine(gates: list[Learned]) -> Learned:
    """All runs must pass. One failing run is named with its numbers; several are counted, with the criteria they
    missed."""
    failed = [gate for gate in gates if not gate.ok]
    runs = sum(gate.runs for gate in gates)
    if not failed:
        return Learned(True, runs=runs)
    missed = tuple(dict.fromkeys(criterion for gate in failed for criterion in gate.missed))
    failed_runs = sum(gate.failed_runs for gate in failed)
    if failed_runs == 1:
        return Learned(False, failed[0].failing, missed, 1, runs)
    return Learned(False, f"{failed_runs} of {runs} runs: {missed_text(missed)}", missed, failed_runs, runs)


__all__ = ["GATE_SSIM_GAIN", "GATE_CLASS_ABOVE_CHANCE", "MODALITY_CRITERIA", "Learned", "learning_gate",
           "modality_gate", "missed_text", "combine"]
