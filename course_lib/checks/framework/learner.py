"""Running the learner's code: under a time limit, in a worker thread, with whatever it
returns turned into plain data before the checker looks at it.

Everything that touches a learner's object runs in the worker, under the limit:
the call itself, iterating over a returned tuple, converting a tensor subclass to
a plain ``torch.Tensor``, and turning an exception into text. A returned object
whose ``__len__`` loops forever, or that raises ``KeyboardInterrupt``, is then a
failed sub-check, never a hung or stopped notebook. Python cannot kill a thread:
after a timeout the runaway call keeps running in the background until the
kernel restarts (the grader runs checks in a process it can kill).
"""

from __future__ import annotations

import os
import sysconfig
import threading
import traceback
from typing import Any, Callable

import torch

_Tensor = torch.Tensor
_TensorBase = getattr(torch._C, "TensorBase", None) or torch._C._TensorBase
_default_dispatch = _Tensor.__torch_dispatch__ if hasattr(_Tensor, "__torch_dispatch__") else None

_LIBRARY_DIRS = tuple(
    os.path.normcase(os.path.realpath(p)) + os.sep
    for p in {
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),  # course_lib
        os.path.dirname(os.path.abspath(torch.__file__)),
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
)


class Opaque:
    """Stands for an object the learner returned that is neither a tensor, a plain
    Python value nor a tuple/list of those: the checker only ever sees its type's name."""

    def __init__(self, obj):
        t = type(obj)
        self.type_name = t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"
        self.module = t.__module__

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


class NotPlain(Exception):
    """A tensor subclass that cannot be read as a plain tensor."""


def plain_tensor(x) -> torch.Tensor:
    """``x`` as an exact ``torch.Tensor`` (same data, same autograd graph): a subclass's
    overridden methods (an ``.all()`` that always says True) cannot judge its own result."""
    if type(x) is _Tensor:
        return x
    cls = type(x)
    if getattr(cls, "__torch_dispatch__", _default_dispatch) is not _default_dispatch:
        raise NotPlain(f"a tensor subclass ({cls.__name__}) that overrides __torch_dispatch__")
    with torch._C.DisableTorchFunctionSubclass():
        out = _TensorBase.as_subclass(x, _Tensor)
    if type(out) is not _Tensor:
        raise NotPlain(f"a tensor subclass ({cls.__name__})")
    return out


_PLAIN_TYPES = (int, float, bool, str, complex, type(None))


def sanitize(value, depth: int = 0):
    """Plain data the checker can look at safely: exact tensors, Python scalars,
    tuples and lists of those (three levels deep), ``Opaque`` for anything else."""
    cls = type(value)
    if issubclass(cls, _Tensor):
        return plain_tensor(value)
    if cls in _PLAIN_TYPES:
        return value
    if depth < 3 and issubclass(cls, (tuple, list)):
        items = [sanitize(v, depth + 1) for v in tuple(value)]
        return items if issubclass(cls, list) else tuple(items)
    return Opaque(value)


def learner_frame(tb) -> traceback.FrameSummary | None:
    """The deepest traceback frame that is the learner's code, not a library's."""
    for frame in reversed(traceback.extract_tb(tb)):
        name = frame.filename
        if name.startswith("<frozen"):
            continue
        real = os.path.normcase(os.path.realpath(name)) if not name.startswith("<") else name
        if not real.startswith(_LIBRARY_DIRS):
            return frame
    return None


def describe_exception(exc: BaseException, what: str) -> tuple[str, str]:
    """(message for the report, "Type: message" for diagnosis). Runs in the worker:
    ``str()`` of a learner's exception is learner code too."""
    kind = type(exc).__name__
    try:
        text = str(exc).strip()
    except BaseException:  # noqa: BLE001
        text = ""
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if len(first) > 300:
        first = first[:297] + "..."
    message = f"{what} raised {kind}" + (f": {first}" if first else "")
    frame = learner_frame(exc.__traceback__)
    if frame is not None and frame.line:
        where = f" in {frame.name}" if frame.name not in ("<module>", "<lambda>") else ""
        message += f" (at `{frame.line.strip()}`{where})"
    return message, f"{kind}: {text}"


class Outcome:
    """What a timed run gave: ``value`` (sanitized), or ``error`` (the exception,
    its report message and its "Type: message"), or ``timed_out``."""

    def __init__(self):
        self.value: Any = None
        self.error: BaseException | None = None
        self.message = ""
        self.text = ""
        self.timed_out = False


def run_timed(func: Callable[[], Any], limit: float, what: str, name: str, grad_mode: bool,
              keep_raw: bool = False) -> Outcome:
    """Run ``func()`` in a worker thread for at most ``limit`` seconds, then sanitize
    its value there (unless ``keep_raw``: for a module instance the checker drives)."""
    outcome = Outcome()

    def target():
        try:
            with torch.set_grad_enabled(grad_mode):
                value = func()
                outcome.value = value if keep_raw else sanitize(value)
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: the learner's error
            try:
                outcome.message, outcome.text = describe_exception(exc, what)
            except BaseException:  # noqa: BLE001
                outcome.message, outcome.text = f"{what} raised an exception", ""
            outcome.error = exc

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        outcome.timed_out = True
    return outcome
