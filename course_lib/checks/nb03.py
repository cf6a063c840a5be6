"""Checks for notebook 03 (self-attention): exercises 03.1 to 03.3.

* 03.1 ``scaled_dot_product_attention(query, key, value, attn_mask=None) -> (output, weights)``:
  softmax(Q K^T / sqrt(E) + mask) V, bool masks keep True (torch SDPA's
  convention), float masks are added, a fully masked row gives zeros; expected
  values from ``course_lib.attention.attention_with_weights``, which equals
  ``torch.nn.functional.scaled_dot_product_attention`` (tests/test_attention.py).
* 03.2 ``causal_mask(L)``: bool (L, L), True where key j <= query i;
  reference ``course_lib.masks.causal_mask``.
* 03.3 ``padding_mask(lengths, max_len=None)``: bool (B, max_len), True where
  position < length; reference ``course_lib.masks.padding_mask``. The checker
  passes ``lengths`` as a 1-D LongTensor.

Each misconception below is one wrong-but-plausible implementation; the
catalogue in tests/test_checks_03.py asserts that each gets its hint.
"""

from __future__ import annotations

import math

import torch

from ..attention import attention_with_weights as _reference_attention
from ..masks import causal_mask as _reference_causal
from ..masks import padding_mask as _reference_padding
from .framework import CheckContext, Misconception, checker, fmt_shape
from .framework.masks import as_keep as _as_keep
from .framework.masks import mask_opening as _mask_opening

_NEG_INF = float("-inf")


# =========================================================================== 03.1 scaled dot-product attention
#
# Misconceptions are written as the weights they compute; ``Misconception.mapped`` turns
# them into the (output, weights) pair an implementation returns. The checker compares the
# weights before the output, so a mistake in the weights is named as such.


def _scores(q, k, scale=None):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return (q @ k.transpose(-2, -1)) * scale  # (..., L, S)


def _apply_mask(scores, mask, fill=_NEG_INF):
    if mask is None:
        return scores
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, fill)
    return scores + mask


def _naive(q, k, attn_mask, dim=-1, fill=_NEG_INF):
    """softmax(Q K^T / sqrt(E), masked) over ``dim``, with nothing done for fully masked rows."""
    return torch.softmax(_apply_mask(_scores(q, k), attn_mask, fill), dim=dim)


def _needs_bool(mask):
    if mask is None or mask.dtype != torch.bool:
        raise ValueError("this misconception is about bool masks")
    return mask


def _needs_float(mask):
    if mask is None or mask.dtype == torch.bool:
        raise ValueError("this misconception is about float masks")
    return mask


def _unused(mask):
    return None


def _with_mask(mask_of):
    """The reference weights with another mask, mask_of(attn_mask, query)."""
    return lambda q, k, v, attn_mask=None: _reference_attention(q, k, v, mask_of(attn_mask, q))[1]


def _with_scale(scale_of):
    """The reference weights with another scale, scale_of(query, key, value) -> float."""
    return lambda q, k, v, attn_mask=None: _reference_attention(q, k, v, attn_mask, scale=scale_of(q, k, v))[1]


SOFTMAX_OVER_QUERIES = Misconception("softmax over the query axis", "The softmax seems to run over the query axis "
                                     "(dim=-2): then each *column* sums to 1. Every query distributes its attention "
                                     "over the keys, so normalise over the last axis, softmax(scores, dim=-1).",
                                     lambda q, k, v, attn_mask=None: _naive(q, k, attn_mask, dim=-2))
NO_SCALING = Misconception("no scaling", "The scores seem not to be scaled. Divide Q K^T by sqrt(E), the square "
                           "root of the query/key feature size, before the softmax; without it the softmax "
                           "saturates as E grows.", _with_scale(lambda q, k, v: 1.0))
SCALES_BY_E = Misconception("scales by E instead of sqrt(E)", "The scores seem to be divided by E itself; the scale "
                            "is 1 / sqrt(E), the square root of the feature size.",
                            _with_scale(lambda q, k, v: 1.0 / q.shape[-1]))
