"""Attention masks: causal, padding, sliding-window, and torch's two conventions.

A boolean attention mask says, for every (query, key) pair, whether the key
may be looked at. PyTorch itself uses two OPPOSITE meanings for True:

* ``F.scaled_dot_product_attention(q, k, v, attn_mask=keep)``: True = the key
  TAKES PART ("keep"). A row that is all False has nothing to attend to.
* ``nn.MultiheadAttention``'s ``forward(..., key_padding_mask=blocked,
  attn_mask=blocked)``, and the ``src_key_padding_mask`` / ``src_mask`` of
  ``nn.TransformerEncoderLayer.forward``: True = the key is MASKED OUT
  ("blocked").

The same two sentences of lengths 3 and 1, padded to length 3::

    keep    = padding_mask([3, 1])       # for F.scaled_dot_product_attention
    # tensor([[ True,  True,  True],
    #         [ True, False, False]])
    blocked = keep_to_blocked(keep)      # for nn.MultiheadAttention
    # tensor([[False, False, False],
    #         [False,  True,  True]])

Passing ``keep`` where ``blocked`` is expected raises no error: the model
silently attends to padding only. This module therefore names every variable
``keep`` or ``blocked``, returns the KEEP convention from every function unless
its name says otherwise (``keep_to_blocked``, ``key_padding_mask``), and
refuses float masks in the converters: a float mask is *added* to the scores
(0 = take part, -inf = masked out) and has no True/False meaning to flip.

Every constructor accepts ``device=None`` (the default device of torch).
"""

from __future__ import annotations

import torch

from ._validate import check_int as _check_size
from ._validate import check_shapes

__all__ = [
    "causal_mask",
    "padding_mask",
    "key_padding_mask",
    "sliding_window_mask",
    "keep_to_blocked",
    "blocked_to_keep",
    "padding_to_attn_mask",
    "combine_masks",
    "bool_to_additive",
]


def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"


def _check_bool_mask(name: str, mask) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor, got {type(mask).__name__}")
    if mask.is_floating_point():
        raise TypeError(
            f"{name} must be a bool tensor, got a float mask ({_describe(mask)}). A float mask is "
            "ADDED to the attention scores (0 = take part, -inf = masked out); it has no "
            "True/False convention to convert. Use mask == 0 to get a keep mask from it."
        )
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{name} must be a bool tensor, got {_describe(mask)}; build it with a comparison "
            "(e.g. positions < lengths) or .bool()"
        )
    return mask


# --- causal -----------------------------------------------------------------


def causal_mask(L: int, S: int | None = None, device=None, *, align: str = "upper_left") -> torch.Tensor:
    """Causal mask, KEEP convention (True = query i may attend to key j).

    L queries, S keys (S defaults to L) -> bool (L, S).

    ``align="upper_left"`` (default) is exactly what
    ``F.scaled_dot_product_attention(..., is_causal=True)`` uses:
    ``torch.ones(L, S).tril()``, i.e. True where j <= i, query 0 aligned with
    key 0 even when S != L. ``align="lower_right"`` aligns the last query with
    the last key (True where j <= i + S - L): the mask for L new queries
    appended after S - L cached keys (KV-cache decoding); it equals
    ``torch.nn.attention.bias.causal_lower_right(L, S)``.

    With S == L both are the lower triangle including the diagonal: decoder
    self-attention of Vaswani et al. (2017), sec. 3.2.3.
    """
    _check_size("L", L)
    S = L if S is None else _check_size("S", S)
    if align not in ("upper_left", "lower_right"):
        raise ValueError(f"align must be 'upper_left' or 'lower_right', got {align!r}")
    diagonal = 0 if align == "upper_left" else S - L
    return torch.ones(L, S, dtype=torch.bool, device=device).tril(diagonal=diagonal)  # (L, S)


# --- padding ----------------------------------------------------------------


def _as_lengths(lengths) -> torch.Tensor:
    if isinstance(lengths, torch.Tensor):
        t = lengths
    else:
        if isinstance(lengths, (str, bytes)):
            raise TypeError(f"lengths must be a 1-D integer tensor or a list of ints, got str {lengths!r}")
        try:
            t = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"lengths must be a 1-D integer tensor or a list of ints, got {type(lengths).__name__} {lengths!r}"
            ) from err
        if t.numel() == 0:
            t = t.long()  # torch.as_tensor([]) is float32
    if t.dim() != 1 or t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"lengths must be a 1-D integer tensor, got {_describe(t)}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"lengths must be >= 0, got {t.tolist()}")
    return t


