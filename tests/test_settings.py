"""A training setting is named once: the flag, the config field, what a run records, what a
rerun may change, and README's table all agree."""

import os
import re

from absl import flags

from rps_tfdata import train
from rps_tfdata.cli import configs, flag_defs
from rps_tfdata.core import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND_ONLY = {"overwrite"}  # what the command does with the folder, not a setting


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


def test_flag_defaults_are_the_config_defaults():
    defaults = config_lib.TrainConfig._field_defaults
    for name in train_flags() - COMMAND_ONLY:
        default = flags.FLAGS[name].default
        if name == "data_dir":  # None lets evaluate require it; the config's "" means the same
            assert default is None and defaults[name] == ""
        else:
            assert default == defaults[name], name


def test_the_flags_left_at_their_defaults_make_the_default_config():
    assert configs.training_config(train._F) == config_lib.TrainConfig()


def test_benchmark_shares_the_flags_of_what_a_run_computes():
    assert set(flag_defs.TRAINING) == set(config_lib.TrainConfig._fields) - set(
        config_lib.LOCATION + config_lib.PLACEMENT
    )


def test_readme_flag_table_lists_every_train_flag():
    with open(os.path.join(ROOT, "README.md")) as f:
        section = f.read().split("## Main flags of `train`", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`--([a-z_]+)`", section))
    missing = train_flags() - listed
    assert not missing, f"README's flag table misses {sorted(missing)}"
