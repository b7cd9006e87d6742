# %% [markdown]
# # Reproducibility

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["remove-input"]
from cvae.report import chapter, provenance
from cvae.study import rule_history

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides)
config, run = context.config, context.run
chapter.glue("command", provenance.book_command(profile, overrides))
chapter.glue("config_hash", config.config_hash())

# %% [markdown]
# ## Overview
#
# What made this book, so that anyone can make it again:
#
# 1. the profile, the configuration hash and the command;
# 2. the data files and their MD5 checksums against the official release;
# 3. package versions and hardware;
# 4. wall time per stage of the build, normalised by this machine's matrix-multiply rate;
# 5. when each verdict rule and margin was written, and each later change.
#
# How fast the training step runs, what each performance switch gives and what the GPU measurement showed are in
# {doc}`10_performance`.

# %% [markdown]
# ## The command
#
# This book was built with {glue:text}`command:s` (configuration hash {glue:text}`config_hash:s`). The same
# command on another machine retrains only when the configuration differs; `--force` re-executes every chapter.
# The profiles:

# %% tags=["hide-input"]
chapter.table(provenance.profile_table(), "The profiles and the settings each changes from the defaults.")

# %% [markdown]
# ## Data files

# %% tags=["hide-input"]
chapter.table(provenance.data_files_table(run), "The data files this run read, with their MD5 checksums "
              "against the official release's.")

# %% [markdown]
# ## Software and hardware

# %% tags=["hide-input"]
chapter.table(provenance.environment_table(run), "The software and the machine that trained the run.")

# %% [markdown]
# ## Time per stage
#
# Seconds per stage of the book build that produced this page (0 = reused from an earlier build, unchanged), and
# the training time recorded in the run folder. {glue:text}`timing_sentence:s` `python -m cvae book` prints the
# whole build's normalized total when it ends.

# %% tags=["hide-input"]
chapter.glue("timing_sentence", provenance.timing_sentence())
chapter.table(provenance.timing_table(run), "Seconds per stage of this book build, each also normalized by "
              "this machine's fp32 matmul rate, and the run's recorded training time.")

# %% [markdown]
# ## When the rules were written
#
# {glue:text}`medmnist_note:s` Each rule states only what it decides; this table dates each change to a rule or a
# margin and says what prompted it.

# %% tags=["hide-input"]
chapter.glue("medmnist_note", rule_history.MEDMNIST_NOTE)
chapter.table(rule_history.history_table(), "Each change to a verdict rule or margin, with its commit in this "
              "project's history.", stacked=True)

# %% [markdown]
# ## Summary
#
# The run folder named `run-` plus the configuration hash holds the configuration, the per-epoch metrics, both
# checkpoints and this summary; the executed notebooks are in `report/` and can be downloaded from every chapter.
