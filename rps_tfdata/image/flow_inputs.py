"""What each of ImageDataGenerator's `flow*` methods reads, in IDG's terms: a
class-per-folder directory, a DataFrame of file names, or arrays in memory, read by the
library's reader (`reader`: IDG's split, one read), with what IDG gives beside the
images: the targets of each `class_mode` and the weights (`flows.Outputs`), and the
iterator's attributes (`class_indices`, `classes`, `filenames`, ...).

The split, the file order, the class indices and the targets are IDG's
(`DirectoryIterator`, `DataFrameIterator`, `NumpyArrayIterator`); one deliberate
difference: a file that cannot be read is named once and left out (IDG crashes in the
middle of an epoch): of `filenames` when it is found before the flow returns (a stat
with the memory cache, a read with the others), else of its batch in every pass.
"""

import collections
import os
import warnings
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from rps_tfdata.image.flows import Outputs
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import listing, reader
from rps_tfdata.pipeline.reading.listing import SUBSETS
from rps_tfdata.pipeline.reading.prepare import Prepared
from rps_tfdata.pipeline.shards import Shard

# `class_mode`s of each method, as IDG allows them.
DIRECTORY_CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
DATAFRAME_CLASS_MODES = (*DIRECTORY_CLASS_MODES, "multi_output", "raw")
_LABELLED = ("categorical", "binary", "sparse")


class FlowInput(NamedTuple):
    """A flow's images (this worker's shard of its subset), the rows that go with them,
    and the iterator's attributes."""

    prepared: Prepared
    outputs: Outputs
    attributes: dict[str, Any]
    subset_size: int  # the subset's images, before a worker's shard of them


def _class_targets(
    classes: Sequence[Any], num_classes: int, class_mode: Optional[str], dtype: str
) -> Outputs:
    """IDG's y for a labelled `class_mode`: one-hot rows (several ones for a list of
    labels), or the index as a float of `dtype`; "input" is the images; None nothing."""
    if class_mode == "input":
        return Outputs(target_is_input=True)
    if class_mode == "categorical":
        y = np.zeros((len(classes), num_classes), dtype)
        for row, label in enumerate(classes):
            y[row, label] = 1
        return Outputs(targets=(y,))
    if class_mode in ("binary", "sparse"):
        return Outputs(targets=(np.asarray(classes, dtype).reshape(-1),))
    return Outputs()


def from_directory(
    directory: str,
    *,
    classes: Optional[Sequence[str]],
    class_mode: Optional[str],
    follow_links: bool,
    validation_split: float,
    subset: Optional[str],
    dtype: str,
    options: PipelineOptions,
    cache_name: str,
    shard: Shard,
) -> FlowInput:
    """`flow_from_directory`'s images: per class, IDG's walk order and IDG's split (this
    worker's `shard` of it)."""
    if class_mode not in DIRECTORY_CLASS_MODES:
        raise ValueError(
            f"Invalid class_mode: {class_mode!r}; expected one of {DIRECTORY_CLASS_MODES}"
        )
    chosen, prepared = reader.read_directory(
        directory,
        options,
        classes=classes or None,
        follow_links=follow_links,
        validation_split=validation_split,
        subset=subset,
        name=cache_name,
        shard=shard,
        say=print,  # where IDG prints what it found
    )
    num_classes = len(chosen.class_names)
    outputs = _class_targets(chosen.labels, num_classes, class_mode, dtype)
    readable = [chosen.labels[i] for i in prepared.ids]
    print(f"Found {prepared.count} images belonging to {num_classes} classes.")
    root = directory.rstrip("/")
    return FlowInput(
        prepared,
        outputs,
        {
            "directory": directory,
            "class_indices": {name: i for i, name in enumerate(chosen.class_names)},
            "classes": np.asarray(readable, np.int32),
            "labels": np.asarray(readable, np.int32),
            "filenames": _relative(prepared.paths, root),
            "filepaths": list(prepared.paths),
            "num_classes": num_classes,
        },
        len(chosen.paths),
    )


