"""Checks for notebook 02 (Bahdanau attention): 02.1 additive_scores,
02.2 masked_softmax, 02.3 bahdanau_attend.

Contracts (matrices applied as ``x @ W``):

* 02.1 ``additive_scores(query, keys, W_q, W_k, v) -> (B, S)``: query (B, Hd),
  keys (B, S, Hk), W_q (Hd, A), W_k (Hk, A), v (A,); e = tanh(query W_q + keys W_k) v.
* 02.2 ``masked_softmax(scores, mask) -> (B, S)``: mask bool, True = valid;
  masked entries exactly 0; a row with no valid entry is all zeros, never NaN.
* 02.3 ``bahdanau_attend(query, keys, mask, W_q, W_k, v) -> (context (B, Hk), weights (B, S))``:
  weights = masked_softmax(additive_scores(...)); context = the weighted sum of the keys.

Each check starts with a "square" case (Hd = Hk = A, and B = S for 02.1) in
which a transposed weight or a query broadcast over the wrong axis still runs,
so its values can be recognised, then uses all-different sizes.
"""

from __future__ import annotations

import torch

from ..attention import additive_scores as _reference_scores
from ..attention import bahdanau_attend as _reference_attend
from ..attention import masked_softmax as _reference_softmax
from .framework import CheckContext, Misconception, checker, fmt_shape

_softmax = torch.softmax  # captured at import, like the reference


def _attention_inputs(t: CheckContext, B: int, S: int, Hd: int, Hk: int, A: int, dtype=torch.float32):
    """query, keys, W_q, W_k, v with tanh in its useful range."""
    return (t.randn(B, Hd, dtype=dtype), t.randn(B, S, Hk, dtype=dtype),
            t.randn(Hd, A, dtype=dtype, scale=Hd ** -0.5), t.randn(Hk, A, dtype=dtype, scale=Hk ** -0.5),
            t.randn(A, dtype=dtype))


def _random_mask(t: CheckContext, B: int, S: int, dead_rows: int = 0) -> torch.Tensor:
    """True = valid. Every row has a valid and (when S > 1) a masked entry, except
    ``dead_rows`` rows (chosen at random) with no valid entry at all."""
    mask = torch.rand(B, S, generator=t.gen) < 0.6
    for b in range(B):
        keep, drop = t.random.sample(range(S), 2) if S > 1 else (0, None)
        mask[b, keep] = True
        if drop is not None:
            mask[b, drop] = False
    for b in t.random.sample(range(B), dead_rows):
        mask[b] = False
    return mask


_DEAD_ROW_HINT = ("A row with no valid entry (mask all False) comes out NaN: softmax over only -inf scores, or a "
                  "renormalisation, divides 0 by 0. The contract wants all zeros for such a row: find the rows "
                  "with mask.any(dim=-1) False and return 0 there (torch.where), or replace their scores by 0 "
                  "before the softmax and zero the masked entries after it.")

# =========================================================================== 02.1 additive_scores


def _scores(query, keys, W_q, W_k, v, nonlin=torch.tanh):
    return nonlin((query @ W_q).unsqueeze(1) + keys @ W_k) @ v


NO_TANH = Misconception(
    "forgets tanh",
    "The scores seem to be computed without tanh: e = v . tanh(query W_q + keys W_k). Without the "
    "nonlinearity the score is linear and v could be folded into the projections.",
    lambda q, k, Wq, Wk, v: _scores(q, k, Wq, Wk, v, nonlin=lambda z: z),
)
TANH_AFTER_V = Misconception(
    "tanh after v",
    "tanh seems to be applied to the final score instead of to the hidden layer: first tanh(query W_q + "
    "keys W_k) (B, S, A), then the product with v.",
    lambda q, k, Wq, Wk, v: torch.tanh(((q @ Wq).unsqueeze(1) + k @ Wk) @ v),
)
_TRANSPOSED_HINT = ("A weight matrix seems to be applied transposed (W.T, or W @ x written for column vectors). "
                    "Matrices are applied as `x @ W` with W of shape (in_features, out_features): query @ W_q "
                    "maps Hd to A and keys @ W_k maps Hk to A.")
W_TRANSPOSED = Misconception("W applied transposed", _TRANSPOSED_HINT,
                             lambda q, k, Wq, Wk, v: _scores(q, k, Wq.T, Wk.T, v))
W_Q_TRANSPOSED = Misconception("W_q applied transposed", _TRANSPOSED_HINT,
                               lambda q, k, Wq, Wk, v: _scores(q, k, Wq.T, Wk, v))
