"""The checker framework: registry, sub-checks, time limits, diagnosis, reports.

A checker (one per exercise ID, in ``nbNN.py``) is a function
``checker_fn(t, fn)`` registered with ``@checker("NN.K", misconceptions=[...])``.
It receives a :class:`CheckContext` ``t`` and the learner's function ``fn`` and
declares its sub-checks in order, cheap to deep, each with the decorator
``@t.subcheck(name, weight, essential)``, which runs the body at once (or skips
it when an earlier essential sub-check failed). Inside a body:

* ``t.call(fn, *args)`` calls the learner's code under a time limit, turns its
  exceptions into a failed sub-check and records in-place mutation of inputs;
* ``t.expect_tensor / expect_shape / expect_dtype / expect_finite /
  expect_close / expect_equal`` fail the sub-check with a clear message;
* ``t.fail(message, hint)`` fails it directly.

Points: the exercise's points (``EXERCISES[id].points``) are shared among its
sub-checks in proportion to their weights; a failed or skipped sub-check earns
nothing, so partial credit is per sub-check, but only once every essential
sub-check passes (a function that returns its input unchanged has the right
type and shape, and deserves nothing for it). The framework adds two sub-checks
itself: "is callable" first (weight 0, essential) and "leaves its inputs
unchanged" last (weight ``mutation_weight``).

Time limits: each sub-check has a budget (``time_limit`` seconds, default
``DEFAULT_TIME_LIMIT``). The learner's code runs in a worker thread joined with
a timeout. Python cannot kill a thread, so after a timeout the runaway call
keeps running in the background (and keeps a CPU core busy) until the kernel
restarts; the check itself returns and reports it, and skips every later
sub-check. The grader (``grading.py``) runs checks in a separate process that
it can kill, so a runaway loop cannot hurt grading.
"""

from __future__ import annotations

import html
import os
import random
import re
import sys
import sysconfig
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

# Captured once at import, before any learner code runs: a learner's function
# that rebinds torch.isclose or torch.softmax while it runs cannot change how
# its result is judged (defence in depth; the grader's real boundary is the
# process, see docs/instructor.md).
_isclose = torch.isclose
_isfinite = torch.isfinite
_isnan = torch.isnan
_equal = torch.equal
_Tensor = torch.Tensor
_Generator = torch.Generator
_zeros_like = torch.zeros_like

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "NOT_IMPLEMENTED",
    "CheckResult",
    "SubCheck",
    "ExerciseSpec",
    "EXERCISES",
    "Misconception",
    "CheckContext",
    "CheckFailure",
    "checker",
    "run_check",
    "check",
    "render_text",
    "render_html",
]

DEFAULT_TIME_LIMIT = 10.0
NOT_IMPLEMENTED = "not implemented yet"
ENCOURAGEMENT = ("Replace `raise NotImplementedError()` with your code, run that cell, then run the "
                 "check again. Every solution starts exactly here!")
GRADING_ENV = "COURSE_LIB_GRADING"  # set by the grader: check() cells then skip (the grader checks itself)


# --------------------------------------------------------------------------- results


@dataclass
class SubCheck:
    """One line of a report: a sub-check, its status and its share of the points."""

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
        return render_text(self)

    def _repr_html_(self) -> str:
        return render_html(self)


# --------------------------------------------------------------------------- the exercises


@dataclass(frozen=True)
class ExerciseSpec:
    """A graded exercise: its ID, title, the name the learner's function must
    have, its points, and the notebook (``NN_topic``) it lives in."""

    id: str
    title: str
    function: str
    points: float
    notebook: str


NOTEBOOKS = {
    "00": "00_welcome",
    "01": "01_rnn_bottleneck",
    "02": "02_bahdanau_attention",
    "03": "03_self_attention",
    "04": "04_multi_head_attention",
    "05": "05_positional_encoding",
    "06": "06_transformer",
    "07": "07_gpt",
    "08": "08_vision_transformer",
    "09": "09_efficient_attention",
    "10": "10_interpretability",
}

