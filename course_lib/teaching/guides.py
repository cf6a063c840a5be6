"""The generated parts of the teaching guides (docs/teaching/NN_topic.md).

A guide is written by hand (goals, the session plan, knobs, questions) around
two generated blocks that must not drift from the course:

* ``timings``: the notebook's sections with their measured cold and warm
  times (:mod:`course_lib.teaching.timing`), refreshed from nbval's JUnit
  reports with ``python -m course_lib.teaching.guides COLD.xml WARM.xml``;
* ``misconceptions``: the notebook's section of docs/instructor.md, which a
  test keeps equal to the checkers' catalogues.

``tests/test_teaching_guides.py`` fails when a block is stale: a section was
renamed or added, or the misconceptions changed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from .timing import cell_times, section_table, sections

__all__ = ["ROOT", "guide_path", "block", "replace_block", "misconceptions_of", "section_titles", "refresh"]

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = "<!-- BEGIN GENERATED {name} -->\n{body}\n<!-- END GENERATED {name} -->"


def guide_path(notebook: str | Path) -> Path:
    return ROOT / "docs" / "teaching" / f"{Path(notebook).stem}.md"


def block(text: str, name: str) -> str | None:
    """The body of the generated block `name` in a guide's text, or None."""
    match = re.search(rf"<!-- BEGIN GENERATED {name} -->\n(.*?)\n<!-- END GENERATED {name} -->", text, re.S)
    return match.group(1) if match else None


def replace_block(text: str, name: str, body: str) -> str:
    if block(text, name) is None:
        raise ValueError(f"the guide has no '<!-- BEGIN GENERATED {name} -->' block")
    return re.sub(rf"<!-- BEGIN GENERATED {name} -->\n.*?\n<!-- END GENERATED {name} -->",
                  lambda _: _BLOCK.format(name=name, body=body), text, flags=re.S)


def misconceptions_of(notebook: str | Path) -> str:
    """The "### NN.x ..." sections of docs/instructor.md for this notebook's number, or a line saying there are
    none (notebooks without exercises)."""
    number = Path(notebook).stem[:2]
    text = (ROOT / "docs" / "instructor.md").read_text(encoding="utf-8")
    parts = re.findall(rf"^(### {number}\.\d.*?)(?=^##|\Z)", text, flags=re.M | re.S)
    if not parts:
        return f"_Notebook {number} has no graded exercise yet._"
    return "\n".join(p.rstrip() + "\n" for p in parts).rstrip().replace("### ", "#### ")


def section_titles(notebook: str | Path) -> list[str]:
    return [title for title, _ in sections(nbformat.read(notebook, as_version=4))]


def refresh(cold_xml: str | Path | None = None, warm_xml: str | Path | None = None) -> list[Path]:
    """Rewrite the generated blocks of every guide; timings only where both reports time the notebook."""
    cold = cell_times(cold_xml) if cold_xml else {}
    warm = cell_times(warm_xml) if warm_xml else {}
    written = []
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        path = guide_path(notebook)
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        key = f"notebooks/{notebook.stem}"
        if key in cold and key in warm:
            text = replace_block(text, "timings", section_table(notebook, cold[key], warm[key]))
        text = replace_block(text, "misconceptions", misconceptions_of(notebook))
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


USAGE = """usage: python -m course_lib.teaching.guides [COLD.xml WARM.xml]

Rewrites the generated blocks of docs/teaching/NN_*.md: the misconceptions (from docs/instructor.md)
always, the per-section timings where both JUnit reports of nbval (a cold and a warm run of
notebooks/, pytest --nbval-lax --junitxml=...) time the notebook."""


def _main(args: list[str]) -> int:
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(args) not in (0, 2):
        print(f"{USAGE}\n\nerror: give both reports or neither, got {len(args)} argument(s)", file=sys.stderr)
        return 2
    missing = [a for a in args if not Path(a).is_file()]
    if missing:
        print(f"error: no such JUnit report: {', '.join(missing)} (run nbval with --junitxml=FILE first)",
              file=sys.stderr)
        return 2
    for path in refresh(*(args or [None, None])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
