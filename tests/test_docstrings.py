"""Docstrings and comments name what exists: a reference written as code (in backquotes)
to one of the package's modules, classes or functions must resolve, so that a rename
that leaves the old name behind in prose fails here."""

import ast
import builtins
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rps_tfdata"
# `module.name`, `Class.member`, `function()`: a dotted name, or a call, in backquotes.
REFERENCE = re.compile(r"`((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)(\(\))?`")


def _parsed() -> dict[str, tuple[ast.Module, str]]:
    """Each module of the package by its dotted name: its tree and its source."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
        source = path.read_text()
        modules[name.removesuffix(".__init__")] = (ast.parse(source), source)
    return modules


def _bound(body: list[ast.stmt]) -> set[str]:
    """The names a module's or a class's body binds."""
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _imported_modules(tree: ast.Module, modules: dict) -> dict[str, str]:
    """The package's modules this module imports, by the name it gives them."""
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names if a.name in modules})
    return aliases


def _texts(tree: ast.Module, source: str) -> list[str]:
    """The module's docstrings and comments."""
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = [
        ast.get_docstring(n, clean=False) or "" for n in ast.walk(tree) if isinstance(n, owners)
    ]
    return docs + re.findall(r"#[^\n]*", source)


class Names:
    """What the package defines: modules, classes with their members, callables."""

    def __init__(self, modules: dict):
        self.modules = modules
        self.classes: dict[str, set[str]] = {}
        for tree, _ in modules.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    members = self.classes.setdefault(node.name, set())
                    members.update(_bound(node.body))
                    members.update(n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute))
        self.callables = set(self.classes).union(*self.classes.values()) | {
            node.name
            for tree, _ in modules.values()
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }

    def resolves(self, reference: str, call: bool, aliases: dict[str, str]) -> bool:
        head, *rest = reference.split(".")
        module = aliases.get(head) or (head if head == "rps_tfdata" else None)
        while module is not None and rest and f"{module}.{rest[0]}" in self.modules:
            module, rest = f"{module}.{rest[0]}", rest[1:]
        if module is not None:
            if not rest:
                return True
            if rest[0] not in _bound(self.modules[module][0].body):
                return False
            head, rest = rest[0], rest[1:]
        if head in self.classes and rest:
            return rest[0] in self.classes[head]
        if call and not rest and module is None:
            return head in self.callables or hasattr(builtins, head)
        return True


def test_code_named_in_docstrings_and_comments_exists():
    modules = _parsed()
    names = Names(modules)
    stale = []
    for name, (tree, source) in modules.items():
        aliases = _imported_modules(tree, modules)
        for text in _texts(tree, source):
            for reference, call in REFERENCE.findall(text):
                if not names.resolves(reference, bool(call), aliases):
                    stale.append(f"{name}: `{reference}{call}`")
    assert not stale, "names that no longer exist:\n" + "\n".join(sorted(set(stale)))


def test_a_stale_name_is_caught():
    modules = _parsed()
    names = Names(modules)
    aliases = {"loop": "rps_tfdata.trainer.loop", "run_lock": "rps_tfdata.trainer.run_lock"}
    assert names.resolves("loop.run_epoch", False, aliases)
    assert not names.resolves("loop.epochs", False, aliases)
    assert not names.resolves("run_lock.Hold.check", False, aliases)
    assert names.resolves("run_lock.RunLock.check", False, aliases)
    assert not names.resolves("rps_tfdata.trainer.loop.gone", False, {})
    assert not names.resolves("no_such_function", True, {})
