"""Classifying image files with a finished run."""

import os
from typing import Iterable, NamedTuple, Sequence

from rps_tfdata.core import artifacts, evaluation, index, loop, pipeline, scan
from rps_tfdata.core.errors import InputNotFoundError


class Predictions(NamedTuple):
    """(path, predicted class name, its probability) per readable file, and the others."""

    rows: list[tuple[str, str, float]]
    bad: list[scan.BadImage]


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


def classify(run: artifacts.Run, paths: Sequence[str]) -> Predictions:
    """Classifies every readable file, in order; unreadable ones are returned apart."""
    num_classes = len(run.class_names)
    prepared = pipeline.prepare(paths, [0] * len(paths), num_classes, run.options)
    if not prepared.paths:
        return Predictions([], prepared.bad)
    batches = pipeline.evaluation_batches(prepared)
    probabilities, _ = evaluation.predict_all(loop.make_predict(run.model), batches)
    best = probabilities.argmax(axis=1)
    rows = [
        (path, run.class_names[k], float(p[k]))
        for path, k, p in zip(prepared.paths, best, probabilities, strict=True)
    ]
    return Predictions(rows, prepared.bad)
