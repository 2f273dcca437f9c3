"""A picture of the parity: originals, our augmentation, and IDG's, with the same parameters.

Rows, labelled on the left: the original images (read as IDG reads them), this package's
`IDGAugmentation`, ImageDataGenerator's `apply_transform` with the very same parameters,
and their absolute difference amplified 50 times (black means equal). Needs pillow and
scipy (`pip install "rps_tfdata[bench]"`) to run ImageDataGenerator; PIL also draws the labels.
"""

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from rps_tfdata.bench import seed_reference
from rps_tfdata.infra.errors import DatasetLayoutError
from rps_tfdata.pipeline.reading import listing
from rps_tfdata.pipeline.reading.decode import load_image
from rps_tfdata.pipeline.transforms import augment
from rps_tfdata.trainer.config import SEED_AUGMENTATION

ROW_LABELS = ("original", "rps_tfdata", "IDG", "|diff| x50")
DIFF_GAIN = 50
_LABEL_WIDTH = 110
_GAP = 4


def pick_files(data_dir: str, count: int) -> list[str]:
    """`count` files spread evenly over the whole folder, so every class shows up."""
    paths = listing.list_all(data_dir).paths
    if not paths:
        raise DatasetLayoutError(f"data folder {data_dir!r} holds no image files")
    step = max(len(paths) // count, 1)
    return paths[::step][:count]


def augment_both(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Our transform and IDG's of float (n, h, w, 3) images on 0..255, same parameters."""
    layer = augment.IDGAugmentation(**SEED_AUGMENTATION)
    params = layer.sample_parameters(len(images), images.shape[1:3], seed=seed)
    ours = layer.transform(images, params)
    theirs = np.stack(
        [
            seed_reference.apply_seed_transform(image, {k: float(v[i]) for k, v in params.items()})
            for i, image in enumerate(images)
        ]
    )
    return ours, theirs


def _label(text: str, height: int) -> np.ndarray:
    canvas = Image.new("RGB", (_LABEL_WIDTH, height), "white")
    ImageDraw.Draw(canvas).text((6, height // 2 - 6), text, fill="black")
    return np.asarray(canvas)


def _row(label: str, tiles: np.ndarray) -> np.ndarray:
    """A label cell, then each tile (float on 0..255) after a white gap."""
    height = tiles.shape[1]
    gap = np.full((height, _GAP, 3), 255, np.uint8)
    cells = [_label(label, height)]
    for tile in tiles:
        cells += [gap, np.clip(np.round(tile), 0, 255).astype(np.uint8)]
    return np.concatenate(cells, axis=1)


def make_grid(
    data_dir: str, *, num_images: int = 6, image_size: int = 150, seed: int = 0
) -> np.ndarray:
    """The labelled uint8 grid image (rows: ROW_LABELS; columns: images)."""
    size = (image_size, image_size)
    images = np.stack(
        [
            load_image(tf.constant(path), size, "pil_nearest").numpy()
            for path in pick_files(data_dir, num_images)
        ]
    ).astype(np.float32)
    ours, theirs = augment_both(images, seed)
    tiles = (images, ours, theirs, np.abs(ours - theirs) * DIFF_GAIN)
    rows = [_row(label, row) for label, row in zip(ROW_LABELS, tiles, strict=True)]
    spacer = np.full((_GAP, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (spacer, row)][1:], axis=0)