W_K_TRANSPOSED = Misconception("W_k applied transposed", _TRANSPOSED_HINT,
                               lambda q, k, Wq, Wk, v: _scores(q, k, Wq, Wk.T, v))
SWAPPED_WEIGHTS = Misconception(
    "W_q and W_k swapped",
    "W_q and W_k seem to be swapped: the query goes through W_q and the keys through W_k.",
    lambda q, k, Wq, Wk, v: _scores(q, k, Wk, Wq, v),
)
_BROADCAST_HINT = ("The query seems to be added to the keys without a position axis: query @ W_q is (B, A) and "
                   "keys @ W_k is (B, S, A), so broadcasting lines the batch axis of the query up with the "
                   "positions of the keys. Use (query @ W_q).unsqueeze(1), of shape (B, 1, A).")
QUERY_NOT_UNSQUEEZED = Misconception(
    "query broadcast over the positions", _BROADCAST_HINT,
    lambda q, k, Wq, Wk, v: torch.tanh(q @ Wq + k @ Wk) @ v,
    error=r"must match the size of tensor b \(\d+\) at non-singleton dimension 1",
)
SUM_INSTEAD_OF_V = Misconception(
    "sums the hidden layer instead of using v",
    "The hidden layer seems to be summed over its A features instead of being multiplied by v: "
    "score = tanh(...) @ v, a weighted sum with the learned weights v.",
    lambda q, k, Wq, Wk, v: torch.tanh((q @ Wq).unsqueeze(1) + k @ Wk).sum(-1),
)
SOFTMAXED = Misconception(
    "returns weights instead of scores",
    "Your function seems to return softmax-normalised weights. additive_scores returns the raw scores e; "
    "the (masked) softmax is exercise 02.2.",
    lambda q, k, Wq, Wk, v: _softmax(_scores(q, k, Wq, Wk, v), -1),
)
KEEPS_LAST_AXIS = Misconception(
    "keeps a trailing axis of size 1",
    "The scores seem to keep a trailing axis of size 1, (B, S, 1) (from v.unsqueeze(-1) or a Linear with one "
    "output). Return (B, S): .squeeze(-1), or multiply by v of shape (A,) directly.",
    lambda q, k, Wq, Wk, v: _scores(q, k, Wq, Wk, v).unsqueeze(-1),
)
MATMUL_DOES_NOT_FIT = Misconception(
    "transposed weight (shapes do not fit)", _TRANSPOSED_HINT,
    error=r"mat1 and mat2 shapes cannot be multiplied|size mismatch",
)

SCORE_MISCONCEPTIONS = [
    NO_TANH, TANH_AFTER_V, W_TRANSPOSED, W_Q_TRANSPOSED, W_K_TRANSPOSED, SWAPPED_WEIGHTS, QUERY_NOT_UNSQUEEZED,
    SUM_INSTEAD_OF_V, SOFTMAXED, KEEPS_LAST_AXIS, MATMUL_DOES_NOT_FIT,
]


def _describe_scores(args) -> str:
    q, k, Wq = args[0], args[1], args[2]
    return (f"additive_scores(query, keys, W_q, W_k, v) with query {fmt_shape(q.shape)}, keys "
            f"{fmt_shape(k.shape)}, W_q {fmt_shape(Wq.shape)}")


_SCORE_ARGS = ("query", "keys", "W_q", "W_k", "v")


@checker("02.1", misconceptions=SCORE_MISCONCEPTIONS, mutation_weight=0.5)
def check_additive_scores(t: CheckContext, additive_scores) -> None:
    """Sub-checks of 02.1, cheap to deep."""
    n = t.random.randint(3, 6)
    args0 = _attention_inputs(t, n, n, n, n, n)  # square: transposes and bad broadcasts still run
    ex = t.exercise(additive_scores, _reference_scores, _describe_scores, reference_name="the formula")
    ex.opening(args0, shapes=(n, n), weights=(0.25, 0.5, 0.25), shape_titles=["the scores are (B, S)"])
    B, S, Hd, Hk, A = t.sizes(5)
    ex.compare_cases("equals v . tanh(query W_q + keys W_k) (random inputs of several shapes)",
                     [args0, _attention_inputs(t, B, S, Hd, Hk, A), _attention_inputs(t, 1, S, Hk, Hd, A),
                      _attention_inputs(t, B, 1, A, Hd, Hk)], weight=2.0, essential=True)
    ex.float64(_attention_inputs(t, *t.sizes(5), dtype=torch.float64))
    ex.gradients(_attention_inputs(t, *t.sizes(5)), wrt=range(5), arg_names=_SCORE_ARGS, weight=0.75,
                 title="gradients reach the query, the keys, W_q, W_k and v")


