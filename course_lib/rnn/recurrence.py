"""The vanilla RNN recurrence (Elman 1990), greedy decoding, and the vanishing-gradient measurement."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .._validate import check_int, shape_text
from .._validate import describe as _describe


def rnn_forward(x: Tensor, h0: Tensor, W_xh: Tensor, W_hh: Tensor, b_h: Tensor) -> tuple[Tensor, Tensor]:
    """Run a vanilla (Elman) RNN over a sequence.

    x (B, T, D), h0 (B, H), W_xh (D, H), W_hh (H, H), b_h (H,)
    -> outputs (B, T, H) holding h_1..h_T, and h_last (B, H) = h_T (h0 when T = 0).
    """
    for name, t, nd in (("x", x, 3), ("h0", h0, 2), ("W_xh", W_xh, 2), ("W_hh", W_hh, 2), ("b_h", b_h, 1)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != nd:
            raise ValueError(f"{name} must be {nd}-D, got shape {shape_text(t.shape)}")
    B, T, D = x.shape
    H = h0.shape[1]
    if h0.shape[0] != B:
        raise ValueError(f"h0 has batch size {h0.shape[0]} but x has {B}; expected h0 of shape ({B}, H)")
    if W_xh.shape != (D, H) or W_hh.shape != (H, H) or b_h.shape != (H,):
        raise ValueError(
            f"W_xh {shape_text(W_xh.shape)}, W_hh {shape_text(W_hh.shape)}, b_h {shape_text(b_h.shape)} do not "
            f"fit x {shape_text(x.shape)} and h0 {shape_text(h0.shape)}; expected W_xh ({D}, {H}), "
            f"W_hh ({H}, {H}), b_h ({H},)"
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
                  max_len: int, batch_size: int | None = None) -> Tensor:
    """Greedy decoding: feed back the argmax token until every row emitted EOS.

    step_fn(tokens (B,), h) -> (logits (B, V), h). h0 is the decoder's initial
    state: a (B, H) tensor, or any object step_fn understands (a tuple, torch's
    (num_layers, B, H) layout...) together with ``batch_size=B``, because the
    batch size cannot be read reliably from such a state (a (B, S, H) tensor and
    a (num_layers, B, H) one have the same rank). Returns a LongTensor
    (B, max_len): after a row emits eos_id, every later position of that row is
    eos_id, and step_fn is not called again once all rows have finished.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable, got {type(step_fn).__name__}")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if batch_size is not None:
        B = check_int("batch_size", batch_size, 1)
    elif isinstance(h0, Tensor) and h0.dim() == 2:
        B = h0.shape[0]  # (B, H)
    else:
        got = f"a tensor of shape {shape_text(h0.shape)}" if isinstance(h0, Tensor) else f"a {type(h0).__name__}"
        raise ValueError(f"h0 is {got}: pass batch_size=B (the batch size is read from h0 only when h0 is a "
                         "(B, H) tensor)")
    first = _first_tensor(h0)
    device = first.device if first is not None else torch.device("cpu")
    out = torch.full((B, max_len), eos_id, dtype=torch.long, device=device)
    tokens = torch.full((B,), sos_id, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != B:
            raise ValueError(f"step_fn must return logits of shape ({B}, V) for {B} rows, got {_describe(logits)}")
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


# --------------------------------------------------------------------------- 2. vanishing gradients


def hidden_gradient_norms(x: Tensor, h0: Tensor, W_xh: Tensor, W_hh: Tensor, b_h: Tensor) -> Tensor:
    """Frobenius norms of d h_T / d h_t for a vanilla RNN, t = 1..T, averaged over the batch.

    Same arguments as ``rnn_forward``. Returns norms (T,): norms[t - 1] =
    mean over the batch of ||d h_T / d h_t||. With h_k = tanh(a_k) the chain
    rule gives d h_k / d h_{k-1} = diag(1 - h_k^2) W_hh^T, so the Jacobian is
    a product of T - t such factors; each factor with norm below one shrinks
    it, which is the vanishing gradient (Bengio et al. 1994; Pascanu et al.
    2013). Computed exactly, one matrix product per step; tests compare it
    with autograd. The norms shrink geometrically, so in float32 they reach
    exactly 0 after a few dozen steps of a small W_hh; pass float64 tensors
    to follow them further (notebook 01 does).
    """
    outputs, _ = rnn_forward(x, h0, W_xh, W_hh, b_h)  # (B, T, H)
    B, T, H = outputs.shape
    if T == 0:
        return outputs.new_zeros(0)
    jac = torch.eye(H, dtype=outputs.dtype, device=outputs.device).expand(B, H, H)  # d h_T / d h_T
    norms = [jac.norm(dim=(1, 2)).mean()]
    for k in range(T - 1, 0, -1):  # extend d h_T / d h_{k+1} to d h_T / d h_k
        step = (1 - outputs[:, k] ** 2).unsqueeze(2) * W_hh.T  # (B, H, H): d h_{k+1} / d h_k
        jac = jac @ step
        norms.append(jac.norm(dim=(1, 2)).mean())
    return torch.stack(norms[::-1]).detach()

