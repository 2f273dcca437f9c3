"""A finished run as serving sees it: the model, its classes, how it reads images."""

from typing import NamedTuple

import keras

from rps_tfdata.pipeline.options import PipelineOptions


class Run(NamedTuple):
    """A finished run: the model with its best weights, class names, and image settings."""

    model: keras.Model
    class_names: list[str]
    options: PipelineOptions
