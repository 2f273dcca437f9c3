"""Classifying image files with a finished run."""

import os
from typing import Iterable, NamedTuple, Sequence

import tensorflow as tf

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


def classify_exported(
    export_dir: str, paths: Sequence[str], *, batch_size: int = 32
) -> Predictions:
    """Classifies files with an exported SavedModel (`rps_tfdata.core.export`): the file
    bytes go in as they are. Files whose header shows they cannot be read are returned
    apart without being sent."""
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    positions, bad = scan.screen(paths)
    readable = [paths[i] for i in positions]
    rows = []
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        encoded = tf.constant([tf.io.read_file(p).numpy() for p in chunk])
        out = serve(images=encoded)
        for path, name, probabilities, valid in zip(
            chunk,
            out["classes"].numpy(),
            out["probabilities"].numpy(),
            out["valid"].numpy(),
            strict=True,
        ):
            if valid:
                rows.append((path, name.decode(), float(probabilities.max())))
            else:
                bad.append(scan.BadImage(path, "not an image the exported model decodes"))
    return Predictions(rows, bad)
