"""Tables of the data chapter: images per dataset and split, images per class."""

from __future__ import annotations

import pandas as pd
import torch

from .data import MedMNISTData
from .labels import CLASS_NAMES, DATASETS, MODALITY_NAMES, NUM_CLASSES, classes_of_modality


def dataset_table(data: MedMNISTData) -> pd.DataFrame:
    """Images per dataset and split as loaded (after any subset) beside the files' own sizes and the official ones."""
    import medmnist

    rows = []
    for modality, flag in enumerate(DATASETS):
        report = data.files[flag]
        row = {"dataset": MODALITY_NAMES[modality], "classes": len(classes_of_modality(modality))}
        for split in ("train", "val", "test"):
            row[f"{split} (used)"] = int((data.split(split).modalities == modality).sum())
        for split in ("train", "val", "test"):
            row[f"{split} (file)"] = int(report.sizes[split])
        row["train (official)"] = int(medmnist.INFO[flag]["n_samples"]["train"])
        row["MD5 matches"] = "yes" if report.md5_ok else "no"
        rows.append(row)
    table = pd.DataFrame(rows).set_index("dataset")
    total = table.select_dtypes("number").sum()
    table.loc["total"] = {**total.to_dict(), "MD5 matches": ""}
    return table


def class_count_table(data: MedMNISTData) -> pd.DataFrame:
    """Images per global class (index 'label name') and split as loaded."""
    index = [f"{label} {CLASS_NAMES[label]}"[:40] for label in range(NUM_CLASSES)]
    columns = {}
    for split in ("train", "val", "test"):
        counts = torch.bincount(data.split(split).labels, minlength=NUM_CLASSES).numpy()
        columns[split] = counts.astype(int)
    return pd.DataFrame(columns, index=index)


__all__ = [
    "dataset_table", "class_count_table",
]
