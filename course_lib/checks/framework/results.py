"""What a check returns: one ``SubCheck`` per line of the report, one ``CheckResult`` per check,
and the signals a sub-check raises to fail (``CheckFailure`` and its kinds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

NOT_IMPLEMENTED = "not implemented yet"
ENCOURAGEMENT = ("Replace `raise NotImplementedError()` with your code, run that cell, then run the "
                 "check again. Every solution starts exactly here!")


@dataclass
class SubCheck:
    """One line of a report: a sub-check, its status and its share of the points.
    ``message`` says what failed, or for a skipped line why it was skipped."""

    name: str
    status: str  # "passed", "failed" or "skipped"
    points: float
    max_points: float
    message: str = ""
    hint: str = ""
    essential: bool = False


@dataclass
class CheckResult:
    """What a check found. ``messages`` are short lines, most important first:
    the failures (the first one followed by its hint), or one line saying all
    checks passed."""

    passed: bool
    points: float
    max_points: float
    messages: list[str]
    id: str = ""
    title: str = ""
    function: str = ""
    subchecks: list[SubCheck] = field(default_factory=list)
    hint: str = ""
    seed: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CheckResult":
        d = dict(d)
        d["subchecks"] = [SubCheck(**s) for s in d.get("subchecks", [])]
        return cls(**d)

    def __str__(self) -> str:
        from .rendering import render_text

        return render_text(self)

    def _repr_html_(self) -> str:
        from .rendering import render_html

        return render_html(self)


class CheckFailure(Exception):
    """Raised inside a sub-check: it failed, with this message and hint."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class NotImplementedYet(CheckFailure):
    """The learner's stub still raises NotImplementedError."""

    def __init__(self):
        super().__init__(NOT_IMPLEMENTED, ENCOURAGEMENT)


class TimedOut(CheckFailure):
    """The learner's code ran past the sub-check's time limit."""
