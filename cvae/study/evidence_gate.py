"""The learning gate: whether a run is evidence at all, before any claim is read from it.

A run is evidence only if its reconstructions keep more of each image than the image's class mean does (the lower
end of the 95% interval over classes of the SSIM gain above 0) and, where its samples are measured, the evaluator
finds the conditioned class in them clearly more often than chance. A claim whose runs fail it is not testable at
this scale (`cvae.study.claims`).
"""

from __future__ import annotations

from dataclasses import dataclass

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
        missed.append(f"sample class accuracy below {needed:.1%}")
        details.append(f"sample class accuracy {class_accuracy:.1%}, needs {needed:.1%}")
    return Learned(not missed, f"{name}: {' and '.join(details)}" if missed else "", tuple(missed), int(bool(missed)))


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
    return Learned(False, f"{failed_runs} of {runs} runs: {' and '.join(missed)}", missed, failed_runs, runs)


__all__ = ["GATE_SSIM_GAIN", "GATE_CLASS_ABOVE_CHANCE", "Learned", "learning_gate", "combine"]
