"""list_split against Keras' own flow_from_directory, on folders that stress the listing."""

import os

import pytest
from tensorflow.keras.preprocessing.image import ImageDataGenerator

from rps_tfdata.pipeline.reading import listing


def touch(root, *relative_paths):
    for relative in relative_paths:
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()


def idg_listing(directory, validation_split, subset):
    generator = ImageDataGenerator(validation_split=validation_split).flow_from_directory(
        directory, subset=subset, shuffle=False, class_mode="categorical"
    )
    names = [None] * len(generator.class_indices)
    for name, i in generator.class_indices.items():
        names[i] = name
    return generator.filepaths, list(generator.classes), names


@pytest.fixture
def awkward_dir(tmp_path):
    """Mixed-case extensions, nesting, non-images, a GIF, classes of 1 to 8 files."""
    root = str(tmp_path / "data")
    touch(
        root,
        "Zebra/a.PNG",
        "Zebra/b.Jpg",
        "Zebra/c.jpeg",
        "Zebra/notes.txt",
        "Zebra/anim.gif",
        "Zebra/sub/z.png",
        "Zebra/sub b/y.bmp",
        "Zebra/sub/deeper/x.tif",
        "Zebra/sub-c/w.ppm",
        "apple/1.png",
        "banana/1.png",
        "banana/2.png",
        "banana/10.png",
        "banana/B.png",
        "banana/_.png",
        "cherry/n/q.TIFF",
        "cherry/r.png",
        "cherry/s.png",
        "cherry/t.png",
        "cherry/u.png",
        "cherry/v.png",
        "cherry/w.png",
        "Éclair/é.png",
        "Éclair/e.png",
        "Éclair/f.png",
        "Éclair/ö.png",
        "Éclair/z.png",
    )
    touch(root, *[f"c{n}/{i}.png" for n in (2, 3, 4, 6) for i in range(n)])
    os.makedirs(os.path.join(root, "empty"))
    touch(root, "loose_file.png")
    return root


@pytest.mark.parametrize("subset", ["training", "validation"])
@pytest.mark.parametrize("validation_split", [0.2, 0.25, 0.5, 0.3])
def test_list_split_equals_flow_from_directory(awkward_dir, subset, validation_split):
    ours = listing.list_split(awkward_dir, validation_split, subset)
    paths, labels, names = idg_listing(awkward_dir, validation_split, subset)
    assert ours.class_names == names
    assert ours.paths == paths
    assert ours.labels == labels


def test_whole_folder_with_zero_split_equals_idg(awkward_dir):
    ours = listing.list_all(awkward_dir)
    paths, labels, _ = idg_listing(awkward_dir, 0.0, None)
    assert (ours.paths, ours.labels) == (paths, labels)


def test_class_order_is_code_point_order(awkward_dir):
    names = listing.list_split(awkward_dir).class_names
    # Code-point order: upper case before lower case, accented letters last (a locale-aware
    # sort would give apple, banana, ..., Éclair, Zebra).
    assert names == [
        "Zebra",
        "apple",
        "banana",
        "c2",
        "c3",
        "c4",
        "c6",
        "cherry",
        "empty",
        "Éclair",
    ]


def test_first_fifth_of_each_class_is_validation(tmp_path):
    root = str(tmp_path)
    touch(root, *[f"a/{i:02d}.png" for i in range(10)], *[f"b/{i}.png" for i in range(4)])
    validation = listing.list_split(root, 0.2, "validation")
    assert [os.path.basename(p) for p in validation.paths] == ["00.png", "01.png"]
    assert validation.labels == [0, 0]  # b has 4 files: int(0.8) = 0 for validation


def test_hidden_class_folders_are_skipped_unlike_idg(awkward_dir):
    touch(awkward_dir, ".ipynb_checkpoints/x.png")
    ours = listing.list_all(awkward_dir)
    _, _, idg_names = idg_listing(awkward_dir, 0.0, None)
    assert ".ipynb_checkpoints" in idg_names
    assert ".ipynb_checkpoints" not in ours.class_names
    assert ours.class_names == [n for n in idg_names if not n.startswith(".")]


def test_missing_folder_names_it(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(listing.DatasetLayoutError, match="nope"):
        listing.list_split(missing)


def test_folder_without_classes_is_an_error(tmp_path):
    touch(str(tmp_path), "x.png")
    with pytest.raises(listing.DatasetLayoutError, match="no class subfolders"):
        listing.list_split(str(tmp_path))


def test_an_unknown_subset_is_rejected(tmp_path):
    touch(str(tmp_path), "a/x.png")
    with pytest.raises(ValueError, match="Invalid subset name: 'test'"):
        listing.list_split(str(tmp_path), 0.2, "test")


def test_check_same_classes_names_the_folder():
    listing.check_same_classes(["a", "b"], ["a", "b"], "d")
    with pytest.raises(listing.DatasetLayoutError, match="'d' has classes"):
        listing.check_same_classes(["a", "b"], ["b", "a"], "d")
