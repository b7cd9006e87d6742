# %% [markdown]
# # Reconstructions

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["remove-input"]
from cvae.data.loading import load_data
from cvae.evaluation import examples
from cvae.report import chapter, plots, result_tables
from cvae.study import findings

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides)
config, run = context.config, context.run
model = run.model("kept")
data = load_data(config, progress=False)

# %% [markdown]
# ## Overview
#
# This chapter loads the kept checkpoint of the training chapter's run and reconstructs test images
# of every modality through the posterior mean: encode to $\mu$, decode $\mu$ with the image's own class and
# modality. It shows:
#
# 1. originals over reconstructions for each modality ({numref}`fig-recon`, the original's Figure 2, which showed
#    PathMNIST only);
# 2. reconstruction error per modality on the whole test split (MSE, PSNR, SSIM).

# %% [markdown]
# ## Originals and reconstructions
#
# ```{glue:figure} fig_recon
# :name: fig-recon
#
# Test images (top row of each panel) and their reconstructions from $\mu$ (bottom row), for each modality
# (the original's Figure 2).
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
originals, recons = examples.reconstruction_examples(model, data.test, per_modality=12, seed=seed)
chapter.glue("fig_recon", plots.reconstructions(originals, recons))

# %% [markdown]
# ## Reconstruction error on the test split

# %% tags=["hide-input"]
evaluation = chapter.evaluation(config)
recon_table = result_tables.reconstruction_table(evaluation)
chapter.glue("recon_summary", findings.reconstruction_summary(evaluation))
chapter.table(recon_table, "Reconstruction error of the test images, per modality and overall.")

# %% [markdown]
# Errors are computed on every test image (pixels in $[0, 1]$; PSNR in dB; SSIM with a Gaussian window), in eval
# mode, reconstructing from $\mu$.
#
# ## Summary
#
# {glue:text}`recon_summary:s` The next chapter samples $z$ from the prior instead.