# (id, title, function, points). Points grow with difficulty: 2 for a one-liner
# with a twist, 5 for a full attention function; the table is in docs/instructor.md.
_TABLE = [
    ("00.1", "Numerically stable softmax", "softmax", 2),
    ("01.1", "A vanilla RNN forward pass", "rnn_forward", 3),
    ("01.2", "Greedy decoding", "greedy_decode", 4),
    ("02.1", "Additive (Bahdanau) scores", "additive_scores", 3),
    ("02.2", "Masked softmax", "masked_softmax", 3),
    ("02.3", "Bahdanau attention: weights and context", "bahdanau_attend", 3),
    ("03.1", "Scaled dot-product attention", "scaled_dot_product_attention", 5),
    ("03.2", "Causal mask", "causal_mask", 2),
    ("03.3", "Padding mask", "padding_mask", 2),
    ("04.1", "Split into heads", "split_heads", 2),
    ("04.2", "Merge heads", "merge_heads", 2),
    ("04.3", "Multi-head attention", "multi_head_attention", 5),
    ("05.1", "Sinusoidal positional encoding", "sinusoidal_encoding", 3),
    ("05.2", "Rotary position embedding (RoPE)", "apply_rope", 4),
    ("06.1", "Layer normalisation", "layer_norm", 3),
    ("06.2", "Transformer encoder block", "EncoderBlock", 5),
    ("06.3", "Decoder self-attention mask", "decoder_self_mask", 3),
    ("07.1", "Next-token loss", "next_token_loss", 3),
    ("07.2", "Sampling the next token", "sample_next", 4),
    ("08.1", "Patchify", "patchify", 3),
    ("08.2", "Class token and position embeddings", "add_cls_and_pos", 2),
    ("09.1", "Tiled attention with an online softmax", "tiled_attention", 5),
    ("09.2", "Linear attention", "linear_attention", 4),
    ("09.3", "Sliding-window mask", "sliding_window_mask", 2),
    ("10.1", "Attention rollout", "attention_rollout", 4),
]

EXERCISES: dict[str, ExerciseSpec] = {
    i: ExerciseSpec(i, title, fn, float(points), NOTEBOOKS[i[:2]]) for i, title, fn, points in _TABLE
}


def exercises_of(notebook: str) -> list[ExerciseSpec]:
    """The exercises of one notebook, by name ("03_self_attention") or number ("03")."""
    key = notebook[:2]
    return [e for e in EXERCISES.values() if e.id.startswith(key + ".")]


# --------------------------------------------------------------------------- misconceptions


@dataclass(frozen=True)
class Misconception:
    """A wrong-but-plausible implementation and the hint it deserves.

    ``impl`` takes the same arguments as the learner's function and returns
    what that misconception would return. When a learner's output does not
    match the reference but matches ``impl``'s (same shape, close values, NaN
    where it has NaN), the check shows ``hint``. ``error`` is an optional
    regular expression: when the learner's code raises an exception whose
    "Type: message" matches it, the check shows ``hint`` too.
    """

    name: str
    hint: str
    impl: Callable[..., Any] | None = None
    error: str | None = None


# --------------------------------------------------------------------------- internal signals