MULTIPLIES_BY_SQRT = Misconception("multiplies by sqrt(E)", "The scores seem to be multiplied by sqrt(E) instead of "
                                   "divided by it.", _with_scale(lambda q, k, v: math.sqrt(q.shape[-1])))
SCALES_BY_VALUE_DIM = Misconception("scales by the value size", "The scale seems to use the size of the values "
                                    "(value.shape[-1]). It is 1 / sqrt(E) with E the feature size of the queries "
                                    "and keys (query.shape[-1]): that is the size of the dot products being scaled.",
                                    _with_scale(lambda q, k, v: 1.0 / math.sqrt(v.shape[-1])))
_LENGTH_HINT = ("The scale seems to use a length or a batch size instead of the feature size. d_k is the last "
                "dimension of the queries and keys: scale = 1 / sqrt(query.shape[-1]) (query.size(1) is not it "
                "for batched inputs).")
SCALES_BY_AXIS_1 = Misconception("scales by query.shape[1]", _LENGTH_HINT,
                                 _with_scale(lambda q, k, v: 1.0 / math.sqrt(q.shape[1])))
SCALES_BY_KEY_LENGTH = Misconception("scales by the key length", _LENGTH_HINT,
                                     _with_scale(lambda q, k, v: 1.0 / math.sqrt(k.shape[-2])))
NO_SOFTMAX = Misconception("no softmax", "The weights seem to be the raw (scaled) scores: apply softmax over the "
                           "keys (dim=-1) so that each query's weights are positive and sum to 1.",
                           lambda q, k, v, attn_mask=None: _apply_mask(_scores(q, k), attn_mask))
RESHAPE_NOT_TRANSPOSE = Misconception(
    "reshape instead of transpose",
    "The keys seem to be reshaped (view/reshape) to (..., E, S) instead of transposed. A reshape keeps the "
    "memory order and scrambles the numbers; use key.transpose(-2, -1).",
    lambda q, k, v, attn_mask=None: torch.softmax(_apply_mask(
        (q @ k.reshape(*k.shape[:-2], k.shape[-1], k.shape[-2])) / math.sqrt(q.shape[-1]), attn_mask), dim=-1),
)
MASK_INVERTED = Misconception("bool mask inverted", "The bool mask seems inverted: torch's SDPA convention is True "
                              "= this key takes part, False = masked out (nn.MultiheadAttention uses the opposite). "
                              "Fill the scores with -inf where the mask is False (~attn_mask).",
                              _with_mask(lambda m, q: ~_needs_bool(m)))
MASK_FILLED_WITH_ZERO = Misconception(
    "masked scores set to 0",
    "Masked positions seem to get a score of 0 (masked_fill with 0, or scores * mask). A score of 0 still "
    "gets weight exp(0) > 0 in the softmax: fill masked scores with float('-inf') instead.",
    lambda q, k, v, attn_mask=None: torch.softmax(_scores(q, k).masked_fill(~_needs_bool(attn_mask), 0.0), dim=-1),
)
MASK_AFTER_SOFTMAX = Misconception(
    "mask applied after the softmax",
    "The mask seems to be applied after the softmax (weights zeroed without renormalising), so the rows no "
    "longer sum to 1. Mask the scores with -inf before the softmax.",
    lambda q, k, v, attn_mask=None: torch.softmax(_scores(q, k), dim=-1).masked_fill(~_needs_bool(attn_mask), 0.0),
)
BOOL_MASK_ADDED = Misconception("bool mask added to the scores", "The bool mask seems to be added to the scores "
                                "(True counts as 1). Only a float mask is added; a bool mask selects: "
                                "masked_fill(~attn_mask, float('-inf')).",
                                _with_mask(lambda m, q: _needs_bool(m).to(q.dtype)))
FULLY_MASKED_NAN = Misconception("NaN on fully masked rows", "A query whose keys are all masked gets NaN: softmax "
                                 "of a row of -inf is 0/0. Such a row must give zero weights and a zero output (as "
                                 "torch's SDPA does): detect rows whose scores are all -inf and set their weights "
                                 "to 0 (torch.where / masked_fill, or nan_to_num after the softmax).",
                                 lambda q, k, v, attn_mask=None: _naive(q, k, attn_mask))
