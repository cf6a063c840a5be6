"""Exercise kinds beyond "a function returning tensors": a module class, a function
returning a scalar, and a sampler judged statistically.

* Module class (06.2 ``EncoderBlock``): the learner's class is built with the
  exercise's arguments, its state_dict must have the reference's names and shapes
  (a hint names the missing and the extra submodules), the reference's weights
  are loaded into it, then outputs, gradients (input and every parameter) and
  float64 are compared with the reference module's.
* Scalar (07.1 ``next_token_loss``): a 0-d tensor, still attached to the graph;
  a Python number gets its own hint.
* Sampler (07.2 ``sample_next``): called once on a batch in which every test
  distribution is repeated ``draws`` times, with a seeded ``torch.Generator``;
  the token counts of each distribution go through a chi-square goodness-of-fit
  test at level ``alpha`` (bins of expected count < 20 merged; a token of
  probability 0 is a failure outright). A sampler misconception's ``impl``
  returns the *probabilities* it samples from: counts that fit those and not the
  reference's give its hint. tests/test_checks_kinds.py measures the rate at
  which a correct sampler is rejected.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .diagnosis import clone_all
from .learner import Opaque
from .standard import CUT_GRAPH_HINT, GRADIENT_HINT

SAMPLER_ALPHA = 1e-6  # per tested distribution
MIN_EXPECTED = 20  # bins expected to hold fewer draws are merged: the chi-square tail is then accurate


def _top_names(keys) -> list[str]:
    """Submodule paths of state_dict keys, without the parameter name ("attn.q_proj")."""
    return sorted({k.rsplit(".", 1)[0] if "." in k else k for k in keys})


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """p-values of observing ``counts`` (..., V) under ``probs`` (V,) (Pearson's chi-square,
    bins of expected count < MIN_EXPECTED merged into one); 0 where a token of probability 0 was
    drawn. A 0-d tensor for one row of counts, one p-value per row for a batch."""
    counts = counts.to(torch.float64)
    probs = probs.to(torch.float64)
    n = counts.sum(-1, keepdim=True)  # (..., 1)
    impossible = (counts[..., probs == 0] > 0).any(-1)
    expected = probs * n  # (..., V); the same total in every row of a batch
    big = (expected[(0,) * (counts.dim() - 1)] >= MIN_EXPECTED) if counts.dim() > 1 else expected >= MIN_EXPECTED
    small = ~big & (probs > 0)
    obs, exp = counts[..., big], expected[..., big]
    if bool(small.any()):
        obs = torch.cat([obs, counts[..., small].sum(-1, keepdim=True)], -1)
        exp = torch.cat([exp, expected[..., small].sum(-1, keepdim=True)], -1)
    df = obs.shape[-1] - 1
    if df <= 0:
        return torch.where(impossible, 0.0, 1.0).to(torch.float64)
    stat = ((obs - exp) ** 2 / exp).sum(-1)
    p = torch.special.gammaincc(torch.full_like(stat, df / 2), stat / 2)
    return torch.where(impossible, torch.zeros_like(p), p)


class Kinds:
    """Sub-checks for module classes, scalar functions and samplers (``self`` is the context)."""

    # ---- module class

    def build_module(self, cls, init_args: tuple, init_kwargs: dict | None = None, *, what: str,
                     weight: float = 0.25):
        """Sub-check: ``cls(*init_args, **init_kwargs)`` builds an ``nn.Module``. Returns it (raw: the
        checker drives it only through ``self.run``) or None."""
        init_kwargs = init_kwargs or {}

        @self.subcheck(f"`{what}` builds an nn.Module", weight=weight, essential=True)
        def _():
            module = self.run(lambda: cls(*init_args, **init_kwargs), what, keep_raw=True)
            if not issubclass(type(module), torch.nn.Module):
                self.fail(f"{what} gave a {type(module).__name__}, expected a torch.nn.Module",
                          "Your class must subclass torch.nn.Module and call super().__init__() first.")
            self.first["module"] = module

        return self.first.get("module")

    def expect_same_submodules(self, module, reference: torch.nn.Module, *, what: str, weight: float = 0.5,
                               reference_name: str = "the reference") -> None:
        """Sub-check: the state_dict has the reference's names and shapes, so the reference's
        weights load into it. The hint names the missing and the extra submodules."""

        @self.subcheck("has the reference's submodules and parameters (names and shapes)", weight=weight,
                       essential=True)
        def _():
            mine = dict(self.run(lambda: [(k, tuple(v.shape)) for k, v in module.state_dict().items()],
                                 f"{what}.state_dict()"))
            ref = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
            missing, extra = sorted(set(ref) - set(mine)), sorted(set(mine) - set(ref))
            if missing or extra:
                parts = []
                if missing:
                    parts.append("missing " + ", ".join(f"`{m}`" for m in _top_names(missing)))
                if extra:
                    parts.append("not in the reference " + ", ".join(f"`{m}`" for m in _top_names(extra)))
                self.fail(f"{what}: the parameters do not match {reference_name}'s: {'; '.join(parts)}",
                          "The checker loads the reference's weights into your module by name: name each "
                          "submodule exactly as the contract does (" +
                          ", ".join(f"`{m}`" for m in _top_names(ref)) + ") and create no others.")
            wrong = [k for k in ref if mine[k] != ref[k]]
            if wrong:
                k = wrong[0]
                self.fail(f"{what}: `{k}` has shape {mine[k]}, the reference's {ref[k]}",
                          "A layer has the wrong size: check which constructor argument sets each size.")
            state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
            self.run(lambda: module.load_state_dict(state), f"{what}.load_state_dict(the reference's weights)")
            self.run(lambda: module.eval(), f"{what}.eval()")

    def module_call(self, module, args: tuple, kwargs: dict | None, what: str):
        """``module(*args, **kwargs)`` under the time limit, with mutation tracking."""
        return self.call(module, *args, **(kwargs or {}))

    def compare_module(self, module, reference: torch.nn.Module, cases: Sequence[tuple[tuple, dict]], *, what: str,
                       rtol: float = 1e-4, atol: float = 1e-5, weight: float = 1.5,
                       title: str = "equals the reference module with the same weights (several inputs)") -> None:
        """Sub-check: outputs equal the reference module's on each (args, kwargs) case."""

        @self.subcheck(title, weight=weight, essential=True)
        def _():
            reference.eval()
            for args, kwargs in cases:
                with torch.no_grad():
                    expected = reference(*args, **kwargs)
                out = self.expect_tensor(self.module_call(module, clone_all(args), clone_all(kwargs), what), what)
                # a module misconception's impl(reference, *args, **kwargs) uses the reference's layers wrongly
                self.expect_close(out, expected, what, rtol=rtol, atol=atol, reference="the reference module",
                                  args=(reference, *args), kwargs=kwargs)

    def module_gradients(self, module, reference: torch.nn.Module, args: tuple, kwargs: dict | None = None, *,
                         what: str, weight: float = 0.5, rtol: float = 1e-4, atol: float = 1e-5) -> None:
        """Sub-check: gradients reach the (first) input and every parameter like the reference's."""
        kwargs = kwargs or {}

        @self.subcheck("gradients reach the input and every parameter like the reference's", weight=weight)
        def _():
            x_ref = args[0].detach().clone().requires_grad_(True)
            reference.zero_grad(set_to_none=True)
            with torch.enable_grad():
                ref_out = reference(x_ref, *args[1:], **kwargs)
                cotangent = self.randn(ref_out.shape, dtype=ref_out.dtype)
                (ref_out * cotangent).sum().backward()
            expected = {k: p.grad for k, p in reference.named_parameters()}
            x = args[0].detach().clone().requires_grad_(True)
            self.run(lambda: module.zero_grad(set_to_none=True), f"{what}.zero_grad()")
            with torch.enable_grad():
                out = self.expect_tensor(self.call(module, x, *clone_all(args[1:]), **clone_all(kwargs)), what)
                if not out.requires_grad:
                    self.fail(f"{what}: the output is not connected to the input in the autograd graph",
                              CUT_GRAPH_HINT)
                self.expect_shape(out, ref_out.shape, what)
                self.run(lambda: (out * cotangent).sum().backward(), f"backpropagating through {what}")
            self.expect_close(x.grad if x.grad is not None else torch.zeros(0), x_ref.grad,
                              "the gradient with respect to the input", rtol=rtol, atol=atol,
                              reference="the reference's gradient", hint=GRADIENT_HINT)
            grads = dict(self.run(lambda: [(k, p.grad) for k, p in module.named_parameters()],
                                  f"{what}.named_parameters()"))
            for k, want in expected.items():
                got = grads.get(k)
                if not isinstance(got, torch.Tensor):
                    self.fail(f"{what}: parameter `{k}` got no gradient",
                              f"`{k}` does not take part in the output: is its layer used in forward()?")
                self.expect_close(got, want, f"the gradient of parameter `{k}`", rtol=rtol, atol=atol,
                                  reference="the reference's gradient",
                                  hint="Every parameter is used, but one is used in the wrong place: compare "
                                       "the order of the layers in forward() with the contract.")

    def module_float64(self, module, reference: torch.nn.Module, args: tuple, kwargs: dict | None = None, *,
                       what: str, weight: float = 0.25, rtol: float = 1e-9, atol: float = 1e-11) -> None:
        """Sub-check: ``module.double()`` on float64 inputs gives float64, equal to the reference in float64."""
        kwargs = kwargs or {}

        @self.subcheck("after .double(), float64 inputs give float64 results", weight=weight)
        def _():
            ref64 = _double_copy(reference)
            self.run(lambda: module.double(), f"{what}.double()")
            try:
                x = [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
                with torch.no_grad():
                    expected = ref64(*x, **kwargs)
                out = self.expect_tensor(self.call(module, *clone_all(tuple(x)), **clone_all(kwargs)), what)
                self.expect_dtype(out, torch.float64, what,
                                  hint="The result is not float64 for float64 inputs and weights: something in "
                                       "forward() casts (.float()) or creates a tensor of a fixed dtype; keep the "
                                       "input's dtype.")
                self.expect_close(out, expected, what, rtol=rtol, atol=atol, reference="the reference module")
            finally:
                self.run(lambda: module.float(), f"{what}.float()")

    # ---- scalar function

    def scalar_opening(self, fn: Callable, args: tuple, *, what: str, kwargs: dict | None = None,
                       weights: tuple[float, float, float] = (0.25, 0.25, 0.25)):
        """The opening of a function returning a scalar: a tensor (not a Python number: it
        must stay in the graph), of shape () (the hint names the usual missing reduction)."""
        number_hint = ("Your function returns a Python number (.item() or float(...)): return the 0-d tensor "
                       "itself, so that the loss can be backpropagated.")
        kwargs = kwargs or {}

        @self.subcheck("returns a torch.Tensor (not a Python number)", weight=weights[0], essential=True)
        def _():
            out = self.call(fn, *clone_all(args), **clone_all(kwargs))
            if isinstance(out, (int, float)) and not isinstance(out, bool):
                self.fail(f"{what} returned a Python {type(out).__name__}, expected a 0-d torch.Tensor", number_hint)
            self.first["out"] = self.expect_tensor(out, what)

        @self.subcheck("is a scalar (a 0-d tensor)", weight=weights[1], essential=True)
        def _():
            self.expect_shape(self.first["out"], (), what, args=args, kwargs=kwargs,
                              hint="The result must be one number, a 0-d tensor: a reduction over every "
                                   "position (the mean the contract asks for) is missing, or it keeps an axis.")

        @self.subcheck("keeps the input's dtype", weight=weights[2])
        def _():
            self.expect_dtype(self.first["out"], torch.float32, what)

        return self.first.get("out")

    # ---- sampler

    def sampler_subcheck(self, fn: Callable, logits: torch.Tensor, probs: torch.Tensor, *, what: str,
                         kwargs: dict | None = None, draws: int = 2000, alpha: float = SAMPLER_ALPHA,
                         title: str = "the frequencies of the samples match the distribution",
                         weight: float = 1.0, essential: bool = False, hint: str = "",
                         generator_kw: str = "generator") -> None:
        """Sub-check: each row of ``logits`` (R, V), sampled ``draws`` times in one call with a
        seeded generator, gives token counts that fit ``probs`` (R, V) (chi-square at level
        ``alpha`` per row). Misconceptions' ``impl(logits, **kwargs)`` give probabilities."""
        kwargs = dict(kwargs or {})

        @self.subcheck(title, weight=weight, essential=essential)
        def _():
            R, V = logits.shape
            batch = logits.repeat(draws, 1)  # (draws * R, V): row i is distribution i % R
            generator = torch.Generator().manual_seed(self.random.randrange(2 ** 62))
            call_kwargs = {**clone_all(kwargs), generator_kw: generator}
            label = f"{what}, {draws} draws of each of {R} distributions over {V} tokens"
            out = self.expect_tensor(self.call(fn, batch.clone(), **call_kwargs), label)
            self.expect_shape(out, (draws * R,), label)
            if out.is_floating_point() or out.dtype == torch.bool:
                self.fail(f"{label}: the result has dtype {out.dtype}, expected token ids (torch.long)",
                          "Return token indices (torch.multinomial and argmax give torch.long), not probabilities.")
            tokens = out.detach().long().reshape(draws, R)
            if bool(((tokens < 0) | (tokens >= V)).any()):
                self.fail(f"{label}: some token ids are outside 0 .. {V - 1}",
                          "Sample an index into the vocabulary axis (the last one) of the logits.")
            counts = torch.stack([torch.bincount(tokens[:, r], minlength=V) for r in range(R)])  # (R, V)
            bad = [r for r in range(R) if chi_square_pvalue(counts[r], probs[r]) < alpha]
            if not bad:
                return
            diagnosed = self._diagnose_sampler(counts, probs, logits, kwargs, alpha)
            impossible = sum(int(counts[r][probs[r] == 0].sum()) for r in bad)
            detail = (f"{impossible} samples are tokens of probability 0" if impossible else
                      f"the frequencies differ from the distribution for {len(bad)} of {R} rows "
                      f"(chi-square test, p < {alpha:g})")
            self.fail(f"{label}: {detail}", diagnosed or hint or
                      "Compare the distribution you sample from with the contract on a tiny example: print "
                      "the probabilities before sampling.")

    def _diagnose_sampler(self, counts, probs, logits, kwargs, alpha) -> str | None:
        R = counts.shape[0]
        for m in self.misconceptions:
            if m.impl is None:
                continue
            try:
                with torch.no_grad():
                    wrong = m.impl(logits.clone(), **clone_all(kwargs))
            except Exception:  # noqa: BLE001 - does not apply to these arguments
                continue
            if not isinstance(wrong, torch.Tensor) or wrong.shape != probs.shape:
                continue
            if torch.allclose(wrong.double(), probs.double(), atol=1e-6):
                continue  # gives the right distribution here: cannot explain a wrong one
            if all(chi_square_pvalue(counts[r], wrong[r]) >= alpha for r in range(R)):
                return m.hint
        return None

    def expect_reproducible(self, fn: Callable, args: tuple, *, what: str, kwargs: dict | None = None,
                            weight: float = 0.25, generator_kw: str = "generator") -> None:
        """Sub-check: two calls with generators seeded alike give the same samples."""

        @self.subcheck("uses the given generator (same seed, same samples)", weight=weight)
        def _():
            seed = self.random.randrange(2 ** 62)
            outs = []
            for _ in range(2):
                call_kwargs = {**clone_all(kwargs or {}), generator_kw: torch.Generator().manual_seed(seed)}
                outs.append(self.expect_tensor(self.call(fn, *clone_all(args), **call_kwargs), what))
            if outs[0].shape != outs[1].shape or not torch.equal(outs[0], outs[1]):
                self.fail(f"{what}: two calls with generators seeded alike gave different samples",
                          "The samples must come from the `generator` argument: pass it on to the torch "
                          "function that draws them.")


def _double_copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).double().eval()


__all__ = ["Kinds", "chi_square_pvalue", "SAMPLER_ALPHA", "Opaque"]
