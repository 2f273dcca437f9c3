"""What a `flow*` returns: a `tf.data.Dataset` that also answers as IDG's iterator.

`model.fit`, `evaluate` and `predict` take it as a dataset (in the graph, at the
pipeline's speed, on every backend); a script that touches it in Python gets IDG's
habits:
  next(flow)       the next batch, as NumPy arrays, pass after pass without end (IDG's
                   `next`: a new order and new augmentation at each pass)
  flow[i]          batch i of the current pass (IDG's `__getitem__`; past the end, IDG's
                   error)
  len(flow)        the batches of one pass
  flow.reset()     back to the first batch of the current pass
  flow.on_epoch_end()  a new pass (a new order and new augmentation)
  for b in flow    one pass of NumPy batches (a dataset's iteration: it ends)
The batches a script gets are NumPy arrays (`.reshape`, `.astype`, in-place arithmetic),
inputs and targets of several arrays as lists, as IDG gives them. The Python view walks
passes of its own (numbered from `seed`); each iteration of the dataset by Keras draws
its own. Inside a `tf.function` (Keras' TensorFlow trainer) iteration gives tensors, as
any dataset's.

The dataset is TensorFlow's own wrapped unchanged (`UnaryUnchangedStructureDataset`, the
class of `Dataset.with_options`' result): a private TensorFlow class, the one way to
give a dataset methods of its own.
"""

import contextlib
import os
import tempfile
import threading
import warnings
from typing import Any, Callable, Optional, Sequence, Union
from typing import Iterator as PyIterator

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.data.ops import dataset_ops, iterator_ops
from tensorflow.python.framework import ops

from rps_tfdata.image import flow_inputs, flows, save_to_dir
from rps_tfdata.pipeline import passes, shards
from rps_tfdata.pipeline.options import CACHE_MODES, PipelineOptions, check_color_mode
from rps_tfdata.pipeline.reading import cache_policy, pil_resize
from rps_tfdata.pipeline.reading.prepare import Prepared
from rps_tfdata.pipeline.shards import Shard
from rps_tfdata.pipeline.transforms import standardize

# Where `cache="disk"` (or "auto", when the images do not fit in memory) keeps the pixels.
DEFAULT_CACHE_DIR = os.path.join(tempfile.gettempdir(), "rps_tfdata_cache")


def _as_idg(element: Any, inputs_only: bool) -> Any:
    """A batch as IDG's iterator gives it: NumPy arrays, several inputs or targets as a
    list (a dataset holds them as tuples); `inputs_only`: the element is the inputs
    alone (a flow without targets)."""
    arrays = tf.nest.map_structure(lambda tensor: tensor.numpy(), element)
    if not isinstance(arrays, tuple):
        return arrays
    if inputs_only:
        return list(arrays)
    return tuple(list(part) if isinstance(part, tuple) else part for part in arrays)


def _empty(spec: tf.TensorSpec) -> tf.Tensor:
    """A batch of no rows of `spec`."""
    return tf.zeros([0, *spec.shape[1:]], spec.dtype)


class _PythonIterator(iterator_ops.OwnedIterator):
    """A dataset's iterator that gives NumPy batches to Python; inside a `tf.function`
    it is TensorFlow's own (a traced function rebuilds it from its type)."""

    def __init__(self, dataset: tf.data.Dataset, inputs_only: bool):
        super().__init__(dataset)
        self._inputs_only = inputs_only

    def __next__(self) -> Any:
        element = super().__next__()
        return element if ops.inside_function() else _as_idg(element, self._inputs_only)


