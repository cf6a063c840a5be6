"""Checks of 09.2 ``linear_attention``: non-causal, causal (running sums), eps, float64, gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...efficient.linear import linear_attention as _reference_linear
from ..framework import CheckContext, Misconception, checker, fmt_shape
from ._inputs import _qkv

# =========================================================================== 09.2 linear attention


def _phi(x):
    return F.elu(x) + 1


def _linear(query, key, value, causal=False, eps=1e-6, *, phi=_phi, normalise=True, eps_rule="denominator",
            shift=0, flip=False, causal_denominator=True, ignore_causal=False):
    """Linear attention with one step changed (see the misconceptions below)."""
    causal = causal and not ignore_causal
    q, k = phi(query), phi(key)
    a = q @ k.transpose(-2, -1)  # (..., L, S) phi(q_i) . phi(k_j), the quadratic form: the same values
    if causal:
        L = a.shape[-1]
        keep = torch.ones(L, L, dtype=torch.bool).tril(-shift)
        if flip:
            keep = keep.T
        num = a.masked_fill(~keep, 0.0) @ value
        den = (a.masked_fill(~keep, 0.0) if causal_denominator else a).sum(-1, keepdim=True)
    else:
        num, den = a @ value, a.sum(-1, keepdim=True)
    if not normalise:
        return num
    if eps_rule == "denominator":
        return num / (den + eps)
    if eps_rule == "outside":
        return num / den + eps
    if eps_rule == "both":
        return (num + eps) / (den + eps)
    if eps_rule == "features":
        return _linear(query, key, value, causal, 0.0, phi=lambda x: _phi(x) + eps)
    return num / den  # "none"


def _lin(**changes):
    return lambda query, key, value, causal=False, eps=1e-6: _linear(query, key, value, causal, eps, **changes)


LIN_RELU = Misconception(
    "relu feature map",
    "Your feature map seems to be relu(x). This exercise uses phi(x) = elu(x) + 1 (Katharopoulos et al. 2020), "
    "which is positive everywhere: relu is 0 for every negative input, so whole rows of similarities vanish.",
    _lin(phi=torch.relu),
)
LIN_EXP = Misconception(
    "exp feature map",
    "Your feature map seems to be exp(x). This exercise uses phi(x) = elu(x) + 1: like exp for x < 0 "
    "(exp(x)) but growing linearly, x + 1, for x >= 0.",
    _lin(phi=torch.exp),
)
LIN_ELU = Misconception(
    "elu without + 1",
    "Your feature map seems to be elu(x) without the + 1. elu is negative for x < 0, so similarities (and "
    "the normaliser) can be negative or zero; phi(x) = elu(x) + 1 is positive.",
    _lin(phi=F.elu),
)
LIN_SOFTMAX = Misconception(
    "softmax attention",
    "Your function seems to compute softmax attention. Linear attention replaces exp(q . k / sqrt(d)) by "
    "phi(q) . phi(k) with phi(x) = elu(x) + 1, and normalises by the sum of those similarities: no softmax, "
    "no sqrt(d).",
    lambda query, key, value, causal=False, eps=1e-6: F.scaled_dot_product_attention(query, key, value,
                                                                                      is_causal=causal),
)
LIN_NO_NORM = Misconception(
    "no normaliser",
    "Your function seems to return phi(q)^T S without dividing by the normaliser phi(q)^T z + eps, z the sum "
    "of the keys' features: without it the output grows with the number of keys instead of being a weighted "
    "average of the values.",
    _lin(normalise=False),
)
LIN_EPS_OUTSIDE = Misconception(
    "eps added to the result",
    "eps seems to be added to the result of the division. It belongs in the denominator: "
    "numerator / (phi(q)^T z + eps), so that the division is safe when the normaliser is tiny.",
    _lin(eps_rule="outside"),
)
LIN_EPS_BOTH = Misconception(
    "eps added to numerator and denominator",
    "eps seems to be added to the numerator too. It belongs in the denominator only: "
    "numerator / (phi(q)^T z + eps).",
    _lin(eps_rule="both"),
)
LIN_EPS_FEATURES = Misconception(
    "eps added to the features",
    "eps seems to be added to the features phi(x). It belongs in the denominator: "
    "numerator / (phi(q)^T z + eps).",
    _lin(eps_rule="features"),
)
LIN_NO_EPS = Misconception(
    "eps ignored",
    "Your function seems to ignore eps: add it to the denominator, numerator / (phi(q)^T z + eps).",
    _lin(eps_rule="none"),
)
LIN_EXCLUSIVE = Misconception(
    "causal sums leave out the current token",
    "With causal=True, your running sums seem to stop at the previous token (an exclusive cumulative sum). "
    "Query i may attend to keys j <= i, itself included: add token i's phi(k_i) v_i^T and phi(k_i) to the "
    "sums before answering query i.",
    _lin(shift=1),
)
LIN_ANTI_CAUSAL = Misconception(
    "causal sums run over the future",
    "With causal=True, your sums seem to run over the keys j >= i (from the end of the sequence). A causal "
    "query sees the past: keys j <= i, a cumulative sum from the start.",
    _lin(flip=True),
)
LIN_CAUSAL_IGNORED = Misconception(
    "causal=True ignored",
    "With causal=True your function seems to return the non-causal result: every query sees every key, "
    "including future ones. Use running (cumulative) sums over the positions when causal is True.",
    _lin(ignore_causal=True),
)
LIN_DENOMINATOR_NOT_CAUSAL = Misconception(
    "the normaliser is not causal",
    "With causal=True your numerator seems causal but the normaliser sums the features of ALL keys. Both "
    "sums run over j <= i: use the running sum z_i of phi(k_j) as well.",
    _lin(causal_denominator=False),
)
LIN_ALWAYS_CAUSAL = Misconception(
    "always causal",
    "Your function seems to apply the causal running sums even when causal=False: then every query sees "
    "every key, and the sums are over all of them.",
    lambda query, key, value, causal=False, eps=1e-6: _linear(query, key, value, True, eps),
)

LIN_PHI_VALUES = Misconception(
    "feature map on the values",
    "Your function seems to apply the feature map to the values too. phi replaces the similarity of queries "
    "and keys only: S = sum_j phi(k_j) v_j^T uses the values as they are.",
    lambda query, key, value, causal=False, eps=1e-6: _linear(query, key, _phi(value), causal, eps),
)
LINEAR_VALUES_HINT = ("Check each piece on a tiny input against the formula: phi(x) = elu(x) + 1 on the queries and "
                      "keys (not the values), numerator phi(q_i)^T S, denominator phi(q_i)^T z + eps, with S and z "
                      "summed over all keys (causal: over j <= i).")

LINEAR_MISCONCEPTIONS = [LIN_PHI_VALUES, LIN_SOFTMAX, LIN_RELU, LIN_EXP, LIN_ELU, LIN_NO_NORM, LIN_EPS_OUTSIDE, LIN_EPS_BOTH,
                         LIN_EPS_FEATURES, LIN_NO_EPS, LIN_EXCLUSIVE, LIN_ANTI_CAUSAL, LIN_CAUSAL_IGNORED,
                         LIN_DENOMINATOR_NOT_CAUSAL, LIN_ALWAYS_CAUSAL]


def _describe_linear(args, kwargs) -> str:
    q, k, v = args
    extra = "".join(f", {name}={value}" for name, value in kwargs.items())
    return (f"linear_attention(query {fmt_shape(q.shape)}, key {fmt_shape(k.shape)}, value "
            f"{fmt_shape(v.shape)}{extra})")


@checker("09.2", misconceptions=LINEAR_MISCONCEPTIONS)
def check_linear_attention(t: CheckContext, linear_attention) -> None:
    """Sub-checks of 09.2, cheap to deep; weights are shares of the exercise's points."""
    B, H = t.sizes(2, 2, 4)
    L, S = t.sizes(2, 4, 9)
    D, Dv = t.sizes(2, 3, 8)
    args0 = _qkv(t, (B, H), L, S, D, Dv)
    t.opening(linear_attention, args0, what=_describe_linear(args0, {}), shapes=(B, H, L, Dv))

    def compare(args, kwargs):
        t.compare(linear_attention, _reference_linear, args, kwargs=kwargs, what=_describe_linear(args, kwargs),
                  rtol=1e-4, atol=1e-5, reference_name="linear attention", hints={0: LINEAR_VALUES_HINT})

    @t.subcheck("non-causal: equals linear attention with phi(x) = elu(x) + 1 (L != S, leading dimensions)",
                weight=1.5, essential=True)
    def _():
        for lead, l, s in (((B, H), L, S), ((), S, L), ((B,), 1, S)):
            compare(_qkv(t, lead, l, s, D, Dv, scale=1.5), {})

    @t.subcheck("causal=True: equals causal linear attention (running sums over j <= i)", weight=1.5,
                essential=True)
    def _():
        for lead, l in (((B, H), L), ((), S), ((B,), 1)):
            compare(_qkv(t, lead, l, l, D, Dv, scale=1.5), {"causal": True})

    @t.subcheck("eps is added to the denominator (eps = 0.5, causal and not)", weight=0.5)
    def _():
        for causal in (False, True):
            compare(_qkv(t, (B,), L, L, D, Dv), {"causal": causal, "eps": 0.5})

    args64 = _qkv(t, (B,), L, L, D, Dv, dtype=torch.float64)
    t.float64_subcheck(linear_attention, _reference_linear, args64, kwargs={"causal": True},
                       what=_describe_linear(args64, {"causal": True}) + " in float64")
    argsg = _qkv(t, (B,), L, L, D, Dv)
    t.gradient_subcheck(linear_attention, _reference_linear, argsg, kwargs={"causal": True},
                        what=_describe_linear(argsg, {"causal": True}), wrt=(0, 1, 2),
                        arg_names=("query", "key", "value"), weight=0.25)