def _check_dataframe(df, x_col: str, y_col, weight_col, classes, class_mode) -> None:
    """IDG's checks of a DataFrame against its `class_mode`, with IDG's messages."""
    if class_mode not in DATAFRAME_CLASS_MODES:
        raise ValueError(
            f"Invalid class_mode: {class_mode!r}; expected one of {DATAFRAME_CLASS_MODES}"
        )
    if class_mode == "multi_output" and not isinstance(y_col, list):
        raise TypeError(
            f'If class_mode="multi_output", y_col must be a list. Received {type(y_col).__name__}.'
        )
    if not all(isinstance(v, str) for v in df[x_col]):
        raise TypeError(f"All values in column x_col={x_col} must be strings.")
    if class_mode in ("binary", "sparse") and not all(isinstance(v, str) for v in df[y_col]):
        raise TypeError(
            f'If class_mode="{class_mode}", y_col="{y_col}" column values must be strings.'
        )
    if class_mode == "binary":
        found = len(set(classes)) if classes else df[y_col].nunique()
        if found != 2:
            raise ValueError(
                f'If class_mode="binary" there must be 2 classes. Found {found} classes.'
            )
    if class_mode == "categorical" and not all(
        isinstance(v, (str, list, tuple)) for v in df[y_col]
    ):
        raise TypeError(
            f'If class_mode="categorical", y_col="{y_col}" column values must be type string, '
            "list or tuple."
        )
    if classes and class_mode not in _LABELLED:
        warnings.warn(
            f'`classes` will be ignored given the class_mode="{class_mode}"', stacklevel=4
        )
    if weight_col and not issubclass(df[weight_col].dtype.type, np.number):
        raise TypeError(f"Column weight_col={weight_col} must be numeric.")


def _valid_rows(df, directory: str, x_col: str):
    """IDG's `validate_filenames`: rows whose file has an image extension and exists."""
    paths = [os.path.join(directory, name) for name in df[x_col]]
    keep = reader.existing_images(paths, say=print)  # where IDG prints what it found
    if (~keep).sum():
        warnings.warn(
            f'Found {(~keep).sum()} invalid image filename(s) in x_col="{x_col}". '
            "These filename(s) will be ignored.",
            stacklevel=4,
        )
    return df[keep]


def _known_classes(df, y_col: str, classes: Optional[Sequence[str]]):
    """IDG's class list (given, or every label sorted) and the rows that keep a label."""
    if classes:
        wanted = list(collections.OrderedDict.fromkeys(classes))

        def kept(labels):
            if isinstance(labels, (list, tuple)):
                return [label for label in labels if label in wanted] or None
            return labels if labels in wanted else None

        df = df.assign(**{y_col: df[y_col].apply(kept)})
        return df.dropna(subset=[y_col]), wanted
    found: set = set()
    for labels in df[y_col]:
        found.update(labels if isinstance(labels, (list, tuple)) else [labels])
    return df, sorted(found)


def _frame_targets(df, y_col, class_mode: Optional[str], indices: dict[str, int], dtype: str):
    """IDG's targets of a frame's rows for `class_mode`, and each row's class index (or
    indices) when the mode is labelled."""
    if class_mode in _LABELLED:
        labels = [
            [indices[v] for v in value] if isinstance(value, (list, tuple)) else indices[value]
            for value in df[y_col]
        ]
        return _class_targets(labels, len(indices), class_mode, dtype), labels
    if class_mode == "multi_output":
        return Outputs(targets=tuple(np.array(df[col].tolist()) for col in y_col)), []
    if class_mode == "raw":
        return Outputs(targets=(df[y_col].values,)), []
    return _class_targets([], 0, class_mode, dtype), []


def from_dataframe(
    dataframe,
    *,
    directory: Optional[str],
    x_col: str,
    y_col,
    weight_col: Optional[str],
    classes: Optional[Sequence[str]],
    class_mode: Optional[str],
    validate_filenames: bool,
    validation_split: float,
    subset: Optional[str],
    dtype: str,
    options: PipelineOptions,
    cache_name: str,
    shard: Shard,
) -> FlowInput:
    """`flow_from_dataframe`'s images: the frame's order, IDG's split of the whole frame
    (this worker's `shard` of it)."""
    _check_dataframe(dataframe, x_col, y_col, weight_col, classes, class_mode)
    directory = directory or ""
    df = _valid_rows(dataframe, directory, x_col) if validate_filenames else dataframe
    labelled = class_mode in _LABELLED
    class_names: list[str] = []
    if labelled:
        df, class_names = _known_classes(df, y_col, classes)
    names = df[x_col].tolist()
    span, prepared = reader.read_files(
        [os.path.join(directory, n) for n in names],
        options,
        validation_split=validation_split,
        subset=subset,
        name=cache_name,
        shard=shard,
        say=print,
    )
    df, names = df.iloc[span], names[span]
    indices = {name: i for i, name in enumerate(class_names)}
    outputs, labels = _frame_targets(df, y_col, class_mode, indices, dtype)
    if weight_col:
        outputs = outputs._replace(weights=df[weight_col].values)
    validated = "validated" if validate_filenames else "non-validated"
    belonging = f" belonging to {len(class_names)} classes" if labelled else ""
    print(f"Found {prepared.count} {validated} image filenames{belonging}.")
    attributes = {
        "directory": directory,
        "filenames": [names[i] for i in prepared.ids],
        "filepaths": list(prepared.paths),
    }
    if labelled:
        readable = [labels[i] for i in prepared.ids]
        attributes.update(class_indices=indices, classes=readable, num_classes=len(class_names))
    if class_mode in ("multi_output", "raw"):
        read = outputs.of_ids(prepared.ids).targets
        attributes["labels"] = read if class_mode == "multi_output" else read[0]
    elif labelled:
        attributes["labels"] = attributes["classes"]
    return FlowInput(prepared, outputs, attributes, len(names))


