"""How long each section of a notebook takes, cold (empty model cache) and warm, from nbval's JUnit reports.

`make test` runs every notebook under nbval from an empty model cache; run with
``--junitxml`` it records each code cell's time ("Cell k" is the k-th code
cell). A second run over the lecture notebooks with the cache it left is the
warm run. :func:`section_table` turns the two reports into the per-section
table of a teaching guide, so the plan of a live session quotes measured
times, and :func:`notebook_totals` into the README's cold/warm columns.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat

__all__ = ["cell_times", "sections", "section_times", "section_table", "notebook_totals"]


def cell_times(junit_xml: str | Path) -> dict[str, list[float]]:
    """{notebook stem: seconds of each code cell, in order} from an nbval JUnit report."""
    times: dict[str, dict[int, float]] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        match = re.fullmatch(r"Cell (\d+)", case.get("name", ""))
        classname = case.get("classname", "")
        if not match or not classname.endswith(".ipynb"):
            continue
        stem = classname[: -len(".ipynb")].split(".")[-1]
        folder = classname.split(".")[0]
        times.setdefault(f"{folder}/{stem}", {})[int(match.group(1))] = float(case.get("time", 0.0))
    return {nb: [cells[k] for k in sorted(cells)] for nb, cells in times.items()}


def sections(nb) -> list[tuple[str, int]]:
    """(title, number of code cells) for each `##` section; code before the first one is "Set-up"."""
    out: list[list] = [["Set-up", 0]]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for heading in re.findall(r"^##\s+(.+?)\s*$", cell.source, flags=re.M):
                out.append([heading, 0])
        elif cell.cell_type == "code":
            out[-1][1] += 1
    return [(title, n) for title, n in out if n or title != "Set-up"]


def section_times(nb, times: list[float]) -> list[tuple[str, float]]:
    """Seconds per section. The first cell's time includes starting the kernel."""
    result, k = [], 0
    for title, n in sections(nb):
        result.append((title, sum(times[k:k + n])))
        k += n
    if k != len(times):
        raise ValueError(f"the notebook has {k} code cells but the report times {len(times)}: stale report?")
    return result


def section_table(notebook: str | Path, cold: list[float], warm: list[float] | None = None) -> str:
    """A markdown table: section, cold seconds, warm seconds, cumulative cold minutes."""
    nb = nbformat.read(notebook, as_version=4)
    cold_s = section_times(nb, cold)
    warm_s = section_times(nb, warm) if warm is not None else [(t, float("nan")) for t, _ in cold_s]
    rows = ["| section | cold (s) | warm (s) | cold, from the start (min) |", "|---|---:|---:|---:|"]
    total = 0.0
    for (title, c), (_, w) in zip(cold_s, warm_s):
        total += c
        rows.append(f"| {title} | {c:.0f} | {w:.0f} | {total / 60:.1f} |")
    return "\n".join(rows)


def notebook_totals(cold: dict[str, list[float]], warm: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """{notebook: (cold s, warm s)} for every notebook timed in both reports."""
    return {nb: (sum(cold[nb]), sum(warm[nb])) for nb in cold if nb in warm}
