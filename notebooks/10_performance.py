# %% [markdown]
# # Appendix: performance

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["remove-input"]
from cvae.report import ablation_tables, chapter, performance

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides)
config, run = context.config, context.run

# %% [markdown]
# ## Overview
#
# Engineering detail, kept out of the report's argument: how fast the training step runs on the machine that built
# this book, what each performance switch gives, whether the default precision changes the results, and what one GPU
# measurement showed. None of it changes a result of the report.
#
# ```{only} latex
# The web edition also shows these measurements as tables.
# ```

# %% [markdown]
# ## Training throughput
#
# {glue:text}`benchmark_sentence:s` The conventional pipeline is medmnist's Dataset with per-sample transforms
# through a DataLoader; this project indexes resident uint8 tensors. Utilization divides the model's FLOPs per second
# by a large matrix product's, timed in the same run. {glue:text}`workers_sentence:s`

# %% tags=["hide-input"]
benchmark = performance.benchmark(config)
chapter.glue("benchmark_sentence", performance.benchmark_sentence(benchmark))
chapter.glue("workers_sentence", performance.study_workers_sentence(profile, benchmark))

# %% tags=["hide-input", "web-only"]
chapter.table(performance.benchmark_table(benchmark), "The training step's throughput on this machine, against the "
              "conventional pipeline and the matrix-product rate.")

# %% tags=["hide-input"]
switches = performance.cached_switches()
chapter.glue("switches_sentence", performance.switches_sentence(switches))

# %% tags=["hide-input", "web-only"]
(chapter.table(performance.switch_table(switches), "Samples per second of the training loop under each performance "
               "switch, and the ratio to the fp32 NCHW baseline, from `python -m cvae bench --switches`.")
 if switches else None)

# %% [markdown]
# {glue:text}`switches_sentence:s`
#
# ## Does the default precision change the results?

# %% tags=["hide-input"]
study = context.study(names=["paper", "fp32"])
chapter.glue("precision_sentence", performance.precision_sentence(
    run, ablation_tables.precision_differences(study, int(seed))))

# %% tags=["hide-input", "web-only"]
chapter.table(ablation_tables.precision_table(study, int(seed)), "The same variant trained in the default precision "
              "and in fp32, on the test split's criteria.")

# %% [markdown]
# {glue:text}`precision_sentence:s`
#
# ## On a GPU

# %% tags=["hide-input"]
gpu = performance.gpu_study()
chapter.glue("gpu_sentence", performance.gpu_sentence(gpu))

# %% tags=["hide-input", "web-only"]
chapter.table(performance.gpu_table(gpu), "The recorded GPU study, one row per execution mode: samples per "
              "second, seconds per epoch, 150 epochs and peak memory.")

# %% [markdown]
# {glue:text}`gpu_sentence:s`
