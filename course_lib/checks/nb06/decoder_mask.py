"""Checker of exercise 06.3 ``decoder_self_mask(tgt_lengths, max_len)`` -> bool (B, max_len, max_len), True = take
part: causal and key not padding. Reference ``course_lib.transformer.decoder_self_mask``."""

from __future__ import annotations

import torch

from ...transformer import decoder_self_mask as _reference_mask
from ..framework import CheckContext, Misconception, checker


def _causal(L):
    return torch.ones(L, L, dtype=torch.bool).tril()  # (L, L)


def _keys(lengths, L):
    return torch.arange(L)[None, :] < torch.as_tensor(lengths)[:, None]  # (B, L) True = real token


MASK_CAUSAL_ONLY = Misconception(
    "causal only",
    "The mask seems to be only causal: padded target positions must not be looked at either. Combine the "
    "causal mask with the padding mask of the keys.",
    lambda lengths, L: _causal(L).expand(len(lengths), L, L).clone(),
)
MASK_CAUSAL_2D = Misconception(
    "one (L, L) mask for the batch",
    "The mask seems to be one causal (max_len, max_len) mask for the whole batch: each sequence has its own "
    "length, hence its own padding, so the mask is (B, max_len, max_len).",
    lambda lengths, L: _causal(L),
)
MASK_PADDING_2D = Misconception(
    "the (B, L) padding mask",
    "The mask seems to be the (B, max_len) padding mask: every query position needs its own row of keys, "
    "(B, max_len, max_len), combining the padding of the keys with causality.",
    lambda lengths, L: _keys(lengths, L),
)
MASK_PADDING_ONLY = Misconception(
    "padding only",
    "The mask seems to hide padding only: a decoder position must not see later positions either (the "
    "tokens it will be trained to predict). Combine it with the causal mask (key j <= query i).",
    lambda lengths, L: _keys(lengths, L)[:, None, :].expand(len(lengths), L, L).clone(),
)
MASK_QUERY_AXIS = Misconception(
    "padding on the query axis",
    "The padding seems to hide padded QUERIES (rows): their rows are then empty, and softmax over no key gives "
    "NaN in F.scaled_dot_product_attention. Padding hides KEYS, the last axis (mask[b, i, j], j the key): "
    "broadcast the padding mask as (B, 1, max_len).",
    lambda lengths, L: _causal(L)[None] & _keys(lengths, L)[:, :, None],
)
MASK_OR = Misconception(
    "OR instead of AND",
    "The two conditions seem combined with OR: a key takes part only if it is not in the future AND not "
    "padding (&, not |).",
    lambda lengths, L: _causal(L)[None] | _keys(lengths, L)[:, None, :],
)
MASK_STRICT = Misconception(
    "the diagonal is masked",
    "The diagonal seems to be masked (key j < query i): a position may look at itself, j <= i "
    "(tril with diagonal=0).",
    lambda lengths, L: torch.ones(L, L, dtype=torch.bool).tril(-1)[None] & _keys(lengths, L)[:, None, :],
)
MASK_ONE_AHEAD = Misconception(
    "one future position visible",
    "Each position seems to see one key too far ahead (j <= i + 1): the causal mask is the lower triangle "
    "including the diagonal, tril with diagonal=0.",
    lambda lengths, L: torch.ones(L, L, dtype=torch.bool).tril(1)[None] & _keys(lengths, L)[:, None, :],
)
MASK_INVERTED = Misconception(
    "inverted (blocked convention)",
    "The mask seems inverted: True marks what is hidden (nn.MultiheadAttention's attn_mask convention). This "
    "exercise uses True = take part, as F.scaled_dot_product_attention does.",
    lambda lengths, L: ~_reference_mask(lengths, L),
)
MASK_PAD_LE = Misconception(
    "<= length",
    "The padding part seems to keep one key too many (position <= length): a sequence of length n fills "
    "positions 0 .. n-1, so key j is real when j < length.",
    lambda lengths, L: _causal(L)[None] & (torch.arange(L)[None, :] <= torch.as_tensor(lengths)[:, None])[:, None],
)
MASK_IGNORES_MAX_LEN = Misconception(
    "ignores max_len",
    "The mask seems to be sized by the longest length instead of by max_len: the batch is padded to max_len "
    "positions, which can be more than max(tgt_lengths).",
    lambda lengths, L: _reference_mask(lengths, int(torch.as_tensor(lengths).max())),
)

MASK_TRANSPOSED = Misconception(
    "transposed (upper triangle)",
    "The mask seems transposed: mask[b, i, j] has the query i on the rows and the key j on the columns, so "
    "the causal part is the LOWER triangle (j <= i) and the padding runs along the last axis.",
    lambda lengths, L: _reference_mask(lengths, L).transpose(1, 2),
)

MASK_MISCONCEPTIONS = [MASK_CAUSAL_ONLY, MASK_CAUSAL_2D, MASK_PADDING_2D, MASK_PADDING_ONLY, MASK_QUERY_AXIS,
                       MASK_OR, MASK_STRICT, MASK_ONE_AHEAD, MASK_INVERTED, MASK_PAD_LE,
                       MASK_IGNORES_MAX_LEN, MASK_TRANSPOSED]

_FLOAT_HINT = ("The mask is a float tensor: return a bool tensor (True = take part), as a comparison or & of "
               "bool masks gives. An additive float mask (0 / -inf) has the opposite meaning of True.")


def _lengths(t: CheckContext, B, L, full=True):
    """B lengths in 1..L-2 (L >= 3; a sequence ending before L - 1 tells "< length" from "<= length"),
    except one equal to L when ``full``."""
    lengths = [t.random.randint(1, L - 2) for _ in range(B)]
    if full:
        lengths[t.random.randrange(B)] = L
    return torch.tensor(lengths)


@checker("06.3", misconceptions=MASK_MISCONCEPTIONS, mutation_weight=0.25)
def check_decoder_self_mask(t: CheckContext, decoder_self_mask) -> None:
    """Sub-checks of 06.3, cheap to deep; weights are shares of the exercise's points."""
    B, L = t.random.randint(2, 4), t.random.randint(5, 8)  # L >= 5: tril(1) and tril(-1) differ from the rest
    lengths = _lengths(t, B, L)
    what = f"decoder_self_mask(tgt_lengths={lengths.tolist()}, max_len={L})"
    t.opening(decoder_self_mask, (lengths, L), what=what, shapes=(B, L, L), dtype=None,
              shape_titles=["has shape (B, max_len, max_len)"])

    @t.subcheck("is a bool tensor (torch.bool)", weight=0.25, essential=True)
    def _():
        out = t.first["out"]
        if out.dtype != torch.bool:
            t.fail(f"{what} has dtype {out.dtype}, expected torch.bool",
                   _FLOAT_HINT if out.is_floating_point() else
                   "Return a bool tensor (True = take part), as comparisons and & of bool masks give.")

    @t.subcheck("True exactly where key j <= query i and key j is not padding (several batches)", weight=1.5,
                essential=True)
    def _():
        cases = [(lengths, L), (_lengths(t, B + 2, L + 3), L + 3), (torch.tensor([1]), 1),
                 (_lengths(t, 3, 5, full=False), 6)]
        for tl, ml in cases:
            out = t.expect_tensor(t.call(decoder_self_mask, tl.clone(), ml),
                                  f"decoder_self_mask({tl.tolist()}, {ml})")
            t.expect_equal(out, _reference_mask(tl, ml), f"decoder_self_mask(tgt_lengths={tl.tolist()}, "
                           f"max_len={ml})", args=(tl, ml), reference="causal AND key-not-padding")
