"""No link of the course points at a missing file.

Markdown links ``[text](target)`` in the READMEs, docs and every notebook's markdown cells, and notebook paths
written as code (``exercises/04_multi_head_attention.ipynb``), must name files that exist, relative to the
document. Web links and in-page anchors are not followed (tests never touch the network).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
NOTEBOOK_PATH = re.compile(r"`((?:\.\./)?(?:notebooks|exercises|solutions)/\d\d_[\w.-]+\.ipynb)`")


def documents() -> list[Path]:
    found = [ROOT / "README.md", *sorted(ROOT.glob("*/README.md")), *sorted((ROOT / "docs").glob("*.md"))]
    for folder in ("notebooks", "exercises", "solutions"):
        found += sorted((ROOT / folder).glob("*.ipynb"))
    return [p for p in found if p.exists()]


def markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf-8")


def targets(text: str) -> list[tuple[str, bool]]:
    """(target, relative to the document?) for every local link; code paths are relative to the repository."""
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, https:, mailto:, an anchor in the same document
        out.append((target.split("#")[0], True))
    out += [(p, False) for p in NOTEBOOK_PATH.findall(text)]
    return out


def test_the_link_finder_finds_links_and_skips_web_addresses():
    text = ("[a](notebooks/00_welcome.ipynb) [b](https://x.org/y) [c](#top) [d](docs/x.md#part) "
            "see `exercises/04_multi_head_attention.ipynb`")
    assert targets(text) == [("notebooks/00_welcome.ipynb", True), ("docs/x.md", True),
                             ("exercises/04_multi_head_attention.ipynb", False)]


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_points_at_a_file_that_exists(path):
    missing = []
    for target, relative in targets(markdown_of(path)):
        base = path.parent if relative else ROOT
        candidates = [base / target]
        if not relative and target.startswith("../"):
            candidates = [path.parent / target]
        if not any(c.exists() for c in candidates):
            missing.append(target)
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"
