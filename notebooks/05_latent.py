# %% [markdown]
# # The latent space

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["remove-input"]
import numpy as np

from cvae.core import formatting
from cvae.report import ablation_tables, chapter, plots, result_tables, study_plots
from cvae.study import ablations, aux_factorial, diagnosis, findings

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides)
config, run = context.config, context.run
evaluation = chapter.evaluation(config)
embedding = evaluation["latent_embedding"]  # the PCA and t-SNE the separation measures of the claims were read from
labels, modalities = np.asarray(embedding["labels"]), np.asarray(embedding["modalities"])
chapter.glue("n_latent_points", len(labels))
chapter.glue("latent_dim", config.latent_dim)

# %% [markdown]
# ## Overview
#
# This chapter encodes a class-balanced sample of test images to their posterior means $\mu$ and asks what
# $\mu$ holds. It shows:
#
# 1. PCA of $\mu$ coloured by modality and by class ({numref}`fig-pca`, the original's Figure 4);
# 2. t-SNE {cite:p}`vandermaaten2008tsne` of $\mu$ likewise ({numref}`fig-tsne`, the original's Figure 5);
# 3. how much class and modality the auxiliary heads and a linear probe read from $\mu$, beside chance;
# 4. which latent dimensions carry information (KL per dimension, active units).

# %% [markdown]
# ## PCA
#
# ```{glue:figure} fig_pca
# :name: fig-pca
#
# The first two principal components of $\mu$ for {glue:text}`n_latent_points:,` test images, coloured by modality
# (left) and by class (right: PathMNIST in reds and pinks, TissueMNIST in blues, OCTMNIST in greens); the
# original's Figure 4.
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
chapter.glue("pca_explained", embedding["pca_explained"])
chapter.glue("fig_pca", plots.latent_scatter(np.asarray(embedding["PCA"]), modalities, labels, "PCA"))

# %% [markdown]
# The two components explain {glue:text}`pca_explained:.1%` of the variance of $\mu$.
#
# ## t-SNE
#
# ```{glue:figure} fig_tsne
# :name: fig-tsne
#
# t-SNE of the same $\mu$, coloured by modality (left) and by class (right) (the original's Figure 5).
# Data: {glue:text}`data_caption:s`.
# ```
#
# {glue:text}`separation_sentence:s`

# %% tags=["hide-input"]
chapter.glue("fig_tsne", plots.latent_scatter(np.asarray(embedding["t-SNE"]), modalities, labels, "t-SNE"))
chapter.glue("separation_sentence", findings.separation_sentence(evaluation))

# %% [markdown]
# ## What the auxiliary heads and a linear probe read from $\mu$
#
# The original's class head stayed near 34% and its modality head near 39%. The auxiliary heads are measured here
# in eval mode on the test split, and a logistic-regression probe trained on $\mu$ of the training images is put
# beside them, with the chance and majority-class baselines.

# %% tags=["hide-input"]
latent = result_tables.latent_table(evaluation, run)
for key in ("aux_class_accuracy", "aux_modality_accuracy", "probe_class_accuracy", "probe_modality_accuracy",
            "silhouette_modality", "silhouette_class"):
    value = formatting.lookup(evaluation, key)
    chapter.glue(key, formatting.percent(value) if "accuracy" in key else formatting.number(value, 3))
chapter.glue("active_units", formatting.number(formatting.lookup(evaluation, "active_units"), 0))
study = context.study(names=list(dict.fromkeys([diagnosis.CONTROL, *diagnosis.CONTRASTS,
                                                *aux_factorial.CELLS.values()])))
chapter.glue("diagnosis_seeds", diagnosis.contrast_seeds(study))
claims = chapter.claims(config, run, study)
found = diagnosis.findings(evaluation, study)
chapter.glue("diagnosis_findings", chapter.md("\n".join(f"- {line}" for line in found)))
chapter.glue("diagnosis_verdict", diagnosis.summary(study))
chapter.table(latent, "Class and modality read from mu on the test split: the auxiliary heads in eval mode, a "
              "linear probe, and the chance and majority-class baselines.")

# %% [markdown]
# The original's heads stayed near 34% (class) and 39% (modality) although its modalities cluster in the latent
# space. The diagnosis tests three candidate causes on runs at the ablation scale, each over
# {glue:text}`diagnosis_seeds:d` seeds beside a control with the paper's settings. The candidates are heads that get
# no gradient ($\gamma = 0$), an encoder that does not see the condition, and an aux loss ten times heavier
# ($\gamma = 10$). On the main run it also reads the heads in train and eval mode and counts the active latent
# dimensions. Each finding states what its interval shows:
#
# ```{glue:md} diagnosis_findings
# :format: myst
# ```
#
# {glue:text}`diagnosis_verdict:s` The verdict on the original's claim is in the
# {doc}`discussion <08_discussion>`.

