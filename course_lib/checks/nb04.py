"""Checks for notebook 04 (multi-head attention): 04.1 split_heads, 04.2 merge_heads,
04.3 multi_head_attention.

Contracts (the exercise notebook states them; solutions/04_multi_head_attention.ipynb):

* ``split_heads(x, num_heads)``: x (B, L, E) -> (B, H, L, E/H), head h holding
  the contiguous features h*Dh .. (h+1)*Dh - 1; ValueError if E % H != 0.
* ``merge_heads(x)``: (B, H, L, Dh) -> (B, L, H*Dh), the inverse of split_heads.
* ``multi_head_attention(query, key, value, W_q, W_k, W_v, W_o, num_heads,
  attn_mask=None)`` -> (output (B, L, E), weights (B, H, L, S)); no biases,
  matrices applied as ``x @ W``; attn_mask as in 03.1 (bool True = take part,
  float added to the scores, a query with no key to attend to gets zeros),
  shared by all heads when it has no head axis.

Expected values come from ``course_lib.attention``. The misconceptions below are
wrong implementations used only to name what went wrong.
"""

from __future__ import annotations

import math

import torch

from ..attention import merge_heads as _merge_reference
from ..attention import multi_head_attention as _mha_reference
from ..attention import split_heads as _split_reference
from ..masks import causal_mask as _causal_mask
from .framework import CheckContext, Misconception, checker, fmt_shape

_softmax = torch.softmax  # captured at import, see framework.py
_NEG_INF = float("-inf")


# =========================================================================== 04.1 split_heads


def _split_view(order):
    def impl(x, num_heads):
        B, L, E = x.shape
        return order(x, B, L, num_heads, E // num_heads)
    return impl


SPLIT_NO_TRANSPOSE = Misconception("view(B, H, L, Dh) without transpose", "Your heads seem to mix positions: "
                                   "x.view(B, H, L, Dh) cuts the memory in the wrong order (a (B, L, E) tensor "
                                   "stores all features of one position together), so a head gets pieces of several "
                                   "positions. Split the feature axis where it is, view(B, L, H, Dh), then move the "
                                   "head axis forward with .transpose(1, 2).",
                                   _split_view(lambda x, B, L, H, Dh: x.reshape(B, H, L, Dh)))
SPLIT_STRIDED = Misconception("strided features (B, L, Dh, H)", "Each head seems to get every H-th feature (a "
                              "strided slice) instead of a contiguous block: splitting the feature axis as (Dh, H) "
                              "puts feature f in head f % H. Split it as (H, Dh), view(B, L, H, Dh), so that head h "
                              "gets features h*Dh to (h+1)*Dh - 1.",
                              _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, Dh, H).permute(0, 3, 1, 2)))
SPLIT_NO_SWAP = Misconception("returns (B, L, H, Dh)", "Your result seems to be (B, L, H, Dh): the features are "
                              "split correctly, but the head axis must come before the positions, (B, H, L, Dh), so "
                              "that each head attends over its own (L, Dh) matrix. Add .transpose(1, 2).",
                              _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, H, Dh)))
SPLIT_HEAD_SIZE = Misconception("num_heads used as the head size", "num_heads seems to be used as the size of each "
                                "head: it is the number of heads H, and each head gets Dh = E // H features, so the "
                                "result is (B, H, L, E // H).",
                                _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, Dh, H).transpose(1, 2)))
SPLIT_HEAD_SIZE_STRIDED = Misconception("num_heads used as the head size (strided)", SPLIT_HEAD_SIZE.hint,
                                        _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, H, Dh).permute(0, 3, 1, 2)))
