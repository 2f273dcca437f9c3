"""A class-per-folder data set listed once, and split as Keras' `flow_from_directory` splits.

The seed script splits with `ImageDataGenerator(validation_split=0.2)`: per class, files
in `os.walk` order, the FIRST `int(split * n)` files are validation and the rest training.
Reproducing that exactly keeps our validation set the one the seed reported on. A folder
is listed once (`list_folder`); its subsets and the whole set are taken from that one
listing, so a bucket is asked for each page of it once per start.
The deliberate differences from IDG: class folders whose name starts with "."
(`.ipynb_checkpoints`, `.git`) and known junk folders (`__MACOSX`, which macOS's zip adds
beside the real ones) are not classes here, while IDG would count them, shifting every
label.
"""

import os
from typing import Iterator, NamedTuple, Optional, Sequence

from rps_tfdata.infra import fs
from rps_tfdata.infra.errors import DatasetLayoutError

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


class Listing(NamedTuple):
    """A folder as listed once: its classes in IDG's order, each class's image files in
    IDG's walk order, and the junk folders left out of the classes."""

    directory: str
    class_names: list[str]
    files_by_class: list[list[str]]
    junk: list[str]

    @property
    def paths(self) -> list[str]:
        """Every image file, class by class."""
        return [path for files in self.files_by_class for path in files]


def is_image_file(name: str) -> bool:
    """Whether IDG would read a file of this name as an image."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def iter_image_files(folder: str, follow_links: bool = False) -> Iterator[str]:
    """Yields the image paths under `folder`, recursively, in IDG's walk order.

    IDG sorts the `os.walk` entries by their root path string (not depth-first by
    name) and the file names within each root; symlinked subfolders are followed only
    with `follow_links`.
    """
    walked = fs.walk(folder, follow_links)
    for root, _, files in sorted(walked, key=lambda entry: entry[0]):
        for name in sorted(files):
            if is_image_file(name):
                yield os.path.join(root, name)


def list_folder(
    directory: str, *, classes: Optional[Sequence[str]] = None, follow_links: bool = False
) -> Listing:
    """Lists `directory`'s classes (code-point order, as IDG) and their image files.

    Args:
      directory: a folder with one subfolder of images per class.
      classes: the class subfolders to read, in label order (IDG's `classes`); default
        every subfolder but hidden and archivers' ones.
      follow_links: follow symlinked subfolders (IDG's `follow_links`).

    Raises:
      DatasetLayoutError: `directory` is missing or has no class folders.
    """
    if not fs.isdir(directory):
        raise DatasetLayoutError(
            f"data folder {directory!r} does not exist or is not a folder; pass a folder "
            "with one subfolder of images per class"
        )
    if classes is not None:
        folders = class_names = list(classes)
    else:
        folders = sorted(
            name
            for name in fs.listdir(directory)
            if not name.startswith(".") and fs.isdir(os.path.join(directory, name))
        )
        class_names = [name for name in folders if name not in JUNK_FOLDERS]
    if not class_names:
        raise DatasetLayoutError(
            f"data folder {directory!r} has no class subfolders; put the images of each "
            "class in a subfolder named for the class"
        )
    # One listing per class folder, many at once on a remote file system (a bucket's
    # listing pages take tens of milliseconds each).
    paths = [os.path.join(directory, name) for name in class_names]
    files_by_class = fs.for_each(lambda folder: list(iter_image_files(folder, follow_links)), paths)
    junk = [] if classes is not None else [name for name in folders if name in JUNK_FOLDERS]
    return Listing(directory, class_names, files_by_class, junk)


def validation_count(count: int, validation_split: float) -> int:
    """How many of `count` files or rows go to validation (IDG truncates)."""
    return int(validation_split * count)


def split_rows(count: int, validation_split: float, subset: Optional[str]) -> slice:
    """IDG's split, the one rule every reader follows: of `count` files (a class's, a
    frame's, an array's), the first `validation_count` are the validation subset and the
    rest the training subset; `subset` None takes them all.

    Raises:
      ValueError: `subset` is not one of `SUBSETS` (IDG's message).
    """
    if subset is None:
        return slice(0, count)
    if subset not in SUBSETS:
        raise ValueError(f'Invalid subset name: {subset!r}; expected "training" or "validation"')
    cut = validation_count(count, validation_split)
    return slice(0, cut) if subset == "validation" else slice(cut, count)


def _split_of(listing: Listing, pick) -> Split:
    paths: list[str] = []
    labels: list[int] = []
    for label, files in enumerate(listing.files_by_class):
        chosen = pick(files)
        paths.extend(chosen)
        labels.extend([label] * len(chosen))
    return Split(paths, labels, listing.class_names)


def subset(listing: Listing, validation_split: float, name: Optional[str]) -> Split:
    """The subset `name` ("training", "validation", or None: every file) of the
    listing, as `flow_from_directory(subset=name)` gives it for this `validation_split`:
    IDG splits each class (`split_rows`)."""
    return _split_of(listing, lambda files: files[split_rows(len(files), validation_split, name)])


def list_all(directory: str) -> Split:
    """Every image of `directory`, in IDG's order: a test set, or the files to classify."""
    return subset(list_folder(directory), 0.0, None)


def list_split(directory: str, validation_split: float = 0.2, name: str = "training") -> Split:
    """`subset(list_folder(directory), ...)`, for callers that need one subset."""
    return subset(list_folder(directory), validation_split, name)


def check_same_classes(expected: Sequence[str], found: Sequence[str], directory: str) -> None:
    """Raises DatasetLayoutError unless `directory`'s classes are `expected`, in order."""
    if list(expected) != list(found):
        raise DatasetLayoutError(
            f"data folder {directory!r} has classes {list(found)}, but the model was "
            f"trained on {list(expected)}; use a folder with the same class subfolders"
        )
