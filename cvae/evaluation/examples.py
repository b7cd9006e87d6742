"""Images and latent points the figures show: balanced samples, latent means, 2-D embeddings, example images.

Each picks what a figure shows and leaves the model's work to `cvae.evaluation.inference` (encode, reconstruct,
generate), so a figure and the metrics beside it use the same code."""

from __future__ import annotations

import numpy as np
import torch

from cvae.core.labels import MODALITY_NAMES, NUM_CLASSES
from cvae.data.loading import MedMNISTData, Split, shuffled_by_class, stratified_indices
from cvae.evaluation.inference import generate_conditional_samples, latent_codes, reconstruct


def latent_means(model, split: Split, per_class: int = 150, seed: int = 0):
    """mu for a class-balanced sample of a split: (mu (M, latent) float32, labels (M,), modalities (M,)) NumPy."""
    subset = split.subset(stratified_indices(split.labels, per_class, seed))
    return latent_codes(model, subset, next(model.parameters()).device)


def embed_2d(mu: np.ndarray, method: str = "PCA", seed: int = 0) -> tuple[np.ndarray, dict]:
    """2-D embedding of mu by 'PCA' or 't-SNE' and facts about it (explained variance for PCA)."""
    if method == "PCA":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(mu)
        return pca.transform(mu), {"explained_variance": [float(v) for v in pca.explained_variance_ratio_]}
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(5, (len(mu) - 1) // 4)))
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                         max_iter=750).fit_transform(mu)
        return embedding, {"perplexity": perplexity}
    raise ValueError(f"method must be 'PCA' or 't-SNE', got {method!r}")


def reconstruction_examples(model, split: Split, per_modality: int = 10, seed: int = 0):
    """Originals and reconstructions (from mu, no sampling) per modality: two dicts {m: (n,28,28) float [0,1]}."""
    generator = torch.Generator().manual_seed(seed)
    originals, recons = {}, {}
    for m in range(len(MODALITY_NAMES)):
        members = torch.nonzero(split.modalities == m).flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[:per_modality]]
        images, reconstructions = reconstruct(model, split.subset(chosen))
        originals[m], recons[m] = images[:, 0].numpy(), reconstructions[:, 0].numpy()
    return originals, recons


def generated_by_class(model, per_class: int = 4, seed: int = 0) -> dict[int, np.ndarray]:
    """per_class samples from the prior for every global class: {label: (n,28,28) float [0,1]}."""
    images, labels, _ = generate_conditional_samples(model, per_class, seed)
    return {label: images[labels == label, 0].numpy() for label in range(NUM_CLASSES)}


def real_by_class(split: Split, per_class: int = 4, seed: int = 0) -> dict[int, np.ndarray]:
    """per_class real images of every global class from a split: {label: (n,28,28) uint8}."""
    draw, none = shuffled_by_class(split.labels, seed), torch.empty(0, dtype=torch.long)
    return {label: split.images[draw.get(label, none)[:per_class]].numpy() for label in range(NUM_CLASSES)}


def pathmnist_rgb_examples(data: MedMNISTData, n: int = 8) -> np.ndarray:
    """n RGB PathMNIST test images read from the raw .npz (the model only sees their luma): (n,28,28,3) uint8."""
    with np.load(data.files["pathmnist"].path) as npz:
        images = npz["test_images"]
        labels = npz["test_labels"][:, 0]
    picks = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)][:n]
    return images[picks]


def variant_strips(runs: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """One prior sample per global class from each run's kept model: {name: (21,28,28)}."""
    return {name: generate_conditional_samples(run.model("kept"), 1, seed)[0][:, 0].numpy()
            for name, run in runs.items()}


def condition_spread(strip: np.ndarray) -> float:
    """How much one model's samples change with the condition: the per-pixel standard deviation across a strip of one
    sample per class ((21, 28, 28), values in [0, 1]), averaged over the pixels; near 0 when every class decodes to
    nearly the same image."""
    return float(np.asarray(strip, dtype=np.float64).std(axis=0).mean())


__all__ = [
    "latent_means", "embed_2d", "reconstruction_examples", "generated_by_class",
    "real_by_class", "pathmnist_rgb_examples", "variant_strips", "condition_spread",
]
