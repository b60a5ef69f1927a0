"""Every DVC stage depends on its script and on every ldmdata file the script can import, so a
code change re-runs exactly the stages it can affect (dvc.yaml and stages/publish/dvc.yaml)."""

import functools
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ldmdata.devtools.import_closure import covering_paths, import_closure

REPO = Path(__file__).resolve().parents[1]
TOOLKIT = REPO / "toolkit"
PACKAGE = TOOLKIT / "ldmdata"


@pytest.fixture(scope="module")
def stages():
    """(name, script, dep paths) of every stage of the repository's pipelines, as DVC reads
    them (foreach and matrix expanded, ``wdir`` applied)."""
    from dvc.repo import Repo

    found = []
    with Repo(str(REPO)) as repo:
        for stage in repo.index.stages:
            argv = shlex.split(stage.cmd)
            assert argv[0] == "python" and argv[1].endswith(".py"), (
                f"{stage.addressing}: cmd must be `python stages/<script>.py ...` so its imports "
                f"can be checked, not {stage.cmd!r}")
            deps = [Path(dep.fs_path).resolve() for dep in stage.deps]
            found.append((stage.addressing, (Path(stage.wdir) / argv[1]).resolve(), deps))
    assert {name for name, _, _ in found} >= {"models_tiny", "evaluate", "report",
                                             "stages/publish/dvc.yaml:publish"}
    return found


@functools.cache
def closure_of(script: Path) -> frozenset[Path]:
    return frozenset(import_closure(script, TOOLKIT, "ldmdata"))


def covered(path: Path, deps: list[Path]) -> bool:
    return any(path == dep or dep in path.parents for dep in deps)


def suggestion(script: Path) -> str:
    closure = covering_paths(set(closure_of(script)), PACKAGE)
    return "\n".join(f"  - {path.relative_to(REPO).as_posix()}" for path in closure)


def test_every_stage_depends_on_its_script(stages):
    for name, script, deps in stages:
        assert script in deps, f"{name}: {script.relative_to(REPO)} is not among its deps"


def test_every_stage_depends_on_every_ldmdata_file_its_script_can_import(stages):
    for name, script, deps in stages:
        missing = sorted(path.relative_to(REPO).as_posix()
                         for path in closure_of(script)
                         if not covered(path, deps))
        assert not missing, (f"{name} imports {missing} but does not depend on them; "
                             f"deps that fit:\n{suggestion(script)}")


def test_no_stage_depends_on_ldmdata_code_it_cannot_import(stages):
    for name, script, deps in stages:
        closure = closure_of(script)
        idle = [dep.relative_to(REPO).as_posix() for dep in deps
                if PACKAGE in [dep, *dep.parents] and not any(covered(f, [dep]) for f in closure)]
        assert not idle, f"{name} depends on {idle} that it never imports (needless re-runs)"


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_closure_follows_lazy_imports_and_skips_type_checking(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg import typing_only
            def f():
                from . import b
            """,
        "pkg/b.py": 'TABLE = {"x": "pkg.lazy.c"}\n',
        "pkg/typing_only.py": "",
        "pkg/lazy/__init__.py": """
            import importlib
            def get(n):
                return importlib.import_module(f"pkg.plug.{n}")
            """,
        "pkg/lazy/c.py": "",
        "pkg/lazy/unused.py": "",
        "pkg/plug/__init__.py": "",
        "pkg/plug/p1.py": "",
        "pkg/plug/deep/p2.py": "",
        "pkg/never.py": "",
        "script.py": "import os\nfrom pkg.a import f\n",
    })
    closure = import_closure(tmp_path / "script.py", tmp_path, "pkg")
    names = sorted(path.relative_to(tmp_path).as_posix() for path in closure)
    assert names == ["pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/lazy/__init__.py",
                     "pkg/lazy/c.py", "pkg/plug/__init__.py", "pkg/plug/deep/p2.py",
                     "pkg/plug/p1.py"]
    paths = covering_paths(closure, tmp_path / "pkg")
    assert [path.relative_to(tmp_path).as_posix() for path in paths] == [
        "pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/lazy/__init__.py", "pkg/lazy/c.py",
        "pkg/plug"]


STAGE_IMPORTS = """
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
for node in tree.body:
    if isinstance(node, ast.ImportFrom) and node.module.startswith("ldmdata"):
        __import__(node.module)
print(json.dumps(sorted(getattr(m, "__file__", None) or "" for name, m in sys.modules.items()
                        if name.split(".")[0] == "ldmdata")))
"""


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "stages").glob("*.py")))
def test_closure_holds_what_importing_a_stage_really_loads(script):
    """Independent check: the modules Python loads when a stage script's imports run."""
    env = {**os.environ, "PYTHONPATH": str(TOOLKIT)}
    out = subprocess.run([sys.executable, "-c", STAGE_IMPORTS, str(REPO / "stages" / script)],
                         env=env, capture_output=True, text=True, check=True).stdout
    loaded = {Path(path).resolve() for path in json.loads(out)}
    assert loaded and loaded <= closure_of(REPO / "stages" / script)
