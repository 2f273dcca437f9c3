"""The training flags as a `TrainConfig`: one reading, for `train` and `benchmark` alike."""

import os
import types
from typing import Optional

from rps_tfdata.core import config as config_lib
from rps_tfdata.core import pipeline

# The decoded-image cache of --image_cache=disk, inside the run's folder.
DISK_CACHE_FOLDER = "tf_data_cache"


def training_config(
    f: types.SimpleNamespace,
    *,
    train_dir: str,
    model_dir: str,
    test_dir: Optional[str] = None,
    strategy: str = "auto",
    data_service: str = "",
    data_service_timeout: float = 60.0,
    cpu_devices: int = 1,
    dataset: str = "folder",
    tfds_data_dir: str = "",
) -> config_lib.TrainConfig:
    """`f`: the holders of `flag_defs.TRAINING`, as `flag_defs.define` returns them."""
    side = f.image_size.value
    return config_lib.TrainConfig(
        train_dir=train_dir,
        test_dir=test_dir,
        model_dir=model_dir,
        epochs=f.epochs.value,
        validation_split=f.validation_split.value,
        learning_rate=f.learning_rate.value,
        seed=f.seed.value,
        augment=f.augment.value,
        augment_validation=f.augment_validation.value,
        augment_on=f.augment_on.value,
        jit_augment=f.jit_augment.value,
        precision=f.mixed_precision.value,
        jit_compile=f.jit_compile.value,
        on_bad_image=f.on_bad_image.value,
        strategy=strategy,
        data_service=data_service,
        data_service_timeout=data_service_timeout,
        cpu_devices=cpu_devices,
        dataset=dataset,
        tfds_data_dir=tfds_data_dir,
        input=pipeline.PipelineOptions(
            image_size=(side, side),
            batch_size=f.batch_size.value,
            resize_method=f.resize_method.value,
            cache=f.image_cache.value,
            cache_path=os.path.join(model_dir, DISK_CACHE_FOLDER),
            deterministic=f.deterministic.value,
            parallel_calls=f.parallel_calls.value,
            threadpool_size=f.threadpool_size.value,
            prefetch=f.prefetch.value,
        ),
    )