FULLY_MASKED_UNIFORM = Misconception("uniform weights on fully masked rows", "A query whose keys are all masked "
                                     "seems to get uniform weights: a large finite fill value (such as -1e9) makes "
                                     "every score of that row equal. Such a row must give zero weights and a zero "
                                     "output; detect it and set its weights to 0.",
                                     lambda q, k, v, attn_mask=None: _naive(q, k, _needs_bool(attn_mask), fill=-1e9))
FLOAT_MASK_IGNORED = Misconception("float mask ignored", "A float attn_mask seems to be ignored. A float mask is "
                                   "added to the scores before the softmax (0 keeps, -inf removes, other values "
                                   "shift the score); only a bool mask is used with masked_fill.",
                                   _with_mask(lambda m, q: _unused(_needs_float(m))))
FLOAT_MASK_AS_KEEP = Misconception("float mask read as a 0/1 mask", "A float attn_mask seems to be read as a 0/1 "
                                   "mask (masked_fill(mask == 0, -inf) or mask.bool()). In torch's convention a "
                                   "float mask is *added* to the scores: 0 keeps a key, -inf removes it. Check "
                                   "attn_mask.dtype == torch.bool to tell the two kinds apart.",
                                   _with_mask(lambda m, q: _needs_float(m) != 0))
FLOAT_MASK_AS_BLOCKED = Misconception("float mask read as a blocked mask", FLOAT_MASK_AS_KEEP.hint,
                                      _with_mask(lambda m, q: _needs_float(m) == 0))
WRONG_AXES = Misconception("transposes the wrong axes", "Transpose only the last two axes of the keys: "
                           "key.transpose(-2, -1) (or key.mT). key.T reverses every axis of a 3-D tensor, and "
                           "transpose(1, 2), permute(0, 2, 1) or torch.bmm only fit one number of dimensions; the "
                           "inputs may be (L, E), (B, L, E) or (B, H, L, E).",
                           error=(r"size of tensor a \(\d+\) must match the size of tensor b|batch1 must be a 3D "
                                  r"tensor|number of dimensions in the tensor input does not match|Dimension out of "
                                  r"range|mat1 and mat2 shapes cannot be multiplied|Expected size for first two "
                                  r"dimensions|expected 3D|must be a matrix|both arguments to matmul need to be at "
                                  r"least"))
MASK_EXTRA_AXIS = Misconception("mask given an extra axis", "The mask seems to get an extra axis (an unsqueeze, as "
                                "for attention heads). attn_mask already broadcasts against the (..., L, S) scores "
                                "as it is, whatever its number of dimensions: look at the line where your mask "
                                "meets the scores, not at the keys.",
                                lambda q, k, v, attn_mask=None: _naive(q, k, attn_mask.unsqueeze(1)))
VALUES_AS_KEYS = Misconception("values used as keys", "The scores seem to compare the queries with the *values*. "
                               "Scores come from the queries and the keys; the values are only mixed by the weights "
                               "afterwards. Check which tensor your queries are multiplied with.",
                               lambda q, k, v, attn_mask=None: _naive(q, v, attn_mask))


ATTENTION_MISCONCEPTIONS = [m.mapped(lambda weights, q, k, v, attn_mask=None: (weights @ v, weights)) for m in [
    MASK_EXTRA_AXIS, VALUES_AS_KEYS, SOFTMAX_OVER_QUERIES, NO_SCALING, SCALES_BY_E, MULTIPLIES_BY_SQRT,
    SCALES_BY_VALUE_DIM, SCALES_BY_AXIS_1, SCALES_BY_KEY_LENGTH, NO_SOFTMAX, RESHAPE_NOT_TRANSPOSE, MASK_INVERTED,
    MASK_FILLED_WITH_ZERO, MASK_AFTER_SOFTMAX, BOOL_MASK_ADDED, FULLY_MASKED_NAN, FULLY_MASKED_UNIFORM,
    FLOAT_MASK_IGNORED, FLOAT_MASK_AS_KEEP, FLOAT_MASK_AS_BLOCKED, WRONG_AXES,
]]

