"""Classifies image files and folders with a finished run.

    python -m rps_tfdata.predict --model_dir=runs/rps PATH [PATH ...]

Folders are searched recursively for image files (the extensions the index accepts).
Prints one tab-separated line per image: path, class name, probability.
"""

import os
from typing import Iterable, Sequence

from absl import app

from rps_tfdata import artifacts, cli, common_flags, index, pipeline


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files as given, folders replaced by their image files (recursively, sorted)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(index.iter_image_files(path))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist; pass image files or folders")
    return found


def classify(run: artifacts.Run, paths: Sequence[str]) -> list[tuple[str, str, float]]:
    """(path, predicted class name, its probability) for each image file."""
    probabilities = run.model.predict(pipeline.make_image_dataset(paths, run.options), verbose=0)
    best = probabilities.argmax(axis=1)
    return [
        (path, run.class_names[k], float(p[k]))
        for path, k, p in zip(paths, best, probabilities, strict=True)
    ]


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("pass at least one image file or folder to classify")
    paths = expand_paths(argv[1:])
    if not paths:
        raise FileNotFoundError(f"no image files found in {argv[1:]}")
    run = artifacts.load_run(common_flags.MODEL_DIR.value, batch_size=common_flags.BATCH_SIZE.value)
    for path, name, probability in classify(run, paths):
        print(f"{path}\t{name}\t{probability:.4f}")


def run() -> None:
    """Console-script entry point (`rps-predict`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
