"""An RPS-format dataset of synthetic hands, for tests, benchmarks and smoke runs.

Class folders `paper/ rock/ scissors/` of PNGs named like the real ones
(`rock02-117.png`). Each image is a hand on a light background, drawn from capsules and
ellipses: rock a fist, paper an open hand, scissors two fingers in a V. Pose, scale,
position, skin tone, lighting and sensor noise vary per image, so a CNN must learn the
shape, not a pixel. The noise also makes the PNGs about as large as the real ones
(about 80 KB at 300x300), so decode costs in benchmarks are realistic.

Drawing needs NumPy only; writing the PNGs imports TensorFlow (its PNG encoder).
"""

import os

import numpy as np
from absl import logging

from rps_tfdata.infra import atomic
from rps_tfdata.trainer.download import CLASS_NAMES

_SKIN_TONES = np.array(
    [
        [255, 219, 172],
        [241, 194, 125],
        [224, 172, 105],
        [198, 134, 66],
        [141, 85, 36],
        [92, 60, 40],
    ],
    dtype=np.float64,
)
# Finger directions relative to the hand's axis (degrees) and lengths (palm radii) per
# class; a length below 0.5 is a curled finger, a knuckle bump.
_FINGERS = {
    "paper": [(-24, 1.55), (-8, 1.75), (8, 1.7), (24, 1.45), (-75, 1.2)],
    "rock": [(-27, 0.45), (-9, 0.5), (9, 0.5), (27, 0.45), (-60, 0.55)],
    "scissors": [(-14, 1.75), (14, 1.7), (20, 0.45), (32, 0.4), (-60, 0.55)],
}
# Sensor noise (levels) on the hand and on the background, tuned so that PNGs at 300x300
# average about 80 KB like the real ones.
_NOISE_SIGMA = {"hand": 3.0, "background": 0.3}


def _capsule_mask(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float):
    """Points within `radius` of the segment a-b."""
    ab = b - a
    t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0, 1)
    return (x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 < radius**2


def _box_blur(image: np.ndarray, width: int) -> np.ndarray:
    """A separable box blur (running sums, edges clamped), used for soft edge shading."""
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (width // 2 + 1, width - width // 2 - 1)
        sums = np.cumsum(np.pad(image, pad, mode="edge"), axis=axis)
        image = (
            np.take(sums, range(width, sums.shape[axis]), axis)
            - np.take(sums, range(0, sums.shape[axis] - width), axis)
        ) / width
    return image


def draw_hand(gesture: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 (size, size, 3) image of `gesture` in a random pose, tone and light."""
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    angle = np.deg2rad(rng.uniform(-150, -30))  # fingers up-ish, as the real hands point
    scale = rng.uniform(0.75, 1.15)
    center = rng.uniform(-0.15, 0.15, 2)
    axis = np.array([np.cos(angle), np.sin(angle)])
    palm_r = 0.3 * scale
    palm = center - 0.25 * axis * scale
    mask = ((x - palm[0]) ** 2 + (y - palm[1]) ** 2) < palm_r**2
    mask |= _capsule_mask(x, y, palm, palm - 3 * axis, 0.2 * scale)
    for offset, length in _FINGERS[gesture]:
        direction = angle + np.deg2rad(offset + rng.normal(0, 4))
        unit = np.array([np.cos(direction), np.sin(direction)])
        base = palm + unit * palm_r * 0.55
        mask |= _capsule_mask(x, y, base, base + unit * palm_r * length, 0.1 * scale)
    tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.05)
    light = rng.uniform(-1, 1, 2)
    shade = (
        0.8 + 0.12 * (x * light[0] + y * light[1]) + 0.2 * _box_blur(mask.astype(float), 9) - 0.1
    )
    background = rng.uniform(225, 250) + 8 * (x * rng.uniform(-1, 1))
    image = np.where(mask[..., None], tone * shade[..., None], background[..., None])
    sigma = np.where(mask, _NOISE_SIGMA["hand"], _NOISE_SIGMA["background"])
    image += rng.normal(0, 1, image.shape) * sigma[..., None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def file_name(gesture: str, i: int) -> str:
    """The real set's naming: class, two-digit hand model, three-digit frame."""
    return f"{gesture}{i // 120 + 1:02d}-{i % 120:03d}.png"


def write_dataset(out: str, per_class: int, *, size: int = 300, seed: int = 0) -> list[str]:
    """Writes `per_class` PNGs of each gesture under `out/<class>/`; returns the paths."""
    import tensorflow as tf  # here only: drawing needs NumPy alone

    paths = []
    for label, gesture in enumerate(CLASS_NAMES):
        folder = os.path.join(out, gesture)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, label, i])
            path = os.path.join(folder, file_name(gesture, i))
            tf.io.write_file(path, tf.io.encode_png(draw_hand(gesture, size, rng)))
            paths.append(path)
        logging.info("wrote %d %s images to %s", per_class, gesture, folder)
    return paths


def ensure_dataset(folder: str, per_class: int, *, size: int = 300, seed: int = 0) -> str:
    """`folder` holding the synthetic set, written once (staged, then renamed into place)."""
    if not atomic.is_complete(folder):
        logging.info(
            "writing %d synthetic %dx%d PNGs to %s (once)", 3 * per_class, size, size, folder
        )
    return atomic.build_folder(
        folder, lambda staging: write_dataset(staging, per_class, size=size, seed=seed)
    )


def shared_dataset(download_dir: str, per_class: int, size: int) -> str:
    """The synthetic set of `per_class` x 3 images of `size` px that the measuring
    commands share, written once under `download_dir`."""
    folder = os.path.join(download_dir, f"rps_tfdata_synthetic_{per_class}x{size}")
    return ensure_dataset(folder, per_class, size=size, seed=0)
