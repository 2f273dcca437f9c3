"""Keras' legacy `ImageDataGenerator` as `tf.data`: change one import, keep the results.

    from rps_tfdata.image import ImageDataGenerator

    datagen = ImageDataGenerator(rescale=1 / 255, rotation_range=40, width_shift_range=0.2,
                                 height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
                                 horizontal_flip=True, fill_mode="nearest",
                                 validation_split=0.2)
    train = datagen.flow_from_directory("rps", target_size=(150, 150), subset="training")
    model.fit(train, epochs=25)

Every public name of `tensorflow.keras.preprocessing.image`, so that `from rps_tfdata
import image` replaces `from tensorflow.keras.preprocessing import image`: every keyword
of Keras' `ImageDataGenerator` and of its `flow_from_directory`, `flow` and
`flow_from_dataframe` is taken with Keras' default and meaning; each `flow*` returns
IDG's iterator (`DirectoryIterator`, `NumpyArrayIterator`, `DataFrameIterator`), here a
`tf.data.Dataset` of what IDG's iterator yields (same shapes, dtypes and values, the
augmentation equal to IDG's to float rounding) that also answers as IDG's iterator
(`next`, `[i]`, `len`, `reset()`, NumPy batches) and carries its attributes
(`class_indices`, `classes`, `filenames`, `filepaths`, `samples`, ...). IDG's functions
of one image (`apply_affine_transform`, the `random_*` and `apply_*` shifts) run on the
same kernel; `load_img`, `img_to_array`, `array_to_img`, `save_img` and `smart_resize`
are Keras' own (`keras.utils`, PIL underneath, as IDG's).

Each pass (each epoch of `model.fit`) draws a new order and new augmentation; the same
`seed` repeats the same passes. The files are read once into a uint8 cache, and each
batch is augmented in one fused, compiled warp (`IDGAugmentation`, also a layer for a
user's own model). docs/from-imagedatagenerator.md has every keyword and habit, the
deliberate differences, and how this differs from Keras' `image_dataset_from_directory`
with its preprocessing layers.
"""

from keras.preprocessing.image import smart_resize
from keras.utils import array_to_img, img_to_array, load_img, save_img

from rps_tfdata.image.generator import ImageDataGenerator
from rps_tfdata.image.iterators import (
    DataFrameIterator,
    DirectoryIterator,
    Iterator,
    NumpyArrayIterator,
)
from rps_tfdata.image.one_image import (
    apply_affine_transform,
    apply_brightness_shift,
    apply_channel_shift,
    random_brightness,
    random_channel_shift,
    random_rotation,
    random_shear,
    random_shift,
    random_zoom,
)
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation

__all__ = [
    "DataFrameIterator",
    "DirectoryIterator",
    "IDGAugmentation",
    "ImageDataGenerator",
    "Iterator",
    "NumpyArrayIterator",
    "apply_affine_transform",
    "apply_brightness_shift",
    "apply_channel_shift",
    "array_to_img",
    "img_to_array",
    "load_img",
    "random_brightness",
    "random_channel_shift",
    "random_rotation",
    "random_shear",
    "random_shift",
    "random_zoom",
    "save_img",
    "smart_resize",
]