_TUPLE_HINT = ("Return both results as a tuple: `return output, weights`, output (..., L, Ev) first, "
               "then the weights (..., L, S).")
_OUTPUT_HINT = ("The weights are right but the output is not: the output is the weighted sum of the values, "
                "weights @ value, (..., L, S) @ (..., S, Ev).")


def _attention_sizes(t: CheckContext) -> tuple[int, int, int, int, int]:
    """B, L, S, E, Ev, all different and none of L, S, Ev equal to E squared, so that every
    mistake about which size scales the scores shows."""
    while True:
        B, L, S, E, Ev = t.random.sample(range(2, 10), 5)
        if E * E not in (L, S, Ev):
            return B, L, S, E, Ev


def _describe(q, k, v, mask=None) -> str:
    text = f"query {fmt_shape(q.shape)}, key {fmt_shape(k.shape)}, value {fmt_shape(v.shape)}"
    if mask is not None:
        kind = "bool" if mask.dtype == torch.bool else "float"
        text += f", {kind} attn_mask {fmt_shape(mask.shape)}"
    return f"scaled_dot_product_attention for {text}"


_NAMES = ("output", "weights")


@checker("03.1", misconceptions=ATTENTION_MISCONCEPTIONS, mutation_weight=0.5)
def check_scaled_dot_product_attention(t: CheckContext, attention) -> None:
    """Sub-checks of 03.1, cheap to deep; weights are shares of the exercise's 5 points."""
    ex = t.exercise(attention, _reference_attention, lambda args: _describe(*args), names=_NAMES, order=(1, 0),
                    finite=True, hints={0: _OUTPUT_HINT}, reference_name="the reference (torch's SDPA)",
                    finite_hints={0: "The weights are finite but the output is not: the output is weights @ value."})

    def case(*args):  # the weights, then the output, against the reference
        ex.compare(args)

    B, L, S, E, Ev = _attention_sizes(t)
    q0, k0, v0 = t.randn(B, L, E), t.randn(B, S, E), t.randn(B, S, Ev)
    ex.opening((q0, k0, v0), shapes=[(B, L, Ev), (B, L, S)], returns_hint=_TUPLE_HINT, dtype=None,
               weights=(0.25, 0.25, 0), returns_title="returns a tuple (output, weights) of two tensors",
               shape_titles=["the output is (B, L, Ev)", "the weights are (B, L, S)"],
               shape_hints=["The output has one row per query and the values' feature size: (..., L, Ev).",
                            "The weights have one row per query and one column per key: (..., L, S)."])

    @t.subcheck("without a mask: weights = softmax(Q K^T / sqrt(E)), output = weights V "
                "(random (B, L, E) inputs of several sizes)", weight=1.5, essential=True)
    def _():
        case(q0, k0, v0)
        b, l, s, e, ev = _attention_sizes(t)
        case(t.randn(b, l, e, scale=2.0), t.randn(b, s, e, scale=2.0), t.randn(b, s, ev))
        n = t.random.randint(3, 6)  # self-attention: one sequence as queries, keys and values
        x = t.randn(b, n, n + 1)
        case(x, x.clone(), x.clone())

    @t.subcheck("works for any leading dimensions: (L, E) and multi-head (B, H, L, E) inputs", weight=0.5)
    def _():
        b, l, s, e, ev = _attention_sizes(t)
        case(t.randn(l, e), t.randn(s, e), t.randn(s, ev))
        h = t.random.choice([hh for hh in range(2, 6) if hh not in (l, s)])
        case(t.randn(b, h, l, e), t.randn(b, h, s, e), t.randn(b, h, s, ev))

    @t.subcheck("bool attn_mask: True = takes part (causal, padding and random masks)", weight=1.0)
    def _():
        b, l, s, e, ev = _attention_sizes(t)
        q, k, v = t.randn(b, l, e), t.randn(b, s, e), t.randn(b, s, ev)
        causal = torch.ones(l, s, dtype=torch.bool).tril()  # (L, S): every query keeps key 0
        case(q, k, v, causal)
        lengths = torch.randint(1, s + 1, (b,), generator=t.gen)
        padding = (torch.arange(s)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, S)
        case(q, k, v, padding)
        case(q, k, v, t.keep_mask(b, l, s, p=0.6, hide_one=False))
        h = t.random.randint(2, 4)
        case(t.randn(b, h, l, e), t.randn(b, h, s, e), t.randn(b, h, s, ev), t.keep_mask(l, s, p=0.6, hide_one=False))

    @t.subcheck("float attn_mask: added to the scores (finite biases and -inf)", weight=0.75)
    def _():
        b, l, s, e, ev = _attention_sizes(t)
        q, k, v = t.randn(b, l, e), t.randn(b, s, e), t.randn(b, s, ev)
        additive = torch.zeros(b, l, s).masked_fill(~t.keep_mask(b, l, s), _NEG_INF)
        case(q, k, v, additive)
        bias = t.randn(l, s)  # an ALiBi-like additive bias
        case(q, k, v, bias)

    @t.subcheck("a query with every key masked gets zero weights and a zero output, never NaN", weight=0.75)
    def _():
        b, l, s, e, ev = _attention_sizes(t)
        q, k, v = t.randn(b, l, e), t.randn(b, s, e), t.randn(b, s, ev)
        keep = t.keep_mask(b, l, s, p=0.6, hide_one=False)
        keep[0, t.random.randrange(l)] = False
        keep[-1, t.random.randrange(l)] = False
        case(q, k, v, keep)
        additive = torch.zeros(l, s).masked_fill(~t.keep_mask(l, s, p=0.6, hide_one=False), _NEG_INF)
        additive[t.random.randrange(l)] = _NEG_INF
        case(q, k, v, additive)

    b, l, s, e, ev = _attention_sizes(t)
    ex.float64(tuple(t.randn(*shape, dtype=torch.float64) for shape in ((b, l, e), (b, s, e), (b, s, ev))),
               rtol=1e-7, atol=1e-9, title="float64 inputs give float64 results")
    ex.gradients((t.randn(b, l, e), t.randn(b, s, e), t.randn(b, s, ev), torch.ones(l, s, dtype=torch.bool).tril()),
                 wrt=(0, 1, 2), arg_names=("query", "key", "value", "attn_mask"), weight=0.75,
                 title="gradients flow to query, key and value like the reference's",
                 hint="The values are right but the gradients are not: is part of the computation detached, or are "
                      "the weights returned from a different tensor than the one used for the output?")


