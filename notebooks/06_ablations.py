# %% [markdown]
# # Ablations, seeds and the loss weights

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []
# study variants to train and show, e.g. ["paper", "latent64"]; an empty list means the whole study
variants = []
# the variants and seed count of "Explore the study" (0 seeds = the profile's study seeds); missing runs are trained
explore_variants = ["latent64"]
explore_seeds = 0

# %% tags=["remove-input"]
import pandas as pd

from cvae.core import formatting
from cvae.core.paths import runs_dir
from cvae.evaluation import examples
from cvae.report import ablation_tables, chapter, explore, study_plots
from cvae.study import ablations, findings, weight_search
from cvae.study.runner import load_search_record, search_runs, seeds_text, study_seeds, variant_seeds

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides)
config, run = context.config, context.run
study = context.study(names=list(variants) or None)
synthetic = bool(run.summary["synthetic_data"])
chapter.glue("ablation_scale", ablations.scale_text(profile))
chapter.glue("factorial_scale", ablations.scale_text(profile, "single_batches"))
chapter.glue("study_runs", int(study["run"].nunique()))  # a factorial cell may be the paper run itself
chapter.glue("claim_seeds", variant_seeds(profile, "paper"))
chapter.glue("study_train_time", formatting.duration(float(study["train_seconds"].sum())))
chapter.glue("study_eval_time", formatting.duration(float(study["eval_seconds"].sum())))
csv = ablation_tables.write_csv(study, chapter.report_dir() / "06_study.csv")

# %% [markdown]
# ## Overview
#
# The original reports two findings from changing the model: a latent dimension of 128 gives a clearly lower loss
# than 64, and a deeper model with about 4.8 million parameters looks no better. Every variant below is the base
# configuration with one change, trained as its own cached run (`python -m cvae ablate NAME --profile P` trains one
# from the command line). This chapter shows:
#
# 1. the runs behind the original's two claims, over {glue:text}`claim_seeds:d` seeds (the verdicts are in the
#    {doc}`discussion <08_discussion>`);
# 2. our choice of loss weights, and what a search over seeds says about it;
# 3. the other variants, the validation loss per epoch and one sample per class from each variant.

# %% [markdown]
# The study trains {glue:text}`study_runs:d` runs at this profile's ablation scale, {glue:text}`ablation_scale:s`,
# smaller than the main run to fit the time budget: {glue:text}`study_train_time:s` of training and
# {glue:text}`study_eval_time:s` of measurement. The one-dataset runs of the aux-head factorial train at
# {glue:text}`factorial_scale:s` and are shown in {doc}`05_latent`, not here. Every run is judged by the main run's evaluator. The
# full table, one row per run with every measured column, is a download: {download}`06_study.csv <06_study.csv>`.
#
# ## The runs behind the original's two claims

# %% tags=["hide-input"]
chapter.glue("ablation_convergence", ablations.convergence(study))
chapter.glue("fig_seeds", study_plots.seeded_dots(study, ["paper", "latent64", "deep"], "kept_val_at_beta_max",
                                            "validation loss at the final β (per image)"))
chapter.table(ablation_tables.seeded_table(study),
              f"Each variant that a claim or the aux-head diagnosis compares, over {seeds_text(profile)}. The loss is "
              "the validation loss per image with the KL term at its final weight, at each run's kept checkpoint, as "
              "mean ± sd over seeds. Its change against the paper's model is paired by seed, with the 95% interval; "
              "variants that reweight the loss have none, because their totals measure something else. The aux heads "
              "are read in eval mode. The last column counts the seeds that passed the learning gate of the "
              "discussion's rule.")

# %% [markdown]
# The seed changes the subset of images, the initial weights and the noise; a paired difference compares two
# variants on the same subset. The verdicts on both claims, with their margins and the effect these seeds could
# detect, are in the {doc}`discussion <08_discussion>`. {glue:text}`ablation_convergence:s`
#
# ```{glue:figure} fig_seeds
# :name: fig-seeds
#
# Validation loss at the final β of every seed (dots) and their mean (line) for the paper's model, latent 64 and the
# deeper model.
# Data: {glue:text}`data_caption:s`.
# ```
#
# ## Our choice of loss weights, and what the search says about it
#
# The loss weights are our choice, as the original gives none ({doc}`method <../book/method>`). A search over seeds
# checks that choice by a rule written down before it was run; it trains {glue:text}`search_runs:d` runs, so it is
# not part of a book build (`make search PROFILE=...` runs it and this section then shows its last result):
#
# > {glue:text}`search_rule:s`

