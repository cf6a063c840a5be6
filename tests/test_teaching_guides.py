"""Every lecture notebook has a teaching guide whose generated blocks match the course as it is."""

from pathlib import Path

import pytest

from course_lib.teaching.guides import block, guide_path, misconceptions_of, replace_block, section_titles

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", LECTURES, ids=lambda p: p.name)
def test_the_guide_exists_and_is_current(notebook):
    path = guide_path(notebook)
    assert path.exists(), f"no teaching guide {path.relative_to(ROOT)} for {notebook.name}"
    text = path.read_text(encoding="utf-8")
    for heading in ("## Learning goals", "## Plan", "## Knobs", "## Discussion questions", "## Misconceptions"):
        assert heading in text, f"{path.name}: no '{heading}' section"
    assert block(text, "misconceptions") == misconceptions_of(notebook), (
        f"{path.name}: misconceptions block is stale: python -m course_lib.teaching.guides")
    timings = block(text, "timings")
    assert timings is not None, f"{path.name}: no timings block"
    rows = [line.split("|")[1].strip() for line in timings.splitlines()[2:]]
    assert rows == section_titles(notebook), (
        f"{path.name}: the timed sections {rows} are not the notebook's {section_titles(notebook)}; re-time it")


def test_replace_block_refuses_a_guide_without_the_block():
    with pytest.raises(ValueError, match="no '<!-- BEGIN GENERATED timings -->' block"):
        replace_block("# guide\n", "timings", "x")
    text = "a\n<!-- BEGIN GENERATED x -->\nold\n<!-- END GENERATED x -->\nb"
    assert block(replace_block(text, "x", "new"), "x") == "new"


def test_the_refresh_command_explains_bad_arguments(capsys, tmp_path):
    from course_lib.teaching.guides import _main

    assert _main(["--help"]) == 0 and "COLD.xml WARM.xml" in capsys.readouterr().out
    assert _main([str(tmp_path / "cold.xml")]) == 2
    assert "give both reports or neither" in capsys.readouterr().err
    assert _main([str(tmp_path / "cold.xml"), str(tmp_path / "warm.xml")]) == 2
    assert "no such JUnit report" in capsys.readouterr().err