# =========================================================================== 03.2 causal mask


CAUSAL_TRANSPOSED = Misconception("upper triangle", "The mask seems transposed (upper triangle, True where j >= i): "
                                  "query i would look at the future. Row i is the query, column j the key; keep j "
                                  "<= i, the lower triangle: .tril().", lambda L: _reference_causal(L).T.contiguous())
CAUSAL_STRICT = Misconception("diagonal excluded", "The diagonal seems to be excluded (True only where j < i). A "
                              "token may attend to itself: keep j <= i (tril() with the default diagonal=0); "
                              "otherwise the first query sees nothing at all.",
                              lambda L: torch.ones(L, L, dtype=torch.bool).tril(-1))
CAUSAL_INVERTED = Misconception("inverted (blocked convention)", "The mask seems inverted: True marks the future "
                                "keys to hide (nn.MultiheadAttention's convention). This exercise uses torch SDPA's "
                                "convention, True = takes part: True where j <= i.", lambda L: ~_reference_causal(L))
CAUSAL_ALL_TRUE = Misconception("no triangle", "Every entry seems to be True: nothing is hidden. Keep only the "
                                "lower triangle (j <= i), e.g. with .tril().",
                                lambda L: torch.ones(L, L, dtype=torch.bool))
CAUSAL_ONLY_DIAGONAL = Misconception("only the diagonal", "Only the diagonal seems to be True (torch.eye): each "
                                     "token would see only itself. Keep every key up to and including the query's "
                                     "position: j <= i.", lambda L: torch.eye(L, dtype=torch.bool))
