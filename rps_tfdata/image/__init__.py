"""Keras' legacy `ImageDataGenerator` as `tf.data`: change one import, keep the results.

    from rps_tfdata.image import ImageDataGenerator

    datagen = ImageDataGenerator(rescale=1 / 255, rotation_range=40, width_shift_range=0.2,
                                 height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
                                 horizontal_flip=True, fill_mode="nearest",
                                 validation_split=0.2)
    train = datagen.flow_from_directory("rps", target_size=(150, 150), subset="training")
    model.fit(train, epochs=25)

Every keyword of Keras' `ImageDataGenerator` and of its `flow_from_directory`, `flow` and
`flow_from_dataframe` is taken with Keras' default and meaning; each `flow*` returns a
`tf.data.Dataset` of what IDG's iterator yields (same shapes, dtypes and values, the
augmentation equal to IDG's to float rounding), carrying the iterator's attributes
(`class_indices`, `classes`, `filenames`, `filepaths`, `samples`, ...); `len()` is the
batches of one pass. Each pass (each epoch of `model.fit`) draws a new order and new
augmentation; the same `seed` repeats the same passes. The files are read once into a
uint8 cache, and each batch is augmented in one fused, compiled warp
(`IDGAugmentation`, also a layer for a user's own model). docs/from-imagedatagenerator.md
has every keyword, what an iterator did that a dataset does another way, and how this
differs from Keras' `image_dataset_from_directory` with its preprocessing layers.
"""

from rps_tfdata.image.generator import ImageDataGenerator
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation

__all__ = ["ImageDataGenerator", "IDGAugmentation"]
