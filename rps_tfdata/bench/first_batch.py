"""Time to a flow's first batch: Keras' `ImageDataGenerator.flow_from_directory` and the
drop-in's, on the same folder, with the seed's augmentation, in turns in one process.

Each figure is the seconds from the `flow_from_directory` call to the first batch in hand
(`next(flow)`): the listing, whatever the flow reads before it returns, and the first
batch's read, decode and augmentation. TensorFlow and Keras are imported before the
first turn, so no figure holds an import. The memory cache of each drop-in flow is let
go before the next turn.
"""

import gc
import statistics
import time
from typing import Any, Callable

from absl import logging

from rps_tfdata.trainer.config import SEED_AUGMENTATION


def _seconds_to_first_batch(
    generator: Any, directory: str, image_size: int, batch_size: int
) -> tuple[float, int]:
    """(seconds from the call to the first batch in hand, the files the flow found)."""
    start = time.perf_counter()
    flow = generator.flow_from_directory(
        directory, target_size=(image_size, image_size), batch_size=batch_size, seed=1
    )
    next(flow)
    seconds, files = time.perf_counter() - start, flow.samples
    del flow
    gc.collect()
    return seconds, files


def measure(directory: str, image_size: int, batch_size: int, repeats: int) -> dict[str, Any]:
    """The seconds to the first batch of IDG's flow and the drop-in's over `directory`,
    `repeats` turns each: median, fastest and slowest, and the median ratio."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasIDG

    from rps_tfdata.image import ImageDataGenerator

    makers: dict[str, Callable[[], Any]] = {
        "idg": lambda: KerasIDG(rescale=1 / 255, **SEED_AUGMENTATION),
        "dropin": lambda: ImageDataGenerator(rescale=1 / 255, **SEED_AUGMENTATION),
    }
    seconds: dict[str, list[float]] = {name: [] for name in makers}
    found: dict[str, int] = {}
    for turn in range(repeats):
        for name, make in makers.items():
            took, found[name] = _seconds_to_first_batch(make(), directory, image_size, batch_size)
            seconds[name].append(took)
        logging.info(
            "first batch, round %d of %d: IDG %.2f s, drop-in %.2f s",
            turn + 1,
            repeats,
            seconds["idg"][-1],
            seconds["dropin"][-1],
        )
    figures: dict[str, Any] = {f"{name}_files": count for name, count in found.items()}
    for name, values in seconds.items():
        figures[f"{name}_first_batch_s"] = round(statistics.median(values), 3)
        figures[f"{name}_first_batch_range_s"] = [round(min(values), 3), round(max(values), 3)]
    ratios = [ours / idg for ours, idg in zip(seconds["dropin"], seconds["idg"], strict=True)]
    figures["dropin_over_idg"] = round(statistics.median(ratios), 2)
    return figures
