# %% [markdown]
# # The data

# %% tags=["parameters", "remove-cell"]
# profile: smoke, quick or full (see the reproducibility chapter)
profile = "smoke"
seed = 0
# data source: empty for the profile's own (medmnist for quick and full, synthetic for smoke)
data_source = ""
# data folder: empty for the default (CVAE_DATA_DIR, ~/.medmnist, or data/synthetic-*)
data_dir = ""
# extra key=value config overrides, the same for every chapter
overrides = []

# %% tags=["remove-input"]
from cvae.core.labels import DATASETS
from cvae.data.loading import summary
from cvae.evaluation import examples
from cvae.report import chapter, data_tables, plots

context, data = chapter.open_data_chapter(profile, seed, data_source, data_dir, overrides)

# %% [markdown]
# ## Overview
#
# This chapter loads the three MedMNIST subsets the model is trained on, merges them into one set of
# 21 global classes and 3 modalities, and shows what the model sees:
#
# 1. the number of images per dataset and split, computed from the files;
# 2. the class balance;
# 3. the conversion of the RGB PathMNIST images to one gray channel;
# 4. real images of every class of every modality ({numref}`fig-real`, the original's Figure 6).
#
# The later chapters read the same files and the run folder written by the training chapter; nothing
# is passed between notebooks in memory.

# %% [markdown]
# ## The three datasets
#
# PathMNIST (colon pathology, RGB), TissueMNIST (kidney cortex microscopy, gray) and OCTMNIST (retinal OCT, gray)
# come from MedMNIST v2 {cite:p}`yang2023medmnist`. Their labels are mapped to global classes: PathMNIST 0-8,
# TissueMNIST 9-16, OCTMNIST 17-20. The table counts the images this run uses (after the profile's stratified
# subset), the images in the files, and the official training size from `medmnist.INFO`.

# %% tags=["hide-input"]
counts = data_tables.dataset_table(data)
facts = summary(data)
for flag in DATASETS:
    name = flag.removesuffix("mnist")  # path, tissue, oct: the glue names the prose below reads
    for split in ("train", "val", "test"):
        chapter.glue(f"n_{split}_{name}", facts[flag][split])
        chapter.glue(f"file_{split}_{name}", data.files[flag].sizes[split])
for split in ("train", "val", "test"):
    chapter.glue(f"n_{split}_total", sum(facts[f][split] for f in DATASETS))
    chapter.glue(f"file_{split}_total", sum(data.files[f].sizes[split] for f in data.files))
chapter.glue("n_classes", facts["global_classes"])
chapter.glue("data_kind", "the synthetic stand-in" if data.synthetic else
             "the official MedMNIST files" if all(f.md5_ok for f in data.files.values()) else
             "MedMNIST files that are not the official release")
chapter.table(counts, "Images per dataset and split: those this run uses, those in the files, and the official "
              "training size from `medmnist.INFO`.")

# %% [markdown]
# This run trains on {glue:text}`n_train_total:,` images
# ({glue:text}`n_train_path:,` PathMNIST, {glue:text}`n_train_tissue:,` TissueMNIST,
# {glue:text}`n_train_oct:,` OCTMNIST) from files holding {glue:text}`file_train_total:,` training images.
#
# ## Class balance
#
# {glue:text}`class_balance:s`

# %% tags=["hide-input"]
per_class = data_tables.class_count_table(data)
chapter.glue("class_balance", data_tables.class_balance_sentence(per_class, context.config.train_per_class))
chapter.glue("fig_class_counts", plots.class_counts(per_class))

# %% [markdown]
# ```{glue:figure} fig_class_counts
# :name: fig-class-counts
#
# Images per global class and split, as used by this run.
# Data: {glue:text}`data_caption:s`.
# ```
#
# ## From RGB to one gray channel
#
# The model takes one channel. PathMNIST's RGB images are converted with the ITU-R BT.601 luma weights,
# $Y = 0.299 R + 0.587 G + 0.114 B$ (`cvae.data.loading.rgb_to_gray`), once, when the files are read.
# The figure below shows one image of each PathMNIST class before and after.

# %% tags=["hide-input"]
from cvae.data.loading import rgb_to_gray

rgb = examples.pathmnist_rgb_examples(data, n=9)
chapter.glue("fig_gray", plots.gray_conversion(rgb, rgb_to_gray(rgb)))

# %% [markdown]
# ```{glue:figure} fig_gray
# :name: fig-gray
#
# PathMNIST test images of the nine classes in colour (top) and as the gray images the model sees (bottom).
# Data: {glue:text}`data_caption:s`.
# ```
#
# ## Test images per modality and class
#
# ```{glue:figure} fig_real
# :name: fig-real
#
# Test images: rows are modalities, columns that modality's classes (four images per class), labelled with
# the `medmnist` class names (the original's Figure 6). Compare with the generated samples in {numref}`fig-samples`.
# Data: {glue:text}`data_caption:s`.
# ```

# %% tags=["hide-input"]
chapter.glue("fig_real", plots.class_grid(examples.real_by_class(data.test, per_class=4, seed=seed), per_cell=4))

# %% [markdown]
# ## Summary
#
# The merged data has {glue:text}`n_classes:d` global classes in three modalities; this run uses
# {glue:text}`n_train_total:,` training, {glue:text}`n_val_total:,` validation and {glue:text}`n_test_total:,` test
# images of {glue:text}`data_kind:s`. The next chapter trains the conditional VAE on them.