class _PassReader:
    """Batches of the Python view's passes, read on in order: batch `index` of pass
    `number` comes from the iterator that gave batch `index - 1`, else from the pass
    built from there (0.7-0.8 s a batch at 96 px, had each batch been built alone).
    Threads asking at once get each their own batch."""

    def __init__(self, one_pass: Callable[..., tf.data.Dataset]):
        self._one_pass = one_pass
        self._next: Optional[tuple[int, int]] = None  # (pass, index) the iterator gives next
        self._batches: Any = None
        self._lock = threading.Lock()

    def batch(self, number: int, index: int, batch_size: int) -> Any:
        """Batch `index` (of `batch_size` images) of pass `number`, as tensors."""
        with self._lock:
            if self._next != (number, index):
                self._batches = iter(self._one_pass(number, index * batch_size))
            batch = next(self._batches)
            self._next = (number, index + 1)
        return batch


# What TensorFlow's dataset constructor sets, which `Iterator` sets when first used.
_SET_WHEN_BUILT = frozenset(
    {"_input_dataset", "_variant_tensor_attr", "_graph_attr", "_options_attr"}
)


class Iterator(dataset_ops.UnaryUnchangedStructureDataset):
    """A flow: IDG's batches as a `tf.data.Dataset`, with IDG's iterator habits (module
    doc) and the iterator's attributes (`n`, `batch_size`, `shuffle`, `seed`, ...).

    Args:
      dataset: makes the flow's dataset, pass after pass as it is iterated; called when
        the flow is first used as a dataset (iterated, given to `fit`, a dataset's
        method or property), not before: `next(flow)` and `flow[i]` build only the
        pass they read (building both cost 0.37-0.46 s more per flow at 32,000 files).
      one_pass: `one_pass(pass_number, skip_images=0, stop_images=None)`, one pass on
        its own.
      length: the batches of one pass.
      batch_size: images per batch.
      seed: numbers the Python view's passes (None: new ones in each process).
      inputs_only: each element is the inputs alone (a flow without targets).
      served: `served(seed, passes)`, the passes batch by batch for the tf.data service
        (`flows.served`), or why they cannot travel to its workers (a string).
      when_filled: `dataset` built again once the passes have filled its cache, or None
        (`flows.Flow`): what each iteration from then on runs.
    """

    def __init__(
        self,
        dataset: Callable[[], tf.data.Dataset],
        one_pass: Callable[..., tf.data.Dataset],
        *,
        length: int,
        batch_size: int,
        seed: Optional[int],
        inputs_only: bool = False,
        served: Union[Callable[..., tf.data.Dataset], str] = "it was built without them",
        when_filled: Callable[[], Optional[tf.data.Dataset]] = lambda: None,
    ):
        self._make_dataset = dataset
        self._building = threading.RLock()
        self._one_pass = one_pass
        self._when_filled = when_filled
        self._filled: Optional[tf.data.Dataset] = None
        self._served = served
        self._pass_numbers = np.random.default_rng(seed)
        self._pass: Optional[int] = None
        # `next` walks from `batch_index`; `flow[i]` in order (a Keras Sequence's habit)
        # reads on as well, each in its own pass reader so that mixing them rebuilds none.
        self._walked = _PassReader(one_pass)
        self._indexed = _PassReader(one_pass)
        self._length = length
        self._inputs_only = inputs_only
        self.batch_size = batch_size
        self.batch_index = 0
        self.total_batches_seen = 0

    def __getattr__(self, name: str) -> Any:
        """The dataset's own attributes, which exist once it is built: the first use of
        the flow as a dataset builds it (the class doc), in one thread at a time."""
        if name not in _SET_WHEN_BUILT or "_building" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        with self._building:
            if name not in self.__dict__:  # (else another thread has just built it)
                self._build()
        return self.__dict__[name]

    def _build(self) -> None:
        """Builds the dataset of the passes; an error doing so (which the flow's
        first use, not `flow_from_*`, now meets) is raised again at the next use."""
        make = self.__dict__.pop("_make_dataset", None)
        if make is None:  # a use from within the build itself
            raise AttributeError("the flow's dataset is being built")
        try:
            with tf.init_scope():  # eager, wherever the first use is (a traced function too)
                dataset = make()
                super().__init__(dataset, dataset._variant_tensor)
        except BaseException as error:
            self._make_dataset = make
            if isinstance(error, AttributeError):  # (from a property, Python would report another)
                raise RuntimeError(f"building the flow's dataset failed: {error}") from error
            raise

    def __len__(self) -> int:
        """The batches of one pass."""
        return self._length

    def __iter__(self):
        """An iterator over the passes: NumPy batches in Python, tensors in a traced
        function (which rebuilds the iterator from this dataset's own graph). Once the
        flow's first pass has filled its cache, Python's iterators (`fit` makes one each
        epoch, on every backend) run the passes built again as gathers alone."""
        if ops.inside_function():
            return super().__iter__()
        if self._filled is None:
            self._filled = self._when_filled()
        dataset = self if self._filled is None else self._filled
        with ops.colocate_with(dataset._variant_tensor):
            return _PythonIterator(dataset, self._inputs_only)

    def __next__(self) -> Any:
        """IDG's `next`: the next batch of the current pass; after its last, a new pass
        (an empty flow gives IDG's empty batch)."""
        if not len(self):
            return _as_idg(tf.nest.map_structure(_empty, self.element_spec), self._inputs_only)
        batch = self._walked.batch(self._current_pass(), self.batch_index, self.batch_size)
        batch = _as_idg(batch, self._inputs_only)
        self.total_batches_seen += 1
        self.batch_index += 1
        if self.batch_index == len(self):
            self.on_epoch_end()
        return batch

    def next(self) -> Any:
        """`next(flow)`, as IDG 2's iterators spelled it."""
        return self.__next__()

    def __getitem__(self, index: int) -> Any:
        """Batch `index` of the current pass (IDG's `__getitem__`).

        Raises:
          ValueError: `index` past the last batch (IDG's message).
        """
        length = len(self)
        if not 0 <= index < length:
            raise ValueError(
                f"Asked to retrieve element {index}, but the Sequence has length {length}"
            )
        self.total_batches_seen += 1
        batch = self._indexed.batch(self._current_pass(), index, self.batch_size)
        return _as_idg(batch, self._inputs_only)

    def distribute(
        self, service: str, job_name: Optional[str] = None, epochs: Optional[int] = None
    ) -> tf.data.Dataset:
        """This flow's passes made by the tf.data service's workers at `service`
        ("grpc://HOST:PORT"), batch after batch: each batch is the one the flow makes
        for its pass (the same images, the same augmentation), the passes numbered from
        the flow's seed (None: a number drawn now, sent to every worker). A free worker
        takes the next batch (`ShardingPolicy.DYNAMIC`), so batches arrive as they are
        finished; each image is once in each pass. Train with
        `model.fit(flow.distribute(service), steps_per_epoch=len(flow), epochs=N)`.

        Args:
          service: the dispatcher's address.
          job_name: consumers that name the same job share its batches.
          epochs: the passes in all (None: without end).

        Raises:
          ValueError: the flow cannot travel to the workers: why, and what to do.
        """
        if isinstance(self._served, str) or not len(self):
            why = self._served if isinstance(self._served, str) else "it holds no image"
            raise ValueError(f"flow.distribute: {why}")
        seed = self.seed if self.seed is not None else int(np.random.default_rng().integers(2**31))
        dataset = self._served(seed, None if epochs is None else int(epochs))
        return dataset.apply(
            tf.data.experimental.service.distribute(
                processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
                service=service,
                job_name=job_name,
            )
        )

    def reset(self) -> None:
        """Back to the first batch of the current pass (IDG's `reset`)."""
        self.batch_index = 0

    def on_epoch_end(self) -> None:
        """A new pass from the first batch: a new order and new augmentation."""
        self._pass = None
        self.reset()

    def _current_pass(self) -> int:
        if self._pass is None:
            self._pass = int(self._pass_numbers.integers(2**31))
        return self._pass

    def _start(
        self,
        source: flow_inputs.FlowInput,
        generator: Any,
        empty: tuple[str, str],
        *,
        batch_size: int,
        shuffle: bool,
        seed: Optional[int],
        save: tuple,
        class_mode: Optional[str],
        data_format: str,
        dtype: str,
        shard: Shard,
    ) -> None:
        """Builds the flow of `source` (this worker's `shard` of a subset) with
        `generator`'s settings and gives this iterator IDG's attributes; `empty` is where
        the flow reads and what to do, said when it holds no readable image."""
        prepared = source.prepared
        if not prepared.count:  # IDG's empty flow, and what to do about it
            where, remedy = empty
            warnings.warn(f"{where} holds no readable image file: {remedy}", stacklevel=4)
        _check_even_passes(shard, source.subset_size, int(batch_size))
        shape = prepared.pixel_shape
        channels_first = data_format == "channels_first"
        user_shape = (shape[2], *shape[:2]) if channels_first else shape
        if generator is None:  # IDG's: no transform, no standardisation
            augmentation, standardization = None, standardize.Standardization()
        else:
            augmentation, standardization = generator._augmentation, generator._standardization()
        function = standardization.preprocessing_function
        treatment = flows.Treatment(
            augmentation=augmentation,
            standardization=standardization,
            python_function=standardize.runs_in_python(function, user_shape),
            dtype=tf.as_dtype(dtype),
            channels_first=channels_first,
        )
        standardize.warn_if_unfit(treatment.standardization)
        flow = flows.batches(
            prepared,
            source.outputs,
            treatment,
            batch_size=int(batch_size),
            shuffle=bool(shuffle),
            seed=seed,
            save_to=save_to_dir.checked(*save, channels=shape[2]),
        )
        outputs = source.outputs
        # (A worker's shard is made in a strategy's scope, where the cache is filled
        # before the flow returns: `when_filled` never has a dataset to give it.)
        Iterator.__init__(
            self,
            (lambda: _unsharded_further(flow.dataset())) if shard.count > 1 else flow.dataset,
            flow.one_pass,
            length=flow.batches_per_pass,
            batch_size=int(batch_size),
            seed=seed,
            inputs_only=not (outputs.targets or outputs.target_is_input),
            served=_why_not_served(prepared, treatment) or flow.served,
            when_filled=flow.when_filled,
        )
        attributes = source.attributes | {
            "samples": prepared.count,
            "n": prepared.count,
            "image_shape": user_shape,
            "target_size": shape[:2],
            "class_mode": class_mode,
            "data_format": data_format,
            "dtype": dtype,
            "shuffle": bool(shuffle),
            "seed": seed,
            "image_data_generator": generator,
        }
        for name, value in attributes.items():
            setattr(self, name, value)


