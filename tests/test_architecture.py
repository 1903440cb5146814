"""The library's shape: stage packages side by side over a shared foundation, no import circles, no private
names reached for across packages. Read from the source (every import, lazy ones too; annotation-only imports
under TYPE_CHECKING aside)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lungnodule"
STAGES = ("unet", "mgicnn", "ctgan")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported module, imported name or "")}, lungnodule modules only."""
    out: dict[str, set[tuple[str, str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        skip = set()
        for node in ast.walk(tree):  # annotation-only imports do not run
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip |= {id(n) for n in ast.walk(node)}
        found = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                found |= {(a.name, "") for a in node.names if a.name.startswith("lungnodule")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("lungnodule"):
                    found |= {(target, a.name) for a in node.names}
        out[module] = found
    return out


def _resolve(target: str, name: str, modules: set[str]) -> str:
    """`from target import name`: the submodule when `name` is one, else `target` itself."""
    return f"{target}.{name}" if f"{target}.{name}" in modules else target


def test_no_stage_package_imports_another():
    imports = _imports()
    for module, found in imports.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in STAGES:
            continue
        for target, _ in found:
            other = target.split(".")[1] if target.count(".") else ""
            assert other == parts[1] or other not in STAGES, f"{module} imports {target}"


def test_no_private_name_across_packages():
    imports = _imports()
    for module, found in imports.items():
        home = module.split(".")[:2]
        for target, name in found:
            if name.startswith("_") and target.split(".")[:2] != home:
                raise AssertionError(f"{module} imports the private {target}.{name}")


def test_no_import_circle():
    imports = _imports()
    modules = set(imports)
    graph = {m: {_resolve(t, n, modules) for t, n in found} - {m} for m, found in imports.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if n not in graph:
                continue
            # A package's __init__ importing its own submodules is how packages work, not a circle.
            if m != n and (n.startswith(m + ".") or m.startswith(n + ".")) and n.count(".") != m.count("."):
                continue
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(n):] + [n]))
            if not state.get(n):
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m, [m])
