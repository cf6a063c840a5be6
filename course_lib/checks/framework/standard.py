"""The sub-checks most exercises make, declared in one call each.

Given the learner's function, the reference implementation and arguments made
by the exercise's argument factory, these emit the standard opening (returns a
tensor or a tuple of tensors, shapes, dtype), compare values on several cases,
check float64 in / float64 out, and compare gradients with the reference's.
Outputs are a single tensor (``names=None``) or a tuple (``names`` = the names
of its elements); misconceptions are matched element by element.
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch

from .diagnosis import clone_all
from .expectations import fmt_shape

CUT_GRAPH_HINT = ("Something cut the graph: .detach(), .data, .numpy(), .item(), torch.no_grad() or a new tensor "
                  "built with torch.tensor(...). Use torch operations all the way.")
GRADIENT_HINT = ("The values are right but a gradient is not: is a part of the computation detached, or a "
                 "tensor changed in place after it was used?")


def _parts(value, names) -> tuple:
    return tuple(value) if names else (value,)


def _label(names, i: int, what: str) -> str:
    return f"`{names[i]}` of {what}" if names else what


class StandardChecks:
    """Standard sub-checks of ``CheckContext`` (``self`` is the context)."""

    def exercise(self, fn: Callable, reference: Callable, describe: Callable[[tuple], str], **shared) -> "Exercise":
        """These sub-checks bound to ``fn``, ``reference`` and ``describe`` (see ``Exercise``)."""
        return Exercise(self, fn, reference, describe, **shared)

    def outputs(self, out, what: str, names: Sequence[str] | None = None, hint: str = ""):
        """The learner's result as a tuple of tensors (one per name), or a tensor."""
        if names:
            return self.expect_outputs(out, what, tuple(names), hint)
        if hint and isinstance(out, (tuple, list)):
            self.fail(f"{what} returned a {type(out).__name__}, expected a single torch.Tensor", hint)
        return self.expect_tensor(out, what)

    def expect_not_swapped(self, parts, shapes, names, what: str, args: tuple, kwargs: dict) -> None:
        """Two outputs returned in the wrong order (told by their shapes), unless a misconception explains them."""
        if not names or len(parts) != 2 or tuple(parts[0].shape) == tuple(parts[1].shape):
            return
        if tuple(parts[0].shape) == tuple(shapes[1]) and tuple(parts[1].shape) == tuple(shapes[0]):
            if self.diagnose(parts[0], args, kwargs, part=0) is None:
                self.fail(f"{what} returned ({names[1]}, {names[0]}), expected ({names[0]}, {names[1]})",
                          f"The two results seem swapped: return `{names[0]}, {names[1]}`, in this order.")

    def opening(self, fn: Callable, args: tuple, *, what: str, shapes: Sequence, names: Sequence[str] | None = None,
                kwargs: dict | None = None, dtype: torch.dtype | None = torch.float32,
                weights: tuple[float, float, float] = (0.25, 0.25, 0.25), shape_titles: Sequence[str] | None = None,
                optional: Sequence[int] = (), returns_hint: str = "", shape_hints: Sequence[str] | None = None,
                returns_title: str | None = None, dtype_title: str = "keeps the input's dtype", dtype_hint: str = "",
                clone: bool = True):
        """The opening sub-checks, cheap to deep: "returns a tensor" (or a tuple of
        ``names``), one shape sub-check per output (essential unless its index is in
        ``optional``), then the dtype (``dtype``; None: no dtype sub-check). Returns
        the learner's outputs (also kept in ``self.first["out"]``) or None. ``clone=False``
        passes ``args`` themselves (a scripted stand-in the checker inspects afterwards)."""
        kwargs = kwargs or {}
        shapes = [tuple(shapes)] if not names else [tuple(s) for s in shapes]
        w_returns, w_shape, w_dtype = weights
        if returns_title is None:
            returns_title = (f"returns a tuple ({', '.join(names)}) of tensors" if names
                             else "returns a torch.Tensor")

        @self.subcheck(returns_title, weight=w_returns, essential=True)
        def _():
            out = self.call(fn, *clone_all(args), **clone_all(kwargs)) if clone else self.call(fn, *args, **kwargs)
            self.first["out"] = self.outputs(out, what, names, returns_hint)

        parts = _parts(self.first.get("out"), names) if "out" in self.first else ()
        for i, shape in enumerate(shapes):
            title = (shape_titles[i] if shape_titles else
                     (f"`{names[i]}` has shape {fmt_shape(shape)}" if names else f"has shape {fmt_shape(shape)}"))

            @self.subcheck(title, weight=w_shape / len(shapes), essential=i not in optional)
            def _():
                if i == 0:
                    self.expect_not_swapped(parts, shapes, names, what, args, kwargs)
                self.expect_shape(parts[i], shape, _label(names, i, what), args=args, kwargs=kwargs,
                                  part=i if names else None, hint=shape_hints[i] if shape_hints else "")

        if dtype is not None:
            @self.subcheck(dtype_title, weight=w_dtype)
            def _():
                for i, p in enumerate(parts):
                    self.expect_dtype(p, dtype, _label(names, i, what), hint=dtype_hint)

        return self.first.get("out")

    def compare(self, fn: Callable, reference: Callable, args: tuple, *, what: str, kwargs: dict | None = None,
                names: Sequence[str] | None = None, order: Sequence[int] | None = None, rtol: float = 1e-4,
                atol: float = 1e-5, exact: bool = False, finite: bool = False, dtype: torch.dtype | None = None,
                reference_name: str = "the reference", hints: dict | None = None, finite_hints: dict | None = None,
                expected=None, transform: Callable | None = None):
        """Call the learner on (copies of) ``args`` and compare each output with the
        reference's, in ``order`` (indices into ``names``; default all, in order):
        shape, then dtype (when given), finite (when asked), then values (``exact``:
        equal). ``hints`` maps an output index to the hint shown when no
        misconception explains a wrong value; ``transform`` maps a learner's output to the
        form that is compared (a mask read as keep/blocked values). Returns the learner's outputs."""
        kwargs = kwargs or {}
        hints, finite_hints = hints or {}, finite_hints or {}
        if expected is None:
            expected = reference(*args, **kwargs)
        expected = _parts(expected, names)
        out = self.outputs(self.call(fn, *clone_all(args), **clone_all(kwargs)), what, names)
        parts = _parts(out, names)
        if transform is not None:
            parts = tuple(transform(p) for p in parts)
        self.expect_not_swapped(parts, [e.shape for e in expected], names, what, args, kwargs)
        indices = range(len(parts)) if order is None else order
        for i in indices:
            part = i if names else None
            label = _label(names, i, what)
            self.expect_shape(parts[i], expected[i].shape, label, args=args, kwargs=kwargs, part=part)
            if dtype is not None:
                self.expect_dtype(parts[i], dtype, label)
            if finite:
                self.expect_finite(parts[i], label, args=args, kwargs=kwargs, part=part, hint=finite_hints.get(i, ""))
            if exact:
                self.expect_equal(parts[i], expected[i], label, args=args, kwargs=kwargs, part=part,
                                  hint=hints.get(i, ""), reference=reference_name)
            else:
                self.expect_close(parts[i], expected[i], label, rtol=rtol, atol=atol, args=args, kwargs=kwargs,
                                  part=part, hint=hints.get(i, ""), reference=reference_name)
        return out

    def float64_subcheck(self, fn: Callable, reference: Callable, args: tuple, *, what: str, weight: float = 0.25,
                         names: Sequence[str] | None = None, kwargs: dict | None = None, rtol: float = 1e-10,
                         atol: float = 1e-12, exact: bool = False,
                         title: str = "float64 inputs are computed in float64 precision", **compare) -> None:
        """One sub-check: float64 ``args`` (from the argument factory) give float64
        outputs, equal to the reference's within float64 precision."""

        @self.subcheck(title, weight=weight)
        def _():
            self.compare(fn, reference, args, what=what, kwargs=kwargs, names=names, rtol=rtol, atol=atol,
                         exact=exact, dtype=torch.float64, **compare)

    def gradient_subcheck(self, fn: Callable, reference: Callable, args: tuple, *, what: str, wrt: Sequence[int],
                          arg_names: Sequence[str], weight: float = 0.5, names: Sequence[str] | None = None,
                          kwargs: dict | None = None, title: str | None = None, rtol: float = 1e-4,
                          atol: float = 1e-5, hint: str = GRADIENT_HINT, nan_hint: str = "",
                          forward_nan_hint: str | None = None, reference_name: str = "the reference's gradient",
                          essential: bool = False, atol_of_max: float = 0.0) -> None:
        """One sub-check: the gradients of a random linear function of the outputs
        with respect to ``args[i]`` for i in ``wrt`` equal the reference's.
        ``atol_of_max`` widens ``atol`` to that share of the largest expected gradient,
        for gradients whose float32 rounding error scales with their size (layer norm's
        reaches 1e-5 of its largest value in a correct learner's version)."""
        kwargs = kwargs or {}
        if title is None:
            listed = ", ".join(f"`{arg_names[i]}`" for i in wrt)
            title = f"gradients reach {listed} like the reference's"

        @self.subcheck(title, weight=weight, essential=essential)
        def _():
            def inputs():
                return [a.detach().clone().requires_grad_(i in wrt) if isinstance(a, torch.Tensor) and i in wrt
                        else clone_all(a) for i, a in enumerate(args)]

            ref_in = inputs()
            with torch.enable_grad():
                ref_out = _parts(reference(*ref_in, **kwargs), names)
                cotangents = [self.randn(p.shape, dtype=p.dtype) for p in ref_out]
                expected = torch.autograd.grad(ref_out, [ref_in[i] for i in wrt], cotangents)
            mine = inputs()
            label = f"{what} with requires_grad=True"
            with torch.enable_grad():
                parts = _parts(self.outputs(self.call(fn, *mine, **clone_all(kwargs)), label, names), names)
                for i, (p, r) in enumerate(zip(parts, ref_out)):
                    self.expect_shape(p, r.shape, _label(names, i, label))
                    if forward_nan_hint is not None:
                        self.expect_finite(p, _label(names, i, label), hint=forward_nan_hint)
                if not all(p.requires_grad for p in parts):
                    self.fail(f"{label}: the result is not connected to the inputs in the autograd graph",
                              CUT_GRAPH_HINT)
                name = getattr(fn, "__name__", "your function")
                got = self.run(lambda: torch.autograd.grad(parts, [mine[i] for i in wrt], cotangents,
                                                           allow_unused=True), f"backpropagating through your {name}")
            for i, g, e in zip(wrt, got, expected):
                what_g = f"the gradient with respect to `{arg_names[i]}`"
                if g is None:
                    self.fail(f"{label}: the result does not depend on `{arg_names[i]}` in the autograd graph",
                              "Every input must take part through torch operations (no .detach(), no .data).")
                if nan_hint:
                    self.expect_finite(g, what_g, hint=nan_hint)
                tol = max(atol, atol_of_max * float(e.detach().abs().max())) if e.numel() else atol
                self.expect_close(g, e, what_g, rtol=rtol, atol=tol, reference=reference_name, hint=hint)



