"""The seed's CNN: architecture, size limits, compile settings."""

import keras
import numpy as np
import pytest

from rps_tfdata import model


def test_seed_architecture_at_150():
    cnn = model.build_model((150, 150), 3)
    # The seed notebook's model.summary(): 3,473,475 parameters, all trainable.
    assert cnn.count_params() == 3_473_475
    kinds = [type(layer).__name__ for layer in cnn.layers]
    assert kinds == ["Conv2D", "MaxPooling2D"] * 4 + ["Flatten", "Dropout", "Dense", "Dense"]
    assert [layer.filters for layer in cnn.layers if hasattr(layer, "filters")] == [
        64,
        64,
        128,
        128,
    ]
    assert cnn.layers[-1].activation is keras.activations.softmax
    assert cnn.output_shape == (None, 3)


def test_min_image_size_is_the_smallest_that_builds():
    smallest = model.min_image_size()
    assert smallest == 46
    assert model.feature_map_size(smallest) == 1 and model.feature_map_size(smallest - 1) == 0
    probabilities = model.build_model((smallest, smallest), 3)(np.zeros((2, smallest, smallest, 3)))
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)


def test_too_small_image_is_rejected_with_the_limit():
    with pytest.raises(ValueError, match="at least 46"):
        model.build_model((45, 150), 3)


def test_compile_uses_adam_and_categorical_crossentropy():
    cnn = model.compile_model(model.build_model((48, 48), 3), learning_rate=0.01)
    assert isinstance(cnn.optimizer, keras.optimizers.Adam)
    assert float(cnn.optimizer.learning_rate) == pytest.approx(0.01)
    assert cnn.loss == "categorical_crossentropy"
