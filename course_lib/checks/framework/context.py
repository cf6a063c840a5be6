"""The context a checker works with: seeded inputs, sub-checks, timed calls of the learner's code.

A checker ``fn(t, learner_fn)`` declares its sub-checks in order, cheap to deep,
each with ``@t.subcheck(name, weight, essential)``, which runs the body at once
(or skips it when an earlier essential sub-check failed). Inside a body it
calls the learner through ``t.call`` and judges with the ``expect_*`` methods
(expectations.py) or the standard sub-checks (standard.py, kinds.py).
"""

from __future__ import annotations

import inspect
import random
import time
from typing import Any, Callable

import torch

from .diagnosis import Misconception, diagnose_error, diagnose_output
from .expectations import Expectations, fmt_shape
from .kinds import Kinds
from .learner import NotPlain, Opaque, run_timed
from .registry import ExerciseSpec
from .results import CheckFailure, NotImplementedYet, SubCheck, TimedOut
from .standard import StandardChecks

_Tensor = torch.Tensor
_Generator = torch.Generator
_isnan = torch.isnan
_equal = torch.equal


def _tensors_in(obj, path: str):
    """(path, tensor) pairs inside nested lists, tuples and dicts."""
    if isinstance(obj, _Tensor):
        yield path, obj
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _tensors_in(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, item in obj.items():
            yield from _tensors_in(item, f"{path}[{k!r}]")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Exact equality, NaN equal to NaN (for mutation detection)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (_isnan(a) & _isnan(b))).all())
    return _equal(a, b)


def _describe_args(args, kwargs) -> str:
    def one(v):
        if isinstance(v, _Tensor):
            return f"<{str(v.dtype).replace('torch.', '')} tensor {fmt_shape(v.shape)}>"
        if isinstance(v, (int, float, bool, type(None), str)):
            return repr(v)
        return f"<{type(v).__name__}>"

    return ", ".join([one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()])


