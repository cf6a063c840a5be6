"""Committed notebooks are clean: valid, no outputs, no execution counts, one kernel."""

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIRS = ("notebooks", "exercises", "solutions")


def committed_notebooks() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
        paths = [ROOT / p for p in out]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: look at the folders
        paths = []
    on_disk = [p for d in NOTEBOOK_DIRS for p in sorted((ROOT / d).glob("*.ipynb"))]
    return sorted(set(paths) | set(on_disk))


NOTEBOOKS = committed_notebooks()


def test_there_are_notebooks():
    assert ROOT.joinpath("notebooks", "00_welcome.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; clear them"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"
    assert path.parent.name in NOTEBOOK_DIRS, f"{path} is outside {NOTEBOOK_DIRS}"
    assert path.name[:2].isdigit() and path.name[2] == "_", f"{path.name} does not follow NN_topic.ipynb"
    json.loads(path.read_text(encoding="utf-8"))  # strict JSON, UTF-8
