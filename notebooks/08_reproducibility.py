# %% [markdown]
# # Reproducibility
#
# ## Overview
#
# What made this book, so that anyone can make it again:
#
# 1. the profile, the configuration hash and the command;
# 2. the data files and their MD5 checksums against the official release;
# 3. package versions and hardware;
# 4. wall time per stage of the build, and the training throughput benchmark.

# %% tags=["parameters"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["hide-input"]
from cvae import report
from cvae.runs import load_run, run_dir_for

report.setup_notebook()
config = report.notebook_config(profile, seed, data_source, data_dir, overrides)
run = load_run(run_dir_for(config))
report.show_data_notice(run.summary["synthetic_data"], profile, config.config_hash())
report.glue("command", report.book_command(profile, overrides))
report.glue("config_hash", config.config_hash())

# %% [markdown]
# ## The command
#
# This book was built with {glue:text}`command:s` (configuration hash {glue:text}`config_hash:s`). The same
# command on another machine retrains only when the configuration differs; `--force` re-executes every chapter.
# The profiles:

# %% tags=["hide-input"]
report.profile_table()

# %% [markdown]
# ## Data files

# %% tags=["hide-input"]
report.data_files_table(run)

# %% [markdown]
# ## Software and hardware

# %% tags=["hide-input"]
report.environment_table(run)

# %% [markdown]
# ## Wall time per stage
#
# Seconds per stage of the book build that produced this page (0 = reused from an earlier build, unchanged),
# and the training time recorded in the run folder.

# %% tags=["hide-input"]
report.timing_table(run)

# %% [markdown]
# ## Training throughput

# %% tags=["hide-input"]
report.benchmark_table()

# %% [markdown]
# ## Summary
#
# The run folder named `run-` plus the configuration hash holds the configuration, the per-epoch metrics, both
# checkpoints and this summary; the executed notebooks are in `report/` and can be downloaded from every chapter.
