"""Recurrent networks: a vanilla RNN written out, and greedy decoding.

rnn_forward is the recurrence h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)
(Elman 1990) with matrices applied as ``x @ W``; greedy_decode feeds a
decoder's argmax back to it until every row has produced EOS. Both are the
reference implementations of exercises 01.1 and 01.2.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["rnn_forward", "greedy_decode"]


def _shape(x: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def rnn_forward(x: Tensor, h0: Tensor, W_xh: Tensor, W_hh: Tensor, b_h: Tensor) -> tuple[Tensor, Tensor]:
    """Run a vanilla (Elman) RNN over a sequence.

    x (B, T, D), h0 (B, H), W_xh (D, H), W_hh (H, H), b_h (H,)
    -> outputs (B, T, H) holding h_1..h_T, and h_last (B, H) = h_T (h0 when T = 0).
    """
    for name, t, nd in (("x", x, 3), ("h0", h0, 2), ("W_xh", W_xh, 2), ("W_hh", W_hh, 2), ("b_h", b_h, 1)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != nd:
            raise ValueError(f"{name} must be {nd}-D, got shape {_shape(t)}")
    B, T, D = x.shape
    H = h0.shape[1]
    if h0.shape[0] != B:
        raise ValueError(f"h0 has batch size {h0.shape[0]} but x has {B}; expected h0 of shape ({B}, H)")
    if W_xh.shape != (D, H) or W_hh.shape != (H, H) or b_h.shape != (H,):
        raise ValueError(
            f"W_xh {_shape(W_xh)}, W_hh {_shape(W_hh)}, b_h {_shape(b_h)} do not fit x {_shape(x)} and "
            f"h0 {_shape(h0)}; expected W_xh ({D}, {H}), W_hh ({H}, {H}), b_h ({H},)"
        )
    inputs = x @ W_xh + b_h  # (B, T, H): the input part of every step at once
    h = h0
    outputs = []
    for t in range(T):
        h = torch.tanh(inputs[:, t] + h @ W_hh)  # (B, H)
        outputs.append(h)
    stacked = torch.stack(outputs, dim=1) if outputs else x.new_zeros(B, 0, H)  # (B, T, H)
    return stacked, h


def greedy_decode(step_fn: Callable[[Tensor, object], tuple[Tensor, object]], h0, sos_id: int, eos_id: int,
                  max_len: int) -> Tensor:
    """Greedy decoding: feed back the argmax token until every row emitted EOS.

    step_fn(tokens (B,), h) -> (logits (B, V), h). h0 is the decoder's initial
    state (any object step_fn understands); the batch size B is read from the
    first tensor found in it: its first dimension for a (B, H) state, its second
    for torch's (num_layers, B, H) layout. Returns a LongTensor (B, max_len): after a row emits
    eos_id, every later position of that row is eos_id, and step_fn is not
    called again once all rows have finished.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable, got {type(step_fn).__name__}")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    first = _first_tensor(h0)
    if first is None:
        raise TypeError("h0 must be a tensor (or hold one) so that the batch size can be read from it")
    B, device = (first.shape[1] if first.dim() == 3 else first.shape[0]), first.device
    out = torch.full((B, max_len), eos_id, dtype=torch.long, device=device)
    tokens = torch.full((B,), sos_id, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)  # (B,)
        out[:, t] = tokens
        finished |= tokens == eos_id
        if bool(finished.all()):
            break
    return out


def _first_tensor(h) -> Tensor | None:
    if isinstance(h, Tensor):
        return h
    if isinstance(h, (tuple, list)):
        for item in h:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None
