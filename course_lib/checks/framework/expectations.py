"""Expectations on a learner's (sanitized) result: each fails the sub-check with a
clear message, and a hint from the misconceptions when one explains the result.

``part`` (on every method that diagnoses) is the index of the judged tensor in
the exercise's tuple of outputs, so that misconceptions returning tuples are
matched element by element.
"""

from __future__ import annotations

import torch

from .learner import Opaque

_isclose = torch.isclose
_isfinite = torch.isfinite
_isnan = torch.isnan
_Tensor = torch.Tensor

SHAPE_HINT = ("Compare the dimensions of your result with the contract, axis by axis: print the shapes of "
              "the intermediate tensors to see where an axis is added, dropped or swapped, and where each "
              "size comes from.")


def fmt_shape(shape) -> str:
    """``(2, 3)``, ``(4,)``, ``()``: a shape as the reports write it."""
    return "(" + ", ".join(str(int(s)) for s in shape) + (",)" if len(shape) == 1 else ")")


def type_name(obj) -> str:
    if isinstance(obj, Opaque):
        return obj.type_name
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


class Expectations:
    """The ``expect_*`` methods of ``CheckContext``."""

    def expect_tensor(self, out, what: str = "the result") -> torch.Tensor:
        if isinstance(out, _Tensor):
            return out
        if out is None:
            self.fail(f"{what} is None, expected a torch.Tensor",
                      "Your function does not return anything: add a `return` statement.")
        if isinstance(out, Opaque) and out.module.split(".")[0] == "numpy":
            self.fail(f"{what} is a {type_name(out)}, expected a torch.Tensor",
                      "Stay in torch: use torch functions (torch.exp, tensor.max, ...) instead of NumPy. "
                      "Converting with .numpy() also cuts the autograd graph.")
        if isinstance(out, (tuple, list)):
            self.fail(f"{what} is a {type(out).__name__} of {len(out)} items, expected a single torch.Tensor",
                      "Return just the tensor, not a tuple or a list (a stray comma after `return x` makes a tuple).")
        self.fail(f"{what} is a {type_name(out)}, expected a torch.Tensor",
                  "Return a torch.Tensor built with torch operations.")
        return out  # unreachable

    def expect_outputs(self, out, what: str, names: tuple[str, ...], hint: str = ""):
        """``out`` must be a tuple (or list) of ``len(names)`` tensors; returns them as a tuple."""
        listed = ", ".join(names)
        ret = f"`return {listed}`"
        if isinstance(out, _Tensor):
            self.fail(f"{what} returned a single tensor of shape {fmt_shape(out.shape)}, expected a tuple ({listed})",
                      hint or f"Return both results as a tuple: {ret}.")
        if out is None:
            self.fail(f"{what} returned None, expected a tuple ({listed})",
                      f"Your function does not return anything: end it with {ret}.")
        if not isinstance(out, (tuple, list)):
            self.fail(f"{what} returned a {type_name(out)}, expected a tuple ({listed})",
                      hint or f"Return a tuple of {len(names)} tensors: {ret}.")
        if len(out) != len(names):
            self.fail(f"{what} returned {len(out)} items, expected {len(names)} ({listed})",
                      hint or f"Return exactly {len(names)} tensors, in this order: {ret}.")
        for item, name in zip(out, names):
            if not isinstance(item, _Tensor):
                kind = "None" if item is None else type_name(item)
                self.fail(f"{what}: `{name}` is a {kind}, expected a torch.Tensor",
                          "Build every result with torch operations (torch.stack turns a list of tensors into one).")
        return tuple(out)

    def expect_shape(self, out: torch.Tensor, shape, what: str = "the result", hint: str = "",
                     args: tuple = (), kwargs: dict | None = None, part: int | None = None) -> None:
        shape = tuple(int(s) for s in shape)
        if tuple(out.shape) != shape:
            diagnosed = self.diagnose(out, args, kwargs, part=part) if args or kwargs else None
            self.fail(f"{what} has shape {fmt_shape(out.shape)}, expected {fmt_shape(shape)}",
                      diagnosed or hint or SHAPE_HINT)

    def expect_dtype(self, out: torch.Tensor, dtype, what: str = "the result", hint: str = "") -> None:
        if out.dtype != dtype:
            self.fail(f"{what} has dtype {out.dtype}, expected {dtype}",
                      hint or "Keep the input's dtype: avoid .float(), .double() or torch.tensor(..., dtype=...) "
                              "on the way, or cast back at the end.")

    def expect_finite(self, out: torch.Tensor, what: str = "the result", args: tuple = (),
                      kwargs: dict | None = None, hint: str = "", where: torch.Tensor | None = None,
                      part: int | None = None) -> None:
        """No NaN or inf in ``out`` (or in ``out[where]``)."""
        values = out.detach() if where is None else out.detach()[where]
        bad = ~_isfinite(values)
        if bool(bad.any()):
            n_nan = int(_isnan(values).sum())
            n_inf = int(bad.sum()) - n_nan
            kinds = " and ".join(k for k in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if k)
            self.fail(f"{what} contains {kinds} value(s) out of {values.numel()}",
                      self.diagnose(out, args, kwargs, part=part) or hint
                      or "Look for a division by zero, the log of 0 or of a negative number, or exp of a large number.")

    def expect_close(self, out: torch.Tensor, expected: torch.Tensor, what: str = "the result",
                     rtol: float = 1e-5, atol: float = 1e-6, args: tuple = (), kwargs: dict | None = None,
                     hint: str = "", reference: str = "the reference", part: int | None = None) -> None:
        """Values close to ``expected`` (NaN must match NaN, inf must match inf).
        The message says how many values differ, never what they should be."""
        if tuple(out.shape) != tuple(expected.shape):
            self.expect_shape(out, expected.shape, what, args=args, kwargs=kwargs, part=part)
        a = out.detach().to(expected.dtype)
        try:
            ok = _isclose(a, expected.detach(), rtol=rtol, atol=atol, equal_nan=True)
        except RuntimeError as exc:
            self.fail(f"{what} could not be compared with {reference}: {exc}")
        if not bool(ok.all()):
            n_bad = int((~ok).sum())
            self.fail(f"{what}: {n_bad} of {ok.numel()} values differ from {reference}",
                      self.diagnose(out, args, kwargs, part=part, expected=expected, tolerance=(rtol, atol)) or hint
                      or "Compare your steps with the formula on a tiny input you can work out by hand.")

    def expect_equal(self, out: torch.Tensor, expected: torch.Tensor, what: str = "the result",
                     args: tuple = (), kwargs: dict | None = None, hint: str = "",
                     reference: str = "the reference", part: int | None = None) -> None:
        """Exactly equal (for masks, indices, integer results)."""
        if tuple(out.shape) != tuple(expected.shape):
            self.expect_shape(out, expected.shape, what, args=args, kwargs=kwargs, part=part)
        got = out.detach().to(expected.dtype)
        same = got == expected.detach()
        if expected.is_floating_point():
            same = same | (_isnan(got) & _isnan(expected.detach()))
        if not bool(same.all()):
            n_bad = int((~same).sum())
            self.fail(f"{what}: {n_bad} of {expected.numel()} entries differ from {reference}",
                      self.diagnose(out, args, kwargs, part=part, expected=expected, tolerance=(0.0, 0.0)) or hint
                      or "Work the answer out by hand for the smallest input and compare.")

    def expect_raises(self, fn, args: tuple, expected: type[BaseException], what: str,
                      hint_if_returned: str, hint_if_other: str | None = None) -> BaseException:
        """The learner's ``fn(*args)`` must raise ``expected`` (e.g. ValueError for bad input).

        Fails with ``hint_if_returned`` when it returns a result, and with
        ``hint_if_other`` (default: the same hint) when it raises another
        exception; NotImplementedError still reads "not implemented yet".
        Returns the exception raised."""
        box: dict[str, object] = {}

        def attempt():
            try:
                fn(*args)
            except NotImplementedError:
                raise
            except Exception as exc:  # noqa: BLE001 - its type is judged below
                box["type"] = type(exc)
                box["text"] = str(exc)[:120]
                box["raised"] = exc

        self.run(attempt, what)
        if "raised" not in box:
            self.fail(f"{what} returned a result instead of raising {expected.__name__}", hint_if_returned)
        if not issubclass(box["type"], expected):
            self.fail(f"{what} raised {box['type'].__name__} ({box['text']}), expected {expected.__name__}",
                      hint_if_other or hint_if_returned)
        return box["raised"]
