"""What every data source gives a run, and the checks every source's data passes.

A source (`Source`) names its classes, reads its splits once (`inputs.read`)
and gives a fingerprint that changes when its images do. Unreadable files leave whichever
subset holds them after the split, so the readable files keep the source's split; they
are reported, or stop the run under `on_bad_image="fail"` (`check_policy`).
"""

from typing import Callable, NamedTuple, Optional, Protocol, Sequence

from absl import logging

from rps_tfdata.infra.errors import BadImagesError, DatasetLayoutError
from rps_tfdata.infra.fs import printable
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import headers
from rps_tfdata.pipeline.reading.listing import Split
from rps_tfdata.pipeline.reading.prepare import require_images
from rps_tfdata.trainer.distribution import Worker
from rps_tfdata.trainer.inputs import LabelledSplit


class Data(NamedTuple):
    """The run's splits, read and checked: training (this worker's shard of it),
    validation and optional test, and how many files the whole training split lists,
    in all and per class (the same on every worker: what class weights are made of)."""

    class_names: list[str]
    train: LabelledSplit
    validation: LabelledSplit
    test: Optional[LabelledSplit]
    listed_train: int = 0
    listed_per_class: tuple[int, ...] = ()

    def skipped(self) -> list[headers.BadImage]:
        """Every unreadable file of every split."""
        splits = (self.train, self.validation, self.test)
        return [b for split in splits if split for b in split.prepared.bad]


class Source(Protocol):
    """A data set behind the one door (`rps_tfdata.trainer.datasets.open_source`)."""

    def fingerprint(self) -> str:
        """A digest that changes when the source's images do (a rerun's check)."""

    def image_counts(self, worker: Worker) -> Optional[list[int]]:
        """The images `worker`'s cache would hold, per split (its training shard, the
        validation split), for the plan to decide the cache; None when the source
        holds decoded images already."""

    def load(self, worker: Worker, options: PipelineOptions) -> Data:
        """The splits, read once with `options` (the plan's) and checked; `worker`'s
        shard of the training split."""

    def splits(self) -> tuple[Split, Split, Optional[Split]]:
        """The training, validation and test files before any read (the measuring tools
        time the read); ConfigError for a source that has no files."""


def class_counts(labels: Sequence[int], classes: int) -> tuple[int, ...]:
    """How many of `labels` each class has."""
    counts = [0] * classes
    for label in labels:
        counts[label] += 1
    return tuple(counts)


def check_policy(bad: list[headers.BadImage], total: int, on_bad_image: str) -> None:
    """Raises BadImagesError under the "fail" policy when any file was unreadable."""
    if bad and on_bad_image == "fail":
        named = "; ".join(f"{printable(b.path)}: {b.reason}" for b in bad)
        raise BadImagesError(
            f"{len(bad)} of {total} image files cannot be read (--on_bad_image=fail): "
            f"{named}. Fix or remove them, or pass --on_bad_image=skip"
        )


def check_and_log(data: Data, total: int, on_bad_image: str, where: Callable[[str], str]) -> Data:
    """Applies the bad-image policy, refuses empty subsets and classes that no readable
    image shows (`where(class_name)` says where that class lives), and logs each split's
    counts; returns `data`."""
    skipped = data.skipped()
    check_policy(skipped, total, on_bad_image)
    if skipped:
        logging.warning(
            "%d of %d image files cannot be read; they were left out", len(skipped), total
        )
    for subset, split in (("training", data.train), ("validation", data.validation)):
        require_images(split.prepared, f"the {subset} subset")
    shown = set(data.train.readable_labels) | set(data.validation.readable_labels)
    for label, name in enumerate(data.class_names):
        if label not in shown:  # it would train as a class no image shows, shifting labels
            raise DatasetLayoutError(
                f"{where(name)} holds no readable image; remove it from the data (or put "
                "the class's images in it)"
            )
    for subset, split in (("training", data.train), ("validation", data.validation)):
        logging.info("%s: %s", subset, _counts(split, data.class_names))
    if data.test:
        logging.info("test: %s", _counts(data.test, data.class_names))
    return data


def _counts(split: LabelledSplit, class_names: list[str]) -> str:
    labels = split.readable_labels
    counts = ", ".join(f"{n}={labels.count(k)}" for k, n in enumerate(class_names))
    return f"{len(labels)} images ({counts}), {len(split.prepared.bad)} unreadable left out"
