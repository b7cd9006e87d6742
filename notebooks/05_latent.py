# %% [markdown]
# # The latent space
#
# ## Overview
#
# This chapter encodes a class-balanced sample of test images to their posterior means $\mu$ and asks what
# $\mu$ holds. It shows:
#
# 1. PCA of $\mu$ coloured by modality and by class ({numref}`fig-pca`, the original's Figure 4);
# 2. t-SNE {cite:p}`vandermaaten2008tsne` of $\mu$ likewise ({numref}`fig-tsne`, the original's Figure 5);
# 3. how much class and modality the auxiliary heads and a linear probe read from $\mu$, beside chance;
# 4. which latent dimensions carry information (KL per dimension, active units).

# %% tags=["parameters"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["hide-input"]
from cvae import plots, report
from cvae.data import load_data

config, run = report.open_chapter(profile, seed, data_source, data_dir, overrides)
model = run.model("best")
data = load_data(config, progress=False)
mu, labels, modalities = report.latent_means(model, data.test, per_class=100, seed=seed)
report.glue("n_latent_points", len(mu))
report.glue("latent_dim", config.latent_dim)

# %% [markdown]
# ## PCA
#
# ```{glue:figure} fig_pca
# :name: fig-pca
#
# The first two principal components of $\mu$ for {glue:text}`n_latent_points:,` test images, coloured by modality
# (left) and by class (right; reds PathMNIST, blues TissueMNIST, greens OCTMNIST) (the original's Figure 4).
# ```

# %% tags=["hide-input"]
pca, pca_facts = report.embed_2d(mu, "PCA", seed=seed)
report.glue("pca_explained", sum(pca_facts["explained_variance"]))
report.glue("fig_pca", plots.latent_scatter(pca, modalities, labels, "PCA"))

# %% [markdown]
# The two components explain {glue:text}`pca_explained:.1%` of the variance of $\mu$.
#
# ## t-SNE
#
# ```{glue:figure} fig_tsne
# :name: fig-tsne
#
# t-SNE of the same $\mu$, coloured by modality (left) and by class (right) (the original's Figure 5).
# ```

# %% tags=["hide-input"]
tsne, tsne_facts = report.embed_2d(mu, "t-SNE", seed=seed)
report.glue("fig_tsne", plots.latent_scatter(tsne, modalities, labels, "t-SNE"))

# %% [markdown]
# ## What the auxiliary heads and a linear probe read from $\mu$
#
# The original's class head stayed near 34% and its modality head near 39%. The auxiliary heads are measured here
# in eval mode on the test split, and a logistic-regression probe trained on $\mu$ of the training images is put
# beside them, with the chance and majority-class baselines.

# %% tags=["hide-input"]
evaluation = report.evaluation(config)
latent = report.latent_table(evaluation, run)
for key in ("aux_class_accuracy", "aux_modality_accuracy", "probe_class_accuracy", "probe_modality_accuracy",
            "silhouette_modality", "silhouette_class"):
    value = report.lookup(evaluation, key)
    report.glue(key, report.percent(value) if "accuracy" in key else report.number(value, 3))
report.glue("active_units", report.number(report.lookup(evaluation, "active_units"), 0))
report.glue("diagnosis", report.diagnosis_markdown(evaluation))
report.glue("diagnosis_verdict", (report.lookup(evaluation, "diagnosis") or {}).get("verdict", "not computed"))
latent

# %% [markdown]
# ```{glue:md} diagnosis
# :format: myst
# ```
#
# The diagnosis retrains the configuration with one change each, at the ablation scale: the encoder without the
# condition, the auxiliary weight $\gamma$ at 0 and at 10, beside a control with the paper's settings.

# %% tags=["hide-input"]
report.diagnosis_table(evaluation)

# %% [markdown]
#
# ## Which dimensions are used
#
# ```{glue} fig_kl
# ```
#
# *Mean KL divergence per latent dimension on the test images, sorted; dimensions above the dashed line are counted as active units.*

# %% tags=["hide-input"]
kl = report.lookup(evaluation, "kl_per_dimension")
report.glue("fig_kl", plots.kl_per_dimension(kl) if kl else report.placeholder_figure("evaluation not available"))

# %% [markdown]
# ## Summary
#
# The auxiliary heads read {glue:text}`aux_class_accuracy:s` (class) and {glue:text}`aux_modality_accuracy:s`
# (modality) from $\mu$; a linear probe reads {glue:text}`probe_class_accuracy:s` and
# {glue:text}`probe_modality_accuracy:s`. {glue:text}`active_units:s` of the {glue:text}`latent_dim:d` latent
# dimensions are active.
