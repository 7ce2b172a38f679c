"""catdog's modules import one another in one direction, and only what is public: no import
cycle between modules (imports inside functions count: they only hide the cycle), and no
``_private`` name taken from another module (a piece two modules need has one public home)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "catdog"


def module_name(path: Path, root: Path = SRC) -> str:
    """``src/catdog/models/cnn.py`` -> ``catdog.models.cnn`` (a package: its ``__init__``)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = SRC) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def is_type_checking(node: ast.AST) -> bool:
    """True for ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == (
        "TYPE_CHECKING"
    )


def import_nodes(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The imports anywhere in a module (module level, functions, classes), but for those in
    the body of an ``if TYPE_CHECKING:`` block, which never run."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append(child)
        elif is_type_checking(child):  # only its else branch runs
            found += import_nodes(ast.Module(body=child.orelse, type_ignores=[]))
        else:
            found += import_nodes(child)
    return found


def imported_from(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module name of a ``from X import ...`` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def lazy_exports(path: Path) -> dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS`` table (public name -> defining module, relative to
    the package), as ``catdog/__init__.py`` lazily re-exports its names; ``{}`` if none."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_EXPORTS":
            return ast.literal_eval(node.value)
    return {}


def imports_of(name: str, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for each of the package's own imports in the
    module ``name``: ``import a.b`` gives ``("a.b", None)``, ``from a import b`` ``("a", "b")``."""
    path = modules[name]
    top = name.split(".")[0]
    found = []
    for node in import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        else:
            source = imported_from(node, name, path.name == "__init__.py")
            found += [(source, a.name, node.lineno) for a in node.names]
    return [(m, n, line) for m, n, line in found if m.split(".")[0] == top]


def target_module(source: str, name: str | None, modules: dict[str, Path]) -> str:
    """The module an import runs: ``from pkg import sub`` the submodule; ``from pkg import
    name`` of a lazily re-exported name (``_EXPORTS``) the module that defines it; otherwise
    the module imported from."""
    if name is not None and f"{source}.{name}" in modules:
        return f"{source}.{name}"
    if name is not None and source in modules:
        exported = lazy_exports(modules[source]).get(name)
        if exported is not None:
            return f"{source}.{exported}"
    return source


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at module level or in functions)."""
    modules = package_modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name in modules:
        for source, imported, _ in imports_of(name, modules):
            target = target_module(source, imported, modules)
            if target != name and target in modules:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path ``a -> b -> a``) for each import edge that closes one, found by a
    depth-first walk; ``[]`` for an acyclic graph."""
    found, state, stack = [], {}, []

    def walk(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return found


def private_imports(root: Path = SRC) -> list[str]:
    """``module:line from X import _name`` for each private name (one underscore, not a
    dunder, not a submodule) a module takes from another module of the package."""
    modules = package_modules(root)
    found = []
    for name in modules:
        for source, imported, line in imports_of(name, modules):
            if (
                imported is not None
                and imported.startswith("_")
                and not imported.startswith("__")
                and f"{source}.{imported}" not in modules  # a private module is fine
                and source != name
            ):
                found.append(f"{name}:{line} from {source} import {imported}")
    return found


def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "pkg"


def test_the_checks_see_hidden_cycles_and_private_names_but_not_type_checking(tmp_path):
    package = write_package(
        tmp_path,
        {
            "__init__.py": "_EXPORTS = {'helper': 'sub.b'}\n",
            "sub/__init__.py": "",
            "sub/a.py": "from pkg.sub.b import thing\n",
            "sub/b.py": "def thing():\n    from pkg import helper\n    from .c import _x\n",
            "sub/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.sub.a\n"
                "from pkg import _private_module\n"
            ),
            "_private_module.py": "def f():\n    from pkg.sub import a\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.sub.b"] == {"pkg.sub.c"}  # `from pkg import helper` is b itself
    assert graph["pkg.sub.c"] == {"pkg._private_module"}  # not the TYPE_CHECKING import
    assert cycles(graph) == [
        ["pkg._private_module", "pkg.sub.a", "pkg.sub.b", "pkg.sub.c", "pkg._private_module"]
    ]
    assert private_imports(package) == ["pkg.sub.b:3 from pkg.sub.c import _x"]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles between catdog's modules:\n" + "\n".join(
        " -> ".join(cycle) for cycle in found
    )


def test_no_private_names_imported_from_another_module():
    """Give a piece two modules need one public home (a name without the underscore), as
    fastai's ``create_head``; importing a private module (``catdog._rules``) is fine."""
    found = private_imports()
    assert not found, "private names imported across modules:\n" + "\n".join(found)