class DirectoryIterator(Iterator):
    """IDG's `DirectoryIterator`: the images of a class-per-folder directory, IDG's split,
    order and class indices, with `image_data_generator`'s transforms; what
    `ImageDataGenerator.flow_from_directory` returns. Every keyword is IDG's; `cache`
    and `cache_dir` are the drop-in's (`flow_from_directory` says what they do).
    """

    def __init__(
        self,
        directory: str,
        image_data_generator: Any,
        target_size: tuple[int, int] = (256, 256),
        color_mode: str = "rgb",
        classes: Optional[Sequence[str]] = None,
        class_mode: Optional[str] = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: Optional[int] = None,
        data_format: Optional[str] = None,
        save_to_dir: Optional[str] = None,
        save_prefix: str = "",
        save_format: str = "png",
        follow_links: bool = False,
        subset: Optional[str] = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
        dtype: Optional[str] = None,
        *,
        cache: str = "auto",
        cache_dir: Optional[str] = None,
    ):
        dtype = dtype or keras.config.floatx()
        options = _read_options(
            target_size, color_mode, interpolation, keep_aspect_ratio, cache, cache_dir
        )
        shard, batch_size = _share(batch_size)
        with _memory_cache_refused():
            source = flow_inputs.from_directory(
                directory,
                classes=classes,
                class_mode=class_mode,
                follow_links=follow_links,
                validation_split=_validation_split(image_data_generator),
                subset=subset,
                dtype=dtype,
                options=options,
                cache_name=subset or "all",
                shard=shard,
            )
        where = f"directory {directory!r}" + (f" (subset={subset!r})" if subset else "")
        self._start(
            source,
            image_data_generator,
            (where, "check the path, its class folders, `classes` and `subset`"),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            save=(save_to_dir, save_prefix, save_format),
            class_mode=class_mode,
            data_format=data_format or keras.config.image_data_format(),
            dtype=dtype,
            shard=shard,
        )


