"""`ImageDataGenerator`: Keras' legacy generator, every keyword with its default; each
`flow*` returns IDG's iterator of that flow (`iterators`), a `tf.data.Dataset`."""

import warnings
from typing import Any, Callable, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from rps_tfdata.image import iterators
from rps_tfdata.pipeline.transforms import standardize
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation, ShiftRange

_DATA_FORMATS = ("channels_last", "channels_first")


def _check_init(data_format: str, validation_split: float) -> None:
    """IDG's refusals of its constructor's keywords, with IDG's messages (the
    augmentation's own are `IDGAugmentation`'s)."""
    if data_format not in _DATA_FORMATS:
        raise ValueError(
            '`data_format` should be `"channels_last"` (channel after row and column) or '
            f'`"channels_first"` (channel before row and column). Received: {data_format}'
        )
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(
            f"`validation_split` must be strictly between 0 and 1.  Received: {validation_split}"
        )


class ImageDataGenerator:
    """Keras' `ImageDataGenerator`, every keyword with its default, flowing as `tf.data`.

    Each keyword means what it means in Keras' `ImageDataGenerator` (its documentation
    is this class's); docs/from-imagedatagenerator.md says how each was checked. The
    statistics of `fit` are the attributes `mean`, `std` and `zca_whitening_matrix`, as
    in Keras.

    Raises:
      ValueError: a keyword IDG refuses, with IDG's message; `interpolation_order` 2-5
        (scipy's spline orders pre-filter the whole image: not matched, refused).
    """

    def __init__(
        self,
        featurewise_center: bool = False,
        samplewise_center: bool = False,
        featurewise_std_normalization: bool = False,
        samplewise_std_normalization: bool = False,
        zca_whitening: bool = False,
        zca_epsilon: float = 1e-6,
        rotation_range: float = 0,
        width_shift_range: ShiftRange = 0.0,
        height_shift_range: ShiftRange = 0.0,
        brightness_range: Optional[Sequence[float]] = None,
        shear_range: float = 0.0,
        zoom_range: Union[float, Sequence[float]] = 0.0,
        channel_shift_range: float = 0.0,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        rescale: Optional[float] = None,
        preprocessing_function: Optional[Callable] = None,
        data_format: Optional[str] = None,
        validation_split: float = 0.0,
        interpolation_order: int = 1,
        dtype: Optional[str] = None,
    ):
        data_format = data_format or keras.config.image_data_format()
        _check_init(data_format, validation_split)
        self._layer = IDGAugmentation(
            rotation_range=rotation_range,
            width_shift_range=width_shift_range,
            height_shift_range=height_shift_range,
            brightness_range=brightness_range,
            shear_range=shear_range,
            zoom_range=zoom_range,
            channel_shift_range=channel_shift_range,
            fill_mode=fill_mode,
            cval=cval,
            horizontal_flip=horizontal_flip,
            vertical_flip=vertical_flip,
            interpolation_order=interpolation_order,
        )
        self.rotation_range, self.shear_range = rotation_range, shear_range
        self.width_shift_range, self.height_shift_range = width_shift_range, height_shift_range
        self.brightness_range, self.channel_shift_range = brightness_range, channel_shift_range
        self.zoom_range = list(self._layer.zoom_bounds)
        self.fill_mode, self.cval, self.interpolation_order = fill_mode, cval, interpolation_order
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.rescale, self.preprocessing_function = rescale, preprocessing_function
        self.zca_whitening, self.zca_epsilon = zca_whitening, zca_epsilon
        self.featurewise_center = (
            featurewise_center or zca_whitening or featurewise_std_normalization
        )
        self.featurewise_std_normalization = featurewise_std_normalization and not zca_whitening
        self.samplewise_center = samplewise_center or samplewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        _warn_overrides(
            featurewise_center,
            featurewise_std_normalization,
            zca_whitening,
            samplewise_center,
            samplewise_std_normalization,
        )
        self.data_format = data_format
        self.channel_axis, self.row_axis, self.col_axis = (
            (3, 1, 2) if data_format == "channels_last" else (1, 2, 3)
        )
        self._validation_split = validation_split
        self.dtype = dtype or keras.config.floatx()
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None
        self.zca_whitening_matrix: Optional[np.ndarray] = None

    # ---- the flows ---------------------------------------------------------------------

    def flow_from_directory(
        self,
        directory: str,
        target_size: tuple[int, int] = (256, 256),
        color_mode: str = "rgb",
        classes: Optional[Sequence[str]] = None,
        class_mode: Optional[str] = "categorical",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: Optional[int] = None,
        save_to_dir: Optional[str] = None,
        save_prefix: str = "",
        save_format: str = "png",
        follow_links: bool = False,
        subset: Optional[str] = None,
        interpolation: str = "nearest",
        keep_aspect_ratio: bool = False,
        *,
        cache: str = "auto",
        cache_dir: Optional[str] = None,
    ) -> iterators.DirectoryIterator:
        """IDG's `flow_from_directory` as a dataset: one subfolder per class, with IDG's
        split, file order and class indices.

        Args:
          directory, target_size, color_mode, classes, class_mode, batch_size, shuffle,
            seed, save_to_dir, save_prefix, save_format, follow_links, subset,
            interpolation, keep_aspect_ratio: as in Keras' `flow_from_directory`.
          cache: where the decoded pixels are kept between passes: "auto" (memory when
            they fit, else disk), "memory", "disk" or "none" (every pass decodes again).
          cache_dir: the disk cache's folder (default `iterators.DEFAULT_CACHE_DIR`), reused by
            the next flow of the same files and settings.

        Returns:
          A `tf.data.Dataset` of IDG's batches (`x`, then `y` for the `class_mode`),
          carrying the iterator's attributes (`class_indices`, `classes`, `filenames`,
          `filepaths`, `samples`, ...); `len()` is the batches of one pass.

        Raises:
          ValueError: a keyword value IDG refuses, or one that cannot be matched (named).
        """
        return iterators.DirectoryIterator(
            directory,
            self,
            target_size,
            color_mode,
            classes,
            class_mode,
            batch_size,
            shuffle,
            seed,
            self.data_format,
            save_to_dir,
            save_prefix,
            save_format,
            follow_links,
            subset,
            interpolation,
            keep_aspect_ratio,
            self.dtype,
            cache=cache,
            cache_dir=cache_dir,
        )

    def flow_from_dataframe(
        self,
        dataframe,
        directory: Optional[str] = None,
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
        save_to_dir: Optional[str] = None,
        save_prefix: str = "",
        save_format: str = "png",
        subset: Optional[str] = None,
        interpolation: str = "nearest",
        validate_filenames: bool = True,
        *,
        cache: str = "auto",
        cache_dir: Optional[str] = None,
        **kwargs,
    ) -> iterators.DataFrameIterator:
        """IDG's `flow_from_dataframe` as a dataset: the frame's rows in order, with IDG's
        split of the whole frame (not per class) and IDG's targets.

        Args:
          dataframe, directory, x_col, y_col, weight_col, target_size, color_mode,
            classes, class_mode, batch_size, shuffle, seed, save_to_dir, save_prefix,
            save_format, subset, interpolation, validate_filenames: as in Keras'
            `flow_from_dataframe` (every `class_mode`, "raw" and "multi_output" too;
            `weight_col` gives sample weights).
          cache, cache_dir: as in `flow_from_directory`.

        Returns:
          A `tf.data.Dataset` as `flow_from_directory`'s.

        Raises:
          TypeError: a keyword IDG's never had (its deprecated `has_ext`, `sort` and
            `drop_duplicates` warn, as IDG's, and do nothing).
          ValueError: a keyword value IDG refuses, or one that cannot be matched.
        """
        _deprecated_dataframe_keywords(kwargs)
        if class_mode == "other":
            warnings.warn(
                '`class_mode="other"` is deprecated, please use `class_mode="raw"`.',
                DeprecationWarning,
                stacklevel=2,
            )
            class_mode = "raw"
        return iterators.DataFrameIterator(
            dataframe,
            directory,
            self,
            x_col,
            y_col,
            weight_col,
            target_size,
            color_mode,
            classes,
            class_mode,
            batch_size,
            shuffle,
            seed,
            self.data_format,
            save_to_dir,
            save_prefix,
            save_format,
            subset,
            interpolation,
            False,
            self.dtype,
            validate_filenames,
            cache=cache,
            cache_dir=cache_dir,
        )

    def flow(
        self,
        x,
        y=None,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight=None,
        seed: Optional[int] = None,
        save_to_dir: Optional[str] = None,
        save_prefix: str = "",
        save_format: str = "png",
        ignore_class_split: bool = False,
        subset: Optional[str] = None,
    ) -> iterators.NumpyArrayIterator:
        """IDG's `flow` as a dataset, with IDG's split (the first rows are validation).

        Args:
          x: images in this generator's `data_format`, or `(images, more_inputs)`.
          y, batch_size, shuffle, sample_weight, seed, save_to_dir, save_prefix,
            save_format, ignore_class_split, subset: as in Keras' `flow`; `y` and
            `sample_weight` are passed through, each row keeping its own weight.

        Returns:
          A `tf.data.Dataset` of (`x`, `y`[, weights]) batches as IDG's `flow` yields.

        Raises:
          ValueError: arrays IDG refuses (rank, lengths, a subset left empty).
        """
        return iterators.NumpyArrayIterator(
            x,
            y,
            self,
            batch_size,
            shuffle,
            sample_weight,
            seed,
            self.data_format,
            save_to_dir,
            save_prefix,
            save_format,
            subset,
            ignore_class_split,
            self.dtype,
        )

    @property
    def _augmentation(self) -> Optional[IDGAugmentation]:
        """The layer that augments a flow's batches, or None when no keyword asks it to."""
        layer = self._layer
        augments = layer.warps or bool(layer.channel_shift_range)
        return layer if augments or layer.brightness_range is not None else None

    def _standardization(self) -> standardize.Standardization:
        """The standardisation keywords and the statistics, as set now (a user may set
        `mean` or `std` by hand, as with IDG)."""
        return standardize.Standardization(
            preprocessing_function=self.preprocessing_function,
            rescale=self.rescale,
            samplewise_center=self.samplewise_center,
            samplewise_std_normalization=self.samplewise_std_normalization,
            featurewise_center=self.featurewise_center,
            featurewise_std_normalization=self.featurewise_std_normalization,
            zca_whitening=self.zca_whitening,
            mean=None if self.mean is None else np.asarray(self.mean, np.float32),
            std=None if self.std is None else np.asarray(self.std, np.float32),
            zca_whitening_matrix=self.zca_whitening_matrix,
        )

    # ---- one image or one array, as IDG's own methods ------------------------------------

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """IDG's `standardize` of an image or a batch (the per-sample statistics of a batch
        taken over the whole batch, as IDG's do), returned as a new array."""
        x = np.asarray(x, self.dtype)
        if self.preprocessing_function:
            x = np.asarray(self.preprocessing_function(x), self.dtype)
        s = self._standardization()._replace(preprocessing_function=None)
        standardize.warn_if_unfit(s)
        batch = x if x.ndim == 4 else x[None]
        out = standardize.standardize(tf.constant(batch, tf.float32), s, samplewise_over_batch=True)
        return out.numpy().astype(self.dtype).reshape(x.shape)

    def get_random_transform(self, img_shape: Sequence[int], seed: Optional[int] = None) -> dict:
        """One image's random parameters with IDG's keys and units (the layer's sampler,
        not NumPy's: the same `seed` repeats the draw, but draws IDG's numbers only in
        distribution)."""
        size = (img_shape[self.row_axis - 1], img_shape[self.col_axis - 1])
        drawn = self._layer.sample_parameters(1, size, seed)
        params: dict[str, Any] = {key: float(value[0]) for key, value in drawn.items()}
        params["flip_horizontal"] = bool(params["flip_horizontal"])
        params["flip_vertical"] = bool(params["flip_vertical"])
        params.setdefault("channel_shift_intensity", None)
        params.setdefault("brightness", None)
        return params

    def apply_transform(self, x: np.ndarray, transform_parameters: dict) -> np.ndarray:
        """IDG's `apply_transform` of one image in this generator's `data_format`."""
        image = np.asarray(x, np.float32)
        if self.data_format == "channels_first":
            image = np.transpose(image, (1, 2, 0))
        params = {
            key: tf.constant([float(value)], tf.float64)
            for key, value in transform_parameters.items()
            if value is not None
        }
        out = self._layer.transform(image[None], params)[0]
        if self.data_format == "channels_first":
            out = np.transpose(out, (2, 0, 1))
        return out.astype(self.dtype)

    def random_transform(self, x: np.ndarray, seed: Optional[int] = None) -> np.ndarray:
        """A randomly transformed copy of one image (`get_random_transform`, then
        `apply_transform`)."""
        return self.apply_transform(x, self.get_random_transform(np.shape(x), seed))

    def fit(self, x, augment: bool = False, rounds: int = 1, seed: Optional[int] = None) -> None:
        """IDG's `fit`: the statistics that featurewise standardisation and ZCA use, as
        IDG computes them, kept in `mean`, `std` and `zca_whitening_matrix`.

        Args:
          x: images, rank 4, in this generator's `data_format`; rescaled first.
          augment: transform each image randomly before taking the statistics.
          rounds: with `augment`, how many transformed copies of `x` to take.
          seed: repeats the transforms.

        Raises:
          ValueError: `x` not of rank 4.
        """
        x = np.array(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(
                f"Input to `.fit()` should have rank 4. Got array with shape: {x.shape}"
            )
        if self.rescale:
            x *= self.rescale
        if augment:
            draws = [
                self.random_transform(image, None if seed is None else seed + r * len(x) + i)
                for r in range(rounds)
                for i, image in enumerate(x)
            ]
            x = np.stack(draws).astype(self.dtype)
        fitted = standardize.fit_statistics(
            x, self._standardization(), self.zca_epsilon, channel_axis=self.channel_axis
        )
        self.mean, self.std = fitted.mean, fitted.std
        self.zca_whitening_matrix = fitted.zca_whitening_matrix


# IDG's deprecated keywords of `flow_from_dataframe`, taken and ignored with IDG's words.
_DEPRECATED_DATAFRAME_KEYWORDS = {
    "has_ext": "has_ext is deprecated, filenames in the dataframe have to match the exact "
    "filenames in disk.",
    "sort": "sort is deprecated, batches will be created in thesame order than the "
    "filenames provided if `shuffle`is set to `False`.",
    "drop_duplicates": "drop_duplicates is deprecated, you can drop duplicates by using "
    "the pandas.DataFrame.drop_duplicates method.",
}


def _deprecated_dataframe_keywords(kwargs: dict) -> None:
    """IDG's warning for each deprecated keyword; any other is refused.

    Raises:
      TypeError: a keyword `flow_from_dataframe` never had.
    """
    unknown = sorted(set(kwargs) - set(_DEPRECATED_DATAFRAME_KEYWORDS))
    if unknown:
        raise TypeError(f"flow_from_dataframe got unexpected keyword arguments {unknown}")
    for name in kwargs:
        warnings.warn(_DEPRECATED_DATAFRAME_KEYWORDS[name], DeprecationWarning, stacklevel=3)


def _warn_overrides(
    featurewise_center: bool,
    featurewise_std_normalization: bool,
    zca_whitening: bool,
    samplewise_center: bool,
    samplewise_std_normalization: bool,
) -> None:
    """IDG's warnings when one keyword turns another on or off."""
    said = []
    if zca_whitening and not featurewise_center:
        said.append("`zca_whitening`, which overrides setting of `featurewise_center`.")
    if zca_whitening and featurewise_std_normalization:
        said.append("`zca_whitening` which overrides setting of`featurewise_std_normalization`.")
    if featurewise_std_normalization and not featurewise_center:
        said.append(
            "`featurewise_std_normalization`, which overrides setting of `featurewise_center`."
        )
    if samplewise_std_normalization and not samplewise_center:
        said.append(
            "`samplewise_std_normalization`, which overrides setting of `samplewise_center`."
        )
    for text in said:
        warnings.warn(f"This ImageDataGenerator specifies {text}", stacklevel=3)
