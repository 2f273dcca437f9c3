"""Every flag of every command, defined in one place, and defined only when a command asks.

A command calls `define(...)` with the names of the flags it reads, at import, and so
accepts those and no others (`evaluate --epochs=3` is an unknown flag). Defining a name
twice returns the same holder, so entry points imported together (the tests) share them.
A training setting's flag is built from `rps_tfdata.trainer.config`: its type and default
from `TrainConfig`, its choices from `CHOICES`, and a validator that asks
`config.setting_problem`, so a bad value stops the command at parse time with the same
words the library's `check_config` uses. Only the help text is written here. No
TensorFlow is imported: commands start it quietly once the flags are parsed.
"""

import functools
import types
from typing import Callable, Optional

from absl import flags

from rps_tfdata.trainer import config as config_lib
from rps_tfdata.trainer import download

# The help of each training setting (`python -m rps_tfdata.train --helpfull`).
SETTING_HELP = {
    "data_dir": "Folder with one subfolder of images per class (the flow_from_directory "
    "layout). Training without it downloads the official rps.zip.",
    "test_dir": "Optional held-out folder (same classes) evaluated at the end. Without "
    "--data_dir, the official rps-test-set.zip is used.",
    "model_dir": "Folder of the run: training writes its artifacts here; evaluate and "
    "predict load the model from here.",
    "dataset": "folder: --data_dir (or the downloaded rps.zip); tfds: TensorFlow Datasets' "
    "prepared rock_paper_scissors (its train split for training and validation, its test "
    "split for the test set).",
    "download_dir": "Where downloaded zips, their extracted folders and generated synthetic "
    "sets are kept and reused (not the decoded-image cache: see --image_cache).",
    "base_url": "Mirror of the dataset zips (default "
    f"${download.BASE_URL_ENV}, else the official bucket).",
    "tfds_data_dir": "Where TFDS keeps prepared datasets (default: TFDS's own).",
    "epochs": "Passes over the training subset.",
    "batch_size": "Images per batch (the global batch, split among replicas).",
    "image_size": "Images are resized to this square side (large enough for the CNN's four "
    "conv/pool stages).",
    "validation_split": "Fraction of each class (its first files, as IDG) held out for "
    "validation, in (0, 1).",
    "learning_rate": "Adam's learning rate, > 0 (the peak of --lr_schedule).",
    "lr_schedule": "The learning rate over the run's steps: constant (the seed's), or cosine "
    "(after any warmup, down to 0 at the last step of --epochs; such a run cannot be "
    "continued to another --epochs).",
    "warmup_epochs": "Epochs over which the learning rate rises linearly from 0 to "
    "--learning_rate, step by step; 0: none.",
    "label_smoothing": "Share of each training label spread evenly over the classes, in "
    "[0, 1); the validation and test losses stay unsmoothed.",
    "class_weight": "none, or balanced: each class's images weigh n / (classes * the "
    "class's count) in the training loss (counts of the training split's listing).",
    "early_stopping_patience": "End the run after this many epochs without a val_loss lower "
    "than the best by more than --early_stopping_min_delta; 0: train every epoch.",
    "early_stopping_min_delta": "How much lower than the best val_loss counts as better for "
    "--early_stopping_patience.",
    "seed": "Random seed of everything random in the command; the same seed repeats the result.",
    "augment": "idg: the seed's ImageDataGenerator augmentation, fused into one warp; none.",
    "augment_validation": "Augment the validation images too, as the seed script does by "
    "accident (makes val_loss, and so the best checkpoint, noisy). Needs --augment_on=host.",
    "augment_on": "host: augment in the tf.data pipeline; device: inside the train step "
    "(XLA-compiled warp); auto: device when a GPU is visible, else host.",
    "jit_augment": "Compile each batch's augmentation with XLA (gather warp); off: the stock "
    "projective-transform op, uncompiled (not allowed inside an XLA train step).",
    "mixed_precision": "Compute dtype policy of the CNN (the softmax stays float32). "
    "mixed_float16 adds loss scaling; mixed_bfloat16 suits recent GPUs, TPUs and CPUs with "
    "AMX.",
    "jit_compile": "XLA for the model's train step: auto (Keras: on when a GPU is visible, "
    "off on CPUs, where it measured slower), true, false.",
    "resize_method": "pil_nearest matches IDG (PIL NEAREST) exactly up to 4,096-pixel sides; "
    "bilinear and area are smoother.",
    "deterministic": "Keep tf.data's element order deterministic (repeatable runs); unset: "
    "yes, except with --data_service, whose workers deliver as they finish.",
    "on_bad_image": "An image file that cannot be read (empty, truncated, not an image, "
    "TIFF/PPM, over PIL's pixel limit, corrupt): skip it, naming it and the reason, or fail "
    "before any training step, listing every such file.",
    "checkpoint_every": "Also save the run every this many steps inside an epoch (0: only at "
    "its end), so that a killed run loses at most that many steps; a rerun continues at the "
    "saved step, with the same final weights as a run never stopped.",
    "steps_per_loop": "Train steps run in one compiled call (Keras' steps_per_execution): the "
    "host reads the loss, the stop requests and the progress once per call, not once per "
    "step. The final weights are those of 1, bit for bit; a stop (SIGTERM) takes effect at "
    "the end of the call. Not with --data_service.",
    "profile_steps": "A,B: write a TensorBoard profiler trace of global train steps A to B "
    "(from 1) into MODEL_DIR/logs (open with `tensorboard --logdir MODEL_DIR/logs`, Profile "
    "tab); empty: no trace.",
    "image_cache": "Where decoded, resized uint8 images are kept after the first epoch: "
    "memory (about 170 MB at 150x150), disk (files under MODEL_DIR/tf_data_cache), or none "
    "(decode every epoch); auto: memory if the decoded images fit beside training (else "
    "disk), or none with --data_service.",
    "parallel_calls": "Parallelism of the decode and augment maps; -1: tf.data AUTOTUNE.",
    "threadpool_size": "Threads of a private tf.data pool; 0: TensorFlow's shared pool.",
    "prefetch": "Batches prefetched ahead of the model; -1: tf.data AUTOTUNE.",
    "strategy": "one_device; mirrored (every local GPU, else every logical CPU); "
    "multi_worker (MultiWorkerMirroredStrategy over the cluster in $TF_CONFIG); auto: "
    "mirrored when several GPUs are visible, else one_device. --batch_size stays the global "
    "batch, split evenly among the replicas.",
    "cpu_devices": "Split the CPU into this many logical devices, so that "
    "--strategy=mirrored can be tried on a machine without GPUs.",
    "peer_timeout": "--strategy=multi_worker: seconds a step waits for the other workers "
    "before it fails; a lost or hung worker then stops every worker with one line, the "
    "finished work saved.",
    "data_service": "grpc://HOST:PORT of a tf.data service dispatcher: its workers read, "
    "decode and augment the training images (the image cache is then none or disk, and the "
    "order nondeterministic).",
    "data_service_timeout": "Seconds a trainer (--data_service) or a service worker goes on "
    "without an answer from the dispatcher before it stops with one line; the finished "
    "epochs are saved, and the same command continues the run. Covers a dispatcher restart "
    "(--work_dir).",
    "data_service_compression": "How batches cross from the tf.data service's workers to the "
    "trainer: auto (TensorFlow's default, snappy today), snappy (forced), none (for a fast "
    "network: saves the workers' and the trainer's CPU).",
}
# The benchmark's modes (`rps_tfdata.bench.measurements` measures each).
BENCHMARK_MODES = (
    "pipeline",
    "step",
    "e2e",
    "all",
    "parity",
    "memory",
    "service",
    "serving",
    "fit",
    "first_batch",
)


