"""Misconceptions, and how a wrong result or an error is traced back to one.

A ``Misconception`` is a wrong-but-plausible implementation plus the hint it
deserves. A learner's output is diagnosed by running each misconception on the
same inputs and comparing (element ``part`` of a tuple when the exercise returns
several tensors); a learner's exception is diagnosed first by reproduction (a
misconception that raises the very same error on the same inputs), then by each
misconception's ``error`` regex, then by the generic torch error hints below.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

# Captured once at import, before any learner code runs: a learner's function that
# rebinds torch.isclose while it runs cannot change how its result is judged.
_isclose = torch.isclose
_Tensor = torch.Tensor


@dataclass(frozen=True)
class Misconception:
    """A wrong-but-plausible implementation and the hint it deserves.

    ``impl`` takes the same arguments as the learner's function and returns
    what that misconception would return (a tensor, or a tuple of tensors for
    an exercise that returns several). When a learner's output does not match
    the reference but matches ``impl``'s (same shape, close values, NaN where
    it has NaN), the check shows ``hint``; when the learner's code raises the
    same error as ``impl`` on the same inputs, too. ``error`` is an optional
    regular expression for the "Type: message" of an exception it causes.
    A hint names the misconception and where to look; it never hands over
    the line of code.
    """

    name: str
    hint: str
    impl: Callable[..., Any] | None = None
    error: str | None = None

    def mapped(self, post: Callable[..., Any]) -> "Misconception":
        """The same mistake seen in a larger result: ``impl`` followed by ``post(result, *args,
        **kwargs)`` (the weights a mistake computes, turned into the (output, weights) pair an
        attention function returns)."""
        if self.impl is None:
            return self
        impl = self.impl
        return dataclasses.replace(self, impl=lambda *a, **k: post(impl(*a, **k), *a, **k))


# Hints for torch errors any exercise can meet; a checker's own misconceptions come first.
ERROR_HINTS = [
    (r"leaf Variable that requires grad is being used in an in-place operation|"
     r"modified by an inplace operation",
     "An in-place operation (x -= ..., x /= ..., x.exp_(), x[...] = ...) changed a tensor that autograd "
     "needs. Compute into a new tensor instead (x = x - ..., torch.exp(x))."),
    (r"size of tensor a \(\d+\) must match the size of tensor b",
     "Two tensors do not broadcast together: print the shapes of the operands of the failing line and "
     "compare them axis by axis, from the right. A reduction (sum, max, mean) drops its axis unless "
     "keepdim=True; an unsqueeze adds one."),
    (r"mat1 and mat2 shapes cannot be multiplied|size mismatch|shapes cannot be multiplied",
     "The inner dimensions of a matrix product do not agree: print both shapes; one side may need a "
     "transpose (.transpose(-2, -1))."),
    (r"Dimension out of range",
     "An axis index is out of range for this tensor: count the dimensions of your tensor "
     "(negative axes count from the end)."),
    (r"^NameError",
     "A name is not defined inside your function: define it (or import it) in the cell with your function."),
]
DEFAULT_ERROR_HINT = "Read the error message and the line it points to; run your function on a small input to see."


def clone_all(obj):
    """Fresh copies of every tensor inside nested tuples, lists and dicts, and of every
    stand-in of the check's own that has a ``fresh_copy()`` method (a scripted decoder
    that records its calls, say), so that a misconception runs on unused inputs."""
    if hasattr(type(obj), "fresh_copy"):
        return obj.fresh_copy()
    if isinstance(obj, _Tensor):
        return obj.detach().clone()
    if isinstance(obj, tuple):
        return tuple(clone_all(o) for o in obj)
    if isinstance(obj, list):
        return [clone_all(o) for o in obj]
    if isinstance(obj, dict):
        return {k: clone_all(v) for k, v in obj.items()}
    return obj


def _pick(value, part: int | None):
    if part is None:
        return value if isinstance(value, _Tensor) else None
    if isinstance(value, (tuple, list)) and len(value) > part:
        return value[part]
    return None


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return bool(_isclose(a.detach().to(torch.float64), b.detach().to(torch.float64), rtol=rtol, atol=atol,
                         equal_nan=True).all())


def diagnose_output(misconceptions: Sequence[Misconception], output: torch.Tensor, args: tuple, kwargs: dict,
                    *, part: int | None = None, expected: torch.Tensor | None = None,
                    tolerance: tuple[float, float] | None = None,
                    match_tolerances: Sequence[tuple[float, float]] = ((1e-4, 1e-6),)) -> str | None:
    """The hint of the first misconception whose ``impl``, run on ``args``/``kwargs``,
    returns what the learner returned (element ``part`` of a tuple), trying each
    (rtol, atol) of ``match_tolerances`` in turn; else None. A misconception that
    gives the right answer on these inputs (within ``tolerance`` of ``expected``)
    cannot explain a wrong output and is passed over."""
    if not isinstance(output, _Tensor):
        return None
    candidates = []
    for m in misconceptions:
        if m.impl is None:
            continue
        try:
            with torch.no_grad():
                wrong = _pick(m.impl(*clone_all(args), **clone_all(kwargs)), part)
        except Exception:  # noqa: BLE001 - a misconception that does not apply to these inputs
            continue
        if not isinstance(wrong, _Tensor) or wrong.shape != output.shape:
            continue
        if (expected is not None and tolerance is not None and isinstance(expected, _Tensor)
                and expected.shape == wrong.shape and _close(wrong, expected, *tolerance)):
            continue
        candidates.append((m, wrong))
    for rtol, atol in match_tolerances:
        for m, wrong in candidates:
            if _close(output, wrong, rtol, atol):
                return m.hint
    return None


def diagnose_error(misconceptions: Sequence[Misconception], text: str, args: tuple | None = None,
                   kwargs: dict | None = None) -> str:
    """The hint for a learner's exception whose "Type: message" is ``text``."""
    if args is not None:
        for m in misconceptions:
            if m.impl is None:
                continue
            try:
                with torch.no_grad():
                    m.impl(*clone_all(args), **clone_all(kwargs or {}))
            except Exception as exc:  # noqa: BLE001 - the same error as the learner's is the diagnosis
                if f"{type(exc).__name__}: {exc}" == text:
                    return m.hint
    for m in misconceptions:
        if m.error and re.search(m.error, text):
            return m.hint
    for pattern, hint in ERROR_HINTS:
        if re.search(pattern, text):
            return hint
    return DEFAULT_ERROR_HINT
