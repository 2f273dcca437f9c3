"""The files a training run writes into its model folder, and how to load them back.

Every consumer of a finished run (evaluate, predict, export) goes through
`load_run`, so the preprocessing used in training cannot drift from inference.
"""

import json
import os
from typing import Any, Optional

import keras

from rps_tfdata.infra import atomic, fs
from rps_tfdata.infra.errors import RunNotFoundError
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import file_facts
from rps_tfdata.serving import saved_model, tflite
from rps_tfdata.serving.finished import Run

BEST_WEIGHTS_FILE = "best.weights.h5"
FINAL_MODEL_FILE = "model.keras"
CLASS_NAMES_FILE = "class_names.json"
PREPROCESSING_FILE = "preprocessing.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
LOGS_FOLDER = "logs"
FLAGS_FILE = "flags.txt"
RUN_CONFIG_FILE = "run_config.json"
CHECKPOINTS_FOLDER = "checkpoints"
HISTORY_PLOT_FILE = "history.png"  # the learning curves (with matplotlib, the plots extra)
CONFUSION_PLOT_FILE = "confusion.png"  # the test set's confusion matrix (else validation's)
# Everything a run writes, as `remove_run` deletes it (nothing else in the folder).
RUN_FILES = (
    BEST_WEIGHTS_FILE,
    FINAL_MODEL_FILE,
    CLASS_NAMES_FILE,
    PREPROCESSING_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    LOGS_FOLDER,
    FLAGS_FILE,
    RUN_CONFIG_FILE,
    CHECKPOINTS_FOLDER,
    saved_model.EXPORT_FOLDER,
    tflite.FOLDER,
    HISTORY_PLOT_FILE,
    CONFUSION_PLOT_FILE,
    file_facts.INDEX_FILE,  # the data's file facts (on remote file systems)
)


def holds_run(model_dir: str) -> bool:
    """Whether `model_dir` holds any training artifact."""
    return any(fs.exists(os.path.join(model_dir, name)) for name in RUN_FILES)


def remove_run(model_dir: str) -> None:
    """Deletes the run's artifacts from `model_dir`, and nothing else there."""
    for name in RUN_FILES:
        path = os.path.join(model_dir, name)
        if fs.isdir(path):
            fs.rmtree(path)
        elif fs.exists(path):
            fs.remove(path)


def finished_metrics(model_dir: str) -> Optional[dict[str, Any]]:
    """The metrics of a finished run in `model_dir`, or None."""
    path = os.path.join(model_dir, METRICS_FILE)
    if not fs.exists(path):
        return None
    metrics = read_json(model_dir, METRICS_FILE)
    return metrics if metrics.get("finished") else None


def read_json(model_dir: str, name: str) -> Any:
    """The JSON artifact `name` of the run in `model_dir`."""
    path = os.path.join(model_dir, name)
    with fs.open_file(path) as f:
        return json.load(f)


def write_preprocessing(model_dir: str, options: PipelineOptions) -> str:
    """Records how images were sized, so inference reads them the same way."""
    return atomic.write_json(
        os.path.join(model_dir, PREPROCESSING_FILE),
        {"image_size": list(options.image_size), "resize_method": options.resize_method},
    )


def load_run(model_dir: str, *, batch_size: int = 32) -> Run:
    """Loads a finished run from `model_dir`.

    Raises:
      RunNotFoundError: `model_dir` does not hold a finished run; names the missing file.
    """
    for name in (FINAL_MODEL_FILE, CLASS_NAMES_FILE, PREPROCESSING_FILE):
        if not fs.exists(os.path.join(model_dir, name)):
            raise RunNotFoundError(
                f"{os.path.join(model_dir, name)} not found: --model_dir must be the folder of a "
                "finished `python -m rps_tfdata.train` run"
            )
    model = keras.saving.load_model(os.path.join(model_dir, FINAL_MODEL_FILE))
    preprocessing = read_json(model_dir, PREPROCESSING_FILE)
    options = PipelineOptions(
        image_size=tuple(preprocessing["image_size"]),
        batch_size=batch_size,
        resize_method=preprocessing["resize_method"],
        cache="memory",  # read once: the scan for unreadable files decodes them anyway
    )
    return Run(model, read_json(model_dir, CLASS_NAMES_FILE), options)
