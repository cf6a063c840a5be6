"""show_source renders the real code of the tested implementation."""

import pytest

from course_lib.attention import split_heads
from course_lib.source import show_source


def test_the_source_is_the_function_itself_and_renders_as_html():
    src = show_source(split_heads)
    assert src.code.lstrip().startswith("def split_heads(")
    assert "course_lib.attention.split_heads" in src._repr_html_()
    assert "split_heads" in repr(src)


def test_a_slice_keeps_the_lines_between_start_and_end():
    src = show_source(split_heads, start="def split_heads", end="def split_heads")
    assert src.code.count("\n") == 1


def test_bad_input_is_explained():
    with pytest.raises(TypeError, match="needs a function, class or method"):
        show_source(3)
    with pytest.raises(ValueError, match="does not occur"):
        show_source(split_heads, start="no such line")
