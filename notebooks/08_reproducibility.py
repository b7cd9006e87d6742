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
# The table above is this build's own benchmark run (`cvae.bench`, date and device in the table): the conventional
# pipeline is medmnist's Dataset with per-sample transforms through a DataLoader; ours indexes the resident uint8
# tensors. What we tried on the 2-core development CPU, measured with `cvae.bench.compare_switches` (rerun it to
# measure your machine): channels-last memory helped a little and is on by default; bf16 autocast helped on a CPU
# with bf16 instructions with validation losses within a fraction of a percent of fp32, so it is opt-in on the CPU
# (`--set autocast=bf16`) and the default on CUDA; one thread beat two when other jobs shared the cores
# (`--set threads=1`); fused or foreach Adam changed nothing; switching oneDNN off hurt badly; `torch.compile`
# gave nothing repeatable. **GPU timings are unmeasured**: no GPU was available when this project was built, so
# the targets for one H100 (150 epochs in five minutes, 20x the conventional pipeline) are open.

# %% [markdown]
# ## Summary
#
# The run folder named `run-` plus the configuration hash holds the configuration, the per-epoch metrics, both
# checkpoints and this summary; the executed notebooks are in `report/` and can be downloaded from every chapter.
