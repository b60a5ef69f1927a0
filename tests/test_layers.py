"""The library's rooms import one way: each room only from rooms below it, never in a circle.

The graph is read from the source (every import, including those inside functions and under
``TYPE_CHECKING``, and module names in strings such as lazy-import tables), so it stays true
as the code changes.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toolkit" / "ldmdata"

# Lowest first: a room may import the rooms of earlier layers (and its own), nothing later.
LAYERS = [
    {"errors", "seeds", "lazy", "devtools"},
    {"engine"},
    {"params", "provenance"},
    {"dataset"},
    {"sources", "models"},
    {"builders", "purify"},
    {"attacks"},
    {"defend", "edit"},
    {"metrics"},
    {"report", "publish", "trace"},
    {"cli"},
]
LEVEL = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ldmdata" else None


def imported_modules(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("ldmdata.") and " " not in node.value:
                found.add(node.value)
    return {name for name in found if name.startswith("ldmdata.")}


def room_edges() -> dict[tuple[str, str], str]:
    """``(from room, to room) -> a file that makes the edge``."""
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        here = room_of(module)
        if here is None:
            continue  # the package root: its lazy `open_dataset` export is the public API
        for name in imported_modules(path, module):
            there = room_of(name)
            if there and there != here:
                edges[(here, there)] = str(path.relative_to(PACKAGE))
    return edges


def test_every_room_has_a_layer():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert rooms - {"__main__"} <= set(LEVEL), f"rooms without a layer: {rooms - set(LEVEL)}"


def test_rooms_import_only_rooms_below_them():
    upward = [f"{a} -> {b} ({where})" for (a, b), where in room_edges().items()
              if LEVEL[b] >= LEVEL[a]]
    assert not upward, "imports that go up or sideways:\n" + "\n".join(upward)


def test_the_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from ldmdata.cli.app import app\n"
                      "TABLE = {'x': 'ldmdata.report.render'}\n")
    assert imported_modules(source, "ldmdata.dataset.m") == {"ldmdata.cli.app",
                                                              "ldmdata.report.render"}
