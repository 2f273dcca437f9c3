"""`--mode=pipeline`: the training input pipeline alone (no model), ours beside Keras'
preprocessing-layers route, the bare decoder and the seed's IDG, on the same files,
interleaved round by round (`--repeats` rounds), so that each ratio compares figures
taken minutes apart on the same machine:

  keras_first_pass / keras_steady
          `image_dataset_from_directory` + `.cache()` + the five stock Random* layers +
          `Rescaling` (`fit_routes.keras_route`): its first pass (listing, decoding,
          augmenting) and its passes from the cache;
  decode_bare
          `tf.io.read_file` + `tf.io.decode_png` + our resize, in parallel, nothing else,
          built anew each round (one dataset iterated again ran at half its rate, one
          core idle, in 4 rounds of 10 here; built anew, in 1 of 10), timed from its
          first batch: the rate a first read cannot beat on this machine;
  pipeline_fill
          ours: the pass that fills the memory cache as it reads (the trainer's first
          epoch without its augmentation), timed from its first batch, as the bare
          decoder is: the read into the cache against the decoder;
  pipeline_cold / pipeline_first_epoch / pipeline_steady
          ours: the read of every file into the cache before any pass (headers
          screened, decoded, resized: a disk cache's fill, a strategy's memory cache),
          the first epoch as the trainer runs it (the files' stats and headers, then
          one augmented pass that fills the memory cache as it reads), and the passes
          from the cache (with `--image_cache=disk`, the read before the first epoch,
          and the rounds after the first find the disk cache full: their read is a
          cache hit);
  augment_kernel
          our augmentation alone on a uint8 batch in memory, one batch at a time (the
          passes run two batches at once, so they can beat it);
  idg_pipeline
          the seed's `ImageDataGenerator` iterator, with the baseline.
"""

import statistics
import time
from typing import Callable, Iterable, Iterator, Optional

import tensorflow as tf
from absl import logging

from rps_tfdata.bench import fit_routes, throughput
from rps_tfdata.pipeline.options import AUTOTUNE
from rps_tfdata.pipeline.reading import decode, file_facts, prepare
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation
from rps_tfdata.trainer import inputs
from rps_tfdata.trainer.config import TrainConfig
from rps_tfdata.trainer.plan import Plan

RATIOS = {
    "pipeline_steady_vs_keras_steady": ("pipeline_steady", "keras_steady"),
    "pipeline_first_epoch_vs_keras_first_pass": ("pipeline_first_epoch", "keras_first_pass"),
    "pipeline_fill_vs_decode_bare": ("pipeline_fill", "decode_bare"),
    "pipeline_cold_vs_decode_bare": ("pipeline_cold", "decode_bare"),
    "pipeline_steady_vs_augment_kernel": ("pipeline_steady", "augment_kernel"),
    "pipeline_steady_vs_idg": ("pipeline_steady", "idg_pipeline"),
    "pipeline_cold_vs_idg": ("pipeline_cold", "idg_pipeline"),
}


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _drain(batches: Iterable) -> None:
    for _ in batches:
        pass


def _rate_after_first(dataset: tf.data.Dataset, count: int) -> float:
    """Images/s of `dataset`'s `count` images after its first batch (its iterator made,
    its first batch read): a read's steady rate; the whole read's when one batch held
    them all."""
    start = time.perf_counter()
    batches = iter(dataset)
    first = int(tf.shape(tf.nest.flatten(next(batches))[0])[0])
    after_first = time.perf_counter()
    _drain(batches)
    end = time.perf_counter()
    if first < count:
        return (count - first) / (end - after_first)
    return count / (end - start)


def _keras_round(config: TrainConfig, passes: int, samples: dict[str, list[float]]) -> None:
    """One Keras route, built anew: its first pass, then `passes` passes from its cache."""
    start = time.perf_counter()
    dataset, count = fit_routes.keras_route(config)
    _drain(dataset)
    samples["keras_first_pass"].append(count / (time.perf_counter() - start))
    for _ in range(passes):
        samples["keras_steady"].append(count / _seconds(lambda: _drain(dataset)))


