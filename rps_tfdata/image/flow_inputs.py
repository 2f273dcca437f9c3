"""What each of ImageDataGenerator's `flow*` methods reads: a class-per-folder directory,
a DataFrame of file names, or arrays in memory, turned into the drop-in's input: the
readable images (`input_pipeline.prepare`), the rows that go with them (`flows.Outputs`)
and the iterator's attributes (`class_indices`, `classes`, `filenames`, ...).

The split, the file order, the class indices and the targets are IDG's
(`DirectoryIterator`, `DataFrameIterator`, `NumpyArrayIterator`); one deliberate
difference: a file that cannot be read is named once and left out (IDG crashes in the
middle of an epoch), so `filenames` lists what is read.
"""

import collections
import os
import warnings
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

from rps_tfdata.image.flows import Outputs
from rps_tfdata.infra import fs, resources
from rps_tfdata.pipeline import input_pipeline
from rps_tfdata.pipeline.input_pipeline import PipelineOptions, Prepared
from rps_tfdata.pipeline.reading import listing
from rps_tfdata.trainer import plan

# `class_mode`s of each method, as IDG allows them.
DIRECTORY_CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
DATAFRAME_CLASS_MODES = (*DIRECTORY_CLASS_MODES, "multi_output", "raw")
_LABELLED = ("categorical", "binary", "sparse")


class FlowInput(NamedTuple):
    """A flow's images, the rows that go with them, and the iterator's attributes."""

    prepared: Prepared
    outputs: Outputs
    attributes: dict[str, Any]


def _split_range(count: int, validation_split: float, subset: Optional[str]) -> slice:
    """IDG's rows of `subset` among `count`: validation first, then training."""
    if subset is None:
        return slice(0, count)
    if subset not in listing.SUBSETS:
        raise ValueError(f'Invalid subset name: {subset!r}; expected "training" or "validation"')
    cut = int(validation_split * count)
    return slice(0, cut) if subset == "validation" else slice(cut, count)


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