CAUSAL_ONE_AHEAD = Misconception("one key ahead (diagonal shifted up)", "The mask seems to let each query see one "
                                 "key in the future as well (True where j <= i + 1). Look at the argument that "
                                 "shifts your triangle's diagonal: the query sees itself and the past, nothing "
                                 "after.", lambda L: torch.ones(L, L, dtype=torch.bool).tril(1))
CAUSAL_ONE_TOO_BIG = Misconception("one row and column too many", "The mask seems to have one row and one column "
                                   "too many. It has exactly L rows (one per query) and L columns (one per key): "
                                   "look at the size you build it with.", lambda L: _reference_causal(L + 1))
CAUSAL_MISCONCEPTIONS = [CAUSAL_TRANSPOSED, CAUSAL_STRICT, CAUSAL_INVERTED, CAUSAL_ALL_TRUE, CAUSAL_ONLY_DIAGONAL,
                         CAUSAL_ONE_AHEAD, CAUSAL_ONE_TOO_BIG]

@checker("03.2", misconceptions=CAUSAL_MISCONCEPTIONS, mutation_weight=0.0)
def check_causal_mask(t: CheckContext, causal_mask) -> None:
    """Sub-checks of 03.2, cheap to deep; weights are shares of the exercise's 2 points."""
    L0 = t.random.randint(3, 7)
    _mask_opening(t, causal_mask, (L0,), f"causal_mask({L0})", (L0, L0), "has shape (L, L)", "j <= i")

    @t.subcheck("True exactly where key j <= query i, for several lengths", weight=1.0, essential=True)
    def _():
        for L in (L0, 1, 2, t.random.randint(8, 16)):
            t.compare(causal_mask, _reference_causal, (L,), what=f"causal_mask({L})", exact=True, transform=_as_keep,
                      reference_name="the causal mask (True where j <= i)")


# =========================================================================== 03.3 padding mask


def _below(lengths, width: int, start: int = 0, le: bool = False) -> torch.Tensor:
    """(B, width) positions start .. start + width - 1 compared with each length (< or <=)."""
    positions = torch.arange(start, start + width)[None, :]
    return positions <= lengths[:, None] if le else positions < lengths[:, None]


def _default_len(lengths, max_len):
    return int(lengths.max()) if max_len is None else int(max_len)


def _default_width(width):
    """A padding mask whose width defaults to ``width(lengths)`` instead of max(lengths)."""
    return lambda lengths, max_len=None: _below(lengths, width(lengths) if max_len is None else max_len)


PADDING_LE = Misconception("<= instead of <", "The mask seems to keep one position too many (position <= length). "
                           "Positions count from 0, so a sequence of length n fills positions 0 .. n-1: keep "
                           "position < length.",
                           lambda lengths, max_len=None: _below(lengths, _default_len(lengths, max_len), le=True))
PADDING_FROM_ONE = Misconception("positions from 1", "The mask seems to keep one position too few: positions count "
                                 "from 0 (torch.arange(max_len)), so a sequence of length n fills positions 0 .. "
                                 "n-1.",
                                 lambda lengths, max_len=None: _below(lengths, _default_len(lengths, max_len), start=1))
PADDING_INVERTED = Misconception("inverted (blocked convention)", "The mask seems inverted: True marks the padding "
                                 "(nn.MultiheadAttention's key_padding_mask convention). This exercise uses torch "
                                 "SDPA's convention, True = a real token: position < length.",
                                 lambda lengths, max_len=None: ~_reference_padding(lengths, max_len))
PADDING_TRANSPOSED = Misconception("transposed", "The mask seems transposed: one row per sequence, one column per "
                                   "position, (B, max_len).",
                                   lambda lengths, max_len=None: _reference_padding(lengths, max_len).T.contiguous())
