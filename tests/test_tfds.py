"""TensorFlow Datasets' rock_paper_scissors as a source, with TFDS's own mock data."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rps_tfdata.infra.errors import ConfigError, DatasetLayoutError
from rps_tfdata.pipeline import options as options_lib
from rps_tfdata.trainer import config, distribution, training
from rps_tfdata.trainer.datasets import tfds as tfds_source
from rps_tfdata.trainer.download import CLASS_NAMES

from .helpers import small_run

OPTIONS = options_lib.PipelineOptions(image_size=(48, 48), batch_size=8)


@pytest.fixture()
def mock_rps():
    with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_labels_are_mapped_by_name_from_tfds_order():
    assert tfds_source.label_map(["rock", "paper", "scissors"]).tolist() == [1, 0, 2]
    with pytest.raises(DatasetLayoutError, match="not"):
        tfds_source.label_map(["cat", "dog", "fish"])


def test_splits_follow_tfds_labels_and_take_the_first_fifth_of_each_class(mock_rps):
    raw = [
        int(e["label"])
        for e in tfds.load("rock_paper_scissors", split="train", shuffle_files=False)
    ]
    run = small_run("", "", dataset="tfds", validation_split=0.2)
    data = tfds_source.TfdsSource(run).load(distribution.Worker(), OPTIONS)
    train, validation, test, listed = data.train, data.validation, data.test, data.listed_train
    ours = np.array(["rock", "paper", "scissors"])[raw]  # TFDS's names of each example
    for split in (train, validation):
        for image_id, label in zip(split.prepared.ids, split.readable_labels, strict=True):
            assert CLASS_NAMES[label] == ours[image_id]
    for label, name in enumerate(CLASS_NAMES):
        members = [i for i, n in enumerate(ours) if n == name]
        expected = members[: int(0.2 * len(members))]
        held_out = zip(validation.prepared.ids, validation.readable_labels, strict=True)
        assert [i for i, y in held_out if y == label] == expected
    assert listed == train.prepared.count == 20 - validation.prepared.count
    assert test.prepared.count == 20 and train.prepared.images.shape[1:] == (48, 48, 3)


def test_training_from_tfds(mock_rps, tmp_path):
    run = small_run("", tmp_path, dataset="tfds")
    metrics = training.train_and_evaluate(run)
    assert metrics["class_names"] == ["paper", "rock", "scissors"]
    assert metrics["num_train_images"] + metrics["num_validation_images"] == 20
    assert metrics["num_test_images"] == 20 and np.isfinite(metrics["test_loss"])
    with pytest.raises(ConfigError, match="drop --image_cache"):
        config.check_config(run._replace(image_cache="disk"))


def test_an_unprepared_tfds_is_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match="is not prepared in"):
        tfds_source.read_split("train", OPTIONS, str(tmp_path))
