"""Architecture rules over the whole package (issue 9): no import circle, no reading another module's privates.

1. No import cycle anywhere in ``peft_notify``. The graph is grimp's (what import-linter
   uses) and counts every import: module level, inside functions, and under
   ``if TYPE_CHECKING:``.
2. No module reads another module's private attributes: ``x._name`` is allowed only when
   ``_name`` is defined in the same module (``self._name = ...``, a ``_name`` method,
   class attribute, slot or module global) and ``from m import _name`` only from the
   module itself. Names of the standard library and namedtuple API that merely start
   with ``_`` are listed in ``STDLIB_PRIVATE``.

``ALLOWED`` lists today's violations outside ``emitter/`` and ``integrations/`` (the
desktop side is being refactored concurrently, issue 9 §2): shrink it, never grow it.
The training side must be clean.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "peft_notify"

# Private-looking names that are public API of the stdlib (and namedtuple's documented API).
STDLIB_PRIVATE = frozenset({"_exit", "_getframe", "_replace", "_asdict", "_fields", "_make", "_field_defaults"})

# (module, private name) pairs read across modules today, outside the training side. Shrink only.
ALLOWED: frozenset[tuple[str, str]] = frozenset()

CLEAN_AREAS = ("peft_notify.emitter", "peft_notify.integrations")


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): every component with more than one module, or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def _import_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("peft_notify", exclude_type_checking_imports=False)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_the_graph_sees_type_checking_and_function_level_imports() -> None:
    """Guard for the rule below: grimp must report the imports it is meant to count."""
    graph = _import_graph()
    # peft_notify/__init__.py imports the emitter only under TYPE_CHECKING (and lazily in __getattr__).
    assert "peft_notify.emitter" in graph["peft_notify"]


def test_cycle_detection_finds_a_cycle() -> None:
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_anywhere() -> None:
    cycles = _strongly_connected(_import_graph())
    assert cycles == [], "import cycles (each line: modules that import each other):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


# --------------------------------------------------------------------------- private attributes


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_setattr(node: ast.AST) -> bool:
    """``setattr(obj, "_name", value)`` with a literal name."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "setattr"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    )


def _owned_names(tree: ast.Module) -> set[str]:
    """Private names this module defines (globals, methods, class attributes, slots, self/cls attributes)."""
    owned: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            owned.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            owned.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            owned.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            owned.add(node.target.id)
        elif isinstance(node, ast.arg):
            owned.add(node.arg)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            owned.update(
                e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)
            )
        elif _is_setattr(node):
            assert isinstance(node, ast.Call)
            owned.add(str(ast.literal_eval(node.args[1])))
    return {name for name in owned if _is_private(name)}


def private_reads(module: str, source: str) -> list[str]:
    """The private attributes of other modules that ``source`` (module ``module``) reads."""
    tree = ast.parse(source)
    owned = _owned_names(tree)
    package = module if source and module.count(".") == 0 else module.rsplit(".", 1)[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            target = node.module or package
            for alias in node.names:
                if _is_private(alias.name) and alias.name not in STDLIB_PRIVATE and target != module:
                    found.append(alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_is_private(part) for part in alias.name.split(".")[1:]):
                    found.append(alias.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Load)
            and _is_private(node.attr)
            and node.attr not in owned | STDLIB_PRIVATE
        ):
            found.append(node.attr)
    return sorted(set(found))


def _all_private_reads() -> dict[str, list[str]]:
    return {module: reads for module, path in _modules() if (reads := private_reads(module, path.read_text("utf-8")))}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("class A:\n    def __init__(self):\n        self._x = 1\n    def f(self, o):\n        return o._x\n", []),
        ("import other\nother._helper()\n", ["_helper"]),
        ("def f(server):\n    return server._jobs\n", ["_jobs"]),
        ("from other import _private\n", ["_private"]),
        ("import os\nos._exit(0)\n", []),
        ("class W:\n    __slots__ = ('_d',)\n    def g(self, w):\n        return w._d\n", []),
    ],
)
def test_private_read_detection(source: str, expected: list[str]) -> None:
    assert private_reads("pkg.mod", source) == expected


def test_the_training_side_reads_no_private_attribute_of_another_module() -> None:
    bad = {m: r for m, r in _all_private_reads().items() if m.startswith(CLEAN_AREAS)}
    assert bad == {}


def test_no_new_private_reads_elsewhere() -> None:
    """Outside the training side only :data:`ALLOWED` may remain (the desktop refactor removes them)."""
    reads = {(m, name) for m, names in _all_private_reads().items() for name in names}
    new = sorted(reads - ALLOWED)
    assert new == [], f"new private reads across modules (fix them, don't allow-list): {new}"


def test_allow_list_has_no_stale_entries() -> None:
    """An allow-listed read that is gone must leave ALLOWED too, so the list only shrinks."""
    reads = {(m, name) for m, names in _all_private_reads().items() for name in names}
    assert sorted(ALLOWED - reads) == []


# --------------------------------------------------------------------------- __all__ lists what others use


def _is_module(name: str) -> bool:
    return (PACKAGE.parent / Path(*name.split("."))).with_suffix(".py").exists() or (
        PACKAGE.parent / Path(*name.split(".")) / "__init__.py"
    ).exists()


def _used_names(module: str, source: str) -> Iterator[tuple[str, str]]:
    """``(target module, name)`` for every name ``module`` takes from another peft_notify module."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("peft_notify"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _is_module(full):
                    aliases[alias.asname or alias.name] = full
                elif node.module != module:
                    yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("peft_notify") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            target = aliases[node.value.id]
            if target != module and not _is_module(f"{target}.{node.attr}"):
                yield target, node.attr


def test_public_training_side_modules_list_what_others_use_in_all() -> None:
    import importlib

    missing: set[tuple[str, str]] = set()
    for module, path in _modules():
        for target, name in _used_names(module, path.read_text("utf-8")):
            if not target.startswith(CLEAN_AREAS):
                continue
            exported = getattr(importlib.import_module(target), "__all__", ())
            if name not in exported:
                missing.add((target, name))
    assert sorted(missing) == []
