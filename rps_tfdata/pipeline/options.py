"""How the pipeline reads images and feeds them: one set of options for every face.

No TensorFlow here: the trainer's settings (`rps_tfdata.trainer.config`) take their
defaults from these before TensorFlow starts.
"""

from typing import NamedTuple

AUTOTUNE = -1  # tf.data.AUTOTUNE: tf.data picks the parallelism or the buffer
# Where decoded pixels are kept between passes (`reading.prepare`).
CACHE_MODES = ("memory", "disk", "none")
# IDG's `color_mode`s and the channels each decodes to.
COLOR_MODES = {"rgb": 3, "grayscale": 1, "rgba": 4}


def check_color_mode(color_mode: str) -> None:
    """Refuses a colour mode IDG does not have, in IDG's words.

    Raises:
      ValueError: `color_mode` is not one of `COLOR_MODES`.
    """
    if color_mode not in COLOR_MODES:
        raise ValueError(
            f'Invalid color mode: {color_mode}; expected "rgb", "rgba", or "grayscale".'
        )


class PipelineOptions(NamedTuple):
    """How images are read and fed.

    Attributes:
      image_size: (height, width) every image is resized to.
      batch_size: images per batch of a pass.
      resize_method: one of `decode.RESIZE_METHODS` ("pil_nearest": IDG's).
      color_mode: IDG's: "rgb", "grayscale" or "rgba".
      keep_aspect_ratio: crop the centre to the target's aspect ratio first (IDG's).
      cache: where decoded pixels are kept between passes, one of `CACHE_MODES`
        ("none": every pass decodes again).
      cache_path: the folder of the cache="disk" folders.
      deterministic: parallel maps keep their order (False: they return as they finish).
      parallel_calls: parallelism of the decode and augment maps.
      threadpool_size: 0 for TensorFlow's shared pool, else a private pool of N threads.
      prefetch: batches prepared ahead of the consumer.
    """

    image_size: tuple[int, int] = (150, 150)
    batch_size: int = 32
    resize_method: str = "pil_nearest"
    color_mode: str = "rgb"
    keep_aspect_ratio: bool = False
    cache: str = "memory"
    cache_path: str = ""
    deterministic: bool = True
    parallel_calls: int = AUTOTUNE
    threadpool_size: int = 0
    prefetch: int = AUTOTUNE

    @property
    def channels(self) -> int:
        return COLOR_MODES[self.color_mode]

    @property
    def pixel_shape(self) -> tuple[int, int, int]:
        """One decoded image's shape."""
        return (*self.image_size, self.channels)
