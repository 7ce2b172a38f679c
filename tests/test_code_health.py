"""The code stays readable: modules of a few hundred lines, functions that fit on a screen,
and only Keras' public API (no ``keras.src``)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "catdog"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 40


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def name_of(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def code_lines(source: str) -> set[int]:
    """The numbers of the lines that hold code: not blank, not only a comment."""
    lines = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def docstring_lines(tree: ast.AST) -> set[int]:
    """The lines of every docstring (module, class and function)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def function_sizes(path: Path) -> dict[str, int]:
    """``{"Class.method": lines of code}`` of every function of a module, its signature and
    docstring, blank lines and comments left out (nested functions count in their parent)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    counted = code_lines(source) - docstring_lines(tree)
    sizes = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                start = child.body[0].lineno
                sizes[prefix + child.name] = len(
                    [n for n in range(start, child.end_lineno + 1) if n in counted]
                )
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return sizes


def test_the_line_counter_leaves_out_docstrings_comments_and_blank_lines(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        'def f(a,\n      b):\n    """Doc.\n\n    More."""\n    # a comment\n\n'
        "    x = (a +\n         b)\n    return x  # the sum\n"
    )
    assert function_sizes(module) == {"f": 3}


def test_no_module_is_too_long():
    long = {
        name_of(p): n
        for p in modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_too_long():
    long = {
        f"{name_of(p)}::{function}": n
        for p in modules()
        for function, n in function_sizes(p).items()
        if n > MAX_FUNCTION_LINES
    }
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of code: {long}"


def test_no_private_keras_imports():
    """Only Keras' public API: ``keras.src`` changes without notice between releases."""
    found = []
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value] if node.value.startswith("keras.src") else []
            else:
                continue
            found += [
                f"{name_of(path)}:{node.lineno} {n}"
                for n in names
                if n == "keras.src" or n.startswith("keras.src.")
            ]
    assert not found, f"keras.src imports: {found}"
