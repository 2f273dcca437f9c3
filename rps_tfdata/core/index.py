"""File listing and train/validation split, identical to Keras' `flow_from_directory`.

The seed script splits with `ImageDataGenerator(validation_split=0.2)`: per class, files
in `os.walk` order, the FIRST `int(split * n)` files are validation and the rest training.
Reproducing that exactly keeps our validation set the one the seed reported on. The
deliberate differences: class folders whose name starts with "." (`.ipynb_checkpoints`,
`.git`) and known junk folders (`__MACOSX`, which macOS's zip adds beside the real ones)
are not classes here, while IDG would count them, shifting every label.
"""

import os
from typing import Iterator, NamedTuple, Sequence

from rps_tfdata.core import storage
from rps_tfdata.core.errors import DatasetLayoutError

# The extensions IDG accepts, compared with `name.lower().endswith(...)`. No GIF.
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")
SUBSETS = ("training", "validation")
# Folders that archivers add beside the real ones: never a class.
JUNK_FOLDERS = ("__MACOSX",)


class Split(NamedTuple):
    """One subset of a class-per-folder dataset.

    Attributes:
      paths: image file paths, in IDG's order (class by class, walk order within).
      labels: integer class index of each path.
      class_names: folder names; a label indexes this list.
    """

    paths: list[str]
    labels: list[int]
    class_names: list[str]


def list_classes(directory: str) -> list[str]:
    """Returns the class folder names of `directory` in IDG's (code-point) order."""
    if not storage.isdir(directory):
        raise DatasetLayoutError(
            f"data folder {directory!r} does not exist or is not a folder; pass a folder "
            "with one subfolder of images per class"
        )
    return sorted(
        name
        for name in storage.listdir(directory)
        if not name.startswith(".")
        and name not in JUNK_FOLDERS
        and storage.isdir(os.path.join(directory, name))
    )


def junk_folders(directory: str) -> list[str]:
    """The known junk folders in `directory` (left out of the classes, for the log)."""
    return [name for name in JUNK_FOLDERS if storage.isdir(os.path.join(directory, name))]


def is_image_file(name: str) -> bool:
    """Whether IDG would read a file of this name as an image."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def iter_image_files(folder: str) -> Iterator[str]:
    """Yields the image paths under `folder`, recursively, in IDG's walk order.

    IDG sorts the `os.walk` entries by their root path string (not depth-first by
    name) and the file names within each root; symlinked subfolders are not followed.
    """
    for root, _, files in sorted(storage.walk(folder), key=lambda entry: entry[0]):
        for name in sorted(files):
            if is_image_file(name):
                yield os.path.join(root, name)


def validation_count(num_files: int, validation_split: float) -> int:
    """Number of a class's files that go to validation (IDG truncates)."""
    return int(validation_split * num_files)


def check_validation_split(validation_split: float) -> float:
    """Returns `validation_split` if it is in (0, 1); raises ValueError naming it otherwise.

    Training keeps the weights with the best validation loss, so the split is never 0;
    a set listed whole (a test set) goes through `list_all`.
    """
    if not 0 < validation_split < 1:
        raise ValueError(
            f"validation_split must be in (0, 1), the fraction of each class held out for "
            f"validation. Received: {validation_split}"
        )
    return validation_split


def _list_classes_and_files(directory: str) -> tuple[list[str], list[list[str]]]:
    class_names = list_classes(directory)
    if not class_names:
        raise DatasetLayoutError(
            f"data folder {directory!r} has no class subfolders; put the images of each "
            "class in a subfolder named for the class"
        )
    # One listing per class folder, many at once on a remote file system (a bucket's
    # listing pages take tens of milliseconds each).
    folders = [os.path.join(directory, name) for name in class_names]
    return class_names, storage.for_each(lambda folder: list(iter_image_files(folder)), folders)


def _split_of(class_names: list[str], files_by_class: list[list[str]], pick) -> Split:
    paths: list[str] = []
    labels: list[int] = []
    for label, files in enumerate(files_by_class):
        chosen = pick(files)
        paths.extend(chosen)
        labels.extend([label] * len(chosen))
    return Split(paths, labels, class_names)


def list_all(directory: str) -> Split:
    """Every image of a class-per-folder `directory` (a test set), in IDG's order.

    Raises:
      DatasetLayoutError: `directory` is missing or has no class folders.
    """
    return _split_of(*_list_classes_and_files(directory), lambda files: files)


def list_split(directory: str, validation_split: float = 0.2, subset: str = "training") -> Split:
    """Lists one subset of `directory` exactly as `flow_from_directory` does.

    Args:
      directory: a folder with one subfolder of images per class.
      validation_split: fraction of each class held out for validation, in (0, 1).
      subset: "training" or "validation".

    Returns:
      The subset's paths, labels and the class names.

    Raises:
      DatasetLayoutError: `directory` is missing or has no class folders.
      ValueError: `validation_split` or `subset` is out of range.
    """
    check_validation_split(validation_split)
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}. Received: {subset!r}")

    def pick(files: list[str]) -> list[str]:
        cut = validation_count(len(files), validation_split)
        return files[:cut] if subset == "validation" else files[cut:]

    return _split_of(*_list_classes_and_files(directory), pick)


def check_same_classes(expected: Sequence[str], found: Sequence[str], directory: str) -> None:
    """Raises DatasetLayoutError unless `directory`'s classes are `expected`, in order."""
    if list(expected) != list(found):
        raise DatasetLayoutError(
            f"data folder {directory!r} has classes {list(found)}, but the model was "
            f"trained on {list(expected)}; use a folder with the same class subfolders"
        )
