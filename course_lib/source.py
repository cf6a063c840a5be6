"""Show the source of the tested implementation a lesson is about, as highlighted code.

The course keeps its models in `course_lib`, where they are tested; a notebook
renders their source at the point where it explains them, so a learner reads
every line the lesson is about (``show_source(Seq2Seq.forward)``).
"""

from __future__ import annotations

import html
import inspect
import sys
import textwrap

__all__ = ["Source", "show_source"]


def _public_module(obj, module: str) -> str:
    """The shortest package that exports ``obj`` (or the class of a method): where a learner
    imports it from (``course_lib.attention``, not ``course_lib.attention.multi_head``)."""
    name = getattr(obj, "__qualname__", "").split(".")[0]
    owner = getattr(sys.modules.get(module), name, None) if name else None
    parts = module.split(".")
    for i in range(2, len(parts)):
        package = sys.modules.get(".".join(parts[:i]))
        if owner is not None and getattr(package, name, None) is owner:
            return ".".join(parts[:i])
    return module


class Source:
    """The source of one function, class or method: displays as highlighted code in a notebook."""

    def __init__(self, obj, start: str | None = None, end: str | None = None):
        try:
            code = inspect.getsource(obj)
            path = inspect.getsourcefile(obj) or "?"
            _, first_line = inspect.getsourcelines(obj)
        except (TypeError, OSError) as err:
            raise TypeError(f"show_source needs a function, class or method defined in Python source, "
                            f"got {type(obj).__name__} {obj!r} ({err})") from None
        self.name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
        self.module = _public_module(obj, getattr(obj, "__module__", "") or "")
        self.first_line = first_line
        self.code = self._slice(textwrap.dedent(code), start, end)
        self.path = path

    def _slice(self, code: str, start: str | None, end: str | None) -> str:
        lines = code.splitlines()
        i, j = 0, len(lines)
        if start is not None:
            hits = [k for k, line in enumerate(lines) if start in line]
            if not hits:
                raise ValueError(f"start={start!r} does not occur in the source of {self.name}")
            i = hits[0]
        if end is not None:
            hits = [k for k, line in enumerate(lines) if end in line and k >= i]
            if not hits:
                raise ValueError(f"end={end!r} does not occur after start in the source of {self.name}")
            j = hits[0] + 1
        self.first_line += i
        return "\n".join(lines[i:j]) + "\n"

    @property
    def title(self) -> str:
        return f"{self.module}.{self.name}" if self.module else self.name

    def __repr__(self) -> str:
        return f"# {self.title} (line {self.first_line})\n{self.code}"

    def _repr_html_(self) -> str:
        try:
            from pygments import highlight
            from pygments.formatters import HtmlFormatter
            from pygments.lexers import PythonLexer

            body = highlight(self.code, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))
        except ImportError:  # pygments ships with Jupyter; without it, plain preformatted text
            body = f"<pre>{html.escape(self.code)}</pre>"
        caption = (f"<div style='font-size:85%;color:#555;margin-bottom:2px'>source of "
                   f"<code>{html.escape(self.title)}</code>, line {self.first_line}</div>")
        return f"<div style='border-left:3px solid #ccc;padding-left:8px'>{caption}{body}</div>"


def show_source(obj, start: str | None = None, end: str | None = None) -> Source:
    """The source of `obj` (function, class, method), optionally from the first line containing `start`
    to the first later line containing `end`; displays as highlighted code in a notebook."""
    return Source(obj, start, end)
