"""Tables of the data chapter: images per dataset and split, images per class."""

from __future__ import annotations

import pandas as pd
import torch

from cvae.core.labels import DATASETS, MODALITY_NAMES, NUM_CLASSES, class_label, classes_of_modality
from cvae.core.medmnist_info import INFO
from cvae.data.loading import MedMNISTData


def dataset_table(data: MedMNISTData) -> pd.DataFrame:
    """Images per dataset and split as loaded (after any subset) beside the files' own sizes and the official training
    size, with thousands separators; two header rows (split, then used / in file / official) keep it narrow."""
    rows = []
    for modality, flag in enumerate(DATASETS):
        report = data.files[flag]
        row = {("", "classes"): len(classes_of_modality(modality))}
        for split in ("train", "val", "test"):
            row[(split, "used")] = int((data.split(split).modalities == modality).sum())
            row[(split, "in file")] = int(report.sizes[split])
        row[("train", "official")] = int(INFO[flag]["n_samples"]["train"])
        row[("", "official MD5")] = "yes" if report.md5_ok else "no, stand-in" if data.synthetic else "no"
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index(MODALITY_NAMES, name="dataset"))
    counts = [column for column in table.columns if column[1] != "official MD5"]
    table.loc["total"] = {**table[counts].sum().to_dict(), ("", "official MD5"): ""}
    order = [("", "classes"), ("train", "used"), ("train", "in file"), ("train", "official"), ("val", "used"),
             ("val", "in file"), ("test", "used"), ("test", "in file"), ("", "official MD5")]
    table = table[order]
    for column in counts:
        table[column] = table[column].map(lambda value: f"{int(value):,}")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def class_count_table(data: MedMNISTData) -> pd.DataFrame:
    """Images per global class (index 'label name') and split as loaded."""
    index = [class_label(label) for label in range(NUM_CLASSES)]
    columns = {}
    for split in ("train", "val", "test"):
        counts = torch.bincount(data.split(split).labels, minlength=NUM_CLASSES).numpy()
        columns[split] = counts.astype(int)
    return pd.DataFrame(columns, index=index)


def class_balance_sentence(per_class: pd.DataFrame, train_cap: int) -> str:
    """What the training column of `class_count_table` shows, in one sentence: every class at the same count, or how
    many classes the profile's cap (`train_per_class`, 0 = none) cut and how many keep all their images."""
    counts = per_class["train"]
    if counts.min() == counts.max():
        return f"Every class has {counts.iloc[0]:,} training images."
    spread = f"Training images per class range from {counts.min():,} to {counts.max():,}"
    if not train_cap:
        return spread + ", as in the files."
    capped = int((counts >= train_cap).sum())
    return (f"{spread}: the subset keeps at most {train_cap:,} per class, which cuts {capped} of the "
            f"{len(counts)} classes, and the other {len(counts) - capped} keep all their images.")


__all__ = [
    "dataset_table", "class_count_table", "class_balance_sentence",
]
