"""TensorFlow Datasets' `rock_paper_scissors` as a source, for users who have it prepared.

TFDS numbers the labels rock=0, paper=1, scissors=2; this package keeps the folder order
of the seed (`paper, rock, scissors`, code-point order), so labels are mapped by name from
TFDS's own `ClassLabel` names, and `class_names.json` says `paper, rock, scissors` either
way. TFDS has no file names, so IDG's first-20%-of-files split cannot be reproduced: the
validation subset is, per class, the first `int(validation_split * n)` examples of TFDS's
`train` split in its stored order (read with `shuffle_files=False`, so it is the same
every time); TFDS's `test` split is the test set.
"""

from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from rps_tfdata.core import images, index, pipeline
from rps_tfdata.core.errors import DatasetLayoutError

NAME = "rock_paper_scissors"
CLASS_NAMES = ["paper", "rock", "scissors"]


def label_map(tfds_names: list[str]) -> np.ndarray:
    """TFDS label -> our label, by class name."""
    if sorted(tfds_names) != CLASS_NAMES:
        raise DatasetLayoutError(f"TFDS {NAME} has classes {tfds_names}, not {CLASS_NAMES}")
    return np.array([CLASS_NAMES.index(name) for name in tfds_names])


def read_split(
    split: str, options: pipeline.PipelineOptions, data_dir: Optional[str] = None
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images resized as training resizes files, our labels) of a TFDS split."""
    try:
        dataset, info = tfds.load(
            NAME,
            split=split,
            data_dir=data_dir,
            download=False,
            shuffle_files=False,
            with_info=True,
        )
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, OSError) as e:
        raise DatasetLayoutError(
            f"TFDS {NAME} is not prepared in {data_dir or 'its default folder'} ({e}); "
            "prepare it with tfds.load, pass --tfds_data_dir, or use --data_dir"
        ) from e
    mapping = label_map(info.features["label"].names)
    dataset = dataset.map(
        lambda example: (
            images.resize(example["image"], options.image_size, options.resize_method),
            example["label"],
        )
    )
    pixels, labels = [], []
    for batch_pixels, batch_labels in dataset.batch(64):
        pixels.append(batch_pixels.numpy())
        labels.append(mapping[batch_labels.numpy()])
    return np.concatenate(pixels), np.concatenate(labels)


def _prepared(name: str, pixels: np.ndarray, labels: np.ndarray, ids, options) -> pipeline.Prepared:
    ids = list(ids)
    return pipeline.Prepared(
        paths=[f"tfds:{NAME}/{name}/{i}" for i in ids],
        labels=[int(label) for label in labels],
        ids=ids,
        bad=[],
        num_classes=len(CLASS_NAMES),
        options=options._replace(cache="memory"),
        images=tf.constant(pixels),
    )


def splits(
    validation_split: float,
    options: pipeline.PipelineOptions,
    *,
    shard: slice = slice(None),
    with_test: bool = True,
    data_dir: Optional[str] = None,
):
    """(training, validation, test or None, training examples in all shards) as prepared
    splits; training sharded by `shard` (one worker's share), validation whole."""
    pixels, labels = read_split("train", options, data_dir)
    validation = np.zeros(len(labels), bool)
    for label in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == label)
        validation[members[: index.validation_count(len(members), validation_split)]] = True
    all_train_ids = np.flatnonzero(~validation)
    train_ids = all_train_ids[shard]
    val_ids = np.flatnonzero(validation)
    test = None
    if with_test:
        test_pixels, test_labels = read_split("test", options, data_dir)
        test = _prepared("test", test_pixels, test_labels, range(len(test_labels)), options)
    return (
        _prepared("train", pixels[train_ids], labels[train_ids], train_ids, options),
        _prepared("train", pixels[val_ids], labels[val_ids], val_ids, options),
        test,
        len(all_train_ids),
    )
