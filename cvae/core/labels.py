"""The datasets, their global classes and modalities, derived from `medmnist.INFO` (never typed by hand).

`DATASETS` is the one list typed here: the paper's MedMNIST sets, in modality order (ids 0, 1, 2). Everything else
about them (display names, channels, class names and counts) is read from `medmnist.INFO` through a
`DatasetRegistry`. A run may train on other 2D sets (`Config.datasets`): the model, the loader and the training loop
read `registry(config.datasets)`; the evaluation, the study and the book cover the paper's three (`PAPER`, and the
module constants below that alias it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import accumulate

from cvae.core.medmnist_info import INFO

DATASETS = ("pathmnist", "tissuemnist", "octmnist")  # the paper's sets; modality ids 0, 1, 2 in this order


def unknown_flags(flags) -> list[str]:
    """The flags in `flags` that are not 2D MedMNIST sets (28 px, in medmnist.INFO): an empty list when all are."""
    return [flag for flag in flags if flag not in INFO or flag.endswith("3d")]


@dataclass(frozen=True)
class DatasetRegistry:
    """The MedMNIST sets a run trains on, in modality order, and every fact about them that medmnist.INFO gives:
    display names, channels, class names and counts, and the global labels (each set's classes in turn)."""

    flags: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.flags or len(set(self.flags)) != len(self.flags) or unknown_flags(self.flags):
            raise ValueError(f"datasets must be distinct 2D MedMNIST flags, got {self.flags!r}")

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Display names in modality order: ('PathMNIST', 'TissueMNIST', 'OCTMNIST')."""
        return tuple(INFO[flag]["python_class"] for flag in self.flags)

    @cached_property
    def classes_per_dataset(self) -> dict[str, int]:
        """{flag: number of classes}: 9, 8, 4 for the paper's sets."""
        return {flag: len(INFO[flag]["label"]) for flag in self.flags}

    @cached_property
    def class_offsets(self) -> dict[str, int]:
        """{flag: first global label}: 0, 9, 17 for the paper's sets."""
        starts = accumulate(self.classes_per_dataset.values(), initial=0)
        return dict(zip(self.flags, starts))

    @property
    def num_classes(self) -> int:
        """Global classes over all sets: 21 for the paper's."""
        return sum(self.classes_per_dataset.values())

    @property
    def num_modalities(self) -> int:
        """One modality id per set."""
        return len(self.flags)

    @cached_property
    def class_names(self) -> list[str]:
        """medmnist's class names, index = global label."""
        return [name for flag in self.flags for name in local_class_names(flag)]

    @cached_property
    def modality_of_class(self) -> list[int]:
        """Modality id of each global label."""
        return [m for m, flag in enumerate(self.flags) for _ in range(self.classes_per_dataset[flag])]

    def classes_of_modality(self, modality: int) -> list[int]:
        """Global labels belonging to one modality id."""
        start = self.class_offsets[self.flags[modality]]
        return list(range(start, start + self.classes_per_dataset[self.flags[modality]]))


def local_class_names(flag: str) -> list[str]:
    """Class names of one dataset in label order, from medmnist.INFO."""
    labels = INFO[flag]["label"]
    return [labels[str(i)] for i in range(len(labels))]


@lru_cache(maxsize=None)
def registry(flags: tuple[str, ...] = DATASETS) -> DatasetRegistry:
    """The registry of a tuple of flags (a run's `config.datasets`); the paper's three by default."""
    return DatasetRegistry(tuple(flags))


PAPER = registry(DATASETS)
MODALITY_NAMES = PAPER.names  # PathMNIST, TissueMNIST, OCTMNIST
DATASET_NAMES = dict(zip(DATASETS, MODALITY_NAMES))  # flag -> display name
CHANNELS = {flag: int(INFO[flag]["n_channels"]) for flag in DATASETS}  # 3 for PathMNIST (RGB), else 1
NUM_MODALITIES = PAPER.num_modalities
CLASSES_PER_DATASET = PAPER.classes_per_dataset  # 9, 8, 4
CLASS_OFFSETS = PAPER.class_offsets  # first global label of each dataset: 0, 9, 17
NUM_CLASSES = PAPER.num_classes  # 21
CLASS_NAMES = PAPER.class_names  # index = global label
MODALITY_OF_CLASS = PAPER.modality_of_class
classes_of_modality = PAPER.classes_of_modality


def class_label(label: int) -> str:
    """'8 colorectal adenocarcinoma epithelium': a global class as figures and tables name it (label, then the
    medmnist name)."""
    return f"{int(label)} {CLASS_NAMES[int(label)]}"
