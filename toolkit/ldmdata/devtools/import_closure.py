"""Which files of a package a script can import, read statically from the source with ``ast``.

The closure follows every import statement wherever it stands (module level, inside functions;
not under ``if TYPE_CHECKING:``, which never runs), the parent packages each import runs (their
``__init__.py``), and the lazy imports the code names in strings: a string constant that is a
module's dotted name (a table for ``importlib.import_module``) and an f-string that starts with
a package's dotted name (``f"ldmdata.models.tiny.{name}"``, taken as every module under it).
It over-approximates on purpose: a file that might run is in, so a DVC stage whose deps cover
the closure of its script never goes stale.
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of ``package`` under ``root``."""
    modules = {}
    for path in sorted((Path(root) / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The dotted name a (possibly relative) ``from ... import`` statement imports from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"


def _runnable_nodes(tree: ast.AST):
    """Every node of ``tree`` except those in the body of an ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _named(tree: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """Every module of ``modules`` that ``tree`` imports or names, as described above."""
    names = set()
    for node in _runnable_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and str(head.value).endswith("."):
                prefix = str(head.value)
                names.update(name for name in modules if name.startswith(prefix))
    return {name for name in names if name in modules}


def _with_parents(name: str, modules: dict[str, Path]) -> set[str]:
    """``name`` and each package above it that is in ``modules`` (importing runs them all)."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(modules)


def import_closure(script: Path, root: Path, package: str) -> set[Path]:
    """The files of ``package`` (a folder under ``root``) that running ``script`` can import.

    ``script`` itself is not in the result unless it is one of the package's files.
    """
    modules = module_files(root, package)
    by_path = {path.resolve(): name for name, path in modules.items()}
    start = by_path.get(Path(script).resolve(), "__main__")
    seen: set[str] = set()
    todo = [(start, Path(script))]
    while todo:
        module, path = todo.pop()
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for name in _named(tree, module, is_package, modules):
            for found in _with_parents(name, modules) - seen:
                seen.add(found)
                todo.append((found, modules[found]))
    return {modules[name] for name in seen}


def covering_paths(files: set[Path], package_dir: Path) -> list[Path]:
    """The fewest files and folders under ``package_dir`` that cover ``files`` and nothing else.

    A folder stands for its files when every ``.py`` file under it is in ``files``.
    """
    files = {Path(f).resolve() for f in files}
    package_dir = Path(package_dir).resolve()

    def whole(folder: Path) -> bool:
        return all(path.resolve() in files for path in folder.rglob("*.py"))

    paths = set()
    for path in files:
        while path.parent != package_dir and whole(path.parent):
            path = path.parent
        paths.add(path)
    return sorted(paths)


def main(argv: list[str] | None = None) -> None:
    """``python -m ldmdata.devtools.import_closure SCRIPT [ROOT]``: print the deps SCRIPT needs.

    ROOT is the folder that holds the ``ldmdata`` package (default ``toolkit``); paths print
    relative to the current folder, ready for a stage's ``deps`` in ``dvc.yaml``.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    script, root = Path(args[0]), Path(args[1] if len(args) > 1 else "toolkit")
    closure = import_closure(script, root, "ldmdata")
    for path in [script.resolve(), *covering_paths(closure, root / "ldmdata")]:
        print(f"- {path.relative_to(Path.cwd().resolve()).as_posix()}")


if __name__ == "__main__":
    main()