class Exercise:
    """The standard sub-checks bound to one exercise: the learner's ``fn``, the ``reference``,
    ``describe(args) -> str`` (the call as messages name it) and the options every call
    shares (``names``, ``reference_name``...), so that a checker states only what differs
    from call to call. Made by ``CheckContext.exercise``."""

    def __init__(self, t, fn: Callable, reference: Callable, describe: Callable[[tuple], str], **shared):
        self.t, self.fn, self.reference, self.describe, self.shared = t, fn, reference, describe, shared

    def _options(self, methods: Sequence[str], options: dict) -> dict:
        accepted = {p for m in methods for p in inspect.signature(getattr(StandardChecks, m)).parameters}
        return {**{k: v for k, v in self.shared.items() if k in accepted}, **options}

    def opening(self, args: tuple, *, shapes, what: str | None = None, **options):
        return self.t.opening(self.fn, args, what=what or self.describe(args), shapes=shapes,
                              **self._options(["opening"], options))

    def compare(self, args: tuple, *, what: str | None = None, **options):
        return self.t.compare(self.fn, self.reference, args, what=what or self.describe(args),
                              **self._options(["compare"], options))

    def compare_cases(self, title: str, cases: Sequence[tuple], *, weight: float, essential: bool = False,
                      **options) -> None:
        """One sub-check: ``compare`` on each argument tuple of ``cases``, in order."""

        @self.t.subcheck(title, weight=weight, essential=essential)
        def _():
            for args in cases:
                self.compare(args, **options)

    def float64(self, args: tuple, *, what: str | None = None, **options) -> None:
        """float64 sub-check; the message names the call "... in float64"."""
        self.t.float64_subcheck(self.fn, self.reference, args, what=what or self.describe(args) + " in float64",
                                **self._options(["float64_subcheck", "compare"], options))

    def gradients(self, args: tuple, *, what: str | None = None, **options) -> None:
        """Gradient sub-check (``reference_name`` is not shared: it names the reference's gradient)."""
        shared = {k: v for k, v in self._options(["gradient_subcheck"], {}).items() if k != "reference_name"}
        self.t.gradient_subcheck(self.fn, self.reference, args, what=what or self.describe(args),
                                 **{**shared, **options})
