"""The seed's CNN: architecture, size limits, compile settings."""

import keras
import numpy as np
import pytest

from rps_tfdata.trainer import architecture, model, plan


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
    smallest = architecture.min_image_size()
    assert smallest == 46
    assert architecture.feature_map_size(smallest) == 1
    assert architecture.feature_map_size(smallest - 1) == 0
    probabilities = model.build_model((smallest, smallest), 3)(np.zeros((2, smallest, smallest, 3)))
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)


def test_too_small_image_is_rejected_with_the_limit():
    with pytest.raises(ValueError, match="at least 46"):
        model.build_model((45, 150), 3)


def test_the_optimizer_is_adam_with_loss_scaling_for_float16_only():
    adam = model.make_optimizer(learning_rate=0.01)
    assert isinstance(adam, keras.optimizers.Adam)
    assert float(adam.learning_rate) == pytest.approx(0.01)
    assert isinstance(
        model.make_optimizer(precision="mixed_float16"), keras.optimizers.LossScaleOptimizer
    )
    assert not isinstance(
        model.make_optimizer(precision="mixed_bfloat16"), keras.optimizers.LossScaleOptimizer
    )


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_computes_low_and_outputs_float32(precision):
    cnn = model.build_model((48, 48), 3, precision=precision)
    assert cnn.layers[0].compute_dtype == precision.removeprefix("mixed_")
    assert cnn.layers[0].variable_dtype == "float32"
    assert cnn.layers[-1].compute_dtype == "float32"
    assert cnn(np.zeros((1, 48, 48, 3), np.float32)).dtype == "float32"


@pytest.mark.parametrize("accelerators", [0, 1])
def test_jit_compile_auto_compiles_where_an_accelerator_is_visible(accelerators):
    machine = plan.Machine(gpus=accelerators, accelerators=accelerators)
    assert plan.step_uses_xla("auto", machine) is bool(accelerators)
    assert plan.step_uses_xla("true", machine) and not plan.step_uses_xla("false", machine)


def test_jit_compile_auto_decides_as_keras_does_on_this_machine():
    cnn = model.build_model((48, 48), 3)
    cnn.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile="auto")
    assert cnn.jit_compile is plan.step_uses_xla("auto", plan.this_machine())


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="Received: 'float8'"):
        model.build_model((48, 48), 3, precision="float8")