class DataFrameIterator(Iterator):
    """IDG's `DataFrameIterator`: the files a DataFrame names, the frame's order and IDG's
    split of the whole frame, IDG's targets for every `class_mode`; what
    `ImageDataGenerator.flow_from_dataframe` returns.
    """

    def __init__(
        self,
        dataframe,
        directory: Optional[str] = None,
        image_data_generator: Any = None,
        x_col: str = "filename",
        y_col: Union[str, list[str]] = "class",
        weight_col: Optional[str] = None,
        target_size: tuple[int, int] = (256, 256),
        color_mode: str = "rgb",
        classes: Optional[Sequence[str]] = None,
        class_mode: Optional[str] = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: Optional[int] = None,
        data_format: str = "channels_last",
        save_to_dir: Optional[str] = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: Optional[str] = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
        dtype: str = "float32",
        validate_filenames: bool = True,
        *,
        cache: str = "auto",
        cache_dir: Optional[str] = None,
    ):
        if class_mode == "other":
            class_mode = "raw"
        options = _read_options(
            target_size, color_mode, interpolation, keep_aspect_ratio, cache, cache_dir
        )
        shard, batch_size = _share(batch_size)
        with _memory_cache_refused():
            source = flow_inputs.from_dataframe(
                dataframe,
                directory=directory,
                x_col=x_col,
                y_col=y_col,
                weight_col=weight_col,
                classes=classes,
                class_mode=class_mode,
                validate_filenames=validate_filenames,
                validation_split=_validation_split(image_data_generator),
                subset=subset,
                dtype=dtype,
                options=options,
                cache_name=f"frame-{subset or 'all'}",
                shard=shard,
            )
        where = "the dataframe" + (f" (subset={subset!r})" if subset else "")
        self._start(
            source,
            image_data_generator,
            (where, "check `x_col`, `directory` and `subset`"),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            save=(save_to_dir, save_prefix, save_format),
            class_mode=class_mode,
            data_format=data_format,
            dtype=dtype,
            shard=shard,
        )


