"""The one door for data: every source behind one interface, chosen by name.

A source (`base.Source`) gives the class names, the prepared splits and a fingerprint;
`open_source` picks it from the run's settings. A new source is one module here and one
line in `SOURCES`.
"""

from typing import Callable

from rps_tfdata.trainer.config import TrainConfig
from rps_tfdata.trainer.datasets.base import Data, Source, check_policy
from rps_tfdata.trainer.datasets.folder import FolderSource
from rps_tfdata.trainer.datasets.official import OfficialSource
from rps_tfdata.trainer.datasets.tfds import TfdsSource

SOURCES: dict[str, Callable[[TrainConfig], Source]] = {
    "folder": FolderSource,  # --data_dir (and --test_dir)
    "official": OfficialSource,  # no --data_dir: the official zips, downloaded once
    "tfds": TfdsSource,  # --dataset=tfds
}

__all__ = ["Data", "SOURCES", "Source", "check_policy", "open_source"]


def open_source(config: TrainConfig) -> Source:
    """The run's source: `--dataset`, with the official download when a folder run is
    given no `--data_dir`."""
    name = "official" if config.dataset == "folder" and not config.data_dir else config.dataset
    return SOURCES[name](config)