SPLIT_FIXED_HEADS = [
    Misconception(
        f"hard-coded {h} heads",
        f"Your function seems to always split into {h} heads: use the `num_heads` argument (and E // num_heads "
        "for the head size) instead of a fixed number.",
        (lambda h: lambda x, num_heads: x.reshape(x.shape[0], x.shape[1], h, x.shape[2] // h).transpose(1, 2))(h),
    )
    for h in (2, 4)
]
SPLIT_VIEW_SIZES = Misconception("view sizes that do not fit", "The sizes in your view/reshape do not multiply to "
                                 "the size of x: split the last axis into (num_heads, E // num_heads), taking B, L "
                                 "and E from x.shape and the number of heads from `num_heads`.",
                                 error=r"shape '\[[-\d, ]*\]' is invalid for input of size")
SPLIT_NO_VALUE_ERROR = Misconception("no ValueError for an indivisible E", "When num_heads does not divide E the "
                                     "heads cannot have equal sizes: check `E % num_heads != 0` at the start and "
                                     "`raise ValueError(...)` with a message that names E and num_heads. Returning "
                                     "something (for example by dropping the last features) hides the mistake from "
                                     "the caller.")
SPLIT_WRONG_EXCEPTION = Misconception("wrong exception type for an indivisible E", "The contract asks for a "
                                      "ValueError when num_heads does not divide E. An error that view/reshape "
                                      "happens to raise (RuntimeError) or an `assert` (AssertionError) is not it: "
                                      "test `E % num_heads` yourself and `raise ValueError(...)` with a clear "
                                      "message.")

SPLIT_MISCONCEPTIONS = [SPLIT_NO_TRANSPOSE, SPLIT_STRIDED, SPLIT_NO_SWAP, SPLIT_HEAD_SIZE, SPLIT_HEAD_SIZE_STRIDED,
                        *SPLIT_FIXED_HEADS, SPLIT_VIEW_SIZES, SPLIT_NO_VALUE_ERROR, SPLIT_WRONG_EXCEPTION]


def _split_args(t: CheckContext, B: int, L: int, H: int, Dh: int, dtype=torch.float32):
    return t.randn(B, L, H * Dh, dtype=dtype), H


def _describe_split(args) -> str:
    return f"split_heads(x, {args[1]}) for x of shape {fmt_shape(args[0].shape)}"


@checker("04.1", misconceptions=SPLIT_MISCONCEPTIONS, mutation_weight=0.25)
def check_split_heads(t: CheckContext, split_heads) -> None:
    """Sub-checks of 04.1, cheap to deep."""
    # First call: four different sizes, so every wrong axis order shows in the shape; an even E
    # and H, Dh outside {2, 4}, so that a hard-coded head count gives a distinct wrong shape.
    H, Dh = t.random.choice([(3, 8), (8, 3), (5, 6), (6, 5), (3, 6), (6, 3)])
    B, L = t.random.sample([n for n in range(2, 8) if n not in (H, Dh)], 2)
    ex = t.exercise(split_heads, _split_reference, _describe_split, exact=True)
    ex.opening(_split_args(t, B, L, H, Dh), shapes=(B, H, L, Dh), shape_titles=["the output has shape (B, H, L, E/H)"])
    b, l, h, d = t.sizes(4, 2, 7)
    # (b, L, 3, 4): E = 12 splits into 2 or 4 heads as well, so a hard-coded head count shows
    cases = [(B, L, H, Dh), (b, L, 3, 4), (b, l, h, d), (b, L, 1, d), (B, l, d, 1), (1, 1, h, d)]
    ex.compare_cases("head h holds the contiguous features h*Dh .. (h+1)*Dh-1 of every position (several shapes "
                     "and head counts)", [_split_args(t, *c) for c in cases], weight=1.5, essential=True)
    ex.float64(_split_args(t, L, B, H, Dh, dtype=torch.float64), title="keeps the input's dtype (float64 stays "
               "float64)")

    @t.subcheck("raises ValueError when num_heads does not divide E", weight=0.5)
    def _():
        H1 = t.random.randint(3, 5)
        E1 = H1 * t.random.randint(2, 4) + t.random.randint(1, H1 - 1)  # E1 % H1 != 0
        for E, heads in ((E1, H1), (2, 4)):
            args = (t.randn(B, L, E), heads)
            t.expect_raises(split_heads, args, ValueError, _describe_split(args), SPLIT_NO_VALUE_ERROR.hint,
                            SPLIT_WRONG_EXCEPTION.hint)

    ex.gradients(_split_args(t, B, L, H, Dh), wrt=(0,), arg_names=("x", "num_heads"), weight=0.25,
                 title="gradients flow back through it")


# =========================================================================== 04.2 merge_heads


def _merge_view(order):
    def impl(x):
        B, H, L, Dh = x.shape
        return order(x, B, H, L, Dh)
    return impl


MERGE_VIEW_ERROR = Misconception("view on a tensor whose memory order does not fit", "`.view` can only regroup axes "
                                 "that already lie in the right order in memory. Move the head axis next to the "
                                 "head features first, x.transpose(1, 2) -> (B, L, H, Dh), and then flatten with "
                                 ".reshape(B, L, H * Dh) (or .contiguous().view(...)): after a transpose the tensor "
                                 "is not contiguous, and the output of attention (weights @ v) is, so a bare .view "
                                 "fails on one or the other.",
                                 error=r"view size is not compatible with input tensor's size and stride")
MERGE_NO_TRANSPOSE = Misconception("reshape without transpose", "The features of your result seem scrambled: "
                                   "reshaping (B, H, L, Dh) straight to (B, L, H*Dh) reads the memory head by head, "
                                   "so one output position gets pieces of several positions. Move the head axis "
                                   "next to the features first, x.transpose(1, 2) -> (B, L, H, Dh), then flatten "
                                   "the last two axes.", _merge_view(lambda x, B, H, L, Dh: x.reshape(B, L, H * Dh)))
MERGE_DH_H = Misconception("flattens in (Dh, H) order", "The heads seem to be interleaved feature by feature (the "
                           "last axes flattened in (Dh, H) order). merge_heads must put head 0's Dh features first, "
                           "then head 1's, ...: transpose(1, 2) to (B, L, H, Dh) and flatten that, the inverse of "
                           "split_heads.",
                           _merge_view(lambda x, B, H, L, Dh: x.permute(0, 2, 3, 1).reshape(B, L, Dh * H)))
MERGE_HL = Misconception("concatenates heads along the positions", "Your result seems to stack the heads one after "
                         "another along the positions, (B, H*L, Dh). The heads are concatenated along the features: "
                         "each position keeps its place and gets H*Dh features, (B, L, H*Dh).",
                         _merge_view(lambda x, B, H, L, Dh: x.reshape(B, H * L, Dh)))
MERGE_MEAN = Misconception("averages the heads", "Your function seems to average (or sum) the heads, which leaves "
                           "Dh features per position. Multi-head attention concatenates them instead: every head's "
                           "Dh features side by side, H*Dh in all.",
                           _merge_view(lambda x, B, H, L, Dh: x.mean(dim=1)))
MERGE_SUM = Misconception("sums the heads", MERGE_MEAN.hint, _merge_view(lambda x, B, H, L, Dh: x.sum(dim=1)))
MERGE_4D = Misconception("does not flatten", "Your result seems to be (B, L, H, Dh): the axes are in the right "
                         "order, now flatten the last two into H*Dh features: .reshape(B, L, H * Dh).",
                         _merge_view(lambda x, B, H, L, Dh: x.transpose(1, 2)))
MERGE_LH = Misconception("swaps heads and positions in the shape", "Your result seems to have the shape (B, H, "
                         "L*Dh) or to flatten positions with features: each head's output must stay attached to its "
                         "position. transpose(1, 2) to (B, L, H, Dh), then flatten the last two axes.",
                         _merge_view(lambda x, B, H, L, Dh: x.reshape(B, H, L * Dh)))

MERGE_MISCONCEPTIONS = [MERGE_VIEW_ERROR, MERGE_NO_TRANSPOSE, MERGE_DH_H, MERGE_HL, MERGE_MEAN, MERGE_SUM, MERGE_4D,
                        MERGE_LH]


def _describe_merge(args) -> str:
    return f"merge_heads(x) for x of shape {fmt_shape(args[0].shape)}"


@checker("04.2", misconceptions=MERGE_MISCONCEPTIONS, mutation_weight=0.25)
def check_merge_heads(t: CheckContext, merge_heads) -> None:
    """Sub-checks of 04.2, cheap to deep."""
    B, H, L, Dh = t.sizes(4, 2, 6)
    ex = t.exercise(merge_heads, _merge_reference, _describe_merge, exact=True)
    ex.opening((t.randn(B, H, L, Dh),), shapes=(B, L, H * Dh), shape_titles=["the output has shape (B, L, H*Dh)"])
    b, h, l, d = t.sizes(4, 2, 7)
    ex.compare_cases("concatenates the heads' features at every position (several shapes)",
                     [(t.randn(*c),) for c in [(B, H, L, Dh), (b, h, l, d), (b, 1, l, d), (1, h, 1, d), (B, h, L, 1)]],
                     weight=1.0, essential=True)

    @t.subcheck("is the inverse of split_heads: merge_heads(split_heads(x, H)) gives x back", weight=0.75,
                essential=True)
    def _():
        b, h, l, d = t.sizes(4, 2, 7)
        for B1, H1, L1, Dh1 in ((b, h, l, d), (B, H, L, Dh)):
            x = t.randn(B1, L1, H1 * Dh1)
            heads = _split_reference(x, H1)  # (B, H, L, Dh), not contiguous: what attention code passes
            ex.compare((heads,), what=f"merge_heads(split_heads(x, {H1})) for x of shape {fmt_shape(x.shape)}",
                       expected=_merge_reference(heads))

    ex.float64((t.randn(L, B, H, Dh, dtype=torch.float64),), title="keeps the input's dtype (float64 stays float64)")
    ex.gradients((t.randn(B, H, L, Dh),), wrt=(0,), arg_names=("x",), weight=0.25,
                 title="gradients flow back through it")


# =========================================================================== 04.3 multi_head_attention


def _wrong_mha(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None, *, proj="ok", split="ok",
               scale="head", softmax_dim=-1, mask="ok", heads="concat", out_proj=True, returned="weights"):
    """Multi-head attention with one misconception switched on (the keyword arguments).
    With every keyword at its default this is ordinary multi-head attention; the checker never
    uses it for expected values (those come from course_lib.attention)."""
    H = num_heads
    if proj == "transposed":
        W_q, W_k, W_v, W_o = W_q.T, W_k.T, W_v.T, W_o.T
    elif proj == "W_q_for_all":
        W_k = W_v = W_q
    q, k = query @ W_q, key @ W_k
    v = value if proj == "no_W_v" else value @ W_v
    # split and merge as 04.1 and 04.2 do, or with the "no transpose" misconception of both
    split, merge = ((SPLIT_NO_TRANSPOSE.impl, MERGE_NO_TRANSPOSE.impl) if split == "interleaved"
                    else (_split_reference, _merge_reference))
    q, k, v = split(q, H), split(k, H), split(v, H)  # (B, H, L or S, Dh)
    Dh = q.shape[-1]
    d = {"head": math.sqrt(Dh), "E": math.sqrt(H * Dh), "none": 1.0, "Dh": float(Dh)}[scale]
    scores = q @ k.transpose(-2, -1) / d  # (B, H, L, S)
    raw = scores
    keep = None
    if attn_mask is not None:
        m = attn_mask
        if mask == "always_unsqueeze" or (mask != "no_head_axis" and m.dim() == 3):
            m = m.unsqueeze(1)
        if m.dtype == torch.bool:
            keep = ~m if mask == "inverted" else m
            if mask != "after_softmax":
                fill = -1e9 if mask == "large_negative" else _NEG_INF
                scores = scores.masked_fill(~keep, fill)
        elif mask != "ignore_float":
            scores = scores + m
    if mask == "naive" or softmax_dim != -1:
        weights = _softmax(scores, dim=softmax_dim)
    else:
        dead = scores.amax(dim=-1, keepdim=True) == _NEG_INF
        weights = _softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    if mask == "after_softmax" and keep is not None:
        weights = weights * keep
    if heads == "average_weights":
        out = weights.mean(dim=1) @ (v if proj == "no_W_v" else value @ W_v)  # (B, L, E)
    else:
        out = merge(weights @ v)  # (B, L, E)
    if out_proj:
        out = out @ W_o
    shown = {"weights": weights, "mean": weights.mean(dim=1), "scores": raw}[returned]
    return out, shown


def _mha_misconception(name: str, hint: str, error: str | None = None, **options) -> Misconception:
    """A misconception of 04.3: multi-head attention with ``options`` switched on."""
    return Misconception(name, hint, lambda *a, **k: _wrong_mha(*a, **k, **options), error)


MHA_HEAD_AXIS_HINT = ("The softmax seems to run over the head axis (or the batch axis): each query's weights over "
                      "the keys must sum to 1, so take the softmax over the last axis (dim=-1) of the (B, H, L, S) "
                      "scores.")
MHA_MASK_HEADS_HINT = ("The mask does not seem to line up with the scores (B, H, L, S): a 2-D (L, S) mask "
                       "broadcasts as it is, but a 3-D (B, L, S) mask needs a head axis, attn_mask.unsqueeze(1) "
                       "-> (B, 1, L, S), so that every head of a sequence uses that sequence's mask.")

MHA_MISCONCEPTIONS = [
    _mha_misconception("forgets W_o", "The heads seem to be merged without the output projection: multiply the "
                       "merged heads (B, L, E) by W_o at the end, output = merge_heads(...) @ W_o.", out_proj=False),
    _mha_misconception("scales by sqrt(E)", "The scores seem to be divided by sqrt(E), the full model width. Each "
                       "head compares vectors of Dh = E // num_heads features, so divide by sqrt(Dh), the head "
                       "dimension.", scale="E"),
    _mha_misconception("no scaling", "The scores do not seem to be scaled: divide q @ k^T by sqrt(Dh), the square "
                       "root of the head dimension (Dh = E // num_heads), before the softmax.", scale="none"),
    _mha_misconception("scales by Dh", "The scores seem to be divided by Dh itself: the scale is 1 / sqrt(Dh), the "
                       "square root of the head dimension.", scale="Dh"),
    _mha_misconception("softmax over the query axis", "The softmax seems to run over the query axis: each query's "
                       "weights over the keys must sum to 1, so take the softmax over the last axis (dim=-1) of the "
                       "(B, H, L, S) scores.", softmax_dim=-2),
    _mha_misconception("softmax over the head axis", MHA_HEAD_AXIS_HINT, softmax_dim=1),
    _mha_misconception("softmax over the batch axis", MHA_HEAD_AXIS_HINT, softmax_dim=0),
    _mha_misconception("mask without a head axis", MHA_MASK_HEADS_HINT, mask="no_head_axis",
                       error=r"must match the size of tensor b \(\d+\) at non-singleton dimension 1"),
    _mha_misconception("mask always unsqueezed", MHA_MASK_HEADS_HINT, mask="always_unsqueeze"),
    _mha_misconception("inverted mask", "The mask seems inverted: this function follows torch's SDPA convention, "
                       "where a bool mask keeps the positions marked True (nn.MultiheadAttention uses the opposite). "
                       "Fill the scores with -inf where the mask is False.", mask="inverted"),
    _mha_misconception("mask after the softmax", "The mask seems to be applied after the softmax, so the remaining "
                       "weights no longer sum to 1. Fill the scores with -inf where the mask is False before the "
                       "softmax.", mask="after_softmax"),
    _mha_misconception("float mask ignored", "A float mask seems to be ignored (or used as a bool mask): a float "
                       "attn_mask is added to the scores before the softmax (0 keeps a key, -inf removes it), with a "
                       "head axis for a 3-D mask as for a bool one.",
                       error=r"only implemented on integer and Boolean", mask="ignore_float"),
    _mha_misconception("NaN for a query with no key", "A query whose keys are all masked has nothing to attend to: "
                       "the softmax of a row of -inf is NaN. Like torch's SDPA, give such a query zero weights and a "
                       "zero output (for example: find the rows whose maximum score is -inf, and fill their weights "
                       "with 0).", mask="naive"),
    _mha_misconception("masks with a large negative number", "Masking with a large negative number (such as -1e9) "
                       "instead of -inf gives a query whose keys are all masked uniform weights over those masked "
                       "keys; it must get zero weights and a zero output. Use -inf, and set the weights of rows with "
                       "no valid key to 0.", mask="large_negative"),
    _mha_misconception("averages the heads", "The heads seem to be averaged instead of concatenated: each head "
                       "computes its own Dh-wide output from its own weights and its own slice of v; merge_heads "
                       "puts those side by side (B, L, H*Dh) before W_o.", heads="average_weights"),
    _mha_misconception("applies W transposed", "The weight matrices seem to be applied transposed (x @ W.T, as "
                       "nn.Linear stores them). In this course W has shape (in_features, out_features) and is "
                       "applied as x @ W.", proj="transposed"),
    _mha_misconception("projects k and v with W_q", "The keys and values seem to be projected with W_q: use key @ "
                       "W_k for the keys and value @ W_v for the values.", proj="W_q_for_all"),
    _mha_misconception("forgets W_v", "The values do not seem to be projected: split value @ W_v into heads, not "
                       "value itself.", proj="no_W_v"),
    _mha_misconception("split without transpose", "The heads seem to mix positions: check your split_heads and "
                       "merge_heads (exercises 04.1 and 04.2). A (B, L, E) tensor is split with view(B, L, H, "
                       "Dh).transpose(1, 2), not view(B, H, L, Dh).", split="interleaved"),
    _mha_misconception("returns the weights averaged over heads", "The weights seem to be averaged over the heads "
                       "(what nn.MultiheadAttention returns by default). This function returns every head's weights, "
                       "shape (B, H, L, S).", returned="mean"),
    _mha_misconception("returns the scores", "The returned weights seem to be the scores before the softmax: return "
                       "the attention weights (after the softmax, each row summing to 1).", returned="scores"),
    Misconception("computes in float32", "For float64 inputs your function seems to compute in float32 (for example "
                  ".float() or a float32 tensor created on the way) and loses precision. Keep the inputs' dtype.",
                  lambda *a, **k: tuple(r.double() for r in _mha_reference(
                      *(x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in a), **k))),
]


def _mha_args(t: CheckContext, B: int, L: int, S: int | None, H: int, Dh: int, dtype=torch.float32) -> tuple:
    """query, key, value, W_q, W_k, W_v, W_o, num_heads; S None: self-attention (one sequence, three tensors)."""
    E = H * Dh
    query = t.randn(B, L, E, dtype=dtype)
    kv = (query.clone(), query.clone()) if S is None else (t.randn(B, S, E, dtype=dtype), t.randn(B, S, E, dtype=dtype))
    # 1/sqrt(E) keeps q.k of order sqrt(Dh): the softmax is neither flat nor saturated
    return (query, *kv, *(t.randn(E, E, dtype=dtype, scale=1.0 / math.sqrt(E)) for _ in range(4)), H)


def _describe_mha(args, attn_mask=None, mask_desc: str = "") -> str:
    query, key = args[0], args[1]
    kind = "self-attention" if query.shape == key.shape and torch.equal(query, key) else "cross-attention"
    mask = "" if attn_mask is None else f", {mask_desc} attn_mask {fmt_shape(attn_mask.shape)}"
    return (f"multi_head_attention({kind}, query {fmt_shape(query.shape)}, key/value {fmt_shape(key.shape)}, "
            f"num_heads={args[-1]}{mask})")


_NAMES = ("output", "weights")
_RETURN_HINT = ("Return both results: `return output, weights`, the weights being the (B, H, L, S) attention "
                "weights of every head.")


@checker("04.3", misconceptions=MHA_MISCONCEPTIONS, mutation_weight=0.25)
def check_multi_head_attention(t: CheckContext, multi_head_attention) -> None:
    """Sub-checks of 04.3, cheap to deep."""
    B, L, S, H, Dh = t.sizes(5, 2, 6)  # all different: every axis mix-up shows
    ex = t.exercise(multi_head_attention, _mha_reference, _describe_mha, names=_NAMES, finite=True)

    def masked(args, mask, desc):
        ex.compare(args, kwargs={"attn_mask": mask}, what=_describe_mha(args, mask, desc), order=(1, 0))

    args0 = _mha_args(t, B, L, S, H, Dh)
    ex.opening(args0, dtype=None, shapes=[(B, L, H * Dh), (B, H, L, S)], weights=(0.25, 0.25, 0),
               returns_hint=_RETURN_HINT, returns_title="returns a tuple of two tensors (output, weights)",
               shape_titles=["the output is (B, L, E)", "the weights are (B, H, L, S)"])
    b, l, s, h, d = t.sizes(5, 2, 7)
    cases = [args0, _mha_args(t, b, l, None, h, d), _mha_args(t, b, l, s, h, d), _mha_args(t, B, L, S, 1, Dh),
             _mha_args(t, 1, L, None, Dh, 1)]
    ex.compare_cases("every head's weights equal the reference (self- and cross-attention, several shapes and head "
                     "counts)", cases, weight=1.25, essential=True, order=(1,))
    ex.compare_cases("the output equals the reference (heads concatenated, then W_o)", cases, weight=1.25,
                     essential=True, order=(0,))

    @t.subcheck("bool masks (True = take part): (L, S) shared by the batch, (B, L, S) shared by the heads",
                weight=0.75)
    def _():
        b = t.random.randint(2, 4)
        l, s = t.sizes(2, 3, 7)
        square = _mha_args(t, b, l, None, b, t.random.randint(2, 4))  # B == H: a mask without head axis misfires
        for args, mask, desc in (
                (args0, _causal_mask(L, S) if S > L else t.keep_mask(L, S), "(L, S) bool"),
                (args0, t.keep_mask(B, L, S), "(B, L, S) bool"),
                (square, t.keep_mask(b, l, l), "(B, L, S) bool"),
                (_mha_args(t, b, l, s, 2, 3), t.keep_mask(b, l, s), "(B, L, S) bool")):
            masked(args, mask, desc)

    @t.subcheck("float masks are added to the scores (2-D and 3-D)", weight=0.5)
    def _():
        for shape in ((L, S), (B, L, S)):
            masked(args0, t.randn(*shape, scale=2.0).masked_fill(~t.keep_mask(*shape), _NEG_INF),
                   f"{len(shape)}-D float")

    @t.subcheck("a query with no key to attend to gets zero weights and a zero output (no NaN)", weight=0.25)
    def _():
        keep = t.keep_mask(B, L, S)
        keep[0, t.random.randrange(L)] = False
        keep[B - 1, L - 1] = False
        masked(args0, keep, "(B, L, S) bool, some rows all False,")

    ex.float64(_mha_args(t, B, L, S, H, Dh, dtype=torch.float64), order=(1, 0), rtol=1e-9, atol=1e-12,
               title="float64 inputs give float64 results in float64 precision")
    ex.gradients(_mha_args(t, B, L, S, H, Dh), wrt=range(7), weight=0.5,
                 arg_names=("query", "key", "value", "W_q", "W_k", "W_v", "W_o", "num_heads"),
                 title="gradients reach the inputs and all four weight matrices like the reference's")
