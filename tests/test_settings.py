"""A training setting is defined once: the flag, the config field, its rule, what a run
records, and what a rerun may change all come from `rps_tfdata.trainer.config`."""

import pytest
from absl import flags
from absl.testing import flagsaver

from rps_tfdata import train
from rps_tfdata.cli import configs, flag_defs
from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.trainer import config as config_lib

COMMAND_ONLY = {"overwrite"}  # what the command does with the folder, not a setting
# One value each setting refuses on its own, and the words of the refusal.
REFUSED = [
    ("image_size", 20, "images must be at least 46 pixels on a side"),
    ("validation_split", 0.0, "must be in (0, 1)"),
    ("learning_rate", -1.0, "Adam's learning rate must be > 0"),
    ("epochs", 0, "must be at least 1"),
    ("prefetch", -2, "must be at least -1"),
    ("peer_timeout", 0.5, "must be at least 1"),
    ("profile_steps", "5", "not two step numbers A,B"),
    ("resize_method", "cubic", "value should be one of <pil_nearest|bilinear|area>"),
]


def train_flags() -> set[str]:
    return set(vars(train._F))


def test_every_train_flag_is_a_config_field_and_the_reverse():
    fields = set(config_lib.TrainConfig._fields)
    assert train_flags() - COMMAND_ONLY == fields


def test_every_setting_is_recorded_unless_it_is_where_the_run_is():
    recorded = set(config_lib.settings_of(config_lib.TrainConfig(data_dir="d")))
    for name in train_flags() - COMMAND_ONLY:
        assert name in recorded or name in config_lib.WHERE, f"--{name} is not recorded"
    assert set(config_lib.MAY_CHANGE) <= recorded  # declared, and recorded all the same


def test_flag_defaults_and_choices_are_the_configs():
    defaults = config_lib.TrainConfig._field_defaults
    for name in train_flags() - COMMAND_ONLY:
        flag = flags.FLAGS[name]
        if name == "data_dir":  # None lets evaluate require it; the config's "" means the same
            assert flag.default is None and defaults[name] == ""
        else:
            assert flag.default == defaults[name], name
        if name in config_lib.CHOICES:
            assert tuple(flag.parser.enum_values) == config_lib.CHOICES[name], name
    assert set(config_lib.CHOICES) | set(config_lib.LOWER_BOUNDS) <= set(defaults)


def test_the_flags_left_at_their_defaults_make_the_default_config():
    assert configs.training_config(train._F) == config_lib.TrainConfig()
    config_lib.check_config(config_lib.TrainConfig())  # the defaults pass their own rules


@pytest.mark.parametrize("name, value, words", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_flag_and_the_library_refuse_a_value_with_the_same_words(name, value, words):
    """One rule per setting: the flag's validator at parse time and `check_config` (for
    library callers) say the same thing, naming the flag."""
    with flagsaver.flagsaver(), pytest.raises(flags.IllegalFlagValueError) as parsed:
        flags.FLAGS(["train", f"--{name}={value}"])
    assert f"--{name}=" in str(parsed.value) and words in str(parsed.value)
    with pytest.raises(ConfigError) as checked:
        config_lib.check_config(config_lib.TrainConfig(**{name: value}))
    assert str(checked.value).startswith(f"--{name}={value}: ") and words in str(checked.value)


def test_profile_steps_is_a_range_of_global_steps():
    assert config_lib.profile_range("3, 7") == (3, 7)
    assert config_lib.profile_range("7,3") is None and config_lib.profile_range("") is None


def test_benchmark_shares_the_flags_of_what_a_run_computes():
    assert set(flag_defs.TRAINING) == set(config_lib.TrainConfig._fields) - set(
        config_lib.LOCATION + config_lib.PLACEMENT
    )