class CheckFailure(Exception):
    """Raised inside a sub-check: it failed, with this message and hint."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class _NotImplemented(CheckFailure):
    def __init__(self):
        super().__init__(NOT_IMPLEMENTED, ENCOURAGEMENT)


class _TimedOut(CheckFailure):
    pass


_LIBRARY_DIRS = tuple(
    os.path.normcase(os.path.realpath(p)) + os.sep
    for p in {
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # course_lib
        os.path.dirname(os.path.abspath(torch.__file__)),
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
)


def _learner_frame(tb) -> traceback.FrameSummary | None:
    """The deepest traceback frame that is the learner's code, not a library's."""
    frames = traceback.extract_tb(tb)
    for frame in reversed(frames):
        name = frame.filename
        if name.startswith("<frozen"):
            continue
        real = os.path.normcase(os.path.realpath(name)) if not name.startswith("<") else name
        if not real.startswith(_LIBRARY_DIRS):
            return frame
    return None


def _describe_exception(exc: BaseException, what: str) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 300:
        first = first[:297] + "..."
    message = f"{what} raised {type(exc).__name__}" + (f": {first}" if first else "")
    frame = _learner_frame(exc.__traceback__)
    if frame is not None and frame.line:
        where = f" in {frame.name}" if frame.name not in ("<module>", "<lambda>") else ""
        message += f" (at `{frame.line.strip()}`{where})"
    return message


# Hints for torch errors any exercise can meet; a checker's own misconceptions come first.
_ERROR_HINTS = [
    (r"leaf Variable that requires grad is being used in an in-place operation|"
     r"modified by an inplace operation",
     "An in-place operation (x -= ..., x /= ..., x.exp_(), x[...] = ...) changed a tensor that autograd "
     "needs. Compute into a new tensor instead (x = x - ..., torch.exp(x))."),
    (r"size of tensor a \(\d+\) must match the size of tensor b",
     "Two tensors do not broadcast together. A reduction (sum, max, mean) drops its axis unless "
     "keepdim=True; print the shapes of the operands of the failing line."),
    (r"mat1 and mat2 shapes cannot be multiplied|size mismatch|shapes cannot be multiplied",
     "The inner dimensions of a matrix product do not agree: print both shapes; one side may need a "
     "transpose (.transpose(-2, -1))."),
    (r"Dimension out of range",
     "An axis index is out of range for this tensor: count the dimensions of your tensor "
     "(negative axes count from the end)."),
    (r"^NameError",
     "A name is not defined inside your function: define it (or import it) in the cell with your function."),
]


# --------------------------------------------------------------------------- registry of checkers


@dataclass
class _Checker:
    id: str
    fn: Callable[["CheckContext", Callable], None]
    misconceptions: tuple[Misconception, ...]
    mutation_weight: float


_CHECKERS: dict[str, _Checker] = {}


def checker(exercise_id: str, *, misconceptions: list[Misconception] | tuple = (),
            mutation_weight: float = 1.0):
    """Register ``fn(t, learner_fn)`` as the checker of ``exercise_id``."""
    if exercise_id not in EXERCISES:
        raise KeyError(f"checker for unknown exercise id {exercise_id!r}; add it to EXERCISES first")

    def register(fn):
        _CHECKERS[exercise_id] = _Checker(exercise_id, fn, tuple(misconceptions), float(mutation_weight))
        return fn

    return register


def _load_checker(exercise_id: str) -> _Checker | None:
    """Import ``course_lib.checks.nbNN`` (which registers its checkers) and
    return the checker of this ID, or None when none is written yet."""
    if exercise_id not in _CHECKERS:
        import importlib

        module = f"{__package__}.nb{exercise_id[:2]}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but one of its imports is missing: a real bug
                raise
    return _CHECKERS.get(exercise_id)


# --------------------------------------------------------------------------- the context a checker works with


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
        both_nan = _isnan(a) & _isnan(b)
        return bool(((a == b) | both_nan).all())
    return _equal(a, b)


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + (",)" if len(shape) == 1 else ")")


def _type_name(obj) -> str:
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


class CheckContext:
    """What a checker uses: seeded random inputs, timed learner calls, expectations.

    Attributes: ``spec`` (ExerciseSpec), ``seed``, ``gen`` (a seeded
    torch.Generator), ``random`` (a seeded random.Random), ``time_limit``.
    """

    def __init__(self, spec: ExerciseSpec, seed: int, time_limit: float,
                 misconceptions: tuple[Misconception, ...] = ()):
        self.spec = spec
        self.seed = seed
        self.time_limit = float(time_limit)
        self.gen = _Generator().manual_seed(seed)
        self.random = random.Random(seed)
        self.misconceptions = misconceptions
        self.subchecks: list[tuple[SubCheck, float]] = []  # (result, weight)
        self.mutations: list[str] = []
        self.blocked: str | None = None  # why later sub-checks are skipped
        self.not_implemented = False
        self._deadline: float | None = None

    # ---- inputs

    def randn(self, *shape, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
        """Standard normal values (times ``scale``) from the check's own generator."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        return torch.randn(*shape, generator=self.gen, dtype=dtype) * scale

    def randint(self, low: int, high: int, shape) -> torch.Tensor:
        return torch.randint(low, high, tuple(shape), generator=self.gen)

    # ---- sub-checks

    def subcheck(self, name: str, weight: float = 1.0, essential: bool = False):
        """Decorator that runs the decorated body now as one sub-check and
        returns the body's return value (None when it failed or was skipped).
        An essential sub-check that fails skips every later one."""

        def run(body: Callable[[], Any]):
            return self._run_subcheck(name, weight, essential, body)

        return run

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
            if isinstance(failure, _NotImplemented):
                self.not_implemented = True
                self.blocked = "skipped: the function is not implemented yet"
            elif isinstance(failure, _TimedOut):
                self.blocked = "skipped: an earlier call did not finish in time"
            elif essential:
                self.blocked = "skipped: fix the failed check above first"
            return None
        except Exception as exc:  # noqa: BLE001 - the checker choked on something the learner returned
            message = (f"the checker could not process your function's result "
                       f"({type(exc).__name__}: {str(exc)[:200]})")
            self.subchecks.append((SubCheck(name, "failed", 0.0, 0.0, message,
                                            "Check the type and shape your function returns.", essential), weight))
            if essential:
                self.blocked = "skipped: fix the failed check above first"
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

    def run(self, func: Callable[[], Any], what: str) -> Any:
        """Run ``func()`` (which runs learner code, e.g. a backward pass) under
        the sub-check's time limit; its exceptions fail the sub-check."""
        box: dict[str, Any] = {}
        grad_mode = torch.is_grad_enabled()

        def target():
            try:
                with torch.set_grad_enabled(grad_mode):
                    box["value"] = func()
            except BaseException as exc:  # noqa: BLE001 - SystemExit and friends count as the learner's error
                box["error"] = exc

        limit = self._remaining()
        worker = threading.Thread(target=target, name=f"check-{self.spec.id}", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            raise _TimedOut(
                f"{what} took longer than {self.time_limit:g} s: an infinite loop?",
                "Look for a loop whose condition never becomes false, or a call to your function inside "
                "itself. The call keeps running in the background: restart the kernel to stop it.")
        if "error" in box:
            exc = box["error"]
            if isinstance(exc, NotImplementedError):
                raise _NotImplemented()
            raise CheckFailure(_describe_exception(exc, what), self._hint_for_error(exc))
        return box.get("value")

    def call(self, fn: Callable, *args, **kwargs) -> Any:
        """Call the learner's ``fn(*args, **kwargs)`` under the time limit and
        record any in-place change to its tensor arguments. Pass inputs that
        the checker does not reuse (clones), and compute expected values first."""
        names = self._argument_names(fn, args, kwargs)
        snapshot = [(names.get(key, key), path, t, t.detach().clone())
                    for key, value in list(enumerate(args)) + list(kwargs.items())
                    for path, t in _tensors_in(value, "")]
        what = f"{getattr(fn, '__name__', 'your function')}({self._describe_args(args, kwargs)})"
        value = self.run(lambda: fn(*args, **kwargs), what)
        for name, path, tensor, before in snapshot:
            if not _same(tensor.detach(), before):
                label = f"`{name}{path}`"
                if label not in self.mutations:
                    self.mutations.append(label)
        return value

    @staticmethod
    def _argument_names(fn, args, kwargs) -> dict:
        import inspect

        try:
            bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        except (TypeError, ValueError):
            return {i: f"argument {i + 1}" for i in range(len(args))}
        names = {}
        params = list(bound.arguments)
        for i in range(len(args)):
            names[i] = params[i] if i < len(params) else f"argument {i + 1}"
        return names

    @staticmethod
    def _describe_args(args, kwargs) -> str:
        def one(v):
            if isinstance(v, _Tensor):
                return f"<{str(v.dtype).replace('torch.', '')} tensor {_fmt_shape(v.shape)}>"
            if isinstance(v, (int, float, bool, type(None), str)):
                return repr(v)
            return f"<{type(v).__name__}>"

        parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
        return ", ".join(parts)

    def _hint_for_error(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        for m in self.misconceptions:
            if m.error and re.search(m.error, text):
                return m.hint
        for pattern, hint in _ERROR_HINTS:
            if re.search(pattern, text):
                return hint
        return "Read the error message and the line it points to; run your function on a small input to see."

    # ---- diagnosis

    def diagnose(self, output, args: tuple = (), kwargs: dict | None = None,
                 rtol: float = 1e-4, atol: float = 1e-6, expected: torch.Tensor | None = None,
                 tolerance: tuple[float, float] | None = None) -> str | None:
        """The hint of the first misconception whose implementation, run on
        ``args``/``kwargs``, returns what the learner returned; else None.
        Misconceptions that give the right answer on these inputs (within
        ``tolerance`` = (rtol, atol) of ``expected``) cannot explain a wrong
        output and are passed over."""
        if not isinstance(output, _Tensor):
            return None
        kwargs = kwargs or {}
        right = None
        if expected is not None and isinstance(expected, _Tensor):
            right = expected.detach().to(torch.float64)
        t_rtol, t_atol = tolerance or (rtol, atol)
        for m in self.misconceptions:
            if m.impl is None:
                continue
            try:
                with torch.no_grad():
                    wrong = m.impl(*_clone_all(args), **_clone_all(kwargs))
            except Exception:  # noqa: BLE001 - a misconception that does not apply to these inputs
                continue
            if isinstance(wrong, _Tensor) and wrong.shape == output.shape:
                a, b = output.detach().to(torch.float64), wrong.detach().to(torch.float64)
                if right is not None and right.shape == b.shape and bool(
                        _isclose(b, right, rtol=t_rtol, atol=t_atol, equal_nan=True).all()):
                    continue
                if bool(_isclose(a, b, rtol=rtol, atol=atol, equal_nan=True).all()):
                    return m.hint
        return None

    # ---- expectations

    def expect_raises(self, fn: Callable[..., Any], args: tuple, expected: type[BaseException], what: str,
                      hint_if_returned: str, hint_if_other: str | None = None) -> BaseException:
        """The learner's ``fn(*args)`` must raise ``expected`` (e.g. ValueError for bad input).

        Fails with ``hint_if_returned`` when it returns a result, and with
        ``hint_if_other`` (default: the same hint) when it raises another
        exception; NotImplementedError still reads "not implemented yet".
        Returns the exception raised."""
        box: dict[str, BaseException] = {}

        def attempt():
            try:
                fn(*args)
            except NotImplementedError:
                raise
            except Exception as exc:  # noqa: BLE001 - its type is judged below
                box["raised"] = exc

        self.run(attempt, what)
        exc = box.get("raised")
        if exc is None:
            self.fail(f"{what} returned a result instead of raising {expected.__name__}", hint_if_returned)
        if not isinstance(exc, expected):
            self.fail(f"{what} raised {type(exc).__name__} ({str(exc)[:120]}), expected {expected.__name__}",
                      hint_if_other or hint_if_returned)
        return exc

    def expect_tensor(self, out, what: str = "the result") -> torch.Tensor:
        if isinstance(out, _Tensor):
            return out
        if out is None:
            self.fail(f"{what} is None, expected a torch.Tensor",
                      "Your function does not return anything: add a `return` statement.")
        if type(out).__module__ == "numpy":
            self.fail(f"{what} is a {_type_name(out)}, expected a torch.Tensor",
                      "Stay in torch: use torch functions (torch.exp, tensor.max, ...) instead of NumPy. "
                      "Converting with .numpy() also cuts the autograd graph.")
        if isinstance(out, (tuple, list)):
            self.fail(f"{what} is a {type(out).__name__} of {len(out)} items, expected a single torch.Tensor",
                      "Return just the tensor, not a tuple or a list (a stray comma after `return x` makes a tuple).")
        self.fail(f"{what} is a {_type_name(out)}, expected a torch.Tensor",
                  "Return a torch.Tensor built with torch operations.")
        return out  # unreachable

    def expect_shape(self, out: torch.Tensor, shape, what: str = "the result", hint: str = "",
                     args: tuple = (), kwargs: dict | None = None) -> None:
        shape = tuple(int(s) for s in shape)
        if tuple(out.shape) != shape:
            diagnosed = self.diagnose(out, args, kwargs) if args or kwargs else None
            self.fail(f"{what} has shape {_fmt_shape(out.shape)}, expected {_fmt_shape(shape)}",
                      diagnosed or hint or "Check which dimensions your operations reduce or add "
                                           "(keepdim=True keeps a reduced dimension).")

    def expect_dtype(self, out: torch.Tensor, dtype, what: str = "the result", hint: str = "") -> None:
        if out.dtype != dtype:
            self.fail(f"{what} has dtype {out.dtype}, expected {dtype}",
                      hint or "Keep the input's dtype: avoid .float(), .double() or torch.tensor(..., dtype=...) "
                              "on the way, or cast back at the end.")

    def expect_finite(self, out: torch.Tensor, what: str = "the result", args: tuple = (),
                      kwargs: dict | None = None, hint: str = "", where: torch.Tensor | None = None) -> None:
        """No NaN or inf in ``out`` (or in ``out[where]``)."""
        values = out.detach() if where is None else out.detach()[where]
        bad = ~_isfinite(values)
        if bool(bad.any()):
            n_nan = int(_isnan(values).sum())
            n_inf = int(bad.sum()) - n_nan
            kinds = " and ".join(k for k in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if k)
            self.fail(f"{what} contains {kinds} value(s) out of {values.numel()}",
                      self.diagnose(out, args, kwargs) or hint
                      or "Look for a division by zero, the log of 0 or of a negative number, or exp of a large number.")

    def expect_close(self, out: torch.Tensor, expected: torch.Tensor, what: str = "the result",
                     rtol: float = 1e-5, atol: float = 1e-6, args: tuple = (), kwargs: dict | None = None,
                     hint: str = "", reference: str = "the reference") -> None:
        """Values close to ``expected`` (NaN must match NaN, inf must match inf).
        The message says how many values differ, never what they should be."""
        if tuple(out.shape) != tuple(expected.shape):
            self.expect_shape(out, expected.shape, what, args=args, kwargs=kwargs)
        a = out.detach().to(expected.dtype)
        try:
            ok = _isclose(a, expected.detach(), rtol=rtol, atol=atol, equal_nan=True)
        except RuntimeError as exc:
            self.fail(f"{what} could not be compared with {reference}: {exc}")
        if not bool(ok.all()):
            n_bad = int((~ok).sum())
            self.fail(f"{what}: {n_bad} of {ok.numel()} values differ from {reference}",
                      self.diagnose(out, args, kwargs, expected=expected, tolerance=(rtol, atol)) or hint
                      or "Compare your steps with the formula on a tiny input you can work out by hand.")

    def expect_equal(self, out: torch.Tensor, expected: torch.Tensor, what: str = "the result",
                     args: tuple = (), kwargs: dict | None = None, hint: str = "",
                     reference: str = "the reference") -> None:
        """Exactly equal (for masks, indices, integer results)."""
        if tuple(out.shape) != tuple(expected.shape):
            self.expect_shape(out, expected.shape, what, args=args, kwargs=kwargs)
        if not _same(out.detach().to(expected.dtype), expected.detach()):
            n_bad = int((out.detach().to(expected.dtype) != expected.detach()).sum())
            self.fail(f"{what}: {n_bad} of {expected.numel()} entries differ from {reference}",
                      self.diagnose(out, args, kwargs, expected=expected, tolerance=(0.0, 0.0)) or hint
                      or "Work the answer out by hand for the smallest input and compare.")


def _clone_all(obj):
    if isinstance(obj, _Tensor):
        return obj.detach().clone()
    if isinstance(obj, tuple):
        return tuple(_clone_all(o) for o in obj)
    if isinstance(obj, list):
        return [_clone_all(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _clone_all(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- running a check


def _new_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def _summarize(spec: ExerciseSpec, ctx: CheckContext) -> CheckResult:
    total_weight = sum(w for _, w in ctx.subchecks)
    subchecks: list[SubCheck] = []
    for sub, weight in ctx.subchecks:
        share = spec.points * weight / total_weight if total_weight > 0 else 0.0
        sub.max_points = round(share, 4)
        sub.points = sub.max_points if sub.status == "passed" else 0.0
        subchecks.append(sub)
    failed = [s for s in subchecks if s.status == "failed"]
    passed = not failed and all(s.status == "passed" for s in subchecks)
    core_ok = all(s.status == "passed" for s in subchecks if s.essential)
    if not core_ok:  # partial credit only once the essential sub-checks pass
        for s in subchecks:
            s.points = 0.0
    points = spec.points if passed else round(sum(s.points for s in subchecks), 4)
    hint = failed[0].hint if failed else ""
    if ctx.not_implemented and not any(s.status == "passed" and s.max_points > 0 for s in subchecks):
        messages = [NOT_IMPLEMENTED, ENCOURAGEMENT]
        points = 0.0
    elif failed:
        messages = []
        for i, s in enumerate(failed):
            messages.append(s.message if s.message == NOT_IMPLEMENTED else f"{s.name}: {s.message}")
            if i == 0 and s.hint:
                messages.append(f"Hint: {s.hint}")
    else:
        messages = [f"all {len(subchecks)} checks passed"]
    return CheckResult(passed, points, spec.points, messages, spec.id, spec.title, spec.function,
                       subchecks, hint, ctx.seed)


def run_check(exercise_id: str, fn: Any, *, time_limit: float = DEFAULT_TIME_LIMIT,
              seed: int | None = None) -> CheckResult:
    """Run the checks of ``exercise_id`` on ``fn`` and return a CheckResult.

    Never raises (a KeyboardInterrupt from the user still stops it). ``seed``
    fixes the random inputs (default: fresh ones each run; the result records
    the seed so a run can be reproduced).
    """
    exercise_id = str(exercise_id).strip()
    spec = EXERCISES.get(exercise_id)
    if spec is None:
        import difflib

        close = difflib.get_close_matches(exercise_id, list(EXERCISES), n=1)
        suggestion = f" Did you mean {close[0]!r}?" if close else ""
        return CheckResult(False, 0.0, 0.0,
                           [f"unknown exercise id {exercise_id!r}.{suggestion} "
                            f"Known ids: {', '.join(EXERCISES)}"], id=exercise_id)
    seed = _new_seed() if seed is None else int(seed)
    try:
        entry = _load_checker(exercise_id)
    except Exception as exc:  # noqa: BLE001 - a broken checker module must not stop the notebook
        return CheckResult(False, 0.0, spec.points,
                           [f"internal error while loading the checker of {exercise_id} "
                            f"({type(exc).__name__}: {exc}); not your fault, please tell the course authors"],
                           spec.id, spec.title, spec.function, seed=seed)
    if entry is None:
        return CheckResult(False, 0.0, spec.points,
                           [f"no checker for this exercise yet ({exercise_id} {spec.title}); "
                            "compare with the lecture notebook instead"],
                           spec.id, spec.title, spec.function, seed=seed)
    ctx = CheckContext(spec, seed, time_limit, entry.misconceptions)
    name = spec.function

    @ctx.subcheck(f"`{name}` is callable", weight=0.0, essential=True)
    def _callable():
        if not callable(fn):
            ctx.fail(f"expected a function (or class) named `{name}`, got a {_type_name(fn)}",
                     f"Pass the function itself: check({exercise_id!r}, {name}), without calling it.")

    try:
        entry.fn(ctx, fn)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in the checker, outside any sub-check
        return CheckResult(False, 0.0, spec.points,
                           [f"internal error in the checker of {exercise_id} ({type(exc).__name__}: {exc}); "
                            "not your fault, please tell the course authors"],
                           spec.id, spec.title, spec.function, seed=seed)

    @ctx.subcheck("leaves its inputs unchanged", weight=entry.mutation_weight)
    def _not_mutated():
        if ctx.mutations:
            ctx.fail(f"your function modified its input {', '.join(ctx.mutations)} in place",
                     "An in-place operation (x -= ..., x /= ..., x.exp_(), x[...] = ...) changes the caller's "
                     "tensor. Compute into a new tensor instead (x = x - ..., torch.exp(x)).")

    return _summarize(spec, ctx)


# --------------------------------------------------------------------------- reports


_ICONS = {"passed": "✓", "failed": "✗", "skipped": "–"}
_COLORS = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#6e7781"}


def _pts(x: float) -> str:
    return f"{x:.3g}"


def _heading(result: CheckResult) -> str:
    name = f" · {result.title}" if result.title else ""
    fn = f" (`{result.function}`)" if result.function else ""
    return f"Exercise {result.id}{name}{fn}"


def render_text(result: CheckResult) -> str:
    """A plain-text report: one line per sub-check, points, one hint."""
    verdict = "PASSED" if result.passed else "not passed yet"
    lines = [f"{_heading(result)}: {_pts(result.points)} / {_pts(result.max_points)} points, {verdict}"]
    if not result.subchecks:
        lines += [f"  {m}" for m in result.messages]
        return "\n".join(lines)
    if result.messages and result.messages[0] == NOT_IMPLEMENTED:
        lines += [f"  ✗ {NOT_IMPLEMENTED}", f"  {ENCOURAGEMENT}"]
        return "\n".join(lines)
    for s in result.subchecks:
        pts = f"  [{_pts(s.points)}/{_pts(s.max_points)}]" if s.max_points else ""
        lines.append(f"  {_ICONS[s.status]} {s.name}{pts}")
        if s.status == "failed":
            lines.append(f"      {s.message}")
    if result.hint:
        lines.append(f"Hint: {result.hint}")
    return "\n".join(lines)


def render_html(result: CheckResult) -> str:
    """The same report as HTML, for Jupyter."""
    e = html.escape
    color = _COLORS["passed" if result.passed else "failed"]
    head = (f"<div style='border-left:4px solid {color};padding:4px 10px;font-family:sans-serif'>"
            f"<b>{e(_heading(result))}</b>: <b style='color:{color}'>{_pts(result.points)} / "
            f"{_pts(result.max_points)} points</b>{' · passed ✓' if result.passed else ''}")
    rows = []
    if not result.subchecks or (result.messages and result.messages[0] == NOT_IMPLEMENTED):
        body = "".join(f"<div>{e(m)}</div>" for m in result.messages)
        return head + body + "</div>"
    for s in result.subchecks:
        pts = f"{_pts(s.points)}/{_pts(s.max_points)}" if s.max_points else ""
        detail = f"<div style='color:#57606a;margin-left:1.4em'>{e(s.message)}</div>" if s.status == "failed" else ""
        muted = " style='color:#6e7781'" if s.status == "skipped" else ""
        rows.append(f"<tr><td style='color:{_COLORS[s.status]};font-weight:bold'>{_ICONS[s.status]}</td>"
                    f"<td{muted}>{e(s.name)}{detail}</td><td style='text-align:right'>{pts}</td></tr>")
    table = "<table style='border-collapse:collapse;margin-top:4px'>" + "".join(rows) + "</table>"
    hint = (f"<div style='margin-top:4px'><b>Hint:</b> {e(result.hint)}</div>" if result.hint else "")
    return head + table + hint + "</div>"


def _in_jupyter() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _show(result: CheckResult) -> None:
    if _in_jupyter():
        from IPython.display import display

        display({"text/html": render_html(result), "text/plain": render_text(result)}, raw=True)
    else:
        print(render_text(result), flush=True)


def check(exercise_id: str, fn: Any, *, time_limit: float = DEFAULT_TIME_LIMIT, seed: int | None = None) -> None:
    """Check ``fn`` against exercise ``exercise_id`` and show the report
    (HTML in Jupyter, text elsewhere). Never raises, so "Run All" goes on;
    returns None so the report is not shown twice (use ``run_check`` for the
    CheckResult)."""
    try:
        if os.environ.get(GRADING_ENV) == "1":
            print(f"[{exercise_id}] checks are run by the grader itself, not by this cell.")
            return None
        result = run_check(exercise_id, fn, time_limit=time_limit, seed=seed)
        _show(result)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - check() must never stop a notebook
        print(f"check({exercise_id!r}) could not run: {type(exc).__name__}: {exc}", flush=True)
    return None