def _bare_decoder(paths: list[str], image_size: tuple[int, int], method: str) -> tf.data.Dataset:
    """Every file read, decoded as PNG and resized (`decode.resize`, our method), in
    parallel, batched: no screen, no cache, no error handling."""

    def read(path: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        return decode.resize(image, image_size, method)

    dataset = tf.data.Dataset.from_tensor_slices(prepare.path_tensor(paths))
    return dataset.map(read, num_parallel_calls=AUTOTUNE).batch(64).prefetch(AUTOTUNE)


def _our_round(
    config: TrainConfig,
    plan: Plan,
    train: inputs.LabelledSplit,
    passes: int,
    samples: dict[str, list[float]],
) -> None:
    """Ours from `train`'s files: the read into the cache before any pass; then, as the
    trainer reads its training split, the first pass that fills the cache as it goes
    (its dataset built inside its time, as the Keras route's is), then `passes` passes."""
    layer = plan.host_augmentation
    count = len(train.prepared.paths)
    labelled = (train.prepared.paths, train.readable_labels, train.num_classes, plan.input)
    samples["pipeline_cold"].append(count / _seconds(lambda: inputs.read(*labelled)))
    facts = file_facts.read_all(train.prepared.paths)
    filled = inputs.read(*labelled, decode=False, facts=facts)
    one_read = inputs.training_batches(filled, seed=config.seed, end_epoch=1, augmentation=None)
    samples["pipeline_fill"].append(_rate_after_first(one_read, count))
    start = time.perf_counter()
    facts = file_facts.read_all(train.prepared.paths)  # as a run's start reads them
    split = inputs.read(*labelled, decode=False, facts=facts)
    per_pass = inputs.batch_count(split)
    batches = iter(
        inputs.training_batches(split, seed=config.seed, end_epoch=passes + 1, augmentation=layer)
    )

    def one_pass() -> None:
        for _ in range(per_pass):
            next(batches)

    one_pass()
    samples["pipeline_first_epoch"].append(count / (time.perf_counter() - start))
    for _ in range(passes):
        samples["pipeline_steady"].append(count / _seconds(one_pass))


def _idg_pass(iterator) -> None:
    """One pass of an `ImageDataGenerator` iterator (which never stops by itself)."""
    for _ in range(len(iterator)):
        next(iterator)


def _kernel_rate(layer: IDGAugmentation, batch_size: int, image_size: tuple[int, int]) -> float:
    """Images/s of `layer.augment_batch` alone on a uint8 batch held in memory."""
    pixels = tf.random.uniform((batch_size, *image_size, 3), 0, 256, tf.int32)
    pixels = tf.cast(pixels, tf.uint8)
    seeds = tf.zeros((batch_size, 2), tf.int64)
    rate = throughput.time_batches(
        lambda: layer.augment_batch(pixels, seeds).numpy(), batch_size, batches=20, repeats=1
    )
    return rate.median


def _round_line(samples: dict[str, list[float]], passes: int) -> str:
    """The last round's figures (the median of its later passes), its two ratios to
    Keras' route, the first epoch's ceiling and the read's ratio to the bare decoder.

    The ceiling is the first epoch that costs the bare decoder's time plus one later
    pass's and nothing else (no listing, no trace, no iterator made): what no first
    epoch beats on these cores, whatever its fixed costs."""
    last = {name: values[-1] for name, values in samples.items()}
    for name in ("keras_steady", "pipeline_steady"):
        last[name] = statistics.median(samples[name][-passes:])
    figures = ", ".join(f"{name} {value:.0f}" for name, value in last.items())
    later = last["pipeline_steady"] / last["keras_steady"]
    first = last["pipeline_first_epoch"] / last["keras_first_pass"]
    ceiling = 1 / (1 / last["decode_bare"] + 1 / last["pipeline_steady"])
    read = last["pipeline_fill"] / last["decode_bare"]
    return (
        f"{figures} images/s; later passes {later:.2f}x Keras', first epoch {first:.2f}x "
        f"(its ceiling {ceiling:.0f} images/s, {ceiling / last['keras_first_pass']:.2f}x); "
        f"the read {read:.2f}x the bare decoder"
    )


def measure(
    config: TrainConfig,
    plan: Plan,
    train: inputs.LabelledSplit,
    *,
    repeats: int,
    passes: int,
    idg_iterator: Optional[Iterator] = None,
) -> dict[str, throughput.Rate]:
    """The routes above on `train`'s files as `config` and `plan` read them, `repeats`
    rounds of each route in turn, `passes` later passes each; the seed's iterator
    (`idg_iterator`, one pass a round) when given."""
    layer = plan.host_augmentation
    # Warm-up, in no figure: our traces and the augmentation's XLA compilation.
    warm = inputs.read(
        train.prepared.paths[: config.batch_size],
        train.readable_labels,
        train.num_classes,
        plan.input,
    )
    next(iter(inputs.training_batches(warm, seed=config.seed, augmentation=layer)))
    names = ["keras_first_pass", "keras_steady", "decode_bare"]
    names += ["pipeline_fill", "pipeline_cold", "pipeline_first_epoch", "pipeline_steady"]
    if layer is not None:
        names.append("augment_kernel")
    if idg_iterator is not None:
        names.append("idg_pipeline")
    samples: dict[str, list[float]] = {name: [] for name in names}
    count = len(train.prepared.paths)
    for turn in range(repeats):
        _keras_round(config, passes, samples)
        bare = _bare_decoder(train.prepared.paths, plan.input.image_size, plan.input.resize_method)
        samples["decode_bare"].append(_rate_after_first(bare, count))
        _our_round(config, plan, train, passes, samples)
        if layer is not None:
            image_size = plan.input.image_size
            samples["augment_kernel"].append(_kernel_rate(layer, config.batch_size, image_size))
        if idg_iterator is not None:
            seconds = _seconds(lambda: _idg_pass(idg_iterator))
            samples["idg_pipeline"].append(idg_iterator.n / seconds)
        logging.info(
            "round %d of %d: %s",
            turn + 1,
            repeats,
            _round_line(samples, passes),
        )
    return {name: throughput.rate_of(values) for name, values in samples.items()}
