"""Flags that several entry points read (train, evaluate, predict, synthetic), defined once.

absl refuses a flag defined twice in one process, and the tests import every entry point.
"""

from absl import flags

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
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per batch.", lower_bound=1)
SEED = flags.DEFINE_integer(
    "seed",
    42,
    "Random seed: training seeds weights, dropout, shuffling and augmentation "
    "with it; synthetic draws its images from it. The same seed repeats the result.",
)