class NumpyArrayIterator(Iterator):
    """IDG's `NumpyArrayIterator`: arrays in memory (`x`, or `(x, more inputs)`), IDG's
    split of the first rows, `y` and `sample_weight` passed through, each row keeping its
    own weight; what `ImageDataGenerator.flow` returns.
    """

    def __init__(
        self,
        x,
        y,
        image_data_generator: Any,
        batch_size: int = 32,
        shuffle: bool = False,
        sample_weight=None,
        seed: Optional[int] = None,
        data_format: Optional[str] = None,
        save_to_dir: Optional[str] = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: Optional[str] = None,
        ignore_class_split: bool = False,
        dtype: Optional[str] = None,
    ):
        data_format = data_format or keras.config.image_data_format()
        dtype = dtype or keras.config.floatx()
        shard, batch_size = _share(batch_size)
        source = flow_inputs.from_arrays(
            x,
            y,
            sample_weight=sample_weight,
            ignore_class_split=ignore_class_split,
            validation_split=_validation_split(image_data_generator),
            subset=subset,
            dtype=dtype,
            channels_first=data_format == "channels_first",
            options=PipelineOptions(cache="none"),
            shard=shard,
        )
        where = "x" + (f" (subset={subset!r})" if subset else "")
        self._start(
            source,
            image_data_generator,
            (where, "pass images, and a `validation_split` that leaves some in the subset"),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            save=(save_to_dir, save_prefix, save_format),
            class_mode=None,
            data_format=data_format,
            dtype=dtype,
            shard=shard,
        )


