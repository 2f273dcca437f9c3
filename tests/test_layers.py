"""The package's layers, and which way their imports run (BUILD.md, "Layout of the code"):
the commands and the measuring tools on top, then the trainer, then serving and the
drop-in (`rps_tfdata.image`), then the library (`pipeline`), then `infra`. Read from
every `import` in the code, those inside functions too."""

import ast
import os

import pytest

from .helpers import ROOT, run_python

PACKAGE = os.path.join(ROOT, "rps_tfdata")
# What each part may import of the package (itself included); the library's own parts
# run the same way: options and shards, then reading and transforms, then the pass builder.
LIBRARY_PARTS = {
    "pipeline": {"pipeline"},  # the package itself: a docstring
    "pipeline.options": {"pipeline.options"},
    "pipeline.shards": {"pipeline.shards"},
    "pipeline.transforms": {"pipeline.transforms"},
    "pipeline.reading": {"pipeline.reading", "pipeline.options", "pipeline.shards", "infra"},
}
LIBRARY_PARTS["pipeline.passes"] = {
    "pipeline.passes",
    "pipeline.transforms",
    *LIBRARY_PARTS["pipeline.reading"],
}
PIPELINE = set(LIBRARY_PARTS)
MAY_IMPORT = {
    **LIBRARY_PARTS,
    "infra": {"infra"},
    "image": {"image", *PIPELINE, "infra"},
    "serving": {"serving", *PIPELINE, "infra"},
    "trainer": {"trainer", "serving", *PIPELINE, "infra"},
    "cli": {"cli", "trainer", *PIPELINE, "infra"},
    "bench": {"bench", "trainer", "serving", "image", *PIPELINE, "infra"},
    "commands": None,  # the top: anything
}
LIBRARY = ("rps_tfdata.infra", "rps_tfdata.pipeline", "rps_tfdata.image")


def modules() -> dict[str, str]:
    """Dotted module name -> its file, for every module of the package."""
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT).removesuffix(".py").replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: str, known: set[str]) -> set[str]:
    """The package's modules that `name` imports, anywhere in its code."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def part(module: str) -> str:
    """The layer a module belongs to: its package (the library's part, in the library),
    or "commands" for a module at the top."""
    pieces = module.split(".")[1:]
    if not pieces or not os.path.isdir(os.path.join(PACKAGE, pieces[0])):
        return "commands"
    name = ".".join(pieces[:2]) if pieces[0] == "pipeline" and len(pieces) > 1 else pieces[0]
    assert name in MAY_IMPORT, f"{module} is in no layer of MAY_IMPORT: name its place"
    return name


def test_the_graph_is_read_from_the_code(graph):
    """The walk sees imports at module level and inside functions, plain and relative."""
    assert "rps_tfdata.pipeline.passes" in graph["rps_tfdata.trainer.inputs"]
    assert "rps_tfdata.trainer.training" in graph["rps_tfdata.train"]  # inside main()
    assert part("rps_tfdata.train") == "commands" and part("rps_tfdata.trainer") == "trainer"
    assert part("rps_tfdata.pipeline.reading.prepare") == "pipeline.reading"


def test_each_layer_imports_only_the_layers_below_it(graph):
    upward = [
        f"{module} imports {other}"
        for module, others in graph.items()
        if MAY_IMPORT[part(module)] is not None
        for other in others
        if part(other) not in MAY_IMPORT[part(module)]
    ]
    assert not upward, upward


def test_no_module_imports_itself_round_a_circle(graph):
    def circle_from(start):
        stack = [(start, [start])]
        seen = set()
        while stack:
            module, trail = stack.pop()
            for other in graph[module]:
                if other == start:
                    return trail + [start]
                if other not in seen:
                    seen.add(other)
                    stack.append((other, trail + [other]))
        return None

    circles = [circle for circle in map(circle_from, graph) if circle]
    assert not circles, circles[0]


@pytest.mark.slow
def test_importing_the_drop_in_loads_the_library_and_nothing_of_the_trainer():
    script = (
        "import sys, rps_tfdata.image; "
        "print(*sorted(m for m in sys.modules if m.startswith('rps_tfdata.')))"
    )
    result = run_python(["-c", script], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = result.stdout.split()
    assert "rps_tfdata.pipeline.passes" in loaded and "rps_tfdata.image.generator" in loaded
    assert [m for m in loaded if not m.startswith(LIBRARY)] == []
