"""Per-section timings of a notebook from nbval's JUnit report (for the teaching guides and the README)."""

import nbformat
import pytest

from course_lib.teaching.timing import cell_times, notebook_totals, section_table, section_times


def _report(tmp_path, times):
    cases = "".join(f'<testcase classname="notebooks.07_gpt.ipynb" name="Cell {k}" time="{t}" />'
                    for k, t in enumerate(times))
    path = tmp_path / "report.xml"
    path.write_text(f'<testsuites><testsuite name="pytest">{cases}'
                    '<testcase classname="tests.test_x" name="test_y" time="9" /></testsuite></testsuites>')
    return path


def _nb(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 GPT"), nbformat.v4.new_code_cell("import torch"),
                nbformat.v4.new_markdown_cell("## Train"), nbformat.v4.new_code_cell("a"),
                nbformat.v4.new_code_cell("b"), nbformat.v4.new_markdown_cell("## Sample"),
                nbformat.v4.new_code_cell("c")]
    path = tmp_path / "07_gpt.ipynb"
    nbformat.write(nb, path)
    return nb, path


def test_cells_are_summed_per_section(tmp_path):
    times = cell_times(_report(tmp_path, [3.0, 40.0, 20.0, 1.5]))
    assert times == {"notebooks/07_gpt": [3.0, 40.0, 20.0, 1.5]}
    nb, path = _nb(tmp_path)
    assert section_times(nb, times["notebooks/07_gpt"]) == [("Set-up", 3.0), ("Train", 60.0), ("Sample", 1.5)]
    table = section_table(path, times["notebooks/07_gpt"], [3.0, 0.5, 0.5, 1.5])
    assert "| Train | 60 | 1 | 1.1 |" in table  # 63 s from the start
    assert notebook_totals(times, {"notebooks/07_gpt": [1.0] * 4}) == {"notebooks/07_gpt": (64.5, 4.0)}


def test_a_stale_report_is_refused(tmp_path):
    nb, _ = _nb(tmp_path)
    with pytest.raises(ValueError, match="stale report"):
        section_times(nb, [1.0, 2.0])
