"""The masked language model objective (BERT; Devlin et al. 2019), on characters.

GPT reads left to right: position t sees tokens 0 .. t and predicts token
t + 1 (a causal mask, every position a target). BERT reads the whole window:
some tokens are replaced by a [MASK] id, every position sees every other, and
only the masked positions are targets. The network is the same stack
(``GPT(GPTConfig(causal=False, vocab_size=V + 1))``): one mask and one
objective differ.

Simplification: every chosen token becomes [MASK] (BERT replaces 80% by
[MASK], 10% by a random token and keeps 10%, so that fine-tuning inputs,
which have no [MASK], look like training inputs; we never fine-tune).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IGNORE", "mask_tokens", "masked_lm_loss", "fill_in_comparison"]

IGNORE = -100  # F.cross_entropy's ignore_index: positions that are not targets


def mask_tokens(tokens: Tensor, mask_id: int, rate: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Hide a random `rate` of the tokens -> (inputs, targets), each (B, T).

    inputs: tokens with the chosen positions replaced by mask_id.
    targets: the original token at the chosen positions, IGNORE (-100) elsewhere.
    Every row gets at least one masked position.
    """
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a LongTensor of shape (B, T), got "
                         f"{tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__}")
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    B, T = tokens.shape
    chosen = torch.rand(B, T, generator=generator) < rate  # (B, T)
    forced = torch.randint(0, T, (B,), generator=generator)  # (B,) one sure position per row
    chosen[torch.arange(B), forced] = True
    chosen = chosen.to(tokens.device)
    inputs = tokens.masked_fill(chosen, mask_id)
    targets = tokens.masked_fill(~chosen, IGNORE)
    return inputs, targets


def masked_lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over the masked positions only: logits (B, T, V), targets (B, T) with IGNORE elsewhere.

    No shift: the model predicts the token at the position it reads (hidden
    behind [MASK]), not the next one.
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must share (B, T)")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)


@torch.no_grad()
def fill_in_comparison(gpt, mlm, windows: Tensor, position: int, mask_id: int) -> dict[str, Tensor]:
    """How well each model predicts the character at `position` of each window.

    windows (N, T) long. The GPT reads windows[:, :position] (the left side
    only) and predicts the next character; the masked LM reads the whole
    window with windows[:, position] replaced by mask_id. Both are scored over
    the real vocabulary (the masked LM's [MASK] output left out).
    -> {"gpt_nll", "mlm_nll"}: (N,) nats; {"gpt_correct", "mlm_correct"}: (N,) bool (argmax right).
    """
    if not isinstance(windows, Tensor) or windows.dim() != 2:
        raise ValueError(f"windows must be a LongTensor of shape (N, T), got {getattr(windows, 'shape', windows)}")
    N, T = windows.shape
    if not 1 <= position < T:
        raise ValueError(f"position must be in [1, {T}) so that the GPT has a left side to read, got {position}")
    target = windows[:, position]  # (N,)
    gpt_logits = gpt(windows[:, :position])[:, -1]  # (N, V)
    V = gpt_logits.shape[-1]
    hidden = windows.clone()
    hidden[:, position] = mask_id
    mlm_logits = mlm(hidden)[:, position, :V]  # (N, V), without the [MASK] output
    result = {}
    for name, logits in (("gpt", gpt_logits), ("mlm", mlm_logits)):
        result[f"{name}_nll"] = F.cross_entropy(logits, target, reduction="none")
        result[f"{name}_correct"] = logits.argmax(-1) == target
    return result