# =========================================================================== 02.2 masked_softmax


def _fill_softmax(value):
    return lambda s, m: _softmax(s.masked_fill(~m, value), -1)


_BIG_NEGATIVE_HINT = ("Masked scores seem to be replaced by a large negative number. Then a row with no valid entry "
                      "becomes uniform (1/S everywhere) instead of all zeros, and a small constant is not even "
                      "safe for ordinary rows when valid scores are very negative. Use float('-inf') (or "
                      "torch.where on the weights) and handle rows with no valid entry separately.")
_NAN_GRADIENT_HINT = ("The forward pass is right but the gradient holds NaN for a row with no valid entry: its "
                      "softmax over only -inf is NaN, and hiding that afterwards (nan_to_num, torch.where) does not "
                      "clean the backward pass when the -inf entered through arithmetic such as scores + "
                      "mask.log() (0 * NaN = NaN). Put -inf in with scores.masked_fill(~mask, float('-inf')), whose "
                      "backward zeroes the masked positions, and replace the scores of empty rows by 0 before the "
                      "softmax.")
_TINY_HINT = ("Masked entries get a tiny but nonzero weight: a finite filler such as -100 gives exp(-100) > 0. "
              "Fill masked scores with float('-inf') (exp(-inf) is exactly 0), or zero the weights with "
              "torch.where(mask, weights, 0).")
SOFTMAX_OVER_BATCH = Misconception(
    "softmax over the batch axis",
    "The softmax seems to run over the batch axis (dim=0): each row (one query) must be normalised over its "
    "S key positions, dim=-1.",
    lambda s, m: _reference_softmax(s, m, dim=0),
)
MASK_INVERTED = Misconception(
    "mask inverted",
    "The mask seems inverted: in this exercise True means *valid* (take part) and False means masked out, so "
    "fill where ~mask (or mask == False).",
    lambda s, m: _reference_softmax(s, ~m),
)
IGNORES_MASK = Misconception(
    "ignores the mask",
    "The mask seems to be ignored: masked positions (mask False) must get weight exactly 0.",
    lambda s, m: _softmax(s, -1),
)
_ZERO_SCORE_HINT = ("Masked scores seem to become 0 before the softmax (masked_fill(~mask, 0), or scores * mask), "
                    "but exp(0) = 1 still gives them weight. Set them to float('-inf'), whose exp is exactly 0: "
                    "scores.masked_fill(~mask, float('-inf')).")
ZERO_FILL = Misconception("sets masked scores to 0", _ZERO_SCORE_HINT, _fill_softmax(0.0))
MULTIPLIES_SCORES = Misconception("multiplies the scores by the mask", _ZERO_SCORE_HINT,
                                  lambda s, m: _softmax(s * m, -1))
NO_RENORMALISATION = Misconception(
    "zeroes masked weights without renormalising",
    "Masked weights seem to be set to 0 after the softmax, but the remaining weights no longer sum to 1. Mask "
    "the scores before the softmax (with -inf), or divide by the new row sum.",
    lambda s, m: _softmax(s, -1) * m,
)
RENORMALISED_NAN = Misconception(
    "renormalises after zeroing (0/0 on empty rows)", _DEAD_ROW_HINT,
    lambda s, m: (lambda w: w / w.sum(-1, keepdim=True))(_softmax(s, -1) * m),
)
INF_NAN = Misconception("-inf without handling empty rows", _DEAD_ROW_HINT, _fill_softmax(float("-inf")))
BIG_NEGATIVE = [Misconception(f"fills with {value:g}", _BIG_NEGATIVE_HINT, _fill_softmax(value))
                for value in (-1e9, -1e10, -1e12, -1e30, -1e20, -1e15, -1e8, -1e6, -1e5, -1e4, -1e3, -1e2)]
FINFO_MIN = Misconception("fills with finfo.min", _BIG_NEGATIVE_HINT,
                          lambda s, m: _softmax(s.masked_fill(~m, torch.finfo(s.dtype).min), -1))
