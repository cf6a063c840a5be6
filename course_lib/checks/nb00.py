"""Checks for notebook 00 (welcome): exercise 00.1, a numerically stable softmax.

Contract: ``softmax(x, dim=-1)`` equals ``torch.softmax(x, dim)``; no inf or
NaN for scores around 1e4; -inf entries get probability 0. A slice made only of
-inf is not tested: torch gives NaN there and the contract is "equals
torch.softmax" (exercise 02.2 is the one that defines fully masked rows).
"""

from __future__ import annotations

import torch

from .framework import CheckContext, Misconception, checker, fmt_shape

_reference = torch.softmax  # captured at import, see framework.py


def _shift(x, dim):
    return x - x.max(dim=dim, keepdim=True).values


# The wrong-but-plausible softmaxes learners write, most specific first. The
# catalogue in tests/test_checks_00.py asserts that each one gets its hint.
IGNORES_DIM = Misconception(
    "ignores dim",
    "Your function seems to ignore its `dim` argument and always normalise over the last axis. "
    "Pass `dim=dim` (with keepdim=True) to every max and sum.",
    lambda x, dim=-1: _reference(x, -1),
)
WHOLE_TENSOR = Misconception(
    "normalises over the whole tensor",
    "Your function seems to divide by the sum over the whole tensor, so all values together sum to 1. "
    "Each slice along `dim` must sum to 1 on its own: sum(dim=dim, keepdim=True).",
    lambda x, dim=-1: torch.exp(x - x.max()) / torch.exp(x - x.max()).sum(),
)
NO_MAX_SUBTRACTION = Misconception(
    "no max subtraction",
    "exp overflows to inf for large scores (in float32 already for scores above about 88), and inf/inf "
    "is NaN. Subtract the maximum along `dim` before exp (the max trick): softmax does not change, "
    "and every exponent becomes <= 0.",
    lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim=dim, keepdim=True),
)
GLOBAL_MAX = Misconception(
    "subtracts the global max",
    "Subtracting the maximum of the whole tensor is not enough: in a slice whose scores all lie far "
    "below that maximum every exp underflows to 0, and 0/0 is NaN. Subtract the maximum of each slice: "
    "x.max(dim=dim, keepdim=True).values.",
    lambda x, dim=-1: torch.exp(x - x.max()) / torch.exp(x - x.max()).sum(dim=dim, keepdim=True),
)
SUBTRACTS_MIN = Misconception(
    "subtracts the min",
    "Subtracting the minimum makes every exponent >= 0, so exp still overflows for widely spread scores. "
    "Subtract the maximum instead, so that every exponent is <= 0.",
    lambda x, dim=-1: (lambda e: e / e.sum(dim=dim, keepdim=True))(
        torch.exp(x - x.min(dim=dim, keepdim=True).values)),
)
NO_KEEPDIM = Misconception(
    "reduction without keepdim",
    "A reduction such as x.max(dim) or x.sum(dim) drops the reduced axis, so subtracting or dividing by "
    "it broadcasts along the wrong axis (silently when the tensor is square). Use keepdim=True.",
    lambda x, dim=-1: (lambda e: e / e.sum(dim=dim))(torch.exp(x - x.max(dim=dim).values)),
    error=r"size of tensor a \(\d+\) must match the size of tensor b",
)
NO_KEEPDIM_SUM = Misconception(
    "sum without keepdim",
    NO_KEEPDIM.hint,
    lambda x, dim=-1: (lambda e: e / e.sum(dim=dim))(torch.exp(_shift(x, dim))),
)
NO_KEEPDIM_MAX = Misconception(
    "max without keepdim",
    NO_KEEPDIM.hint,
    lambda x, dim=-1: (lambda e: e / e.sum(dim=dim, keepdim=True))(torch.exp(x - x.max(dim=dim).values)),
)
DIVIDES_BY_MAX = Misconception(
    "normalises by the max",
    "Your function seems to divide by the largest exponential instead of by their sum. Softmax divides "
    "by the sum, so that each slice adds up to 1.",
    lambda x, dim=-1: (lambda e: e / e.max(dim=dim, keepdim=True).values)(torch.exp(_shift(x, dim))),
)
NO_EXP = Misconception(
    "forgets exp",
    "Your function seems to normalise the scores without taking their exponential. "
    "Softmax is exp(x_i) / sum_j exp(x_j): the exp makes every weight positive.",
    lambda x, dim=-1: x / x.sum(dim=dim, keepdim=True),
)
NO_EXP_SHIFTED = Misconception(
    "forgets exp (after the shift)",
    NO_EXP.hint,
    lambda x, dim=-1: _shift(x, dim) / _shift(x, dim).sum(dim=dim, keepdim=True),
)
LOG_SOFTMAX = Misconception(
    "returns log-probabilities",
    "Your function seems to return log-probabilities (log_softmax: x minus logsumexp). "
    "Take the exponential of that to get probabilities.",
    lambda x, dim=-1: x - torch.logsumexp(x, dim=dim, keepdim=True),
)
FLOAT32_INSIDE = Misconception(
    "computes in float32",
    "For float64 inputs your function seems to compute in float32 (for example .float() or "
    "torch.tensor(..., dtype=torch.float32) on the way) and loses precision. Keep the input's dtype.",
    lambda x, dim=-1: _reference(x.float(), dim).to(x.dtype),
)
INF_AS_ZERO = Misconception(
    "replaces -inf by a number",
    "A score of -inf means \"never\": exp(-inf) is exactly 0, so its probability must be exactly 0. "
    "Do not replace -inf by 0 or by a finite number (nan_to_num, where(isinf, ...)); the max trick "
    "handles -inf as it is.",
    lambda x, dim=-1: _reference(torch.where(torch.isinf(x), torch.zeros_like(x), x), dim),
)
# A softmax over another axis than `dim`, for each axis a test input can have.
OTHER_AXES = [
    Misconception(
        f"normalises over axis {axis}",
        "Your function seems to normalise over a different axis than `dim`: every max and sum must "
        "use dim=dim (and keepdim=True).",
        (lambda a: (lambda x, dim=-1: _reference(x, a)))(axis),
    )
    for axis in range(4)
]