class CheckContext(StandardChecks, Kinds, Expectations):
    """What a checker uses: seeded random inputs, timed learner calls, expectations.

    Attributes: ``spec`` (ExerciseSpec), ``seed``, ``gen`` (a seeded
    torch.Generator), ``random`` (a seeded random.Random), ``time_limit``,
    ``misconceptions`` and ``match_tolerances`` (from the registered checker).
    """

    def __init__(self, spec: ExerciseSpec, seed: int, time_limit: float,
                 misconceptions: tuple[Misconception, ...] = (),
                 match_tolerances: tuple[tuple[float, float], ...] = ((1e-4, 1e-6),)):
        self.spec = spec
        self.seed = seed
        self.time_limit = float(time_limit)
        self.gen = _Generator().manual_seed(seed)
        self.random = random.Random(seed)
        self.misconceptions = misconceptions
        self.match_tolerances = match_tolerances
        self.subchecks: list[tuple[SubCheck, float]] = []  # (result, weight)
        self.mutations: list[str] = []
        self.blocked: str | None = None  # why later sub-checks are skipped
        self.not_implemented = False
        self.first: dict[str, Any] = {}  # what the opening sub-checks found, for later ones
        self._deadline: float | None = None

    # ---- inputs

    def randn(self, *shape, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
        """Standard normal values (times ``scale``) from the check's own generator."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        return torch.randn(tuple(shape), generator=self.gen, dtype=dtype) * scale

    def randint(self, low: int, high: int, shape) -> torch.Tensor:
        return torch.randint(low, high, tuple(shape), generator=self.gen)

    def sizes(self, count: int, low: int = 2, high: int = 7) -> list[int]:
        """``count`` different sizes in [low, high]: a swapped axis then shows as a wrong shape."""
        return self.random.sample(range(low, high + 1), count)

    def keep_mask(self, *shape, p: float = 0.5, hide_one: bool = True) -> torch.Tensor:
        """A random bool keep mask of ``shape`` (..., S) (True with probability ``p``) in which
        every row keeps at least one key and, with ``hide_one`` (S >= 2), hides at least one:
        an inverted mask then has no empty row either, and reads differently."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        S = shape[-1]
        keep = torch.rand(*shape, generator=self.gen) < p
        kept = torch.randint(0, S, shape[:-1], generator=self.gen)
        keep = keep | torch.nn.functional.one_hot(kept, S).bool()
        if hide_one:
            hidden = (kept + torch.randint(1, S, shape[:-1], generator=self.gen)) % S
            keep = keep & ~torch.nn.functional.one_hot(hidden, S).bool()
        return keep

    # ---- sub-checks

    def subcheck(self, name: str, weight: float = 1.0, essential: bool = False):
        """Decorator that runs the decorated body now as one sub-check and
        returns the body's return value (None when it failed or was skipped).
        An essential sub-check that fails skips every later one."""

        def run(body: Callable[[], Any]):
            return self._run_subcheck(name, weight, essential, body)

        return run

    def _block(self, failed: str, why: str) -> None:
        self.blocked = f"skipped: {why} (“{failed}”)"

    def _run_subcheck(self, name, weight, essential, body):
        if self.blocked is not None:
            self.subchecks.append((SubCheck(name, "skipped", 0.0, 0.0, self.blocked, essential=essential), weight))
            return None
        self._deadline = time.monotonic() + self.time_limit
        try:
            value = body()
        except CheckFailure as failure:
            self.subchecks.append((SubCheck(name, "failed", 0.0, 0.0, failure.message, failure.hint,
                                            essential), weight))
            if isinstance(failure, NotImplementedYet):
                self.not_implemented = True
                self.blocked = "skipped: the function is not implemented yet"
            elif isinstance(failure, TimedOut):
                self._block(name, "an earlier call did not finish in time")
            elif essential:
                self._block(name, "it needs the failed check above to pass first")
            return None
        except Exception as exc:  # noqa: BLE001 - the checker choked on something the learner returned
            message = (f"the checker could not process your function's result "
                       f"({type(exc).__name__}: {str(exc)[:200]})")
            self.subchecks.append((SubCheck(name, "failed", 0.0, 0.0, message,
                                            "Check the type and shape your function returns.", essential), weight))
            if essential:
                self._block(name, "it needs the failed check above to pass first")
            return None
        finally:
            self._deadline = None
        self.subchecks.append((SubCheck(name, "passed", 0.0, 0.0, essential=essential), weight))
        return value

    def fail(self, message: str, hint: str = "") -> None:
        raise CheckFailure(message, hint)

    # ---- calling the learner's code

    def _remaining(self) -> float:
        if self._deadline is None:
            return self.time_limit
        return max(0.0, self._deadline - time.monotonic())

    def run(self, func: Callable[[], Any], what: str, *, args: tuple | None = None, kwargs: dict | None = None,
            keep_raw: bool = False) -> Any:
        """Run ``func()`` (learner code: a call, a backward pass, a module's
        constructor) under the sub-check's time limit and return its value as
        plain data (``keep_raw``: as it is, for an object the checker drives
        further through ``t.run``); its exceptions fail the sub-check, with the
        hint of the misconception that raises the same error on ``args``."""
        outcome = run_timed(func, self._remaining(), what, f"check-{self.spec.id}", torch.is_grad_enabled(),
                            keep_raw)
        if outcome.timed_out:
            raise TimedOut(
                f"{what} took longer than {self.time_limit:g} s: an infinite loop?",
                "Look for a loop whose condition never becomes false, or a call to your function inside "
                "itself. The call keeps running in the background: restart the kernel to stop it.")
        if outcome.error is not None:
            exc = outcome.error
            if isinstance(exc, NotPlain):
                self.fail(f"{what} returned {exc}, expected a plain torch.Tensor",
                          "Return an ordinary torch.Tensor built with torch operations.")
            if isinstance(exc, NotImplementedError):
                raise NotImplementedYet()
            raise CheckFailure(outcome.message, diagnose_error(self.misconceptions, outcome.text, args, kwargs))
        return outcome.value

    def call(self, fn: Callable, *args, **kwargs) -> Any:
        """Call the learner's ``fn(*args, **kwargs)`` under the time limit and
        record any in-place change to its tensor arguments. Pass inputs that
        the checker does not reuse (clones), and compute expected values first.
        The result is plain data: exact tensors, Python scalars, tuples/lists
        of those, ``Opaque`` for anything else."""
        names = self._argument_names(fn, args, kwargs)
        snapshot = [(names.get(key, key), path, t, t.detach().clone())
                    for key, value in list(enumerate(args)) + list(kwargs.items())
                    for path, t in _tensors_in(value, "")]
        what = f"{getattr(fn, '__name__', 'your function')}({_describe_args(args, kwargs)})"
        try:
            value = self.run(lambda: fn(*args, **kwargs), what, args=args, kwargs=kwargs)
        finally:
            for name, path, tensor, before in snapshot:
                if not _same(tensor.detach(), before):
                    label = f"`{name}{path}`"
                    if label not in self.mutations:
                        self.mutations.append(label)
        return value

    @staticmethod
    def _argument_names(fn, args, kwargs) -> dict:
        try:
            bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        except (TypeError, ValueError):
            return {i: f"argument {i + 1}" for i in range(len(args))}
        params = list(bound.arguments)
        return {i: params[i] if i < len(params) else f"argument {i + 1}" for i in range(len(args))}

    # ---- diagnosis

    def diagnose(self, output, args: tuple = (), kwargs: dict | None = None, *, part: int | None = None,
                 expected: torch.Tensor | None = None, tolerance: tuple[float, float] | None = None) -> str | None:
        """The hint of the first misconception that returns what the learner returned
        on ``args``/``kwargs`` (element ``part`` of a tuple), or None."""
        if isinstance(output, Opaque):
            return None
        return diagnose_output(self.misconceptions, output, args, kwargs or {}, part=part, expected=expected,
                               tolerance=tolerance, match_tolerances=self.match_tolerances)
