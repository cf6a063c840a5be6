"""Checker of exercise 06.1 ``layer_norm(x, weight, bias, eps=1e-5)``: over the last axis, biased variance, eps
inside the square root; equals ``F.layer_norm`` (the reference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..framework import CheckContext, Misconception, checker


def _reference_layer_norm(x, weight, bias, eps=1e-5):
    """F.layer_norm computed in float64 and rounded back, so that the tolerances measure the learner's
    rounding only: torch's own float32 layer norm is off by up to 9e-5 of the largest gradient (measured
    over 20,000 random inputs), more than a learner's plain formula (1e-5), and by more than 1e-6 in
    the forward on rows of 3 features."""
    out = F.layer_norm(x.double(), (x.shape[-1],), weight.double(), bias.double(), eps)
    return out.to(x.dtype)


def _ln(x, weight, bias, eps=1e-5, *, dims=(-1,), unbiased=False, eps_outside=False, sqrt=True):
    """Layer norm done the way a misconception does it."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if not sqrt:
        return (x - mean) / (var + eps) * weight + bias
    scale = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
    return (x - mean) / scale * weight + bias


LN_UNBIASED = Misconception(
    "unbiased variance",
    "The variance seems to be the unbiased one (divided by D - 1, the default of torch.var and torch.std). "
    "Layer norm divides by D, the number of features: unbiased=False (or correction=0); and eps goes inside "
    "the square root, sqrt(var + eps).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, unbiased=True),
)
LN_STD_EPS_OUTSIDE = Misconception(
    "x.std() + eps",
    "This looks like (x - mean) / (x.std() + eps): torch's std is unbiased (it divides by D - 1) and eps "
    "belongs inside the square root, sqrt(var + eps), with the biased variance.",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, unbiased=True, eps_outside=True),
)
LN_EPS_OUTSIDE = Misconception(
    "eps outside the square root",
    "eps seems to be added to the standard deviation, outside the square root. The formula divides by "
    "sqrt(var + eps): it matters for rows whose variance is small.",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, eps_outside=True),
)
LN_NO_EPS = Misconception(
    "no eps",
    "eps seems to be missing: dividing by sqrt(var) alone blows up on rows whose values are (nearly) all "
    "equal. Divide by sqrt(var + eps).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, 0.0),
)
LN_IGNORES_EPS = Misconception(
    "ignores the eps argument",
    "The `eps` argument seems to be ignored (a fixed 1e-5 is used): use the value passed in.",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, 1e-5),
)
LN_NO_SQRT = Misconception(
    "divides by the variance",
    "The result seems divided by the variance (var + eps), not by its square root: layer norm divides by "
    "the standard deviation sqrt(var + eps).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, sqrt=False),
)
LN_FIRST_AXIS = Misconception(
    "normalises over the batch axis",
    "The statistics seem to be taken over the first (batch) axis: that is batch norm. Layer norm takes the "
    "mean and variance of each vector over its features, the LAST axis (dim=-1, keepdim=True).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, dims=(0,)),
)
LN_SECOND_LAST_AXIS = Misconception(
    "normalises over the sequence axis",
    "The statistics seem to be taken over the second-to-last axis (the positions). Layer norm normalises "
    "each vector over its features, the LAST axis (dim=-1, keepdim=True).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, dims=(-2,)),
)
LN_WHOLE_TENSOR = Misconception(
    "statistics of the whole tensor",
    "The mean and variance seem to be taken over the whole tensor. Layer norm takes them over the last axis "
    "only, one mean and one variance per vector (dim=-1, keepdim=True).",
    lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, dims=tuple(range(x.dim()))),
)
LN_NO_AFFINE = Misconception(
    "forgets weight and bias",
    "The result seems to be only the normalised x: layer norm then scales by `weight` and shifts by `bias`, "
    "feature by feature.",
    lambda x, w, b, eps=1e-5: _ln(x, torch.ones_like(w), torch.zeros_like(b), eps),
)
LN_NO_BIAS = Misconception(
    "forgets the bias",
    "The result seems to be scaled by `weight` but not shifted by `bias`: add the bias last.",
    lambda x, w, b, eps=1e-5: _ln(x, w, torch.zeros_like(b), eps),
)
LN_NO_WEIGHT = Misconception(
    "forgets the weight",
    "The result seems to be shifted by `bias` but not scaled by `weight`: multiply by the weight, then add "
    "the bias.",
    lambda x, w, b, eps=1e-5: _ln(x, torch.ones_like(w), b, eps),
)
LN_NO_CENTER = Misconception(
    "does not subtract the mean",
    "The mean does not seem to be subtracted: layer norm centres each vector (x - mean) before dividing by "
    "the standard deviation.",
    lambda x, w, b, eps=1e-5: x / (x.var(-1, keepdim=True, unbiased=False) + eps).sqrt() * w + b,
)

