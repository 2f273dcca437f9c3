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

from rps_tfdata.infra.errors import ConfigError, DatasetLayoutError
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import decode, listing, prepare
from rps_tfdata.trainer.config import TrainConfig
from rps_tfdata.trainer.datasets.base import Data, check_and_log, class_counts
from rps_tfdata.trainer.distribution import Worker
from rps_tfdata.trainer.download import CLASS_NAMES
from rps_tfdata.trainer.inputs import LabelledSplit

NAME = "rock_paper_scissors"


def label_map(tfds_names: list[str]) -> np.ndarray:
    """TFDS label -> our label, by class name."""
    if sorted(tfds_names) != list(CLASS_NAMES):
        raise DatasetLayoutError(f"TFDS {NAME} has classes {tfds_names}, not {list(CLASS_NAMES)}")
    return np.array([CLASS_NAMES.index(name) for name in tfds_names])


def read_split(
    split: str, options: PipelineOptions, data_dir: Optional[str] = None
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images resized as training resizes files, our labels) of a TFDS split."""
    import tensorflow_datasets as tfds  # here: only TFDS runs pay for its import

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
            decode.resize(example["image"], options.image_size, options.resize_method),
            example["label"],
        )
    )
    pixels, labels = [], []
    for batch_pixels, batch_labels in dataset.batch(64):
        pixels.append(batch_pixels.numpy())
        labels.append(mapping[batch_labels.numpy()])
    return np.concatenate(pixels), np.concatenate(labels)


def _split(
    name: str, pixels: np.ndarray, labels: np.ndarray, ids: np.ndarray, options
) -> LabelledSplit:
    """The images of TFDS's split `name` with these ids, held in memory; `labels` are
    the whole TFDS split's."""
    paths = [f"tfds:{NAME}/{name}/{i}" for i in ids]
    prepared = prepare.from_pixels(pixels[ids], options, ids=ids, paths=paths)
    return LabelledSplit(prepared, [int(label) for label in labels], len(CLASS_NAMES))


class TfdsSource:
    """TFDS's prepared `rock_paper_scissors` in `config.tfds_data_dir` (or TFDS's folder)."""

    def __init__(self, config: TrainConfig):
        self._config = config

    def fingerprint(self) -> str:
        return f"tfds:{NAME}"

    def splits(self):
        raise ConfigError(f"TFDS {NAME} holds decoded images, not files: pass --data_dir")

    def image_counts(self, worker: Worker) -> None:
        """None: TFDS gives decoded images, held in memory."""
        return None

    def load(self, worker: Worker, options: PipelineOptions) -> Data:
        """Training (this worker's shard of it), validation whole, the test split on the
        chief; validation is per class the first examples in TFDS's stored order."""
        data_dir = self._config.tfds_data_dir or None
        options = options._replace(cache="memory")  # TFDS gives decoded images
        pixels, labels = read_split("train", options, data_dir)
        validation = np.zeros(len(labels), bool)
        for label in range(len(CLASS_NAMES)):
            members = np.flatnonzero(labels == label)
            split = self._config.validation_split
            validation[members[: listing.validation_count(len(members), split)]] = True
        all_train_ids = np.flatnonzero(~validation)
        train_ids = all_train_ids[worker.index :: worker.count]
        val_ids = np.flatnonzero(validation)
        test = None
        if worker.is_chief:
            test_pixels, test_labels = read_split("test", options, data_dir)
            test_ids = np.arange(len(test_labels))
            test = _split("test", test_pixels, test_labels, test_ids, options)
        data = Data(
            list(CLASS_NAMES),
            _split("train", pixels, labels, train_ids, options),
            _split("train", pixels, labels, val_ids, options),
            test,
            listed_train=len(all_train_ids),
            listed_per_class=class_counts(labels[all_train_ids], len(CLASS_NAMES)),
        )
        total = len(train_ids) + len(val_ids) + (test.prepared.count if test else 0)
        return check_and_log(data, total, "skip", lambda name: f"TFDS {NAME} class {name!r}")