def _read(
    paths: list[str], outputs: Outputs, options: PipelineOptions, name: str
) -> tuple[Prepared, Outputs]:
    """Reads the files once, into the cache `options.cache` asks for ("auto": memory when
    the images fit, else disk, as the trainer decides); the unreadable files leave, with
    their rows."""
    if options.cache == "auto":
        options = plan.fit_image_cache(
            options._replace(cache="memory"),
            "auto",
            [len(paths)],
            resources.memory_room(),
            setting="cache",
            size_setting="target_size",
        )
    prepared = input_pipeline.prepare(paths, [0] * len(paths), 0, options, name=name)
    return prepared, outputs.rows(prepared.ids)


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
) -> FlowInput:
    """`flow_from_directory`'s images: per class, IDG's walk order and IDG's split."""
    if class_mode not in DIRECTORY_CLASS_MODES:
        raise ValueError(
            f"Invalid class_mode: {class_mode!r}; expected one of {DIRECTORY_CLASS_MODES}"
        )
    listed = listing.list_folder(directory, classes=classes or None, follow_links=follow_links)
    paths: list[str] = []
    labels: list[int] = []
    for label, files in enumerate(listed.files_by_class):
        chosen = files[_split_range(len(files), validation_split, subset)]
        paths += chosen
        labels += [label] * len(chosen)
    num_classes = len(listed.class_names)
    outputs = _class_targets(labels, num_classes, class_mode, dtype)
    prepared, outputs = _read(paths, outputs, options, cache_name)
    readable = [labels[i] for i in prepared.ids]
    print(f"Found {prepared.count} images belonging to {num_classes} classes.")
    root = directory.rstrip("/")
    return FlowInput(
        prepared,
        outputs,
        {
            "directory": directory,
            "class_indices": {name: i for i, name in enumerate(listed.class_names)},
            "classes": np.asarray(readable, np.int32),
            "labels": np.asarray(readable, np.int32),
            "filenames": [os.path.relpath(p, root) for p in prepared.paths],
            "filepaths": list(prepared.paths),
            "num_classes": num_classes,
        },
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
    keep = np.array([listing.is_image_file(p) and fs.isfile(p) for p in paths], bool)
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
) -> FlowInput:
    """`flow_from_dataframe`'s images: the frame's order, IDG's split of the whole frame."""
    _check_dataframe(dataframe, x_col, y_col, weight_col, classes, class_mode)
    directory = directory or ""
    df = _valid_rows(dataframe, directory, x_col) if validate_filenames else dataframe
    labelled = class_mode in _LABELLED
    class_names: list[str] = []
    if labelled:
        df, class_names = _known_classes(df, y_col, classes)
    df = df.iloc[_split_range(len(df), validation_split, subset)]
    indices = {name: i for i, name in enumerate(class_names)}
    if labelled:
        labels = [
            [indices[v] for v in value] if isinstance(value, (list, tuple)) else indices[value]
            for value in df[y_col]
        ]
        outputs = _class_targets(labels, len(class_names), class_mode, dtype)
    elif class_mode == "multi_output":
        outputs = Outputs(targets=tuple(np.array(df[col].tolist()) for col in y_col))
    elif class_mode == "raw":
        outputs = Outputs(targets=(df[y_col].values,))
    else:
        outputs = _class_targets([], 0, class_mode, dtype)
    if weight_col:
        outputs = outputs._replace(weights=df[weight_col].values)
    names = df[x_col].tolist()
    prepared, outputs = _read(
        [os.path.join(directory, n) for n in names], outputs, options, cache_name
    )
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
        attributes["labels"] = (
            outputs.targets if class_mode == "multi_output" else outputs.targets[0]
        )
    elif labelled:
        attributes["labels"] = attributes["classes"]
    return FlowInput(prepared, outputs, attributes)


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
) -> FlowInput:
    """`flow`'s images: `x` (or `(x, more inputs)`), IDG's split of the first rows."""
    misc: list[np.ndarray] = []
    if isinstance(x, (tuple, list)):
        misc = [np.asarray(m) for m in (x[1] if isinstance(x[1], list) else [x[1]])]
        x = x[0]
    x = np.asarray(x)
    y = None if y is None else np.asarray(y)
    for name, other in [("x[?]", m) for m in misc] + [("y", y), ("sample_weight", sample_weight)]:
        if other is not None and len(other) != len(x):
            raise ValueError(
                f"`x` and `{name}` should have the same length. Found: {len(x)} and {len(other)}"
            )
    rows = _split_range(len(x), validation_split, subset)
    if subset is not None and y is not None and not ignore_class_split:
        cut = int(len(x) * validation_split)
        if not np.array_equal(np.unique(y[:cut]), np.unique(y[cut:])):
            raise ValueError(
                "Training and validation subsets have different number of classes after the "
                "split. If your numpy arrays are sorted by the label, you might want to "
                "shuffle them (or pass ignore_class_split=True)."
            )
    images = x[rows].astype(dtype)
    if images.ndim != 4:
        raise ValueError(
            f"Input data in `flow` should have rank 4; you passed an array of shape {images.shape}"
        )
    if channels_first:
        images = np.transpose(images, (0, 2, 3, 1))
    outputs = Outputs(
        targets=() if y is None else (y[rows],),
        weights=None if sample_weight is None else np.asarray(sample_weight)[rows],
        extra_inputs=tuple(m[rows] for m in misc),
    )
    count = len(images)
    prepared = Prepared(
        paths=[],
        labels=[0] * count,
        ids=list(range(count)),
        bad=[],
        num_classes=0,
        options=options._replace(image_size=images.shape[1:3]),
        images=tf.constant(images, tf.float32),
    )
    return FlowInput(
        prepared, outputs, {"x": images, "y": outputs.targets[0] if y is not None else None}
    )