# %% tags=["hide-input"]
# one column per run: four columns fit the text column, eight metrics did not
chapter.table(diagnosis.spread_table(study).T, "Mean and 95% t-interval over seeds of the diagnosis runs, one column "
              "each, at the ablation scale. The last row counts the seeds.")

# %% [markdown]
# ## Why the auxiliary heads fail
#
# The original leaves its heads' low accuracy unexplained and suspects the balancing of the loss terms. A head's
# accuracy can also fall for reasons outside the loss: how the training batches are drawn, and how the heads are
# read. This experiment was written down before it ran:
#
# > {glue:text}`factorial_design:s`
#
# > {glue:text}`factorial_rule:s`
#
# {glue:text}`factorial_baselines:s`

# %% tags=["hide-input"]
factorial = aux_factorial.factorial_rows(study)
ablation = ablations.ablation_config("paper", profile, context.extra)
ours = aux_factorial.study_baselines(ablation, evaluation)
chapter.glue("factorial_design", aux_factorial.DESIGN)
chapter.glue("factorial_rule", aux_factorial.RULE)
chapter.glue("factorial_baselines", aux_factorial.baseline_sentence(aux_factorial.official_baselines(), ours))
factorial_gate = aux_factorial.learned(study)
decided = aux_factorial.verdict(factorial, aux_factorial.split_guess(study), factorial_gate)
chapter.glue("factorial_verdict", decided["sentence"])
chapter.glue("factorial_checks", chapter.md(aux_factorial.checks_markdown(factorial, decided)))
chapter.glue("factorial_reconstructions", aux_factorial.reconstruction_sentence(
    factorial, aux_factorial.split_guess(study), factorial_gate.ok))
chapter.glue("fig_factorial", study_plots.aux_factorial(
    factorial, aux_factorial.ORIGINAL_HEADS, {head: ours[head]["sum_of_squared_shares"] for head in ours},
    aux_factorial.READ_NAMES) if len(factorial) else plots.placeholder_figure("the factorial was not trained"))
ablation_tables.write_csv(factorial, chapter.report_dir() / "05_factorial.csv")
factorial_table = aux_factorial.summary_table(factorial) if len(factorial) else None

# %% tags=["hide-input", "web-only"]
(chapter.table(factorial_table,
               "Each cell of the factorial: the heads' accuracy and a linear probe's modality accuracy on mu on the "
               "test split, as the mean over seeds with its 95% t-interval over seeds in brackets. The last column is "
               "the mean SSIM gain of the reconstructions over the class-mean image, read the same way. "
               + ablations.factorial_scale_text(profile)) if factorial_table is not None else None)

# %% [markdown]
# ```{glue:figure} fig_factorial
# :name: fig-factorial
#
# The auxiliary heads in every cell of the factorial: the four trained cells along the axis, the three ways of
# reading the heads side by side, each seed a dot and their mean a line. The red line is the original's value, the
# dashed line what a head scores that guesses in the label proportions of this test split.
# Data: {glue:text}`data_caption:s`.
# ```
#
# {glue:text}`factorial_verdict:s` {glue:text}`factorial_reconstructions:s` Every run of the factorial, one row
# per cell, seed and reading with a linear probe's modality accuracy and the reconstructions' gain, is a download:
# {download}`05_factorial.csv <05_factorial.csv>`.
#
# ```{only} latex
# The web edition also shows these runs as a table.
# ```
#
# ```{glue:md} factorial_checks
# :format: myst
# ```
#
# The original's code is not available, so whatever this experiment finds about
# this pipeline is a hypothesis about that code: for instance, a loader that fed one dataset per batch, or heads
# scored with their batch normalisation in training mode.
#
# ## Which dimensions are used
#
# ```{glue:figure} fig_kl
# :name: fig-kl
#
# Mean KL divergence per latent dimension on the test images, sorted; dimensions above the dashed line are counted as active units.
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
kl = formatting.lookup(evaluation, "kl_per_dimension")
chapter.glue("fig_kl", plots.kl_per_dimension(kl) if kl else plots.placeholder_figure("evaluation not available"))

# %% [markdown]
# ## Summary
#
# The auxiliary heads read {glue:text}`aux_class_accuracy:s` (class) and {glue:text}`aux_modality_accuracy:s`
# (modality) from $\mu$; a linear probe reads {glue:text}`probe_class_accuracy:s` and
# {glue:text}`probe_modality_accuracy:s`. {glue:text}`active_units:s` of the {glue:text}`latent_dim:d` latent
# dimensions are active.
