"""The seed's CNN, unchanged: four conv/pool stages, dropout, a dense layer, softmax."""

import keras

CONV_FILTERS = (64, 64, 128, 128)


def feature_map_size(image_size: int) -> int:
    """Side of the last pooled feature map: each stage is a valid 3x3 conv, then 2x2 pool."""
    for _ in CONV_FILTERS:
        image_size = (image_size - 2) // 2
    return image_size


def min_image_size() -> int:
    """Smallest square side whose last feature map is at least 1x1 (46 for four stages)."""
    size = 3
    while feature_map_size(size) < 1:
        size += 1
    return size


def build_model(
    image_size: tuple[int, int], num_classes: int, *, dropout: float = 0.5
) -> keras.Model:
    """Builds the seed's CNN for `image_size` (height, width) inputs in [0, 1].

    Raises:
      ValueError: a side is too small for four conv/pool stages.
    """
    smallest = min_image_size()
    if min(image_size) < smallest:
        raise ValueError(
            f"image size {image_size} is too small for the CNN's four conv/pool stages: "
            f"each side must be at least {smallest}"
        )
    layers = [keras.Input(shape=(*image_size, 3), name="image")]
    for filters in CONV_FILTERS:
        layers += [keras.layers.Conv2D(filters, 3, activation="relu"), keras.layers.MaxPooling2D(2)]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax", name="probabilities"),
    ]
    return keras.Sequential(layers, name="rps_cnn")


def compile_model(model: keras.Model, *, learning_rate: float = 1e-3) -> keras.Model:
    """Adam and categorical cross-entropy with accuracy, as the seed compiles it."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