NO_MAX_TRICK = Misconception(
    "no max subtraction",
    "exp overflows for large scores (inf/inf = NaN). Subtract each row's maximum over the valid entries before "
    "exp (the max trick of exercise 00.1), or mask with -inf and use a stable softmax.",
    lambda s, m: (lambda e: e / e.sum(-1, keepdim=True))(torch.exp(s) * m),
)

SOFTMAX_MISCONCEPTIONS = [
    SOFTMAX_OVER_BATCH, MASK_INVERTED, IGNORES_MASK, ZERO_FILL, MULTIPLIES_SCORES, NO_RENORMALISATION,
    RENORMALISED_NAN, INF_NAN, *BIG_NEGATIVE, FINFO_MIN, NO_MAX_TRICK,
]


def _describe_softmax(scores, mask, extra: str = "") -> str:
    return f"masked_softmax(scores, mask) with scores of shape {fmt_shape(scores.shape)}{extra}"


def _expect_masked_zeros(t: CheckContext, out: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
                         expected: torch.Tensor, what: str) -> None:
    """Masked entries exactly 0 (exp(-100) is tiny, and not 0)."""
    nonzero = out.detach()[~mask] != 0
    if bool(nonzero.any()):
        nearly_right = out.shape == expected.shape and bool(
            torch.isclose(out.detach().to(expected.dtype), expected, rtol=1e-5, atol=1e-6).all())
        hint = _TINY_HINT if nearly_right else (
            t.diagnose(out, (scores, mask), expected=expected, tolerance=(1e-5, 1e-6)) or _TINY_HINT)
        t.fail(f"{what}: {int(nonzero.sum())} of {int((~mask).sum())} masked entries are not exactly 0", hint)


@checker("02.2", misconceptions=SOFTMAX_MISCONCEPTIONS, mutation_weight=0.5)
def check_masked_softmax(t: CheckContext, masked_softmax) -> None:
    """Sub-checks of 02.2, cheap to deep."""

    def case(scores, mask, extra="", **compare):
        what = _describe_softmax(scores, mask, extra)
        out = t.compare(masked_softmax, _reference_softmax, (scores, mask), what=what, finite=True,
                        reference_name="the masked softmax", **compare)
        _expect_masked_zeros(t, out, scores, mask, _reference_softmax(scores, mask), what)

    B, S = t.sizes(2, 3, 7)
    scores0, mask0 = t.randn(B, S, scale=2.0), _random_mask(t, B, S)
    t.opening(masked_softmax, (scores0, mask0), what=_describe_softmax(scores0, mask0), shapes=(B, S),
              shape_titles=["the weights have the scores' shape"])

    @t.subcheck("softmax over the valid entries, exactly 0 at masked ones (several shapes and masks)",
                weight=2.0, essential=True)
    def _():
        b, s = t.sizes(2, 2, 8)
        for scores, mask in [(scores0, mask0), (t.randn(b, s, scale=3.0), _random_mask(t, b, s)),
                             (t.randn(1, s), _random_mask(t, 1, s)),
                             (t.randn(b, 1), torch.ones(b, 1, dtype=torch.bool)),
                             (t.randn(b, s), torch.ones(b, s, dtype=torch.bool))]:
            case(scores, mask, rtol=1e-5, atol=1e-6)

    @t.subcheck("a row with no valid entry is all zeros, never NaN", weight=0.75)
    def _():
        b, s = t.sizes(2, 3, 7)
        case(t.randn(b, s, scale=2.0), _random_mask(t, b, s, dead_rows=1), " where one row of the mask is all False",
             finite_hints={0: _DEAD_ROW_HINT}, rtol=1e-5, atol=1e-6,
             hints={0: "A row with no valid entry must be all zeros: there is nothing to attend to."})

    @t.subcheck("stays finite and exact for large scores (around ±1e4)", weight=0.5)
    def _():
        b, s = t.sizes(2, 3, 8)
        scores, mask = t.randn(b, s, scale=1e4), _random_mask(t, b, s)
        # one row whose valid scores lie far below any "large negative" filler of ordinary size
        scores[0] = torch.where(mask[0], scores[0].abs() * -1 - 3e4, scores[0])
        case(scores, mask, " and scores around ±1e4", finite_hints={0: NO_MAX_TRICK.hint}, rtol=5e-3, atol=1e-5)

    b, s = t.sizes(2, 3, 7)
    scores64, mask64 = t.randn(b, s, dtype=torch.float64, scale=2.0), _random_mask(t, b, s)
    t.float64_subcheck(masked_softmax, _reference_softmax, (scores64, mask64),
                       what=_describe_softmax(scores64, mask64, " in float64"), reference_name="the masked softmax")
    for dead, title, extra in ((0, "gradients flow back like the reference's", ""),
                               (1, "gradients stay finite for a row with no valid entry",
                                " with one all-False mask row")):
        b, s = t.sizes(2, 3, 7)
        scores, mask = t.randn(b, s, scale=2.0), _random_mask(t, b, s, dead_rows=dead)
        t.gradient_subcheck(masked_softmax, _reference_softmax, (scores, mask), wrt=(0,), arg_names=("scores", "mask"),
                            what=_describe_softmax(scores, mask, extra), title=title, weight=0.5 if not dead else 0.25,
                            nan_hint=_NAN_GRADIENT_HINT if dead else "",
                            forward_nan_hint=_DEAD_ROW_HINT if dead else None)


