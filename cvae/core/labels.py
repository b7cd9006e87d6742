"""The 21 global classes and 3 modalities, derived from `medmnist.INFO` (never typed by hand).

`DATASETS` is the one list typed here: which MedMNIST sets, in which order (modality ids 0, 1, 2). Everything else
about them (display names, channels, class names and counts) is read from `medmnist.INFO`, and every other module
reads it from here."""

from __future__ import annotations

from cvae.core.medmnist_info import INFO

DATASETS = ("pathmnist", "tissuemnist", "octmnist")  # modality ids 0, 1, 2 in this order
MODALITY_NAMES = tuple(INFO[flag]["python_class"] for flag in DATASETS)  # PathMNIST, TissueMNIST, OCTMNIST
DATASET_NAMES = dict(zip(DATASETS, MODALITY_NAMES))  # flag -> display name
CHANNELS = {flag: int(INFO[flag]["n_channels"]) for flag in DATASETS}  # 3 for PathMNIST (RGB), else 1
NUM_MODALITIES = len(DATASETS)


def local_class_names(flag: str) -> list[str]:
    """Class names of one dataset in label order, from medmnist.INFO."""
    labels = INFO[flag]["label"]
    return [labels[str(i)] for i in range(len(labels))]


CLASSES_PER_DATASET = {flag: len(INFO[flag]["label"]) for flag in DATASETS}  # 9, 8, 4
CLASS_OFFSETS = {}  # first global label of each dataset: 0, 9, 17
_offset = 0
for _flag in DATASETS:
    CLASS_OFFSETS[_flag] = _offset
    _offset += CLASSES_PER_DATASET[_flag]
NUM_CLASSES = _offset  # 21

CLASS_NAMES = [name for flag in DATASETS for name in local_class_names(flag)]  # index = global label
MODALITY_OF_CLASS = [m for m, flag in enumerate(DATASETS) for _ in range(CLASSES_PER_DATASET[flag])]


def classes_of_modality(modality: int) -> list[int]:
    """Global labels belonging to one modality id."""
    flag = DATASETS[modality]
    return list(range(CLASS_OFFSETS[flag], CLASS_OFFSETS[flag] + CLASSES_PER_DATASET[flag]))


def class_label(label: int) -> str:
    """'8 colorectal adenocarcinoma epithelium': a global class as figures and tables name it (label, then the
    medmnist name)."""
    return f"{int(label)} {CLASS_NAMES[int(label)]}"


def within_modality_chance() -> float:
    """Accuracy of a guess uniform over the right modality's classes, averaged over the 21 classes (equal samples
    per class): (9 x 1/9 + 8 x 1/8 + 4 x 1/4) / 21 = 3/21. The class baseline once the modality is right."""
    return sum(1 / len(classes_of_modality(MODALITY_OF_CLASS[c])) for c in range(NUM_CLASSES)) / NUM_CLASSES