MISCONCEPTIONS = [
    IGNORES_DIM, WHOLE_TENSOR, NO_MAX_SUBTRACTION, GLOBAL_MAX, SUBTRACTS_MIN, NO_KEEPDIM, NO_KEEPDIM_SUM,
    NO_KEEPDIM_MAX, DIVIDES_BY_MAX, NO_EXP, NO_EXP_SHIFTED, LOG_SOFTMAX, FLOAT32_INSIDE, INF_AS_ZERO,
    *OTHER_AXES,
]


@checker("00.1", misconceptions=MISCONCEPTIONS, mutation_weight=0.5)
def check_softmax(t: CheckContext, softmax) -> None:
    """Sub-checks of 00.1, cheap to deep; weights are shares of the exercise's points."""

    def case(x, dim=-1, **compare):
        what = f"softmax(x, {dim}) for x of shape {fmt_shape(x.shape)}"
        return t.compare(softmax, _reference, (x, dim), what=what, reference_name="torch.softmax", **compare)

    a, b = t.sizes(2)
    x0 = t.randn(a, b, scale=2.0)
    t.opening(softmax, (x0, -1), what=f"softmax(x, -1) for x of shape {fmt_shape(x0.shape)}", shapes=x0.shape,
              weights=(0.5, 0.5, 0.5), shape_titles=["the output has the input's shape"],
              dtype_title="keeps the input's dtype (float32 stays float32)")

    @t.subcheck("the output is finite (no NaN or inf) on ordinary scores", weight=0.5, essential=True)
    def _():
        t.expect_finite(t.first["out"], "softmax(x, -1)", args=(x0, -1))

    @t.subcheck("equals torch.softmax over the last axis (random inputs of several shapes)",
                weight=2.0, essential=True)
    def _():
        n = t.random.randint(3, 6)
        c, d, e = t.sizes(3)
        for shape in [(t.random.randint(2, 9),), (n, n), (c, d), (c, d, e)]:
            case(t.randn(*shape, scale=t.random.choice([1.0, 3.0])), rtol=1e-5, atol=1e-6)

    @t.subcheck("respects the `dim` argument", weight=1.0)
    def _():
        c, d, e = t.sizes(3)
        for dim in (0, 1, -2, 2):
            case(t.randn(c, d, e, scale=2.0), dim, rtol=1e-5, atol=1e-6)

    @t.subcheck("stays finite and correct for large scores (around ±1e4)", weight=1.0)
    def _():
        c, d = t.sizes(2, 3, 8)
        spread = t.randn(c, d, scale=1e4)
        # slices at very different heights: one far above, one far below the others
        offsets = t.randn(c, 1, scale=3.0)
        offsets[0], offsets[-1] = 1e4, -1e4
        shifted = t.randn(c, d, scale=10.0) + offsets
        for x, dim in ((spread, -1), (shifted, -1), (shifted.T.contiguous(), 0)):
            # float32 holds scores near 1e4 only to about 1e-3, so exact formulations
            # (logsumexp, float64 inside) differ from torch by that much
            case(x, dim, finite=True, rtol=5e-3, atol=1e-5)

    @t.subcheck("-inf scores get probability exactly 0", weight=0.5)
    def _():
        c, d = t.sizes(2, 3, 8)
        blocked = torch.rand(c, d, generator=t.gen) < 0.4
        blocked[:, 0] = False  # every row keeps a finite score (an all -inf row is NaN in torch too)
        x = t.randn(c, d, scale=2.0).masked_fill(blocked, float("-inf"))
        out = case(x, finite=True, hints={0: INF_AS_ZERO.hint}, rtol=1e-5, atol=1e-6)
        if bool((out.detach()[blocked] != 0).any()):
            t.fail(f"{int((out.detach()[blocked] != 0).sum())} of {int(blocked.sum())} -inf scores got a "
                   "probability other than 0", t.diagnose(out, (x, -1)) or INF_AS_ZERO.hint)

    c, d = t.sizes(2)
    x64 = t.randn(c, d, dtype=torch.float64, scale=3.0)
    t.float64_subcheck(softmax, _reference, (x64, -1), what=f"softmax(x, -1) for a float64 x of shape "
                       f"{fmt_shape(x64.shape)}", weight=0.5, reference_name="torch.softmax")
    t.gradient_subcheck(softmax, _reference, (t.randn(c, d, scale=2.0), -1), wrt=(0,), arg_names=("x", "dim"),
                        what="softmax(x, -1)", weight=0.5, title="gradients flow back like torch.softmax's",
                        reference_name="torch.softmax's gradient",
                        hint="The values are right but the gradient is not: is a part of the computation detached?")