LN_AFFINE_FIRST = Misconception(
    "weight and bias before normalising",
    "`weight` and `bias` seem to be applied before the normalisation: normalise x first, then scale by weight "
    "and shift by bias (the output's per-feature scale and offset are what they set).",
    lambda x, w, b, eps=1e-5: _ln(x * w + b, torch.ones_like(w), torch.zeros_like(b), eps),
)

LN_MISCONCEPTIONS = [LN_UNBIASED, LN_STD_EPS_OUTSIDE, LN_EPS_OUTSIDE, LN_IGNORES_EPS, LN_NO_EPS, LN_NO_SQRT, LN_FIRST_AXIS,
                     LN_SECOND_LAST_AXIS, LN_WHOLE_TENSOR, LN_NO_AFFINE, LN_NO_BIAS, LN_NO_WEIGHT, LN_NO_CENTER,
                     LN_AFFINE_FIRST]


def _ln_args(t: CheckContext, *shape, dtype=torch.float32, spread=1.0):
    """x (*shape) with an offset (so that centring matters), weight and bias (D,)."""
    D = shape[-1]
    x = t.randn(*shape, dtype=dtype, scale=spread) + 3.0 * spread * t.randn(*shape[:-1], 1, dtype=dtype)
    return x, 1.0 + 0.5 * t.randn(D, dtype=dtype), 0.5 * t.randn(D, dtype=dtype)


@checker("06.1", misconceptions=LN_MISCONCEPTIONS, mutation_weight=0.5)
def check_layer_norm(t: CheckContext, layer_norm) -> None:
    """Sub-checks of 06.1, cheap to deep; weights are shares of the exercise's points."""
    B, L, D = t.sizes(3, 3, 8)
    args = _ln_args(t, B, L, D)
    what = f"layer_norm(x {B}x{L}x{D}, weight ({D},), bias ({D},))"
    t.opening(layer_norm, args, what=what, shapes=(B, L, D))

    @t.subcheck("equals F.layer_norm over the last axis (several shapes)", weight=1.5, essential=True)
    def _():
        for shape in ((B, L, D), (t.random.randint(2, 5), t.random.randint(3, 9)), (2, 3, L, D)):
            a = _ln_args(t, *shape)
            t.compare(layer_norm, _reference_layer_norm, a, what=f"layer_norm of x {tuple(shape)}",
                      reference_name="F.layer_norm")

    @t.subcheck("uses the eps given, inside the square root (rows of small variance, eps=0.1)", weight=0.75)
    def _():
        small = _ln_args(t, B, L, D, spread=1e-3)  # variance ~1e-6, below the default eps
        t.compare(layer_norm, _reference_layer_norm, small, what="layer_norm of rows of variance about 1e-6",
                  reference_name="F.layer_norm")
        t.compare(layer_norm, _reference_layer_norm, args, kwargs={"eps": 0.1}, what=f"{what[:-1]}, eps=0.1)",
                  reference_name="F.layer_norm")

    @t.subcheck("a constant row gives the bias, not NaN", weight=0.25)
    def _():
        x, w, b = _ln_args(t, B, L, D)
        x[0, 0] = 2.5  # every feature equal: variance 0
        t.compare(layer_norm, _reference_layer_norm, (x, w, b), what="layer_norm with a constant row",
                  finite=True, reference_name="F.layer_norm")

    t.float64_subcheck(layer_norm, _reference_layer_norm, _ln_args(t, B, L, D, dtype=torch.float64),
                       what="layer_norm of float64 inputs", reference_name="F.layer_norm")
    t.gradient_subcheck(layer_norm, _reference_layer_norm, _ln_args(t, B, L, D), what="layer_norm",
                        wrt=(0, 1, 2), arg_names=("x", "weight", "bias"), atol_of_max=1e-4,
                        reference_name="the gradient of F.layer_norm (computed in float64)")


