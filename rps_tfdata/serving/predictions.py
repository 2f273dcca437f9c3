"""Classifying image files with an exported SavedModel, and what a classification gives:
each readable file's probabilities, and the files that could not be read, named (the
trainer's evaluation gives the same with a run's Keras model)."""

import os
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from rps_tfdata.infra import fs
from rps_tfdata.infra.errors import InputNotFoundError
from rps_tfdata.pipeline.reading import headers, listing

REFUSED_BY_EXPORT = (
    f"refused by the exported model (not a PNG, JPEG, GIF or BMP within "
    f"{headers.MAX_IMAGE_PIXELS:,} pixels)"
)


class Predictions(NamedTuple):
    """The probability of each class (in `class_names` order) per readable file, and
    the files that could not be read."""

    class_names: list[str]
    rows: list[tuple[str, np.ndarray]]
    bad: list[headers.BadImage]

    def top(self, k: int) -> list[tuple[str, list[tuple[str, float]]]]:
        """(path, the `k` most probable (class, probability), most probable first)."""
        ranked = []
        for path, probabilities in self.rows:
            best = np.argsort(-probabilities, kind="stable")[:k]
            ranked.append((path, [(self.class_names[i], float(probabilities[i])) for i in best]))
        return ranked


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files as given, folders replaced by their image files (recursively, in IDG's order).

    Raises:
      InputNotFoundError: a path does not exist, or nothing given holds an image file.
    """
    paths = list(paths)
    found = []
    for path in paths:
        if fs.isdir(path):
            found.extend(listing.iter_image_files(path))
        elif fs.lexists(path):  # a file, a link, a FIFO: the screen says what it is
            found.append(path)
        else:
            raise InputNotFoundError(f"{path} does not exist; pass image files or folders")
    if not found:
        raise InputNotFoundError(f"no image files found in {paths}")
    return found


def classify_exported(
    export_dir: str, paths: Sequence[str], *, batch_size: int = 32
) -> Predictions:
    """Classifies files with an exported SavedModel (`rps_tfdata.serving.saved_model`), the
    file bytes sent as they are.

    A batch the model fails on (corrupt data behind a good header) is sent again file
    by file, so that only the corrupt files are left out.

    Args:
      export_dir: the SavedModel's folder.
      paths: image files (paths or URLs).
      batch_size: files per request.

    Returns:
      Each readable file's probabilities, in order; the files whose header shows they
      cannot be read (never sent) and the corrupt ones apart, with their reasons.
    """
    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures["serving_default"]
    if not hasattr(loaded, "class_names"):
        raise InputNotFoundError(
            f"{export_dir} holds no class names (exported by an earlier version): export "
            "the run again with `export --model_dir=...`"
        )
    class_names = [name.decode() for name in loaded.class_names[0].numpy()]
    positions, bad = headers.screen(paths)
    readable = [paths[i] for i in positions]
    rows = []
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        try:
            _serve_chunk(serve, chunk, rows, bad)
        except tf.errors.InvalidArgumentError:
            for path in chunk:
                try:
                    _serve_chunk(serve, [path], rows, bad)
                except tf.errors.InvalidArgumentError:
                    bad.append(headers.BadImage(path, headers.CORRUPT))
    return Predictions(class_names, rows, bad)


def _serve_chunk(serve, chunk: Sequence[str], rows: list, bad: list) -> None:
    """Adds the exported model's answers for the files `chunk` to `rows` and `bad`."""
    encoded = tf.constant([tf.io.read_file(os.fsencode(p)).numpy() for p in chunk])
    out = serve(images=encoded)
    for path, probabilities, valid in zip(
        chunk, out["probabilities"].numpy(), out["valid"].numpy(), strict=True
    ):
        if valid:
            rows.append((path, probabilities.astype(np.float64)))
        else:
            bad.append(headers.BadImage(path, REFUSED_BY_EXPORT))
