"""The seed script's input pipeline, kept as the reference we measure ourselves against.

This is the study note's `ImageDataGenerator` set-up (see `../shared/docs/seed-note.md`),
with only what Keras 3 forces changed. It is not on the product path: the parity tests,
the side-by-side learning run and the benchmarks import it to run the real thing on the
same files. It needs pillow and scipy (`pip install .[bench]`).
"""

from typing import NamedTuple, Optional

import numpy as np
from tensorflow.keras.preprocessing.image import DirectoryIterator, ImageDataGenerator

from rps_tfdata.trainer.config import SEED_AUGMENTATION

SEED_RESCALE = 1.0 / 255
SEED_VALIDATION_SPLIT = 0.2


class SeedIterators(NamedTuple):
    """The seed's two `flow_from_directory` iterators (validation is augmented too)."""

    train: DirectoryIterator
    validation: DirectoryIterator


def seed_generator(*, augment: bool = True, rescale: bool = True) -> ImageDataGenerator:
    """The seed's generator; `augment=False` keeps only rescale and the split, and
    `rescale=False` leaves the images on 0..255 for our train step, which rescales them
    with the same float32 product (IDG rescales after it augments, as the step does)."""
    return ImageDataGenerator(
        rescale=SEED_RESCALE if rescale else None,
        validation_split=SEED_VALIDATION_SPLIT,
        **(SEED_AUGMENTATION if augment else {}),
    )


def seed_iterators(
    directory: str,
    *,
    image_size: int = 150,
    batch_size: int = 32,
    seed: Optional[int] = None,
    augment: bool = True,
    shuffle: bool = True,
    rescale: bool = True,
) -> SeedIterators:
    """`flow_from_directory` for both subsets from ONE generator, exactly as the seed does.

    `seed` seeds the iterators' shuffling and NumPy's global generator, which IDG's
    augmentation draws from; `rescale=False`: batches for our train step (`seed_generator`).
    """
    if seed is not None:
        np.random.seed(seed)
    generator = seed_generator(augment=augment, rescale=rescale)

    def flow(subset: str) -> DirectoryIterator:
        return generator.flow_from_directory(
            directory,
            batch_size=batch_size,
            target_size=(image_size, image_size),
            class_mode="categorical",
            subset=subset,
            shuffle=shuffle,
            seed=seed,
        )

    return SeedIterators(flow("training"), flow("validation"))


def apply_seed_transform(image: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """IDG's own `apply_transform` with the seed's settings: one float (h, w, c) image on
    0..255, parameters with IDG's keys (missing vertical flip, brightness, channel shift
    mean "none")."""
    full = {"flip_vertical": 0, "brightness": None, "channel_shift_intensity": None, **params}
    return seed_generator().apply_transform(image, full)
