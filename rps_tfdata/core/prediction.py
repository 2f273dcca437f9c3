"""Classifying image files with a finished run."""

import os
from typing import Iterable, Sequence

from rps_tfdata.core import artifacts, index, pipeline
from rps_tfdata.core.errors import InputNotFoundError


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files as given, folders replaced by their image files (recursively, in IDG's order).

    Raises:
      InputNotFoundError: a path does not exist, or nothing given holds an image file.
    """
    paths = list(paths)
    found = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(index.iter_image_files(path))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise InputNotFoundError(f"{path} does not exist; pass image files or folders")
    if not found:
        raise InputNotFoundError(f"no image files found in {paths}")
    return found


def classify(run: artifacts.Run, paths: Sequence[str]) -> list[tuple[str, str, float]]:
    """(path, predicted class name, its probability) for each image file, in order."""
    probabilities = run.model.predict(pipeline.make_image_dataset(paths, run.options), verbose=0)
    best = probabilities.argmax(axis=1)
    return [
        (path, run.class_names[k], float(p[k]))
        for path, k, p in zip(paths, best, probabilities, strict=True)
    ]
