"""The official rps.zip and rps-test-set.zip: downloaded once, then read as folders.

Used when `--dataset=folder` is given no `--data_dir`. The download, its checks and its
reuse live in `rps_tfdata.trainer.download`; a given `--test_dir` replaces the official test
set.
"""

from rps_tfdata.trainer import download
from rps_tfdata.trainer.config import TrainConfig
from rps_tfdata.trainer.datasets.folder import FolderSource


class OfficialSource(FolderSource):
    """The official set, fetched (or found) under `config.download_dir`."""

    def __init__(self, config: TrainConfig):
        rps = download.fetch_rps(config.download_dir, config.base_url or None)
        fetched = config._replace(data_dir=rps.train_dir, test_dir=config.test_dir or rps.test_dir)
        super().__init__(fetched)
