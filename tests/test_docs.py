"""README.md, BUILD.md and docs/ describe the code as it is: its modules, flags, files and
functions, and every number or list they quote that the code defines."""

import ast
import configparser
import glob
import importlib
import os
import re

import pytest
from absl import flags

from rps_tfdata import evaluate, export, predict, train  # noqa: F401  (their flags defined)
from rps_tfdata.cli import flag_defs
from rps_tfdata.infra import fs
from rps_tfdata.pipeline.reading import headers
from rps_tfdata.trainer import config as config_lib
from rps_tfdata.trainer import run_state

from .helpers import ROOT

HERE = os.path.join(ROOT, "tests")
DOCS = (
    "README.md",
    "BUILD.md",
    *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))),
)
# Options of other tools that the docs show (ruff, pip, pytest, tensorboard, saved_model_cli,
# tensorflow_model_server).
OTHER_TOOLS = {"check", "upgrade", "quiet", "logdir", "dir", "all", "fast", "dist"}
OTHER_TOOLS |= {"rest_api_port", "model_name", "model_base_path"}


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def _holds_code(path: str) -> bool:
    """Whether a module imports or defines anything (not just a docstring and constants)."""
    kinds = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    return any(isinstance(node, kinds) for node in ast.parse(open(path).read()).body)


def modules_in_tree():
    found = set()
    for folder, _, names in os.walk(os.path.join(ROOT, "rps_tfdata")):
        for name in names:
            path = os.path.join(folder, name)
            # A package's __init__.py counts when it holds code, not just a docstring.
            if name.endswith(".py") and (name != "__init__.py" or _holds_code(path)):
                found.add(os.path.relpath(path, ROOT))
    return found


def section(name, heading):
    """The text of `name` from the heading `heading` to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    return read(name).split(f"\n{heading}\n", 1)[1].split(f"\n{level} ", 1)[0]


def modules_in_layout_table():
    """Paths in BUILD.md's layout table; `a/b.py`, `c.py` cells share the first's folder."""
    listed = set()
    for row in section("BUILD.md", "## Layout of the code").splitlines():
        if not row.startswith("| `rps_tfdata/"):
            continue
        names = re.findall(r"`([\w/]+\.py)`", row.split("|")[1])
        folder = os.path.dirname(names[0])
        listed.update(n if "/" in n else os.path.join(folder, n) for n in names)
    return listed


def test_build_layout_table_lists_exactly_the_modules_in_the_tree():
    assert modules_in_layout_table() == modules_in_tree()


@pytest.mark.parametrize("name", DOCS)
def test_every_flag_the_docs_name_exists(name):
    mentioned = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9_]+)", read(name)))
    known = set(flag_defs.NAMES) | {"flagfile", "helpfull", "helpshort"} | OTHER_TOOLS
    defined = vars(flag_defs.define(*flag_defs.NAMES))
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
    folder = os.path.dirname(os.path.join(ROOT, name))
    for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", read(name)):  # relative links
        if not os.path.exists(os.path.join(folder, link)):
            missing.append(link)
    assert not missing, f"{name} names files that do not exist: {sorted(missing)}"


@pytest.mark.parametrize("name", DOCS)
def test_every_function_the_docs_name_exists(name):
    """`module.name` of our modules (`decode.pil_nearest_indices`, `plan.make_plan`)."""
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


def test_every_page_of_docs_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", read("README.md")))
    pages = {name for name in DOCS if name.startswith("docs/")}
    assert linked == pages


def flag_table_rows(table: str) -> dict[str, str]:
    """flag name -> its default cell, for the rows of one README table."""
    rows = {}
    for line in table.splitlines():
        found = re.match(r"\| `--(\w+)` \| ([^|]*) \|", line)
        if found:
            rows[found.group(1)] = found.group(2).strip()
    return rows


def as_cell(value) -> str:
    """A default as README's flag tables write it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unset"
    if value == "":
        return "none"
    if isinstance(value, str):
        return f"`{value.replace(os.path.expanduser('~'), '~')}`"
    return repr(value)


def test_readme_flag_tables_hold_every_train_flag_once_with_its_default():
    text = section("docs/flags.md", "## The flags of `train`")
    computes, elsewhere = (flag_table_rows(t) for t in text.split("\n\n", 1))
    assert not set(computes) & set(elsewhere)
    assert set(computes) | set(elsewhere) == set(vars(train._F))
    # The second table: what a rerun may change, where the run is, and the command's own.
    assert set(elsewhere) == set(config_lib.MAY_CHANGE) - {"epochs"} | {"model_dir", "overwrite"}
    assert "epochs" in computes  # the one setting a rerun may change that is in the first
    defaults = {**config_lib.TrainConfig._field_defaults, "overwrite": False}
    for name, cell in {**computes, **elsewhere}.items():
        assert cell == as_cell(defaults[name]), f"--{name}: README says {cell}"


def quoted(pattern: str) -> list[str]:
    """Every capture of `pattern` in the docs (a number or a list the code defines)."""
    return [found for name in DOCS for found in re.findall(pattern, read(name))]


@pytest.mark.parametrize(
    "pattern, value",
    [
        (r"([\d,]+) requests at a time", f"{fs.REMOTE_REQUESTS}"),
        (r"counted every ([\d,]+) files", f"{fs.PROGRESS_EVERY}"),
        (r"newest (\d+) saves", f"{run_state.KEEP}"),
        (r"PIL's limit of\s+([\d,]+)", f"{headers.MAX_IMAGE_PIXELS:,}"),
        (r"more\s+than ([\d,]+) pixels", f"{headers.MAX_IMAGE_PIXELS:,}"),
        (r"exits with status \*\*(\d+)\*\*", f"{predict.SKIPPED_EXIT}"),
    ],
)
def test_numbers_the_docs_quote_are_the_codes(pattern, value):
    found = quoted(pattern)
    assert found and set(found) == {value}, f"{pattern}: the docs say {found}, the code {value}"


def test_the_columns_of_history_csv_are_the_codes():
    row = next(r for r in read("README.md").splitlines() if r.startswith("| `history.csv` |"))
    assert tuple(re.findall(r"`(\w+)`", row.split("|")[2])) == run_state.HISTORY_COLUMNS


def test_the_console_scripts_readme_names_are_setup_cfgs():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    scripts = {line.split("=")[0].strip() for line in lines}
    install = section("README.md", "## The two commands")
    assert set(re.findall(r"\b(rps-[a-z-]+)\b", install)) == scripts


def test_readme_flag_table_of_the_other_commands_gives_their_defaults():
    rows = flag_table_rows(section("docs/serving.md", "## Their flags"))
    assert {"json", "top_k", "format", "tflite", "tflite_quantize"} <= set(rows)
    for name, cell in rows.items():
        assert cell == as_cell(flags.FLAGS[name].default), f"--{name}: README says {cell}"
