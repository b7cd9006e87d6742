# %% [markdown]
# # Training

# %% tags=["parameters", "remove-cell"]
profile = "smoke"
seed = 0
data_source = ""
data_dir = ""
overrides = []

# %% tags=["remove-input"]
from cvae.core import formatting
from cvae.core.config import LOSS_WEIGHTS
from cvae.core.loss import TERMS
from cvae.core.original import ORIGINAL, report_original_heads
from cvae.core.model import CVAE
from cvae.report import ablation_tables, chapter, model_tables, plots
from cvae.training import loss_balance

context = chapter.open_chapter(profile, seed, data_source, data_dir, overrides, train_if_missing=True)
config, run = context.config, context.run

# %% [markdown]
# ## Overview
#
# This chapter trains the conditional VAE of the {doc}`method chapter <../book/method>` on the data of the
# previous chapter, or reuses the finished run of the same configuration: runs are folders keyed by a hash of
# the configuration, so rebuilding the book does not retrain. It shows:
#
# 1. the configuration of this run and where each value comes from;
# 2. the loss terms per epoch on the training and validation sets, with the epoch of the lowest validation total and the
#    kept checkpoint's epoch marked
#    ({numref}`fig-loss`, the original's Figure 1);
# 3. the KL weight schedule and the validation accuracy of the auxiliary heads.

# %% [markdown]
# ## Configuration
#
# Every setting of the run, its value, the original report's value and the reason for each choice the
# reproduction had to make (the original's table of loss weights is empty) are in the
# {doc}`method chapter <../book/method>`, beside the architecture.

# %% tags=["hide-input"]
hyper = model_tables.hyperparameter_table(config, profile)
architecture = model_tables.architecture_table(CVAE(config))
chapter.glue("hyperparameter_table", chapter.table(hyper, "Every hyperparameter of this build: its value, the "
                                                  "original's, and where the value comes from."))
ablation_tables.write_csv(hyper.reset_index(), chapter.report_dir() / "02_hyperparameters.csv")
chapter.glue("architecture_table", chapter.table(architecture, "The model, layer by layer, from one forward pass "
                                                 "with hooks: output shape and trainable parameters."))
chapter.glue("parameters", run.summary["parameters"])
chapter.glue("config_hash", config.config_hash())
chapter.glue("profile", profile)
for key in (*LOSS_WEIGHTS, "lr", "weight_decay", "grad_clip"):
    chapter.glue(f"cfg_{key}", float(getattr(config, key)))
for key in ("epochs", "batch_size", "beta_warmup_epochs", "beta_ramp_epochs", "latent_dim", "plateau_patience"):
    chapter.glue(f"cfg_{key}", int(getattr(config, key)))

# %% [markdown]
# ## Loss per epoch
#
# ````{container} print-tall
# ```{glue:figure} fig_loss
# :name: fig-loss
#
# Training and validation value of every loss term per epoch, per image and unweighted, of the weighted total, and
# the validation accuracy of both auxiliary heads in eval mode; the original's Figure 1. The dashed line marks the
# epoch with the lowest validation total, the original's rule; the dotted line, where it differs, the kept
# checkpoint's epoch.
# Data: {glue:text}`data_caption:s`.
# ```
# ````

# %% tags=["hide-input"]
metrics = run.metrics
best = run.best_total_epoch
kept = run.kept_epoch
best_row = metrics.loc[metrics["epoch"] == best].iloc[0]
chapter.glue("fig_loss", plots.loss_curves(metrics, best, kept))
chapter.glue("best_epoch", best + 1)  # 1-based, as the original counts ("after 79 epochs")
chapter.glue("original_best_epoch", ORIGINAL["best_epoch"])
chapter.glue("kept_epoch", kept + 1)
chapter.glue("kept_sentence", model_tables.kept_checkpoint_sentence(run.summary, metrics))
chapter.glue("epochs_trained", len(metrics))
chapter.glue("best_val_total", run.summary["best_val_total"])
chapter.glue("best_val_class_acc", float(best_row["val_class_acc"]))
chapter.glue("best_val_modality_acc", float(best_row["val_modality_acc"]))
chapter.glue("original_heads", report_original_heads())
chapter.glue("train_seconds", run.summary["train_seconds"])
chapter.glue("train_time", formatting.duration(run.summary["train_seconds"]))
chapter.glue("samples_per_second", run.summary["median_train_samples_per_s"])
chapter.glue("device", formatting.device_words(run.summary["device"]))
ablation_tables.write_csv(model_tables.metrics_for_download(metrics), chapter.report_dir() / "02_metrics.csv")
chapter.table(model_tables.epoch_table(metrics, best, kept_epoch=kept), "The first, the best, the kept and the last "
              "epochs: losses per image, validation accuracies of the heads in %.")

# %% [markdown]
# The best validation loss ({glue:text}`best_val_total:.1f` per image) was reached in epoch
# {glue:text}`best_epoch:d` of {glue:text}`epochs_trained:d` (the original: epoch
# {glue:text}`original_best_epoch:d` of 150). At that epoch the auxiliary heads classified
# {glue:text}`best_val_class_acc:.1%` of the validation images by class and
# {glue:text}`best_val_modality_acc:.1%` by modality (the original: {glue:text}`original_heads:s`). Training took
# {glue:text}`train_time:s` on {glue:text}`device:s`, at {glue:text}`samples_per_second:,.0f`
# training images per second. {glue:text}`kept_sentence:s` The table shows the first, the best, the kept and the
# last epochs; every column of every epoch is a download: {download}`02_metrics.csv <02_metrics.csv>`.
#
# ## The KL weight and the learning rate
#
# ```{glue:figure} fig_lr
# :name: fig-lr
#
# The learning rate of every epoch (log scale) and the KL weight $\beta(t)$ of {eq}`eq-beta` (dashed), epochs
# counted from 1 (epoch $e$ trains with $t = e - 1$).
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
chapter.glue("fig_lr", plots.learning_rate(metrics["epoch"] + 1, metrics["lr"], metrics["beta"]))
chapter.glue("lr_sentence", model_tables.learning_rate_sentence(metrics))
chapter.glue("plateau_metric", config.plateau_metric)

# %% [markdown]
# ReduceLROnPlateau watched the validation quantity {glue:text}`plateau_metric:s` (see the method chapter):
# {glue:text}`lr_sentence:s`
#
# ## How much each loss term weighs
#
# A weight is not a share. Training measures, at the start of a few epochs and on a fixed batch of validation
# images, each weighted term's share of the loss and of the gradient norm over the trainable parameters.
#
# ```{glue:figure} fig_balance
# :name: fig-balance
#
# Each weighted loss term's share of the loss (left) and of the gradient norm (right) at the start of the epochs
# named below the bars, measured on the same validation images.
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
balance = loss_balance.read_balance(run.path)
chapter.glue("fig_balance", plots.loss_shares({f"epoch {r['epoch'] + 1}: {r['moment']}": r["terms"]
                                               for r in balance.values()}, TERMS))
chapter.glue("balance_sentence", loss_balance.balance_sentence(balance))

# %% [markdown]
# {glue:text}`balance_sentence:s`

# %% [markdown]
# ## Summary
#
# The model has {glue:text}`parameters:,` trainable parameters (the original: 1,155,993) and trained for
# {glue:text}`epochs_trained:d` epochs; the kept checkpoint (epoch {glue:text}`kept_epoch:d`, the lowest validation
# loss at $\beta_\text{max}$) is the one the following chapters load from the run folder.
