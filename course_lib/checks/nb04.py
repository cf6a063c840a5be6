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


SPLIT_NO_TRANSPOSE = Misconception(
    "view(B, H, L, Dh) without transpose",
    "Your heads seem to mix positions: x.view(B, H, L, Dh) cuts the memory in the wrong order (a (B, L, E) "
    "tensor stores all features of one position together), so a head gets pieces of several positions. "
    "Split the feature axis where it is, view(B, L, H, Dh), then move the head axis forward with .transpose(1, 2).",
    _split_view(lambda x, B, L, H, Dh: x.reshape(B, H, L, Dh)),
)
SPLIT_STRIDED = Misconception(
    "strided features (B, L, Dh, H)",
    "Each head seems to get every H-th feature (a strided slice) instead of a contiguous block: splitting "
    "the feature axis as (Dh, H) puts feature f in head f % H. Split it as (H, Dh), view(B, L, H, Dh), "
    "so that head h gets features h*Dh to (h+1)*Dh - 1.",
    _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, Dh, H).permute(0, 3, 1, 2)),
)
SPLIT_NO_SWAP = Misconception(
    "returns (B, L, H, Dh)",
    "Your result seems to be (B, L, H, Dh): the features are split correctly, but the head axis must come "
    "before the positions, (B, H, L, Dh), so that each head attends over its own (L, Dh) matrix. "
    "Add .transpose(1, 2).",
    _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, H, Dh)),
)
SPLIT_HEAD_SIZE = Misconception(
    "num_heads used as the head size",
    "num_heads seems to be used as the size of each head: it is the number of heads H, and each head gets "
    "Dh = E // H features, so the result is (B, H, L, E // H).",
    _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, Dh, H).transpose(1, 2)),
)
SPLIT_HEAD_SIZE_STRIDED = Misconception(
    "num_heads used as the head size (strided)",
    SPLIT_HEAD_SIZE.hint,
    _split_view(lambda x, B, L, H, Dh: x.reshape(B, L, H, Dh).permute(0, 3, 1, 2)),
)
SPLIT_FIXED_HEADS = [
    Misconception(
        f"hard-coded {h} heads",
        f"Your function seems to always split into {h} heads: use the `num_heads` argument (and E // num_heads "
        "for the head size) instead of a fixed number.",
        (lambda h: lambda x, num_heads: x.reshape(x.shape[0], x.shape[1], h, x.shape[2] // h).transpose(1, 2))(h),
    )
    for h in (2, 4)
]
SPLIT_VIEW_SIZES = Misconception(
    "view sizes that do not fit",
    "The sizes in your view/reshape do not multiply to the size of x: split the last axis into "
    "(num_heads, E // num_heads), taking B, L and E from x.shape and the number of heads from `num_heads`.",
    error=r"shape '\[[-\d, ]*\]' is invalid for input of size",
)
SPLIT_NO_VALUE_ERROR = Misconception(
    "no ValueError for an indivisible E",
    "When num_heads does not divide E the heads cannot have equal sizes: check `E % num_heads != 0` at the "
    "start and `raise ValueError(...)` with a message that names E and num_heads. Returning something "
    "(for example by dropping the last features) hides the mistake from the caller.",
)
SPLIT_WRONG_EXCEPTION = Misconception(
    "wrong exception type for an indivisible E",
    "The contract asks for a ValueError when num_heads does not divide E. An error that view/reshape "
    "happens to raise (RuntimeError) or an `assert` (AssertionError) is not it: test `E % num_heads` "
    "yourself and `raise ValueError(...)` with a clear message.",
)

SPLIT_MISCONCEPTIONS = [SPLIT_NO_TRANSPOSE, SPLIT_STRIDED, SPLIT_NO_SWAP, SPLIT_HEAD_SIZE, SPLIT_HEAD_SIZE_STRIDED,
                        *SPLIT_FIXED_HEADS, SPLIT_VIEW_SIZES, SPLIT_NO_VALUE_ERROR, SPLIT_WRONG_EXCEPTION]


def _split_case(t: CheckContext, B: int, L: int, H: int, Dh: int, dtype=torch.float32):
    x = t.randn(B, L, H * Dh, dtype=dtype)
    return x, f"split_heads(x, {H}) for x of shape {fmt_shape(x.shape)}"


@checker("04.1", misconceptions=SPLIT_MISCONCEPTIONS, mutation_weight=0.25)
def check_split_heads(t: CheckContext, split_heads) -> None:
    """Sub-checks of 04.1, cheap to deep."""
    # First call: four different sizes, so every wrong axis order shows in the shape; an even E
    # and H, Dh outside {2, 4}, so that a hard-coded head count gives a distinct wrong shape.
    H, Dh = t.random.choice([(3, 8), (8, 3), (5, 6), (6, 5), (3, 6), (6, 3)])
    B, L = t.random.sample([n for n in range(2, 8) if n not in (H, Dh)], 2)
    x0, what0 = _split_case(t, B, L, H, Dh)
    t.opening(split_heads, (x0, H), what=what0, shapes=(B, H, L, Dh),
              shape_titles=["the output has shape (B, H, L, E/H)"])

    @t.subcheck("head h holds the contiguous features h*Dh .. (h+1)*Dh-1 of every position "
                "(several shapes and head counts)", weight=1.5, essential=True)
    def _():
        b, l, h, d = t.sizes(4, 2, 7)
        # (b, L, 3, 4): E = 12 splits into 2 or 4 heads as well, so a hard-coded head count shows
        for case in [(B, L, H, Dh), (b, L, 3, 4), (b, l, h, d), (b, L, 1, d), (B, l, d, 1), (1, 1, h, d)]:
            x, what = _split_case(t, *case)
            t.compare(split_heads, _split_reference, (x, case[2]), what=what, exact=True)

    x64, what64 = _split_case(t, L, B, H, Dh, dtype=torch.float64)
    t.float64_subcheck(split_heads, _split_reference, (x64, H), what=what64, exact=True,
                       title="keeps the input's dtype (float64 stays float64)")

    @t.subcheck("raises ValueError when num_heads does not divide E", weight=0.5)
    def _():
        H1 = t.random.randint(3, 5)
        E1 = H1 * t.random.randint(2, 4) + t.random.randint(1, H1 - 1)  # E1 % H1 != 0
        for E, heads in ((E1, H1), (2, 4)):
            x = t.randn(B, L, E)
            what = f"split_heads(x, {heads}) for x of shape {fmt_shape(x.shape)}"
            t.expect_raises(split_heads, (x.clone(), heads), ValueError, what,
                            SPLIT_NO_VALUE_ERROR.hint, SPLIT_WRONG_EXCEPTION.hint)

    x, what = _split_case(t, B, L, H, Dh)
    t.gradient_subcheck(split_heads, _split_reference, (x, H), what=what, wrt=(0,), arg_names=("x", "num_heads"),
                        weight=0.25, title="gradients flow back through it")


# =========================================================================== 04.2 merge_heads


def _merge_view(order):
    def impl(x):
        B, H, L, Dh = x.shape
        return order(x, B, H, L, Dh)
    return impl


MERGE_VIEW_ERROR = Misconception(
    "view on a tensor whose memory order does not fit",
    "`.view` can only regroup axes that already lie in the right order in memory. Move the head axis next "
    "to the head features first, x.transpose(1, 2) -> (B, L, H, Dh), and then flatten with .reshape(B, L, H * Dh) "
    "(or .contiguous().view(...)): after a transpose the tensor is not contiguous, and the output of "
    "attention (weights @ v) is, so a bare .view fails on one or the other.",
    error=r"view size is not compatible with input tensor's size and stride",
)
MERGE_NO_TRANSPOSE = Misconception(
    "reshape without transpose",
    "The features of your result seem scrambled: reshaping (B, H, L, Dh) straight to (B, L, H*Dh) reads the "
    "memory head by head, so one output position gets pieces of several positions. Move the head axis next "
    "to the features first, x.transpose(1, 2) -> (B, L, H, Dh), then flatten the last two axes.",
    _merge_view(lambda x, B, H, L, Dh: x.reshape(B, L, H * Dh)),
)
MERGE_DH_H = Misconception(
    "flattens in (Dh, H) order",
    "The heads seem to be interleaved feature by feature (the last axes flattened in (Dh, H) order). "
    "merge_heads must put head 0's Dh features first, then head 1's, ...: transpose(1, 2) to (B, L, H, Dh) "
    "and flatten that, the inverse of split_heads.",
    _merge_view(lambda x, B, H, L, Dh: x.permute(0, 2, 3, 1).reshape(B, L, Dh * H)),
)
MERGE_HL = Misconception(
    "concatenates heads along the positions",
    "Your result seems to stack the heads one after another along the positions, (B, H*L, Dh). "
    "The heads are concatenated along the features: each position keeps its place and gets "
    "H*Dh features, (B, L, H*Dh).",
    _merge_view(lambda x, B, H, L, Dh: x.reshape(B, H * L, Dh)),
)
MERGE_MEAN = Misconception(
    "averages the heads",
    "Your function seems to average (or sum) the heads, which leaves Dh features per position. "
    "Multi-head attention concatenates them instead: every head's Dh features side by side, H*Dh in all.",
    _merge_view(lambda x, B, H, L, Dh: x.mean(dim=1)),
)
MERGE_SUM = Misconception("sums the heads", MERGE_MEAN.hint, _merge_view(lambda x, B, H, L, Dh: x.sum(dim=1)))
MERGE_4D = Misconception(
    "does not flatten",
    "Your result seems to be (B, L, H, Dh): the axes are in the right order, now flatten the last two "
    "into H*Dh features: .reshape(B, L, H * Dh).",
    _merge_view(lambda x, B, H, L, Dh: x.transpose(1, 2)),
)
MERGE_LH = Misconception(
    "swaps heads and positions in the shape",
    "Your result seems to have the shape (B, H, L*Dh) or to flatten positions with features: each head's "
    "output must stay attached to its position. transpose(1, 2) to (B, L, H, Dh), then flatten the last two axes.",
    _merge_view(lambda x, B, H, L, Dh: x.reshape(B, H, L * Dh)),
)

MERGE_MISCONCEPTIONS = [MERGE_VIEW_ERROR, MERGE_NO_TRANSPOSE, MERGE_DH_H, MERGE_HL, MERGE_MEAN, MERGE_SUM, MERGE_4D,
                        MERGE_LH]


def _merge_case(t: CheckContext, B: int, H: int, L: int, Dh: int, dtype=torch.float32):
    x = t.randn(B, H, L, Dh, dtype=dtype)
    return x, f"merge_heads(x) for x of shape {fmt_shape(x.shape)}"


@checker("04.2", misconceptions=MERGE_MISCONCEPTIONS, mutation_weight=0.25)
def check_merge_heads(t: CheckContext, merge_heads) -> None:
    """Sub-checks of 04.2, cheap to deep."""
    B, H, L, Dh = t.sizes(4, 2, 6)
    x0, what0 = _merge_case(t, B, H, L, Dh)
    t.opening(merge_heads, (x0,), what=what0, shapes=(B, L, H * Dh), shape_titles=["the output has shape (B, L, H*Dh)"])

    @t.subcheck("concatenates the heads' features at every position (several shapes)", weight=1.0, essential=True)
    def _():
        b, h, l, d = t.sizes(4, 2, 7)
        for case in [(B, H, L, Dh), (b, h, l, d), (b, 1, l, d), (1, h, 1, d), (B, h, L, 1)]:
            x, what = _merge_case(t, *case)
            t.compare(merge_heads, _merge_reference, (x,), what=what, exact=True)

    @t.subcheck("is the inverse of split_heads: merge_heads(split_heads(x, H)) gives x back", weight=0.75,
                essential=True)
    def _():
        b, h, l, d = t.sizes(4, 2, 7)
        for B1, H1, L1, Dh1 in ((b, h, l, d), (B, H, L, Dh)):
            x = t.randn(B1, L1, H1 * Dh1)
            heads = _split_reference(x, H1)  # (B, H, L, Dh), not contiguous: what attention code passes
            expected = _merge_reference(heads)
            what = f"merge_heads(split_heads(x, {H1})) for x of shape {fmt_shape(x.shape)}"
            t.compare(merge_heads, _merge_reference, (heads,), what=what, exact=True, expected=expected)

    x64, what64 = _merge_case(t, L, B, H, Dh, dtype=torch.float64)
    t.float64_subcheck(merge_heads, _merge_reference, (x64,), what=what64, exact=True,
                       title="keeps the input's dtype (float64 stays float64)")
    x, what = _merge_case(t, B, H, L, Dh)
    t.gradient_subcheck(merge_heads, _merge_reference, (x,), what=what, wrt=(0,), arg_names=("x",), weight=0.25,
                        title="gradients flow back through it")


# =========================================================================== 04.3 multi_head_attention


def _heads(x, H, interleaved=False):
    B, L, E = x.shape
    if interleaved:
        return x.reshape(B, H, L, E // H)
    return x.reshape(B, L, H, E // H).transpose(1, 2)  # (B, H, L, Dh)


def _merge(x, interleaved=False):
    B, H, L, Dh = x.shape
    if interleaved:
        return x.reshape(B, L, H * Dh)
    return x.transpose(1, 2).reshape(B, L, H * Dh)


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
    interleaved = split == "interleaved"
    q, k, v = _heads(q, H, interleaved), _heads(k, H, interleaved), _heads(v, H, interleaved)
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
        out = _merge(weights @ v, interleaved)  # (B, L, E)
    if out_proj:
        out = out @ W_o
    shown = {"weights": weights, "mean": weights.mean(dim=1), "scores": raw}[returned]
    return out, shown


def _mha_misconception(name: str, hint: str, error: str | None = None, **options) -> Misconception:
    """A misconception of 04.3: multi-head attention with ``options`` switched on."""
    return Misconception(name, hint, lambda *a, **k: _wrong_mha(*a, **k, **options), error)


MHA_NO_W_O_HINT = ("The heads seem to be merged without the output projection: multiply the merged heads "
                   "(B, L, E) by W_o at the end, output = merge_heads(...) @ W_o.")
MHA_SCALE_E_HINT = ("The scores seem to be divided by sqrt(E), the full model width. Each head compares vectors "
                    "of Dh = E // num_heads features, so divide by sqrt(Dh), the head dimension.")
MHA_NO_SCALE_HINT = ("The scores do not seem to be scaled: divide q @ k^T by sqrt(Dh), the square root of the "
                     "head dimension (Dh = E // num_heads), before the softmax.")
MHA_SCALE_DH_HINT = ("The scores seem to be divided by Dh itself: the scale is 1 / sqrt(Dh), the square root "
                     "of the head dimension.")
MHA_QUERY_AXIS_HINT = ("The softmax seems to run over the query axis: each query's weights over the keys must "
                       "sum to 1, so take the softmax over the last axis (dim=-1) of the (B, H, L, S) scores.")
MHA_HEAD_AXIS_HINT = ("The softmax seems to run over the head axis (or the batch axis): each query's weights over "
                      "the keys must sum to 1, so take the softmax over the last axis (dim=-1) of the (B, H, L, S) "
                      "scores.")
MHA_MASK_HEADS_HINT = ("The mask does not seem to line up with the scores (B, H, L, S): a 2-D (L, S) mask "
                       "broadcasts as it is, but a 3-D (B, L, S) mask needs a head axis, attn_mask.unsqueeze(1) "
                       "-> (B, 1, L, S), so that every head of a sequence uses that sequence's mask.")
MHA_INVERTED_HINT = ("The mask seems inverted: this function follows torch's SDPA convention, where a bool mask "
                     "keeps the positions marked True (nn.MultiheadAttention uses the opposite). Fill the scores "
                     "with -inf where the mask is False.")
MHA_AFTER_SOFTMAX_HINT = ("The mask seems to be applied after the softmax, so the remaining weights no longer sum "
                          "to 1. Fill the scores with -inf where the mask is False before the softmax.")
MHA_IGNORE_FLOAT_HINT = ("A float mask seems to be ignored (or used as a bool mask): a float attn_mask is added to "
                         "the scores before the softmax (0 keeps a key, -inf removes it), with a head axis for a "
                         "3-D mask as for a bool one.")
MHA_DEAD_NAN_HINT = ("A query whose keys are all masked has nothing to attend to: the softmax of a row of -inf "
                     "is NaN. Like torch's SDPA, give such a query zero weights and a zero output (for example: "
                     "find the rows whose maximum score is -inf, and fill their weights with 0).")
MHA_DEAD_UNIFORM_HINT = ("Masking with a large negative number (such as -1e9) instead of -inf gives a query whose "
                         "keys are all masked uniform weights over those masked keys; it must get zero weights and "
                         "a zero output. Use -inf, and set the weights of rows with no valid key to 0.")
MHA_AVERAGE_HINT = ("The heads seem to be averaged instead of concatenated: each head computes its own Dh-wide "
                    "output from its own weights and its own slice of v; merge_heads puts those side by side "
                    "(B, L, H*Dh) before W_o.")
MHA_TRANSPOSED_HINT = ("The weight matrices seem to be applied transposed (x @ W.T, as nn.Linear stores them). "
                       "In this course W has shape (in_features, out_features) and is applied as x @ W.")
MHA_W_Q_HINT = ("The keys and values seem to be projected with W_q: use key @ W_k for the keys and value @ W_v for "
                "the values.")
MHA_NO_W_V_HINT = ("The values do not seem to be projected: split value @ W_v into heads, not value itself.")
MHA_SPLIT_HINT = ("The heads seem to mix positions: check your split_heads and merge_heads (exercises 04.1 and "
                  "04.2). A (B, L, E) tensor is split with view(B, L, H, Dh).transpose(1, 2), not view(B, H, L, Dh).")
MHA_MEAN_WEIGHTS_HINT = ("The weights seem to be averaged over the heads (what nn.MultiheadAttention returns by "
                         "default). This function returns every head's weights, shape (B, H, L, S).")
MHA_SCORES_HINT = ("The returned weights seem to be the scores before the softmax: return the attention weights "
                   "(after the softmax, each row summing to 1).")
MHA_FLOAT32_HINT = ("For float64 inputs your function seems to compute in float32 (for example .float() or a "
                    "float32 tensor created on the way) and loses precision. Keep the inputs' dtype.")

MHA_MISCONCEPTIONS = [
    _mha_misconception("forgets W_o", MHA_NO_W_O_HINT, out_proj=False),
    _mha_misconception("scales by sqrt(E)", MHA_SCALE_E_HINT, scale="E"),
    _mha_misconception("no scaling", MHA_NO_SCALE_HINT, scale="none"),
    _mha_misconception("scales by Dh", MHA_SCALE_DH_HINT, scale="Dh"),
    _mha_misconception("softmax over the query axis", MHA_QUERY_AXIS_HINT, softmax_dim=-2),
    _mha_misconception("softmax over the head axis", MHA_HEAD_AXIS_HINT, softmax_dim=1),
    _mha_misconception("softmax over the batch axis", MHA_HEAD_AXIS_HINT, softmax_dim=0),
    _mha_misconception("mask without a head axis", MHA_MASK_HEADS_HINT,
                        error=r"must match the size of tensor b \(\d+\) at non-singleton dimension 1",
                        mask="no_head_axis"),
    _mha_misconception("mask always unsqueezed", MHA_MASK_HEADS_HINT, mask="always_unsqueeze"),
    _mha_misconception("inverted mask", MHA_INVERTED_HINT, mask="inverted"),
    _mha_misconception("mask after the softmax", MHA_AFTER_SOFTMAX_HINT, mask="after_softmax"),
    _mha_misconception("float mask ignored", MHA_IGNORE_FLOAT_HINT,
                        error=r"only implemented on integer and Boolean", mask="ignore_float"),
    _mha_misconception("NaN for a query with no key", MHA_DEAD_NAN_HINT, mask="naive"),
    _mha_misconception("masks with a large negative number", MHA_DEAD_UNIFORM_HINT, mask="large_negative"),
    _mha_misconception("averages the heads", MHA_AVERAGE_HINT, heads="average_weights"),
    _mha_misconception("applies W transposed", MHA_TRANSPOSED_HINT, proj="transposed"),
    _mha_misconception("projects k and v with W_q", MHA_W_Q_HINT, proj="W_q_for_all"),
    _mha_misconception("forgets W_v", MHA_NO_W_V_HINT, proj="no_W_v"),
    _mha_misconception("split without transpose", MHA_SPLIT_HINT, split="interleaved"),
    _mha_misconception("returns the weights averaged over heads", MHA_MEAN_WEIGHTS_HINT, returned="mean"),
    _mha_misconception("returns the scores", MHA_SCORES_HINT, returned="scores"),
    Misconception("computes in float32", MHA_FLOAT32_HINT,
                  lambda *a, **k: tuple(r.double() for r in _mha_reference(
                      *(x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in a), **k))),
]


class _Case:
    """Random inputs of one call of multi_head_attention, and how to describe it."""

    def __init__(self, t: CheckContext, B: int, L: int, S: int | None, H: int, Dh: int, dtype=torch.float32):
        E = H * Dh
        self.query = t.randn(B, L, E, dtype=dtype)
        if S is None:  # self-attention: the same values for query, key and value (separate tensors)
            self.key, self.value = self.query.clone(), self.query.clone()
            kind = "self-attention"
        else:
            self.key, self.value = t.randn(B, S, E, dtype=dtype), t.randn(B, S, E, dtype=dtype)
            kind = "cross-attention"
        # 1/sqrt(E) keeps q.k of order sqrt(Dh): the softmax is neither flat nor saturated
        self.weights = [t.randn(E, E, dtype=dtype, scale=1.0 / math.sqrt(E)) for _ in range(4)]
        self.num_heads = H
        self.shape = (B, L, self.key.shape[1], H, Dh)
        self.what = (f"multi_head_attention({kind}, query {fmt_shape(self.query.shape)}, key/value "
                     f"{fmt_shape(self.key.shape)}, num_heads={H}")

    def args(self) -> tuple:
        return (self.query, self.key, self.value, *self.weights, self.num_heads)

    def fresh_args(self) -> tuple:
        return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in self.args())

    def describe(self, attn_mask=None, mask_desc: str = "") -> str:
        if attn_mask is None:
            return self.what + ")"
        return self.what + f", {mask_desc} attn_mask {fmt_shape(attn_mask.shape)})"


_NAMES = ("output", "weights")
_RETURN_HINT = ("Return both results: `return output, weights`, the weights being the (B, H, L, S) attention "
                "weights of every head.")


def _compare(t: CheckContext, fn, case: _Case, attn_mask=None, mask_desc: str = "", order=(1, 0), **compare):
    """Call the learner on ``case`` and compare the weights, then the output, with the reference."""
    kwargs = {} if attn_mask is None else {"attn_mask": attn_mask}
    return t.compare(fn, _mha_reference, case.args(), kwargs=kwargs, what=case.describe(attn_mask, mask_desc),
                     names=_NAMES, order=order, finite=True, **compare)


def _mixed_keep(t: CheckContext, *shape) -> torch.Tensor:
    """A random bool keep-mask where every query row keeps at least one key and blocks at least one
    (so an inverted mask has no empty row either, and the two read differently)."""
    keep = torch.rand(*shape, generator=t.gen) < 0.5
    S = shape[-1]
    first = torch.randint(0, S, shape[:-1], generator=t.gen)
    second = (first + torch.randint(1, S, shape[:-1], generator=t.gen)) % S
    keep.scatter_(-1, first.unsqueeze(-1), True)
    keep.scatter_(-1, second.unsqueeze(-1), False)
    return keep


@checker("04.3", misconceptions=MHA_MISCONCEPTIONS, mutation_weight=0.25)
def check_multi_head_attention(t: CheckContext, multi_head_attention) -> None:
    """Sub-checks of 04.3, cheap to deep."""
    B, L, S, H, Dh = t.sizes(5, 2, 6)  # all different: every axis mix-up shows
    case0 = _Case(t, B, L, S, H, Dh)
    t.opening(multi_head_attention, case0.args(), what=case0.describe(), names=_NAMES, dtype=None,
              shapes=[(B, L, H * Dh), (B, H, L, S)], weights=(0.25, 0.25, 0), returns_hint=_RETURN_HINT,
              returns_title="returns a tuple of two tensors (output, weights)",
              shape_titles=["the output is (B, L, E)", "the weights are (B, H, L, S)"])
    b, l, s, h, d = t.sizes(5, 2, 7)
    cases = [case0, _Case(t, b, l, None, h, d), _Case(t, b, l, s, h, d), _Case(t, B, L, S, 1, Dh),
             _Case(t, 1, L, None, Dh, 1)]

    @t.subcheck("every head's weights equal the reference (self- and cross-attention, several shapes and head "
                "counts)", weight=1.25, essential=True)
    def _():
        for case in cases:
            _compare(t, multi_head_attention, case, order=(1,))

    @t.subcheck("the output equals the reference (heads concatenated, then W_o)", weight=1.25, essential=True)
    def _():
        for case in cases:
            _compare(t, multi_head_attention, case, order=(0,))

    @t.subcheck("bool masks (True = take part): (L, S) shared by the batch, (B, L, S) shared by the heads",
                weight=0.75)
    def _():
        b = t.random.randint(2, 4)
        l, s = t.sizes(2, 3, 7)
        square = _Case(t, b, l, None, b, t.random.randint(2, 4))  # B == H: a mask without head axis misfires silently
        for case, mask, desc in (
                (case0, _causal_mask(L, S) if S > L else _mixed_keep(t, L, S), "(L, S) bool"),
                (case0, _mixed_keep(t, B, L, S), "(B, L, S) bool"),
                (square, _mixed_keep(t, b, l, l), "(B, L, S) bool"),
                (_Case(t, b, l, s, 2, 3), _mixed_keep(t, b, l, s), "(B, L, S) bool")):
            _compare(t, multi_head_attention, case, mask, desc)

    @t.subcheck("float masks are added to the scores (2-D and 3-D)", weight=0.5)
    def _():
        for shape in ((L, S), (B, L, S)):
            additive = t.randn(*shape, scale=2.0).masked_fill(~_mixed_keep(t, *shape), _NEG_INF)
            _compare(t, multi_head_attention, case0, additive, f"{len(shape)}-D float")

    @t.subcheck("a query with no key to attend to gets zero weights and a zero output (no NaN)", weight=0.25)
    def _():
        keep = _mixed_keep(t, B, L, S)
        keep[0, t.random.randrange(L)] = False
        keep[B - 1, L - 1] = False
        _compare(t, multi_head_attention, case0, keep, "(B, L, S) bool, some rows all False,")

    case64 = _Case(t, B, L, S, H, Dh, dtype=torch.float64)
    t.float64_subcheck(multi_head_attention, _mha_reference, case64.args(), what=case64.describe(), names=_NAMES,
                       order=(1, 0), rtol=1e-9, atol=1e-12, finite=True,
                       title="float64 inputs give float64 results in float64 precision")
    case = _Case(t, B, L, S, H, Dh)
    t.gradient_subcheck(multi_head_attention, _mha_reference, case.args(), what=case.describe(), names=_NAMES,
                        wrt=range(7), arg_names=("query", "key", "value", "W_q", "W_k", "W_v", "W_o", "num_heads"),
                        weight=0.5, title="gradients reach the inputs and all four weight matrices like the "
                                          "reference's")
