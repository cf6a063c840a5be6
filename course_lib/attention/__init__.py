"""Attention, from additive scoring to multi-head self-attention.

Ordered as the course meets it:

1. Additive attention (Bahdanau et al. 2014) and Luong's dot/general scores.
2. Scaled dot-product attention (Vaswani et al. 2017, eq. 1), written as
   readable teaching code, with a fast path through
   ``torch.nn.functional.scaled_dot_product_attention``.
3. Multi-head attention: split, attend, merge, project (Vaswani et al. 2017,
   sec. 3.2.2), as functions and as the ``MultiHeadAttention`` module that
   mirrors ``torch.nn.MultiheadAttention``.

Two boolean mask conventions live side by side in PyTorch and therefore here:

* ``scaled_dot_product_attention`` (like torch's SDPA): a bool ``attn_mask`` is
  a *keep* mask, True = this key takes part.
* ``MultiHeadAttention`` (like ``nn.MultiheadAttention``): bool
  ``key_padding_mask`` and ``attn_mask`` are *blocked* masks, True = this key
  is masked out.

Float masks mean the same in both: they are added to the scores (0 keeps,
-inf removes). Inside this package a keep mask is always named ``keep`` and a
blocked mask ``blocked``.

One file per idea: ``additive`` (1), ``scaled_dot_product`` (2), ``multi_head``
(3), and ``_checks``, the argument checks they share.
"""

from .additive import (
    AdditiveAttention,
    additive_scores,
    bahdanau_attend,
    dot_scores,
    general_scores,
    masked_softmax,
)
from .multi_head import (
    MultiHeadAttention,
    merge_heads,
    multi_head_attention,
    split_heads,
)
from .scaled_dot_product import attention_with_weights, scaled_dot_product_attention

__all__ = [
    "AdditiveAttention",
    "MultiHeadAttention",
    "additive_scores",
    "attention_with_weights",
    "bahdanau_attend",
    "dot_scores",
    "general_scores",
    "masked_softmax",
    "merge_heads",
    "multi_head_attention",
    "scaled_dot_product_attention",
    "split_heads",
]
