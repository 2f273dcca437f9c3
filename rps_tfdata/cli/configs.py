"""The training flags as a `TrainConfig`: one reading, for `train` and `benchmark` alike."""

import types

from rps_tfdata.trainer.config import TrainConfig


def training_config(f: types.SimpleNamespace, **overrides) -> TrainConfig:
    """The `TrainConfig` of the flags in `f` (holders by name, as `flag_defs.define`
    returns them): each field from the flag of the same name where the command defines
    one, else the field's default; `overrides` win."""
    values = {name: getattr(f, name).value for name in TrainConfig._fields if hasattr(f, name)}
    values = {name: value for name, value in values.items() if value is not None}
    return TrainConfig(**{**values, **overrides})