def padding_mask(lengths, max_len: int | None = None, device=None) -> torch.Tensor:
    """Padding mask, KEEP convention (True = a real token, False = padding).

    lengths: B ints (list or 1-D integer tensor); max_len defaults to
    max(lengths) -> bool (B, max_len), True where position < length.
    The device defaults to that of ``lengths`` when it is a tensor.
    For ``nn.MultiheadAttention``'s ``key_padding_mask`` use
    :func:`key_padding_mask` (the opposite convention).
    """
    lengths = _as_lengths(lengths)
    if device is None:
        device = lengths.device
    longest = int(lengths.max()) if lengths.numel() else 0
    if max_len is None:
        if lengths.numel() == 0:
            raise ValueError("lengths is empty, so max_len cannot default to max(lengths); pass max_len")
        max_len = longest
    else:
        _check_size("max_len", max_len, minimum=0)
        if max_len < longest:
            raise ValueError(f"max_len must be >= max(lengths) = {longest}, got max_len={max_len}")
    positions = torch.arange(max_len, device=device)  # (max_len,)
    return positions[None, :] < lengths.to(device)[:, None]  # (B, max_len)


def key_padding_mask(lengths, max_len: int | None = None, device=None) -> torch.Tensor:
    """Padding mask in the BLOCKED convention of ``nn.MultiheadAttention``'s
    ``key_padding_mask`` (True = padding, ignored). Same inputs as
    :func:`padding_mask` -> bool (B, max_len); equals ``~padding_mask(...)``."""
    return ~padding_mask(lengths, max_len=max_len, device=device)


# --- sliding window ---------------------------------------------------------


def sliding_window_mask(L: int, window: int, device=None, *, causal: bool = False) -> torch.Tensor:
    """Sliding-window (local) mask, KEEP convention (Longformer, Beltagy et al. 2020).

    L positions, ``window`` >= 0 neighbours on each side -> bool (L, L), True
    where |i - j| <= window. With ``causal=True`` only the past half is kept:
    j <= i and i - j <= window (the mask of a causal local-attention layer).
    ``window >= L - 1`` gives the full (or full causal) mask.
    """
    _check_size("L", L)
    _check_size("window", window, minimum=0)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__} {causal!r}")
    i = torch.arange(L, device=device)[:, None]  # (L, 1) queries
    j = torch.arange(L, device=device)[None, :]  # (1, L) keys
    offset = i - j  # (L, L)
    if causal:
        return (offset >= 0) & (offset <= window)
    return offset.abs() <= window


# --- converting between conventions -----------------------------------------


def keep_to_blocked(mask: torch.Tensor) -> torch.Tensor:
    """KEEP mask (True = take part, F.scaled_dot_product_attention) -> BLOCKED
    mask (True = masked out, nn.MultiheadAttention). Same shape, bool."""
    return ~_check_bool_mask("mask", mask)


def blocked_to_keep(mask: torch.Tensor) -> torch.Tensor:
    """BLOCKED mask (True = masked out, nn.MultiheadAttention) -> KEEP mask
    (True = take part, F.scaled_dot_product_attention). Same shape, bool."""
    return ~_check_bool_mask("mask", mask)


def padding_to_attn_mask(keep: torch.Tensor) -> torch.Tensor:
    """Per-key padding mask (B, S), KEEP -> attention mask (B, 1, 1, S), KEEP.

    The two singleton axes broadcast over heads and queries, so the result can
    be passed as ``attn_mask`` to ``F.scaled_dot_product_attention`` with
    (B, H, L, E) inputs, or combined with a causal (L, S) mask.
    """
    _check_bool_mask("keep", keep)
    check_shapes(keep=(keep, "B S"))
    return keep[:, None, None, :]  # (B, 1, 1, S)


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of KEEP masks, with broadcasting: a key takes part only if
    every mask lets it. ``None`` arguments are skipped (no mask); returns None
    when every argument is None.

    Example: ``combine_masks(causal_mask(L), padding_to_attn_mask(keep))`` with
    (L, L) and (B, 1, 1, L) -> (B, 1, L, L).
    """
    present = [m for m in masks if m is not None]
    for k, m in enumerate(present):
        _check_bool_mask(f"masks[{k}]", m)
    if not present:
        return None
    try:
        shape = torch.broadcast_shapes(*(m.shape for m in present))
    except RuntimeError as err:
        shapes = ", ".join(str(tuple(m.shape)) for m in present)
        raise ValueError(f"masks must broadcast against each other, got shapes {shapes}") from err
    devices = {m.device for m in present}
    if len(devices) > 1:
        raise ValueError(f"masks must be on one device, got {sorted(str(d) for d in devices)}")
    out = present[0].expand(shape)
    for m in present[1:]:
        out = out & m
    return out.clone() if len(present) == 1 else out


def bool_to_additive(keep: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """KEEP mask (bool) -> additive float mask: 0.0 where True, -inf where False.

    Adding it to the scores before the softmax is what a bool mask does
    (Vaswani et al. 2017, sec. 3.2.3: "setting to -inf"). Same shape as
    ``keep``. A row that is all -inf makes a plain softmax return NaN; handle
    fully masked rows before the softmax.
    """
    _check_bool_mask("keep", keep)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    zeros = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return zeros.masked_fill(~keep, float("-inf"))
