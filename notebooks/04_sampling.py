# %% [markdown]
# # Conditional sampling

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []
# the class and prior temperature of "Any class on demand" (a global label or a name, as `python -m cvae sample`)
explore_class = "drusen"
explore_temperature = 1.0

# %% tags=["remove-input"]
from cvae.core import formatting
from cvae.evaluation import examples
from cvae.report import chapter, explore, plots, result_tables
from cvae.study import findings

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides)
config, run = context.config, context.run
model = run.model("kept")

# %% [markdown]
# ## Overview
#
# This chapter draws $z \sim \mathcal{N}(0, I)$ and decodes it with each of the 21 (class, modality) conditions.
# It shows:
#
# 1. generated samples, rows = modalities, columns = that modality's classes ({numref}`fig-samples`, the original's
#    Figure 3), to compare with the real images of {numref}`fig-real`;
# 2. any one class on demand, at a chosen prior temperature ({numref}`fig-on-demand`);
# 3. how far the samples are from real images of their modality (domain FID and KID);
# 4. whether the samples belong to the class they were conditioned on (conditional accuracy: a classifier trained
#    on real images labels the samples).

# %% [markdown]
# ## Samples per modality and class
#
# ```{glue:figure} fig_samples
# :name: fig-samples
#
# Samples from the prior decoded with each condition: rows are modalities (PathMNIST, TissueMNIST, OCTMNIST),
# columns that modality's classes, four samples per class (the original's Figure 3).
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
samples = examples.generated_by_class(model, per_class=4, seed=seed)
chapter.glue("fig_samples", plots.class_grid(samples, per_cell=4))

# %% [markdown]
# ## Any class on demand
#
# The kept model can be conditioned on any class and sampled at any prior temperature, $z \sim \mathcal{N}(0, T^2
# I)$; a temperature below 1 keeps $z$ near the prior's centre and should give more typical, less varied images. How
# often the samples show the requested class varies by class: the conditional accuracy below says how often, per
# class. {numref}`fig-on-demand` shows twelve samples of one class. To pick another class and temperature with a
# menu and a slider, run `make lab`, open `notebooks/04_sampling.py` and run the figure's cell.
# `python -m cvae sample --class drusen --n 64 --out grid.png` does the same from the command line, and `--npz DIR`
# writes the samples as MedMNIST-format files for a classifier.
#
# ```{glue:figure} fig_on_demand
# :name: fig-on-demand
#
# Twelve samples of {glue:text}`on_demand_what:s`.
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
explore.offer(lambda: explore.sampling_widget(model, explore_class, explore_temperature, seed=seed),
              lambda: explore.sample_page(model, explore_class, explore_temperature, seed=int(seed)))

# %% [markdown]
# ## Distance to the real images: domain FID and KID
#
# FID and KID are computed in the 128-dimensional feature space of an in-project CNN trained on the real training
# images (`cvae.evaluation.domain_evaluator`), not Inception: the numbers compare runs of this project, not published FIDs. The floor
# is the distance between two disjoint halves of real images, the smallest value sampling noise allows.
# KID is an unbiased estimate (cubic polynomial kernel on the same features, unitless), so a floor near or below
# zero means "indistinguishable". Both sizes depend on the scale of these features, so only comparisons with the
# floor and between runs of this project carry meaning. The evaluator was trained with a random half of each batch
# blurred, so that it still recognises the class of a blurry VAE sample; the price is that these distances are less
# sensitive to blur than a classifier trained on sharp images only would be.

# %% tags=["hide-input"]
evaluation = chapter.evaluation(config)
chapter.table(result_tables.distance_table(evaluation), "Domain FID and KID of the samples against the real test "
              "images, per modality and overall, each beside its floor: two halves of the real images compared.")

# %% [markdown]
# ## Conditional accuracy
#
# The evaluator labels 
# every sample; a sample counts as correct when the label is the class it was generated for.

# %% tags=["hide-input"]
conditional = result_tables.conditional_table(evaluation)
chapter.glue("conditional_class_accuracy", formatting.percent(formatting.lookup(evaluation, "conditional_class_accuracy")))
chapter.glue("conditional_modality_accuracy", formatting.percent(formatting.lookup(evaluation, "conditional_modality_accuracy")))
chapter.glue("sampling_summary", findings.sampling_summary(evaluation))
chapter.glue("fig_conditional", plots.per_class_accuracy(conditional, "class_accuracy", chance=1 / 21)
             if len(conditional) else plots.placeholder_figure("evaluation not available"))
chapter.table(result_tables.per_class_table(conditional), "Per class: the share of its samples that the evaluator "
              "labels with the class, and with the modality, they were generated for, beside the share of the "
              "class's real test images it labels with their class.")

# %% [markdown]
# ```{glue:figure} fig_conditional
# :name: fig-conditional
#
# Share of the samples of each class that the evaluator, a classifier trained on this build's training images, assigns to
# that class; colours are modalities. Black ticks mark its accuracy on the class's real test images.
# Data: {glue:text}`data_caption:s`.
# ```
#
# ## Summary
#
# {glue:text}`sampling_summary:s`
