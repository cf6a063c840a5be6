"""Training objective and sampling of a language model: next-token loss, temperature, top-k, generation.

``next_token_loss`` and ``sample_next`` are the reference answers of
exercises 07.1 and 07.2. ``generate`` runs a GPT autoregressively, with or
without its KV cache (course_lib.gpt.model.KVCache).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validate import check_int

__all__ = ["next_token_loss", "sampling_probs", "sample_next", "generate", "OVERFLOW_POLICIES"]

OVERFLOW_POLICIES = ("recompute", "restart")


def next_token_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Mean cross-entropy of predicting each token from the ones before it (nats per token).

    logits (B, T, V) produced from tokens (B, T): logits[:, t] predicts
    tokens[:, t + 1], so the last position has no target and the first token
    is never predicted: mean over B * (T - 1) terms of
    -log softmax(logits[:, :-1])[tokens[:, 1:]].
    """
    if not isinstance(logits, Tensor) or logits.dim() != 3 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor of shape (B, T, V), got "
                         f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}")
    if not isinstance(tokens, Tensor) or tokens.shape != logits.shape[:2] or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a LongTensor of shape (B, T) = {tuple(logits.shape[:2])} matching "
                         f"logits {tuple(logits.shape)}, got "
                         f"{(tuple(tokens.shape), tokens.dtype) if isinstance(tokens, Tensor) else type(tokens).__name__}")
    if logits.shape[1] < 2:
        raise ValueError(f"need T >= 2 positions to predict a next token, got T = {logits.shape[1]}")
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))  # shift by one


def _check_sampling(temperature, top_k, V: int):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = always the most likely token), got {temperature!r}")
    if top_k is not None:
        top_k = check_int("top_k", top_k)
        top_k = min(top_k, V)
    return float(temperature), top_k


def sampling_probs(logits: Tensor, temperature: float = 1.0, top_k: int | None = None) -> Tensor:
    """The distribution sample_next draws from: logits (..., V) -> probabilities (..., V).

    softmax(logits / temperature) restricted to the top_k largest logits (ties
    at the k-th value kept) and renormalised; temperature 0 puts all the mass
    on the argmax.
    """
    temperature, top_k = _check_sampling(temperature, top_k, logits.shape[-1])
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    scaled = logits / temperature  # (..., V)
    if top_k is not None:
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]  # (..., 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    return torch.softmax(scaled, dim=-1)  # (..., V)


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row from softmax(logits / temperature), keeping only the top_k most likely.

    logits (B, V) -> LongTensor (B,). temperature 0 means argmax (the limit
    of ever sharper distributions); temperature > 1 flattens the distribution,
    < 1 sharpens it. top_k keeps the k largest logits of each row (ties at the
    k-th value kept too) and renormalises (Fan et al. 2018).
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor of shape (B, V), got "
                         f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}")
    temperature, top_k = _check_sampling(temperature, top_k, logits.shape[-1])
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    probs = sampling_probs(logits, temperature, top_k)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


@torch.no_grad()
def generate(model, tokens: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             use_cache: bool = True, generator: torch.Generator | None = None, overflow: str = "recompute",
             return_logits: bool = False):
    """Continue `tokens` (B, T0) by max_new_tokens sampled tokens -> (B, T0 + max_new_tokens)
    (and the logits each new token was sampled from, (B, max_new_tokens, V), if return_logits).

    Without the cache every step runs the model on the whole sequence so far
    (its last block_size tokens): step t costs O(t) positions, O(t^2) attention.
    With the cache (use_cache=True) the prompt is run once and every later
    step runs one position, reading the cached keys and values: the logits
    are the same (up to float rounding), the work per step is O(1) positions.

    Past the context length. Positions are learned absolute embeddings
    0 .. block_size - 1, so the sequence cannot go on at position block_size.
    Without the cache, the model reads the last block_size tokens at positions
    0 .. block_size - 1: every token moves one position to the left at every
    step, which changes its position embedding and therefore every cached key
    and value: a full cache cannot simply slide. ``overflow`` says what the
    cache does then:

    * ``"recompute"`` (default, exact): every further step recomputes the last
      block_size tokens from scratch, like the uncached path; logits stay
      identical to recomputation, the speed-up drops to 1.
    * ``"restart"``: refill the cache once with the last block_size // 2
      tokens and go on one token per step until it is full again. Faster
      (one prefill per block_size // 2 tokens), but the model then sees only
      block_size // 2 .. block_size tokens of context, so its logits differ
      from the uncached path.
    """
    from .model import GPT

    if not isinstance(model, GPT):
        raise TypeError(f"model must be a course_lib.gpt.GPT, got {type(model).__name__}")
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long or tokens.shape[1] < 1:
        raise ValueError(f"tokens must be a LongTensor of shape (B, T0) with T0 >= 1 (the prompt), got "
                         f"{tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__}")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=0)
    _check_sampling(temperature, top_k, model.config.vocab_size)
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {list(OVERFLOW_POLICIES)}, got {overflow!r}")
    was_training = model.training
    model.eval()
    block = model.config.block_size
    out = tokens.to(model.wte.weight.device)
    all_logits = []
    cache = model.new_cache(out.shape[0]) if use_cache else None
    pending = out[:, -block:]  # what the model has not read yet
    try:
        for _ in range(max_new_tokens):
            if cache is None:
                logits = model(out[:, -block:])[:, -1]  # (B, V), the whole window again
            elif cache.length + pending.shape[1] <= block:
                logits = model(pending, cache)[:, -1]  # (B, V), only the new positions
            elif overflow == "recompute":
                logits = model(out[:, -block:])[:, -1]  # (B, V); the full cache is no longer used
            else:
                cache.length = 0
                logits = model(out[:, -(block // 2):], cache)[:, -1]  # (B, V), refills half the cache
            next_id = sample_next(logits, temperature, top_k, generator)  # (B,)
            all_logits.append(logits)
            out = torch.cat([out, next_id[:, None]], dim=1)  # (B, T + 1)
            pending = out[:, -1:]
    finally:
        model.train(was_training)
    if return_logits:
        V = model.config.vocab_size
        stacked = torch.stack(all_logits, dim=1) if all_logits else out.new_zeros((out.shape[0], 0, V), dtype=torch.float)
        return out, stacked
    return out