PADDING_DEFAULT_BATCH = Misconception("max_len defaults to the batch size", "When max_len is None the mask seems to "
                                      "get len(lengths) columns (the batch size). It defaults to the longest "
                                      "sequence: max(lengths).", _default_width(len))
PADDING_DEFAULT_PLUS_ONE = Misconception("max_len defaults to max(lengths) + 1", "When max_len is None the mask "
                                         "seems to get one column too many: it defaults to max(lengths) exactly "
                                         "(the longest sequence has no padding).",
                                         _default_width(lambda lengths: int(lengths.max()) + 1))
PADDING_IGNORES_MAX_LEN = Misconception("ignores max_len", "The mask seems to ignore a given max_len and always use "
                                        "max(lengths) columns. Use max_len when it is given (batches are often "
                                        "padded to a fixed length) and max(lengths) only when it is None.",
                                        lambda lengths, max_len=None: _reference_padding(lengths))
_SORTED_HINT = ("The mask's width seems to come from one particular length (the first or the last), as if the "
                "lengths were sorted. They come in any order: when max_len is None the width is the longest "
                "length. Look at where your width comes from.")
PADDING_FIRST_IS_LONGEST = Misconception("width from the first length", _SORTED_HINT,
                                         _default_width(lambda lengths: int(lengths[0])))
PADDING_LAST_IS_LONGEST = Misconception("width from the last length", _SORTED_HINT,
                                        _default_width(lambda lengths: int(lengths[-1])))
PADDING_MISCONCEPTIONS = [PADDING_FIRST_IS_LONGEST, PADDING_LAST_IS_LONGEST, PADDING_LE, PADDING_FROM_ONE,
                          PADDING_INVERTED, PADDING_TRANSPOSED, PADDING_DEFAULT_BATCH, PADDING_DEFAULT_PLUS_ONE,
                          PADDING_IGNORES_MAX_LEN]


def _lengths(t: CheckContext, B: int, M: int, zero: bool = False) -> torch.Tensor:
    """B lengths in 1..M (0..M with zero=True, one of them 0), one equal to M, as a LongTensor."""
    lengths = torch.randint(0 if zero else 1, M + 1, (B,), generator=t.gen)
    longest, empty = t.random.sample(range(B), 2) if B > 1 else (0, None)
    lengths[longest] = M
    if zero and empty is not None:
        lengths[empty] = 0
    return lengths


def _padding_case(t: CheckContext, padding_mask, lengths, *max_len) -> None:
    what = f"padding_mask(lengths={lengths.tolist()}{''.join(f', max_len={m}' for m in max_len)})"
    t.compare(padding_mask, _reference_padding, (lengths, *max_len), what=what, exact=True, transform=_as_keep,
              reference_name="the padding mask")


@checker("03.3", misconceptions=PADDING_MISCONCEPTIONS, mutation_weight=0.25)
def check_padding_mask(t: CheckContext, padding_mask) -> None:
    """Sub-checks of 03.3, cheap to deep; weights are shares of the exercise's 2 points."""
    B0 = t.random.randint(3, 5)
    lengths0 = _lengths(t, B0, t.random.randint(B0 + 2, B0 + 5))
    _mask_opening(t, padding_mask, (lengths0,), f"padding_mask(lengths={lengths0.tolist()})",
                  (B0, int(lengths0.max())), "has shape (B, max(lengths)) when max_len is None", "position < length")

    @t.subcheck("True exactly where position < length (several batches, lengths 0 included)",
                weight=1.0, essential=True)
    def _():
        B = t.random.randint(3, 6)
        batches = [lengths0, _lengths(t, B, t.random.randint(B + 1, B + 6), zero=True),
                   torch.tensor([t.random.randint(1, 5)])]
        for lengths in batches:
            _padding_case(t, padding_mask, lengths)

    @t.subcheck("uses max_len when it is given", weight=0.75)
    def _():
        B = t.random.randint(2, 5)
        lengths = _lengths(t, B, t.random.randint(2, 6), zero=True)
        for max_len in (int(lengths.max()) + t.random.randint(2, 4), int(lengths.max())):
            _padding_case(t, padding_mask, lengths, max_len)
