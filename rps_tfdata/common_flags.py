"""Flags that several entry points read (train, evaluate, predict, synthetic, benchmark).

absl refuses a flag defined twice in one process, and the tests import every entry point.
"""

from absl import flags

from rps_tfdata import model

MODEL_DIR = flags.DEFINE_string(
    "model_dir",
    "runs/rps",
    "Folder of the run: training writes its artifacts here; "
    "evaluate and predict load the model from here.",
)
DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "Folder with one subfolder of images per class (the "
    "flow_from_directory layout). Training without it downloads the official rps.zip.",
)
OUT = flags.DEFINE_string(
    "out", None, "Where to write: synthetic's class folders, or preview's PNG file (required)."
)
JSON = flags.DEFINE_string(
    "json", None, "Also write the results as JSON to this file (evaluate, benchmark)."
)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per batch.", lower_bound=1)
SEED = flags.DEFINE_integer(
    "seed",
    42,
    "Random seed: training seeds weights, dropout, shuffling and augmentation "
    "with it; synthetic draws its images from it. The same seed repeats the result.",
)
EPOCHS = flags.DEFINE_integer("epochs", 25, "Passes over the training subset.", lower_bound=1)
IMAGE_SIZE = flags.DEFINE_integer(
    "image_size",
    150,
    f"Images are resized to this square side (the CNN needs at least {model.min_image_size()}).",
    lower_bound=model.min_image_size(),
)