# =========================================================================== 02.3 bahdanau_attend


def _attend(query, keys, mask, W_q, W_k, v, weights_fn=None, context_fn=None):
    weights = (weights_fn or (lambda: _reference_softmax(_reference_scores(query, keys, W_q, W_k, v), mask)))()
    context = (context_fn or (lambda w: (w.unsqueeze(-1) * keys).sum(1)))(weights)
    return context, weights


def _weights(fn):
    """A misconception in the weights; the context is the weighted sum of the keys with those weights."""
    return lambda q, k, m, Wq, Wk, v: _attend(q, k, m, Wq, Wk, v, weights_fn=lambda: fn(q, k, m, Wq, Wk, v))


def _context(fn):
    """A misconception in the context; the weights are right."""
    return lambda q, k, m, Wq, Wk, v: _attend(q, k, m, Wq, Wk, v, context_fn=lambda w: fn(w, k, Wk))


_CONTEXT_AXIS_HINT = ("The context seems to sum over the wrong axis. weights (B, S) and keys (B, S, Hk): weight each "
                      "key by its weight and sum over the S positions, (weights.unsqueeze(-1) * keys).sum(dim=1) or "
                      "torch.bmm(weights.unsqueeze(1), keys).squeeze(1), giving (B, Hk).")
ATTEND_MISCONCEPTIONS = [
    Misconception("ignores the mask", "The weights seem to ignore the mask: pass it to your masked_softmax, so that "
                  "padded source positions get weight exactly 0.",
                  _weights(lambda q, k, m, Wq, Wk, v: _softmax(_reference_scores(q, k, Wq, Wk, v), -1))),
    Misconception("mask inverted", MASK_INVERTED.hint,
                  _weights(lambda q, k, m, Wq, Wk, v: _reference_softmax(_reference_scores(q, k, Wq, Wk, v), ~m))),
    Misconception("softmax over the batch axis", SOFTMAX_OVER_BATCH.hint,
                  _weights(lambda q, k, m, Wq, Wk, v: _reference_softmax(_reference_scores(q, k, Wq, Wk, v), m,
                                                                         dim=0))),
    Misconception("no softmax", "The weights seem to be the raw scores: normalise them with your masked_softmax "
                  "so that each row is a probability distribution over the source positions.",
                  _weights(lambda q, k, m, Wq, Wk, v: _reference_scores(q, k, Wq, Wk, v))),
    Misconception("forgets tanh", NO_TANH.hint,
                  _weights(lambda q, k, m, Wq, Wk, v: _reference_softmax(NO_TANH.impl(q, k, Wq, Wk, v), m))),
    Misconception("W applied transposed", _TRANSPOSED_HINT,
                  _weights(lambda q, k, m, Wq, Wk, v: _reference_softmax(_reference_scores(q, k, Wq.T, Wk.T, v), m))),
    Misconception("W_q and W_k swapped", SWAPPED_WEIGHTS.hint,
                  _weights(lambda q, k, m, Wq, Wk, v: _reference_softmax(_reference_scores(q, k, Wk, Wq, v), m))),
    Misconception("context sums over the batch", _CONTEXT_AXIS_HINT,
                  _context(lambda w, k, Wk: (w.unsqueeze(-1) * k).sum(0))),
    Misconception("context sums over the features", _CONTEXT_AXIS_HINT,
                  _context(lambda w, k, Wk: (w.unsqueeze(-1) * k).sum(-1))),
    Misconception("weights @ keys", "weights @ keys multiplies every example's keys by the weights of *all* "
                  "examples, giving (B, B, Hk). Add a length-1 axis: (weights.unsqueeze(1) @ keys).squeeze(1), "
                  "or torch.einsum('bs,bsh->bh', weights, keys).",
                  _context(lambda w, k, Wk: w @ k)),
    Misconception("context is a mean", "The context seems to be a mean over the positions. It is the weighted sum "
                  "(the weights already sum to 1): sum over dim=1, do not divide by S.",
                  _context(lambda w, k, Wk: (w.unsqueeze(-1) * k).mean(1))),
    Misconception("context ignores the weights", "The context seems to ignore the attention weights: it is "
                  "sum_j weights[:, j] * keys[:, j], not a plain sum or mean of the keys.",
                  _context(lambda w, k, Wk: k.sum(1))),
    Misconception("context ignores the weights (mean)", "The context seems to ignore the attention weights: it is "
                  "sum_j weights[:, j] * keys[:, j], not a plain sum or mean of the keys.",
                  _context(lambda w, k, Wk: k.mean(1))),
    Misconception("context of the projected keys", "The context seems to mix the projected keys (keys @ W_k). "
                  "Bahdanau's context is the weighted sum of the encoder states themselves, the keys, "
                  "shape (B, Hk).",
                  _context(lambda w, k, Wk: (w.unsqueeze(-1) * (k @ Wk)).sum(1))),
    Misconception("returns (weights, context)", "The two results seem to be swapped: return (context, weights), "
                  "in this order.",
                  lambda *a: _reference_attend(*a)[::-1]),
    MATMUL_DOES_NOT_FIT,
]


