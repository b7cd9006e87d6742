# %% [markdown]
# # Samples as training data
#
# ## Overview
#
# Conditional generation is motivated by data augmentation. This chapter asks whether the CVAE's samples help a
# classifier:
#
# 1. per modality, a classifier trained on real images only against one trained on real plus generated images,
#    both tested on the real test split;
# 2. train-on-synthetic, test-on-real (TSTR, the classification accuracy score of {cite:t}`ravuri2019cas`): a
#    classifier trained only on generated images, tested on real ones.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["hide-input"]
from cvae import plots, report

config, run = report.open_chapter(profile, seed, data_source, data_dir, overrides)
evaluation = report.evaluation(config)

# %% [markdown]
# ## Real against real plus generated

# %% tags=["hide-input"]
augmentation = report.augmentation_table(evaluation)
report.glue("fig_augmentation", plots.grouped_bars(augmentation) if len(augmentation)
            else report.placeholder_figure("evaluation not available"))
augmentation

# %% [markdown]
# ```{glue} fig_augmentation
# ```
#
# *Test accuracy per modality of a classifier trained on real images only and on real plus generated images.*
#
# ## Train on synthetic, test on real

# %% tags=["hide-input"]
tstr = report.lookup(evaluation, "tstr_accuracy")
report.glue("tstr_accuracy", report.percent(tstr if not isinstance(tstr, dict) else tstr.get("overall")))
report.glue("trtr_accuracy", report.percent(report.lookup(evaluation, "trtr_accuracy")))
report.glue("evaluator_accuracy", report.percent(report.lookup(evaluation, "evaluator_test_accuracy", "overall")))
report.tstr_table(evaluation)

# %% [markdown]
# A classifier trained only on generated images reaches {glue:text}`tstr_accuracy:s` on the real test images; the
# same classifier trained on as many real images per class reaches {glue:text}`trtr_accuracy:s` (train on real, test
# on real), and the domain evaluator, trained on far more real images, {glue:text}`evaluator_accuracy:s`.
#
# ## Summary
#
# Generated images are useful training data only to the extent that they carry their class; the conditional
# accuracy of the sampling chapter and the TSTR accuracy above measure the same thing from two sides.