# %% tags=["hide-input"]
extra = context.extra
base_config = ablations.ablation_config("paper", profile, extra)
record = load_search_record(profile, extra)
chapter.glue("search_runs", len(search_runs(profile, extra)))
chapter.glue("search_rule", weight_search.RULE)
chapter.glue("search_decision",
             weight_search.decision_sentence(record, base_config, findings.data_label(synthetic)))
search = pd.DataFrame(record["table"]) if record else None
if record is not None:  # without a recorded search the section has its sentence and no figure
    chapter.glue("fig_sensitivity", study_plots.weight_sensitivity(search, weight_search.CRITERIA,
                                                             weight_search.CRITERION_NAMES))
chapter.glue("sensitivity_figure", chapter.figure_markdown(
    "fig_sensitivity", "fig-sensitivity", study_plots.SENSITIVITY_CAPTION + " Data: {glue:text}`data_caption:s`.")
    if record is not None else chapter.md(""))
(chapter.table(ablation_tables.search_display(search), "The recorded weight search: each candidate's criteria as "
               "means over seeds, and its paired change against the default with the 95% interval.")
 if record is not None else None)

# %% [markdown]
# {glue:text}`search_decision:s`
#
# ```{glue:md} sensitivity_figure
# :format: myst
# ```
#
# ## The other variants

# %% tags=["hide-input"]
chapter.table(ablation_tables.other_variants(study, int(seed)), "The variants trained once, at the base seed, beside "
              "the paper's model at the same seed.")

# %% [markdown]
# `plateau_at_beta_max` lets the learning-rate schedule watch the validation total with the KL term at its final
# weight, so that the rising $\beta(t)$ alone cannot trigger a halving (see the method chapter).
# {glue:text}`schedule_sentence:s` `fp32` trains the base in full precision (the appendix compares the two
# precisions).
#
# ## Validation loss per epoch
#
# ```{glue:figure} fig_ablation_curves
# :name: fig-ablation-curves
#
# Validation loss per epoch at the base seed, one panel per variant, with the paper's model in gray. Variants that
# change a loss weight change what the total measures, so compare them on the criteria above rather than on this
# curve.
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
at_seed = study[(study["seed"] == int(seed)) & ~study["name"].isin(ablations.FACTORIAL)]
loaded = chapter.load_runs({name: runs_dir() / folder for name, folder in zip(at_seed["name"], at_seed["run"])})
if {"paper", "plateau_at_beta_max"} <= set(loaded):
    chapter.glue("schedule_sentence", ablations.schedule_sentence(
        loaded["paper"].metrics, loaded["plateau_at_beta_max"].metrics, base_config.plateau_patience))
else:
    chapter.glue("schedule_sentence", "This build did not train `plateau_at_beta_max`.")
chapter.glue("fig_ablation_curves", study_plots.overlaid_curves({name: r.metrics for name, r in loaded.items()}))

# %% [markdown]
# ## Samples of every variant
#
# ```{glue:figure} fig_ablation_samples
# :name: fig-ablation-samples
#
# One sample from the prior for each of the 21 classes (columns, global label order) from each variant at the base
# seed (rows).
# Data: {glue:text}`data_caption:s`.
# ```
#
# {glue:text}`condition_sentence:s`

# %% tags=["hide-input"]
strips = examples.variant_strips(loaded, seed=seed)
chapter.glue("fig_ablation_samples", study_plots.variant_samples(strips))
chapter.glue("condition_sentence", ablation_tables.condition_sentence(
    strips, examples.variant_strips({"main": run}, seed=seed)["main"]))

# %% [markdown] tags=["web-only"]
# ## Explore the study
#
# Any variant can be set beside the paper's model over any number of seeds. {numref}`fig-explore` shows the
# validation loss at the final β per epoch of each chosen variant and seed. Below it, each variant's paired change
# against the paper's model, with the number of its runs that passed the learning gate. To choose the variants and
# the number of seeds with checkboxes, run `make lab`, open `notebooks/06_ablations.py` and run the figure's cell;
# runs not yet trained are trained when asked for and cached.
#
# {glue:text}`explore_sentences:s`
#
# ```{glue:figure} fig_explore
# :name: fig-explore
#
# Validation loss at the final β per epoch, one line per variant and seed.
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input", "web-only"]
explore_seed_count = int(explore_seeds) or study_seeds(profile)
explore.offer(lambda: explore.study_widget(profile, explore_variants, explore_seed_count, int(seed), extra,
                                           config.data_dir or None),
              lambda: explore.study_view(profile, explore_variants, explore_seed_count, int(seed), extra,
                                         config.data_dir or None, train_missing=False).glued())

# %% [markdown]
# ## Summary
#
# The runs behind the original's two claims are compared above over seeds; their verdicts are in the
# {doc}`discussion <08_discussion>`. The loss weights are our choice; the search section says whether this build
# tested them.