def _share(batch_size: int) -> tuple[Shard, int]:
    """This worker's shard of a flow and the batch each of its replicas takes: under a
    `MultiWorkerMirroredStrategy` (the flow built in its scope), every N-th image of the
    subset and the global `batch_size` split among all replicas; else the whole subset
    and `batch_size`.

    Raises:
      ValueError: `batch_size` does not divide among the replicas.
    """
    strategy = tf.distribute.get_strategy()
    shard = shards.of_strategy(strategy)
    replicas = strategy.num_replicas_in_sync
    if shard.count == 1:
        return shard, batch_size
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} does not divide among the {replicas} replicas of the "
            f"MultiWorkerMirroredStrategy in scope; use a multiple of {replicas}"
        )
    return shard, batch_size // replicas


def _check_even_passes(shard: Shard, subset_size: int, batch_size: int) -> None:
    """Says which share a worker reads, and refuses shards whose passes would take
    different numbers of steps (the workers' collectives would wait for each other)."""
    if shard.count == 1:
        return
    steps = [
        passes.batches_per_pass(len(Shard(index, shard.count).ids(subset_size)), batch_size)
        for index in range(shard.count)
    ]
    if min(steps) != max(steps):
        raise ValueError(
            f"batch_size: {subset_size} images over {shard.count} workers at {batch_size} per "
            f"replica give one worker {min(steps)} steps a pass and another {max(steps)}; "
            "choose a batch_size that evens them"
        )
    print(
        f"Worker {shard.index} of {shard.count} reads {len(shard.ids(subset_size))} of the "
        f"{subset_size} images (one in {shard.count}, from image {shard.index}), "
        f"{batch_size} per replica."
    )


def _unsharded_further(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """A worker's shard, kept whole by `tf.distribute`, whose auto-sharding would
    otherwise keep 1/N of its batches."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def _why_not_served(prepared: Prepared, treatment: flows.Treatment) -> str:
    """Why a flow's graph cannot travel to the tf.data service's workers, and what to
    do ("" when it can)."""
    if prepared.images is not None:
        return (
            "the flow holds its images in memory (cache='memory' or 'auto', or arrays), "
            "which would travel in its graph to every worker; build it with cache='disk' "
            "and a cache_dir the workers read, or cache='none'"
        )
    if treatment.python_function:
        return (
            "preprocessing_function runs in Python, which the workers cannot; give a "
            "function TensorFlow can trace (rps_tfdata.image's docs say which)"
        )
    return ""


def _validation_split(generator: Any) -> float:
    """The generator's `validation_split` (none without a generator, as IDG's)."""
    return 0.0 if generator is None else generator._validation_split


def _read_options(
    target_size,
    color_mode: str,
    interpolation: str,
    keep_aspect_ratio: bool,
    cache: str,
    cache_dir: Optional[str],
) -> PipelineOptions:
    """How a flow reads its files, each setting checked with a one-line refusal."""
    check_color_mode(color_mode)
    pil_resize.check_interpolation(interpolation)
    if cache not in ("auto", *CACHE_MODES):
        raise ValueError(f"cache={cache!r}: expected one of {('auto', *CACHE_MODES)}")
    height, width = (int(side) for side in target_size)
    return PipelineOptions(
        image_size=(height, width),
        resize_method=f"pil_{interpolation}",
        color_mode=color_mode,
        keep_aspect_ratio=bool(keep_aspect_ratio),
        cache=cache,
        cache_path=cache_dir or DEFAULT_CACHE_DIR,
    )


@contextlib.contextmanager
def _memory_cache_refused() -> PyIterator[None]:
    """A memory cache asked for that does not fit, refused in the flow's own words."""
    try:
        yield
    except cache_policy.MemoryCacheTooLargeError as e:
        raise ValueError(
            f"cache='memory': {e}; use cache='auto' or 'disk', or a smaller target_size"
        ) from e
