"""README.md and BUILD.md describe the code as it is: its modules and its flags."""

import glob
import importlib
import os
import re

import pytest
from absl import flags

from rps_tfdata.cli import flag_defs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS = ("README.md", "BUILD.md")
# Options of other tools that the docs show (ruff, pip, tensorboard, saved_model_cli,
# tensorflow_model_server).
OTHER_TOOLS = {"check", "upgrade", "quiet", "logdir", "dir", "all", "fast"}
OTHER_TOOLS |= {"rest_api_port", "model_name", "model_base_path"}


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def modules_in_tree():
    found = set()
    for folder, _, names in os.walk(os.path.join(ROOT, "rps_tfdata")):
        for name in names:
            path = os.path.join(folder, name)
            # A package's __init__.py counts when it holds code, not just a docstring.
            if name.endswith(".py") and (name != "__init__.py" or "\ndef " in open(path).read()):
                found.add(os.path.relpath(path, ROOT))
    return found


def modules_in_layout_table():
    """Paths in BUILD.md's layout table; `a/b.py`, `c.py` cells share the first's folder."""
    section = read("BUILD.md").split("## Layout of the code", 1)[1].split("\n## ", 1)[0]
    listed = set()
    for row in section.splitlines():
        if not row.startswith("| `rps_tfdata/"):
            continue
        cell = row.split("|")[1]
        names = re.findall(r"`([\w/]+\.py)`", cell)
        folder = os.path.dirname(names[0])
        listed.update(n if "/" in n else os.path.join(folder, n) for n in names)
    return listed


def test_build_layout_table_lists_exactly_the_modules_in_the_tree():
    assert modules_in_layout_table() == modules_in_tree()


@pytest.mark.parametrize("name", DOCS)
def test_every_flag_the_docs_name_exists(name):
    mentioned = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9_]+)", read(name)))
    known = set(flag_defs._DEFINITIONS) | {"flagfile", "helpfull", "helpshort"} | OTHER_TOOLS
    defined = vars(flag_defs.define(*flag_defs._DEFINITIONS))
    boolean = {n for n in defined if isinstance(flags.FLAGS[n], flags.BooleanFlag)}
    unknown = {m for m in mentioned if m not in known and m.removeprefix("no") not in boolean}
    assert not unknown, f"{name} names flags no command defines: {sorted(unknown)}"


def our_modules() -> dict[str, list[str]]:
    """Short module name -> the dotted modules of that name in the package."""
    found: dict[str, list[str]] = {}
    for path in modules_in_tree():
        dotted = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        found.setdefault(dotted.rsplit(".", 1)[-1], []).append(dotted)
    return found


@pytest.mark.parametrize("name", DOCS)
def test_every_file_the_docs_name_exists(name):
    named = set(re.findall(r"`((?:rps_tfdata|tests|flags|docs)/[\w./*-]+?)[`:\s(]", read(name)))
    missing = [p for p in named if not glob.glob(os.path.join(ROOT, p.rstrip("/")))]
    # A bare `name.py`: a module of the package, or a test file.
    ours = {os.path.basename(p) for p in modules_in_tree()} | set(os.listdir(HERE))
    missing += [f for f in re.findall(r"`(\w+\.py)`", read(name)) if f not in ours]
    assert not missing, f"{name} names files that do not exist: {sorted(missing)}"


@pytest.mark.parametrize("name", DOCS)
def test_every_function_the_docs_name_exists(name):
    """`module.name` of our modules (`images.pil_nearest_indices`, `plan.make_plan`)."""
    modules = our_modules()
    mentioned = set(re.findall(r"`([a-z_]+)\.([A-Za-z_]\w*)[`(]", read(name)))
    files = {"py", "png", "flags", "md", "json", "csv", "h5", "keras", "txt"}  # `train.py`
    unknown = []
    for module, attribute in mentioned:
        if (
            module in modules
            and attribute not in files
            and not any(
                hasattr(importlib.import_module(dotted), attribute) for dotted in modules[module]
            )
        ):
            unknown.append(f"{module}.{attribute}")
    assert not unknown, f"{name} names what no module of that name has: {sorted(unknown)}"
