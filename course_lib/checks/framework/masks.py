"""Exercises whose answer is a bool keep mask (03.2 causal, 03.3 padding, 09.3 sliding window):
the opening that insists on torch.bool, and how a learner's mask of another dtype is read
when its values are compared (an additive 0/-inf float mask keeps its zeros)."""

from __future__ import annotations

import torch

BOOL_HINT = ("Return a bool tensor (dtype torch.bool): build it with dtype=torch.bool or a comparison ({rule}). "
             "A float or integer 0/1 mask is not a keep mask for torch: F.scaled_dot_product_attention "
             "*adds* a float mask to the scores, so a 0/1 float mask silently hides nothing.")
ADDITIVE_HINT = ("This is an additive float mask (0 and -inf). It works as a float attn_mask, but the "
                 "exercise asks for a bool keep mask (dtype torch.bool, True = takes part).")


def as_keep(out: torch.Tensor) -> torch.Tensor:
    """The learner's mask read as keep/blocked values: an additive float mask
    (0 and -inf) keeps its zeros, anything else is read as bool."""
    if out.is_floating_point() and bool(torch.isinf(out).any()):
        return out == 0
    return out.to(torch.bool)


def mask_opening(t, fn, args: tuple, what: str, shape: tuple, shape_title: str, rule: str) -> None:
    """The opening of a mask exercise on context ``t``: returns a tensor, of ``shape``, of dtype
    bool (the hint names ``rule``, e.g. "j <= i")."""
    t.opening(fn, args, what=what, shapes=shape, dtype=None, shape_titles=[shape_title])

    @t.subcheck("is a bool tensor (torch.bool)", weight=0.5)
    def _():
        out = t.first["out"]
        if out.dtype != torch.bool:
            additive = out.is_floating_point() and bool(torch.isinf(out).any())
            t.fail(f"{what} has dtype {out.dtype}, expected torch.bool",
                   ADDITIVE_HINT if additive else BOOL_HINT.format(rule=rule))