def _check_lengths(x: np.ndarray, misc: list, y, sample_weight) -> None:
    """IDG's refusals of arrays of other lengths than `x`, in IDG's words."""
    for other in misc:
        if len(x) != len(other):
            raise ValueError(
                "All of the arrays in `x` should have the same length. Found a pair with: "
                f"len(x[0]) = {len(x)}, len(x[?]) = {len(other)}"
            )
    for name, other in (("`y` (labels)", y), ("`sample_weight`", sample_weight)):
        if other is not None and len(x) != len(other):
            raise ValueError(
                f"`x` (images tensor) and {name} should have the same length. Found: "
                f"x.shape = {np.asarray(x).shape}, "
                f"{name.split('`')[1]}.shape = {np.asarray(other).shape}"
            )


def from_arrays(
    x,
    y,
    *,
    sample_weight,
    ignore_class_split: bool,
    validation_split: float,
    subset: Optional[str],
    dtype: str,
    channels_first: bool,
    options: PipelineOptions,
    shard: Shard,
) -> FlowInput:
    """`flow`'s images: `x` (or `(x, more inputs)`), IDG's split of the first rows (this
    worker's `shard` of it)."""
    misc: list[np.ndarray] = []
    if isinstance(x, (tuple, list)):
        misc = [np.asarray(m) for m in (x[1] if isinstance(x[1], list) else [x[1]])]
        x = x[0]
    x = np.asarray(x)
    y = None if y is None else np.asarray(y)
    _check_lengths(x, misc, y, sample_weight)
    if subset is not None and y is not None and not ignore_class_split:
        training, validation = (listing.split_rows(len(x), validation_split, s) for s in SUBSETS)
        if not np.array_equal(np.unique(y[validation]), np.unique(y[training])):
            raise ValueError(
                "Training and validation subsets have different number of classes after the "
                "split. If your numpy arrays are sorted by the label, you might want to "
                "shuffle them (or pass ignore_class_split=True)."
            )
    images = np.asarray(x, dtype)
    if images.ndim != 4:
        raise ValueError(
            "Input data in `NumpyArrayIterator` should have rank 4. You passed an array "
            f"with shape {images.shape}"
        )
    channels_axis = 1 if channels_first else 3
    if images.shape[channels_axis] not in (1, 3, 4):
        warnings.warn(
            f"NumpyArrayIterator is set to use the data format convention "
            f'"{"channels_first" if channels_first else "channels_last"}" (channels on axis '
            f"{channels_axis}), i.e. expected either 1, 3, or 4 channels on axis "
            f"{channels_axis}. However, it was passed an array with shape {images.shape} "
            f"({images.shape[channels_axis]} channels).",
            stacklevel=4,
        )
    pixels = np.transpose(images, (0, 2, 3, 1)) if channels_first else images
    # The pipeline computes in float32, as the drop-in always has; `x` stays IDG's.
    span, prepared = reader.read_pixels(
        pixels.astype(np.float32, copy=False),
        options,
        validation_split=validation_split,
        subset=subset,
        shard=shard,
    )
    outputs = Outputs(
        targets=() if y is None else (y[span],),
        weights=None if sample_weight is None else np.asarray(sample_weight)[span],
        extra_inputs=tuple(m[span] for m in misc),
    )
    mine = slice(None) if shard.count == 1 else np.asarray(prepared.ids)
    read = outputs.of_ids(mine) if shard.count > 1 else outputs
    attributes = {"x": images[span][mine], "y": read.targets[0] if y is not None else None}
    return FlowInput(prepared, outputs, attributes, len(images[span]))


def _relative(paths: Sequence[str], root: str) -> list[str]:
    """IDG's `filenames`: each path relative to `root`. The listing joined them to it,
    so the prefix is cut (`os.path.relpath` costs 0.4 s a 32,000 files)."""
    prefix = os.path.join(root, "")

    def relative(path: str) -> str:
        rest = path[len(prefix) :]
        cut = path.startswith(prefix) and not rest.startswith(os.sep)
        return rest if cut else os.path.relpath(path, root)

    return [relative(p) for p in paths]
