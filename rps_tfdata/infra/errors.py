"""Errors a user can fix: a wrong path, a broken download, settings that cannot work.

Entry points report a `UserError` as one line naming the file or flag at fault, without a
traceback; anything else is a bug and keeps its traceback. No TensorFlow here, so the
command-line layer can catch these without importing it.
"""


class UserError(Exception):
    """Base of every error whose message tells the user what to change."""


class ConfigError(UserError, ValueError):
    """Settings that cannot work together."""


class DatasetLayoutError(UserError, ValueError):
    """A data folder is missing or not laid out as one subfolder per class."""


class DownloadError(UserError, RuntimeError):
    """A download failed or did not match its pinned size and checksum."""


class RunNotFoundError(UserError, FileNotFoundError):
    """A model folder does not hold a finished run."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or folder named on the command line does not exist or holds no images."""


class BadImagesError(UserError):
    """Unreadable image files, under the policy that such files stop the run."""


class TrainingStoppedError(UserError):
    """Training stopped before its last epoch (a signal, or a loss that is not finite)."""


class FolderInUseError(UserError):
    """A model folder is held by another live training run."""


class CheckpointError(UserError):
    """No saved training state of a run can be read back."""