def _define_setting(name: str) -> flags.FlagHolder:
    """The flag of a `TrainConfig` field: its type, default and choices from there, and
    a validator that asks `config.setting_problem` (one home for the rule)."""
    default = config_lib.TrainConfig._field_defaults[name]
    kind = config_lib.TrainConfig.__annotations__[name]
    help_text = SETTING_HELP[name]
    if name == "data_dir":
        default = None  # TrainConfig's "" (the official set); None lets evaluate require it
    if name in config_lib.CHOICES:
        holder = flags.DEFINE_enum(name, default, config_lib.CHOICES[name], help_text)
    elif kind in (bool, Optional[bool]):
        holder = flags.DEFINE_bool(name, default, help_text)
    elif kind is int:
        holder = flags.DEFINE_integer(name, default, help_text)
    elif kind is float:
        holder = flags.DEFINE_float(name, default, help_text)
    else:
        holder = flags.DEFINE_string(name, default, help_text)

    def valid(value) -> bool:
        problem = None if value is None else config_lib.setting_problem(name, value)
        if problem:
            raise flags.ValidationError(problem)
        return True

    flags.register_validator(name, valid)
    return holder


_OTHERS: dict[str, Callable[[], flags.FlagHolder]] = {
    "out": lambda: flags.DEFINE_string("out", None, "Where to write (required)."),
    "json": lambda: flags.DEFINE_string(
        "json", None, "Also write the results as JSON to this file."
    ),
    "saved_model": lambda: flags.DEFINE_string(
        "saved_model",
        None,
        "predict: classify with this exported SavedModel (MODEL_DIR/export/1) instead of "
        "the run in --model_dir.",
    ),
    "tflite": lambda: flags.DEFINE_bool(
        "tflite",
        False,
        "export: also write a TensorFlow Lite model (uint8 pixels at the training size in, "
        "probabilities out) with labels.txt into MODEL_DIR/tflite/.",
    ),
    "tflite_quantize": lambda: flags.DEFINE_enum(
        "tflite_quantize",
        "none",
        ["none", "float16", "dynamic"],
        "export --tflite: float32 weights (none), float16 (half the size) or dynamic "
        "(int8 weights, a quarter).",
    ),
    "top_k": lambda: flags.DEFINE_integer(
        "top_k", 1, "predict: the most probable classes to print per image.", lower_bound=1
    ),
    "format": lambda: flags.DEFINE_enum(
        "format",
        "tsv",
        ["tsv", "jsonl"],
        "predict: tsv (path, class, probability per line) or jsonl (one JSON object per "
        "line: path, classes, probabilities, or why the file was skipped).",
    ),
    "overwrite": lambda: flags.DEFINE_bool(
        "overwrite",
        False,
        "Replace a run of other settings in --model_dir (its artifacts only) instead of "
        "refusing; without it a rerun continues or reports the run already there.",
    ),
    # The tf.data service's own processes.
    "dispatcher": lambda: flags.DEFINE_bool("dispatcher", False, "Run a dispatcher."),
    "worker": lambda: flags.DEFINE_bool("worker", False, "Run a worker."),
    "port": lambda: flags.DEFINE_integer(
        "port", 0, "Port to serve on; 0 picks a free one (printed).", lower_bound=0
    ),
    "work_dir": lambda: flags.DEFINE_string(
        "work_dir", None, "dispatcher: journal its state here to survive a restart."
    ),
    "dispatcher_address": lambda: flags.DEFINE_string(
        "dispatcher_address", None, "worker: the dispatcher's HOST:PORT."
    ),
    "worker_host": lambda: flags.DEFINE_string(
        "worker_host",
        "localhost",
        "worker: the name or address trainers reach this worker at (the default serves "
        "trainers on this machine only); its port is --port's, or the one picked.",
    ),
    "worker_timeout": lambda: flags.DEFINE_float(
        "worker_timeout",
        10.0,
        "dispatcher: seconds of silence after which a worker is dropped (a trainer waits "
        "at most about this long for a worker that died).",
        lower_bound=0.1,
    ),
    # The synthetic set.
    "per_class": lambda: flags.DEFINE_integer(
        "per_class", 840, "Synthetic images per class (the real set has 840).", lower_bound=1
    ),
    "size": lambda: flags.DEFINE_integer(
        "size", 300, "Synthetic image side in pixels (the real set's is 300).", lower_bound=8
    ),
    # The measuring tools.
    "mode": lambda: flags.DEFINE_enum(
        "mode", "all", BENCHMARK_MODES, "benchmark: what to measure (see its module doc)."
    ),
    "baseline": lambda: flags.DEFINE_enum(
        "baseline", "idg", ["none", "idg"], "Also measure the seed's ImageDataGenerator pipeline."
    ),
    "repeats": lambda: flags.DEFINE_integer(
        "repeats", 3, "Repeats of each measurement (parity: runs per pipeline).", lower_bound=1
    ),
    "steady_epochs": lambda: flags.DEFINE_integer(
        "steady_epochs", 3, "pipeline: cached epochs timed after the cold one.", lower_bound=1
    ),
    "e2e_epochs": lambda: flags.DEFINE_integer(
        "e2e_epochs",
        2,
        "e2e: epochs of the training loop, the first a warm-up; fit: epochs of each route.",
        lower_bound=2,
    ),
    "steps": lambda: flags.DEFINE_integer(
        "steps", 12, "step: train steps per repeat.", lower_bound=4
    ),
    "window": lambda: flags.DEFINE_integer(
        "window", 10, "e2e: batches per timed window.", lower_bound=2
    ),
    "data_service_workers": lambda: flags.DEFINE_integer(
        "data_service_workers",
        2,
        "service: measure with 0, 1, ... this many local tf.data service workers.",
        lower_bound=1,
    ),
    "num_images": lambda: flags.DEFINE_integer(
        "num_images", 6, "preview: columns, one image each.", lower_bound=1
    ),
}

# Every flag name any command can define.
NAMES = (*config_lib.TrainConfig._fields, *_OTHERS)
# The flags of what a run computes and how fast: every `TrainConfig` field but where the
# data and the run are and what it runs on (`train` defines those too).
TRAINING = tuple(
    name
    for name in config_lib.TrainConfig._fields
    if name not in config_lib.LOCATION + config_lib.PLACEMENT
)


@functools.cache
def _holder(name: str) -> flags.FlagHolder:
    if name in config_lib.TrainConfig._fields:
        return _define_setting(name)
    return _OTHERS[name]()


def define(*names: str) -> types.SimpleNamespace:
    """Defines the named flags (once per process) and returns their holders by name."""
    return types.SimpleNamespace(**{name: _holder(name) for name in names})


def holders(namespace: types.SimpleNamespace) -> list[flags.FlagHolder]:
    """The holders of a `define` result, for `command.serialize_flags`."""
    return list(vars(namespace).values())
