"""The docs build in strict mode (links and anchors checked), and their code references exist."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md", REPO / "DEVELOPERS.md"]
PATH_REF = re.compile(r"`((?:toolkit|tests|stages|benchmarks|docs)/[\w./-]+)`")
MODULE_REF = re.compile(r"`(ldmdata(?:\.\w+)+)`")


@pytest.mark.skipif(shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[test]')")
def test_the_docs_build_in_strict_mode(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_references_exist(page):
    text = page.read_text()
    missing = [ref for ref in PATH_REF.findall(text) if not (REPO / ref.rstrip(".")).exists()]
    assert not missing, f"{page.name} names files that do not exist: {missing}"
    unknown = []
    for ref in MODULE_REF.findall(text):
        parts = ref.split(".")
        # a module, or an attribute of one (ldmdata.models.refs.REAL_MODELS)
        found = any(importlib.util.find_spec(".".join(parts[:k])) is not None
                    for k in range(len(parts), 1, -1)
                    if _is_module(".".join(parts[:k])))
        if not found:
            unknown.append(ref)
    assert not unknown, f"{page.name} names modules that do not exist: {unknown}"


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
