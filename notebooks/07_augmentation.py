# %% [markdown]
# # Samples as training data

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["remove-input"]
from cvae.core import formatting
from cvae.report import chapter, result_tables, study_plots

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides)
config, run = context.config, context.run
evaluation = chapter.evaluation(config)

# %% [markdown]
# ## Overview
#
# Conditional generation is motivated by data augmentation. This chapter asks whether the CVAE's samples help a
# classifier:
#
# 1. train-on-synthetic, test-on-real (TSTR, the classification accuracy score of {cite:t}`ravuri2019cas`): a
#    classifier trained only on generated images, tested on real ones;
# 2. a classifier trained on real images only against one trained on real plus generated images, with 1%, 10% and
#    100% of the real training images, over seeds, both tested on the real test split.

# %% [markdown]
# ## Train on synthetic, test on real

# %% tags=["hide-input"]
tstr = formatting.lookup(evaluation, "tstr_accuracy")
chapter.glue("tstr_accuracy", formatting.percent(tstr if not isinstance(tstr, dict) else tstr.get("overall")))
chapter.glue("trtr_accuracy", formatting.percent(formatting.lookup(evaluation, "trtr_accuracy")))
chapter.glue("evaluator_accuracy", formatting.percent(formatting.lookup(evaluation, "evaluator_test_accuracy", "overall")))
chapter.table(result_tables.tstr_table(evaluation), "Test accuracy of a classifier trained on generated images "
              "(TSTR) and of the same classifier trained on real ones (TRTR), per modality and overall.")

# %% [markdown]
# A classifier trained only on generated images reaches {glue:text}`tstr_accuracy:s` on the held-out test images; the
# same classifier trained on as many real images per class reaches {glue:text}`trtr_accuracy:s` (train on real, test
# on real), and the domain evaluator, trained on far more real images, {glue:text}`evaluator_accuracy:s`.
#
# ## With less real data
#
# Published gains from generated images appear where real data are scarce. The same comparison is repeated with 1%,
# 10% and 100% of this run's training split, a stratified draw per seed, each over {glue:text}`fraction_seeds:d`
# seeds. One classifier trains on the real images alone, one on the same images plus every generated sample; both
# are tested on the whole real test split.

# %% tags=["hide-input"]
from cvae.report.augmentation_tables import ARM_NAMES, fraction_sentence, fraction_summary, fraction_table

by_fraction = fraction_summary(evaluation["augmentation_by_fraction"])
chapter.glue("fig_fractions", study_plots.fraction_curves(by_fraction[by_fraction["arm"] != "gain"], ARM_NAMES))
chapter.glue("fraction_sentence", fraction_sentence(by_fraction))
chapter.glue("fraction_steps", int(evaluation["augmentation_by_fraction"]["steps"]))
chapter.glue("fraction_seeds", int(evaluation["augmentation_by_fraction"]["seeds"]))
chapter.table(fraction_table(by_fraction), "Test accuracy with a share of the real training images, alone and "
              "with every generated sample added, and the gain in points; means over seeds with 95% intervals.")

# %% [markdown]
# ```{glue:figure} fig_fractions
# :name: fig-fractions
#
# Test accuracy (21 classes) of classifiers trained on a share of the real training images alone and together with
# the generated samples; lines are means over seeds, bands their 95% intervals ({glue:text}`fraction_steps:d` Adam
# steps each).
# Data: {glue:text}`data_caption:s`.
# ```
#
# {glue:text}`fraction_sentence:s`
#
# ## Summary
#
# Generated images are useful training data only to the extent that they carry their class; the conditional
# accuracy of the sampling chapter and the TSTR accuracy above measure the same thing from two sides.
