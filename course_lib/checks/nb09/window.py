"""Checks of 09.3 ``sliding_window_mask``: bool (L, L), True where |i - j| <= window."""

from __future__ import annotations

import torch

from ...masks import sliding_window_mask as _reference_window
from ..framework import CheckContext, Misconception, checker
from ..framework.masks import as_keep as _as_keep
from ..framework.masks import mask_opening as _mask_opening

# =========================================================================== 09.3 sliding-window mask


def _offsets(L):
    i = torch.arange(L)[:, None]
    return i - torch.arange(L)[None, :]  # (L, L) i - j


WIN_STRICT = Misconception(
    "< instead of <=",
    "The mask seems to keep keys with |i - j| < window, one too few on each side. The window counts the "
    "neighbours kept on EACH side: keep |i - j| <= window (window = 0 keeps the diagonal).",
    lambda L, window: _offsets(L).abs() < window,
)
WIN_CAUSAL = Misconception(
    "one-sided (the past only)",
    "The mask seems to keep only one side of the diagonal (like a causal window). This exercise's window is "
    "two-sided: keep key j for query i when |i - j| <= window, before and after i.",
    lambda L, window: (_offsets(L) >= 0) & (_offsets(L) <= window),
)
WIN_FUTURE = Misconception(
    "one-sided (the future only)",
    "The mask seems to keep only one side of the diagonal (the keys after the query). The window is "
    "two-sided: keep key j for query i when |i - j| <= window, before and after i.",
    lambda L, window: (_offsets(L) <= 0) & (_offsets(L) >= -window),
)
WIN_TOTAL_WIDTH = Misconception(
    "window counted as the total width",
    "The mask seems to treat window as the total width of the band, half on each side. Here window is the "
    "number of neighbours kept on EACH side: a row keeps up to 2 * window + 1 keys, |i - j| <= window.",
    lambda L, window: _offsets(L).abs() <= window // 2,
)
WIN_INVERTED = Misconception(
    "inverted (blocked convention)",
    "The mask seems inverted: True marks the keys outside the window (the keys to hide). This exercise uses "
    "torch SDPA's convention, True = takes part: True where |i - j| <= window.",
    lambda L, window: _offsets(L).abs() > window,
)
WIN_ROW = Misconception(
    "one row only",
    "Your result seems to be one row of the mask (shape (L,)). The mask has one row per query and one column "
    "per key: compare every query position i with every key position j, e.g. a column of positions "
    "(L, 1) against a row (1, L).",
    lambda L, window: torch.arange(L).abs() <= window,
)
WIN_ONE_MORE = Misconception(
    "one neighbour too many",
    "The mask seems to keep one neighbour too many on each side (|i - j| <= window + 1). window = 0 keeps "
    "the diagonal only; window = 1 adds one neighbour on each side.",
    lambda L, window: _offsets(L).abs() <= window + 1,
)
WIN_MISCONCEPTIONS = [WIN_STRICT, WIN_CAUSAL, WIN_FUTURE, WIN_TOTAL_WIDTH, WIN_INVERTED, WIN_ROW, WIN_ONE_MORE]
_WINDOW_HINT = ("Work out sliding_window_mask(5, 1) by hand: row i (the query) is True at columns j = i - 1, i, "
                "i + 1 that exist, and False elsewhere; compare with your result.")


@checker("09.3", misconceptions=WIN_MISCONCEPTIONS, mutation_weight=0.0)
def check_sliding_window_mask(t: CheckContext, sliding_window_mask) -> None:
    """Sub-checks of 09.3, cheap to deep; weights are shares of the exercise's 2 points."""
    L0, w0 = t.random.randint(8, 11), t.random.randint(3, 4)  # window 2 or 1: < and "total width" coincide
    _mask_opening(t, sliding_window_mask, (L0, w0), f"sliding_window_mask({L0}, {w0})", (L0, L0),
                  "has shape (L, L)", "|i - j| <= window")

    @t.subcheck("True exactly where |i - j| <= window, for several L and window", weight=1.0, essential=True)
    def _():
        for L, w in ((L0, w0), (t.random.randint(8, 14), 1), (7, 4), (1, 0), (2, 1)):
            what = f"sliding_window_mask({L}, {w})"
            out = t.expect_tensor(t.call(sliding_window_mask, L, w), what)
            t.expect_equal(_as_keep(out), _reference_window(L, w), what, args=(L, w),
                           reference="the sliding-window mask (True where |i - j| <= window)", hint=_WINDOW_HINT)

    @t.subcheck("edge cases: window 0 keeps the diagonal only, window >= L - 1 keeps everything", weight=0.5)
    def _():
        for L, w in ((L0, 0), (L0, L0 - 1), (L0, L0 + 3)):
            what = f"sliding_window_mask({L}, {w})"
            out = t.expect_tensor(t.call(sliding_window_mask, L, w), what)
            t.expect_equal(_as_keep(out), _reference_window(L, w), what, args=(L, w),
                           reference="the sliding-window mask (True where |i - j| <= window)", hint=_WINDOW_HINT)