def _attend_inputs(t: CheckContext, B: int, S: int, Hd: int, Hk: int, A: int, dtype=torch.float32,
                   dead_rows: int = 0):
    q, k, Wq, Wk, v = _attention_inputs(t, B, S, Hd, Hk, A, dtype)
    return q, k, _random_mask(t, B, S, dead_rows), Wq, Wk, v


def _describe_attend(args, extra: str = "") -> str:
    q, k = args[0], args[1]
    return (f"bahdanau_attend(query, keys, mask, W_q, W_k, v) with query {fmt_shape(q.shape)}, "
            f"keys {fmt_shape(k.shape)}{extra}")


_ATTEND_NAMES = ("context", "weights")


@checker("02.3", misconceptions=ATTEND_MISCONCEPTIONS, mutation_weight=0.5)
def check_bahdanau_attend(t: CheckContext, bahdanau_attend) -> None:
    """Sub-checks of 02.3, cheap to deep: the weights first (their misconceptions explain the context too)."""
    B, S, n = t.sizes(3, 2, 7)
    args0 = _attend_inputs(t, B, S, n, n, n)  # square weights: a transpose still runs
    ex = t.exercise(bahdanau_attend, _reference_attend, _describe_attend, names=_ATTEND_NAMES)
    ex.opening(args0, shapes=[(B, n), (B, S)], optional=(0,), returns_title="returns a pair (context, weights) of "
               "tensors", shape_titles=["the context is (B, Hk)", "the weights are (B, S)"])
    b, s, hd, hk, a = t.sizes(5)
    cases = [args0, _attend_inputs(t, b, s, hd, hk, a), _attend_inputs(t, 1, s, hk, a, hd),
             _attend_inputs(t, b, 1, a, hk, hd)]
    ex.compare_cases("weights = masked_softmax(additive_scores(...)) (several shapes and masks)", cases, weight=1.0,
                     essential=True, order=(1,), reference_name="masked_softmax(additive_scores(...))")
    ex.compare_cases("context = the weighted sum of the keys", cases[::-1], weight=1.0, order=(0,),
                     reference_name="the weighted sum of the keys")

    @t.subcheck("a source with no valid position gives zero weights and a zero context", weight=0.25)
    def _():
        args = _attend_inputs(t, *t.sizes(5), dead_rows=1)
        ex.compare(args, what=_describe_attend(args, " and one all-False mask row"), order=(1, 0), finite=True,
                   finite_hints={0: _DEAD_ROW_HINT, 1: _DEAD_ROW_HINT})

    ex.float64(_attend_inputs(t, *t.sizes(5), dtype=torch.float64), order=(1, 0))
    ex.gradients(_attend_inputs(t, *t.sizes(5)), wrt=(0, 1, 3, 4, 5), weight=0.5,
                 arg_names=("query", "keys", "mask", "W_q", "W_k", "v"),
                 title="gradients reach the query, the keys, W_q, W_k and v")
