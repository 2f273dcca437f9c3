"""A run's images: listed and split as IDG does, then read once and checked.

Unreadable files leave whichever subset holds them after the split, so the readable
files keep IDG's split; they are reported, or stop the run under `on_bad_image="fail"`.
"""

import os
from typing import NamedTuple, Optional

from absl import logging

from rps_tfdata.core import files, index, pipeline, scan, tfds_source
from rps_tfdata.core.config import TrainConfig
from rps_tfdata.core.distribution import Worker
from rps_tfdata.core.errors import DatasetLayoutError


class Data(NamedTuple):
    """The run's splits, read and checked: training (this worker's shard of it),
    validation and optional test, and how many files the whole training split lists."""

    class_names: list[str]
    train: pipeline.Prepared
    validation: pipeline.Prepared
    test: Optional[pipeline.Prepared]
    listed_train: int = 0

    def skipped(self) -> list[scan.BadImage]:
        """Every unreadable file of every split."""
        return [b for split in (self.train, self.validation, self.test) if split for b in split.bad]


def data_fingerprint(config: TrainConfig) -> str:
    """A digest of the listed image files (paths, sizes, modification times), so a rerun
    can tell a continuation from the same folder holding other images."""
    if config.dataset == "tfds":
        return f"tfds:{tfds_source.NAME}"
    listed = index.list_all(config.train_dir).paths
    if config.test_dir:
        listed += index.list_all(config.test_dir).paths
    return files.fingerprint(listed)


def _fewest_images_for_validation(validation_split: float) -> int:
    """The smallest class that gets a validation image, with IDG's truncation."""
    count = 1
    while index.validation_count(count, validation_split) < 1:
        count += 1
    return count


def _list_splits(config: TrainConfig) -> tuple[index.Split, index.Split, Optional[index.Split]]:
    """The IDG split of the listing (bad files included, as IDG splits), checked."""
    train = index.list_split(config.train_dir, config.validation_split, "training")
    validation = index.list_split(config.train_dir, config.validation_split, "validation")
    for junk in index.junk_folders(config.train_dir):
        logging.info(
            "left out %s: an archiver's folder, not a class", os.path.join(config.train_dir, junk)
        )
    if len(train.class_names) < 2:
        raise DatasetLayoutError(
            f"data folder {config.train_dir!r} has {len(train.class_names)} class folder(s) "
            f"{train.class_names}; a classifier needs at least two"
        )
    for subset, split in (("training", train), ("validation", validation)):
        if not split.paths:
            raise DatasetLayoutError(
                f"the {subset} subset of {config.train_dir!r} is empty: each class needs at least "
                f"{_fewest_images_for_validation(config.validation_split)} images for "
                f"validation_split={config.validation_split}"
            )
    test = None
    if config.test_dir:
        test = index.list_all(config.test_dir)
        index.check_same_classes(train.class_names, test.class_names, config.test_dir)
    return train, validation, test


def load_data(config: TrainConfig, worker: Optional[Worker] = None) -> Data:
    """Lists and splits the images as IDG does, then reads every file once: unreadable
    files leave whichever subset holds them (so the readable files' split is IDG's), and
    are reported, or stop the run under `on_bad_image="fail"`. Test images are scanned
    now and decoded again at the end (no cache held through training).

    Of several workers, each reads its shard of the training files (every `count`-th,
    from its index: sharded by file, before any decode), and validation whole; only the
    chief reads the test set. A worker sees its own shard's unreadable files only.
    """
    worker = worker or Worker()
    shard = slice(worker.index, None, worker.count)
    if config.dataset == "tfds":
        train, validation, test, listed = tfds_source.splits(
            config.validation_split,
            config.input,
            shard=shard,
            with_test=worker.is_chief,
            data_dir=config.tfds_data_dir or None,
        )
        return Data(tfds_source.CLASS_NAMES, train, validation, test, listed_train=listed)
    train, validation, test = _list_splits(config)
    num_classes = len(train.class_names)
    test = test if worker.is_chief else None

    def read(paths, labels, name: str, options: pipeline.PipelineOptions, ids=None):
        return pipeline.prepare(paths, labels, num_classes, options, name=name, ids=ids)

    data = Data(
        train.class_names,
        read(
            train.paths[shard],
            train.labels[shard],
            "train",
            config.input,
            ids=range(len(train.paths))[shard],
        ),
        read(validation.paths, validation.labels, "validation", config.input),
        read(test.paths, test.labels, "test", config.input._replace(cache="none"))
        if test
        else None,
        listed_train=len(train.paths),
    )
    total = len(train.paths[shard]) + len(validation.paths) + (len(test.paths) if test else 0)
    scan.check_policy(data.skipped(), total, config.on_bad_image)
    if data.skipped():
        logging.warning("%s; they were left out", scan.describe(data.skipped(), total))
    for subset, split in (("training", data.train), ("validation", data.validation)):
        if not split.paths:
            raise DatasetLayoutError(f"the {subset} subset holds no readable image file")
    _check_every_class_read(data, config.train_dir)
    if data.test is not None and not data.test.paths:
        raise DatasetLayoutError(f"test folder {config.test_dir!r} holds no readable image file")
    for subset, split in (("training", data.train), ("validation", data.validation)):
        logging.info("%s: %s", subset, _counts(split, data.class_names))
    if data.test:
        logging.info("test: %s", _counts(data.test, data.class_names))
    return data


def _check_every_class_read(data: Data, train_dir: str) -> None:
    """Refuses a class folder in which no image could be read: it would train as a class
    that no image shows (a junk or misplaced folder), shifting every label after it."""
    readable = set(data.train.labels) | set(data.validation.labels)
    for label, name in enumerate(data.class_names):
        if label not in readable:
            raise DatasetLayoutError(
                f"class folder {os.path.join(train_dir, name)!r} holds no readable image; "
                "remove it from --data_dir (or put the class's images in it)"
            )


def _counts(split: pipeline.Prepared, class_names: list[str]) -> str:
    counts = ", ".join(f"{n}={split.labels.count(k)}" for k, n in enumerate(class_names))
    return f"{len(split.paths)} images ({counts}), {len(split.bad)} unreadable left out"
