"""A class-per-folder data set (`--data_dir`, optional `--test_dir`), split as IDG splits.

Each folder is listed once per start (`listing.list_folder`; a bucket pays for each page
of the listing once), and every listed file's stat and headers are read once
(`file_facts`; on a bucket, a restart of the run takes them from the run's file index
when the listing is the same). The fingerprint and the IDG split, unreadable files
included, come from these; then every file is read once, and unreadable ones leave
whichever subset holds them, so the readable files keep IDG's split.
"""

import functools
import os
from typing import Optional

from absl import logging

from rps_tfdata.infra import fs
from rps_tfdata.infra.errors import DatasetLayoutError
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import file_facts, listing
from rps_tfdata.pipeline.reading.prepare import require_images
from rps_tfdata.trainer import inputs
from rps_tfdata.trainer.config import TrainConfig
from rps_tfdata.trainer.datasets.base import Data, check_and_log, class_counts
from rps_tfdata.trainer.distribution import Worker


def _fewest_images_for_validation(validation_split: float) -> int:
    """The smallest class that gets a validation image, with IDG's truncation."""
    count = 1
    while listing.validation_count(count, validation_split) < 1:
        count += 1
    return count


class FolderSource:
    """`config.data_dir` (and `config.test_dir`), read with the options `load` is given."""

    def __init__(self, config: TrainConfig):
        self._config = config

    @functools.cached_property
    def _listings(self) -> tuple[listing.Listing, Optional[listing.Listing]]:
        """The training folder's listing and the test folder's (None without one)."""
        config = self._config
        test = listing.list_folder(config.test_dir) if config.test_dir else None
        return listing.list_folder(config.data_dir), test

    @functools.cached_property
    def _facts(self) -> tuple[dict[str, file_facts.Facts], bool]:
        """Every listed file's facts by path, and whether they came from the file index."""
        facts, indexed = file_facts.gather(self._listed_paths, self._config.model_dir)
        return dict(zip(self._listed_paths, facts, strict=True)), indexed

    @property
    def _listed_paths(self) -> list[str]:
        train, test = self._listings
        return train.paths + (test.paths if test else [])

    def fingerprint(self) -> str:
        """A digest of the listed image files (paths, sizes, modification times)."""
        facts, _ = self._facts
        return file_facts.fingerprint(self._listed_paths, [facts[p] for p in self._listed_paths])

    def splits(self) -> tuple[listing.Split, listing.Split, Optional[listing.Split]]:
        """The training, validation and test files: IDG's split of the listing (bad
        files included, as IDG splits), checked."""
        return self._splits

    @functools.cached_property
    def _splits(self) -> tuple[listing.Split, listing.Split, Optional[listing.Split]]:
        config = self._config
        listed, listed_test = self._listings
        train = listing.subset(listed, config.validation_split, "training")
        validation = listing.subset(listed, config.validation_split, "validation")
        for junk in listed.junk:
            logging.info(
                "left out %s: an archiver's folder, not a class",
                os.path.join(listed.directory, junk),
            )
        if len(listed.class_names) < 2:
            raise DatasetLayoutError(
                f"data folder {config.data_dir!r} has {len(listed.class_names)} class folder(s) "
                f"{listed.class_names}; a classifier needs at least two"
            )
        for subset, split in (("training", train), ("validation", validation)):
            if not split.paths:
                raise DatasetLayoutError(
                    f"the {subset} subset of {config.data_dir!r} is empty: each class needs at "
                    f"least {_fewest_images_for_validation(config.validation_split)} images "
                    f"for validation_split={config.validation_split}"
                )
        test = None
        if listed_test is not None:
            test = listing.subset(listed_test, 0.0, None)
            listing.check_same_classes(train.class_names, test.class_names, config.test_dir)
        return train, validation, test

    def image_counts(self, worker: Worker) -> list[int]:
        """`worker`'s shard of the training files and the validation files."""
        train, validation, _ = self.splits()
        return [len(train.paths[worker.index :: worker.count]), len(validation.paths)]

    def load(self, worker: Worker, options: PipelineOptions) -> Data:
        """Every split read once and checked. Of several workers, each reads its shard of
        the training files (every `count`-th from its index: sharded by file, before any
        decode) and validation whole; only the chief reads the test set, whose headers are
        screened now and which is decoded at the end (no cache held through training)."""
        config = self._config
        train, validation, test = self.splits()
        facts, indexed = self._facts
        if worker.is_chief and not indexed and fs.is_remote(self._listed_paths[0]):
            file_facts.keep(config.model_dir, self._listed_paths, list(facts.values()))
        shard = slice(worker.index, None, worker.count)

        def known(split, part=slice(None)):
            return [facts[p] for p in split.paths[part]]

        test = test if worker.is_chief else None
        classes = len(train.class_names)
        data = Data(
            train.class_names,
            inputs.read(
                train.paths[shard],
                train.labels,
                classes,
                options,
                name="train",
                ids=range(len(train.paths))[shard],
                # Decoding every file before training only to check it: not when the
                # epochs decode anyway and a failure may be skipped as they meet it.
                decode=config.on_bad_image == "fail",
                facts=known(train, shard),
            ),
            inputs.read(
                validation.paths,
                validation.labels,
                classes,
                options,
                name="validation",
                facts=known(validation),
            ),
            inputs.read(
                test.paths,
                test.labels,
                classes,
                options._replace(cache="none"),
                decode=False,
                facts=known(test),
            )
            if test
            else None,
            listed_train=len(train.paths),
            listed_per_class=class_counts(train.labels, classes),
        )
        if test:
            require_images(data.test.prepared, f"test folder {config.test_dir!r}")
        total = len(train.paths[shard]) + len(validation.paths) + (len(test.paths) if test else 0)

        def where(name: str) -> str:
            return f"class folder {os.path.join(config.data_dir, name)!r}"

        return check_and_log(data, total, config.on_bad_image, where)
