"""The mask of the decoder's self-attention over a padded batch of targets (Vaswani et al. 2017, sec. 3.2.3).

Target position i may look at target position j when j <= i (it must not see
the future it will be trained to predict) and j is a real token (not
padding). The mask is per sequence, since each has its own length:
(B, max_len, max_len), KEEP convention (True = take part), ready for
``F.scaled_dot_product_attention``'s ``attn_mask`` after an ``unsqueeze(1)``
over heads. Exercise 06.3's reference.
"""

from __future__ import annotations

import torch

from .._validate import check_int as _check_int
from ..masks import causal_mask, padding_mask

__all__ = ["decoder_self_mask"]


def decoder_self_mask(tgt_lengths, max_len: int) -> torch.Tensor:
    """tgt_lengths: B ints (1-D integer tensor or list), max_len >= max(tgt_lengths)
    -> bool (B, max_len, max_len), True where key j <= query i and j < tgt_lengths[b].

    Padding is masked on the KEY axis only: a padded query position still sees
    the real tokens before it, so no row is empty (unless a length is 0) and no
    NaN appears; its output is ignored by the loss anyway.
    """
    max_len = _check_int("max_len", max_len, minimum=0)
    keep_keys = padding_mask(tgt_lengths, max_len)  # (B, max_len), True = real token
    causal = causal_mask(max_len, device=keep_keys.device) if max_len else \
        torch.ones(0, 0, dtype=torch.bool, device=keep_keys.device)  # (max_len, max_len)
    return causal[None, :, :] & keep_keys[:, None, :]  # (B, max_len, max_len): keys on the last axis
