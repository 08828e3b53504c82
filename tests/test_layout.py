"""The package's shape: the folders are the flow, lower stages never import upper ones, no
import circles (function-level imports included), no private names imported across
modules, and nothing switches matplotlib's backend at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import winnow

PACKAGE = Path(winnow.__file__).parent
# lowest first; a module may import its own layer and the layers before it
LAYERS = [
    {"errors", "lazy", "config", "pages"},
    {"data"},
    {"models"},
    {"inference"},
    {"evaluate"},
    {"training"},
    # the audit's label_issue check trains fold models with the training stage's recipe
    {"audit"},
    {"curate"},
    {"serve"},
    {"workflows"},
    {"cli"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return [(module, names) for module, names in found if module.split(".")[0] == "winnow"]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer; add its folder to LAYERS")


def _resolve(target: str, names: list[str], modules: dict[str, ast.Module]) -> list[str]:
    """The modules an import really loads: `from pkg import submodule` names the submodule."""
    resolved = [target] if target in modules else []
    resolved += [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
    return resolved or [target]


def test_every_module_sits_in_a_layer_and_imports_only_lower_or_its_own() -> None:
    modules = _modules()
    wrong = []
    for name, tree in modules.items():
        if name == "winnow":
            continue
        for target, _ in _imports(tree):
            if target != "winnow" and _layer(target) > _layer(name):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for target, names in _imports(tree):
            for module in _resolve(target, names, modules):
                # a package's __init__ naming its own submodules, or a module of a package
                # importing the package's __init__, is not a circle
                package_of = module.rsplit(".", 1)[0]
                if module in graph and module != name and not name.startswith(module + "."):
                    if package_of != name:
                        graph[name].add(module)
    circles = [path for path in map(lambda start: _circle_from(start, graph), graph) if path]
    assert not circles, "\n".join(" -> ".join(path) for path in circles[:10])


def _circle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start through the import graph, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_private_name_is_imported_from_another_module() -> None:
    wrong = [
        f"{name} imports {target}.{imported}"
        for name, tree in _modules().items()
        for target, names in _imports(tree)
        for imported in names
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert not wrong, "\n".join(wrong)


def test_matplotlib_backend_is_never_chosen_at_import_time() -> None:
    wrong = []
    for name, tree in _modules().items():
        for node in tree.body:  # module level only; inside a function it is a choice per call
            for call in ast.walk(node):
                if (
                    not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                    and isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "use"
                    and isinstance(call.func.value, ast.Name)
                    and call.func.value.id == "matplotlib"
                ):
                    wrong.append(name)
    assert not wrong, wrong


def test_every_name_a_package_lists_resolves() -> None:
    import importlib

    for package in ("data", "audit", "curate", "evaluate", "inference", "training", "workflows"):
        module = importlib.import_module(f"winnow.{package}")
        for name in module.__all__:
            assert getattr(module, name) is not None, f"winnow.{package}.{name}"
        assert sorted(dir(module)) == sorted(module.__all__)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_no_html_is_built_in_python() -> None:
    """Pages are jinja2 templates with autoescape on; Python prepares data. A string with
    an HTML tag outside a docstring is markup built in Python."""
    import re

    tag = re.compile(r"<(h[1-6]|p|div|span|table|tr|td|th|img|figure|ul|li|a|code|b|pre)[\s>]")
    offenders = []
    for name, tree in _modules().items():
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and tag.search(node.value)
            ):
                offenders.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert offenders == [], offenders
