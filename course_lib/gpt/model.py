"""A decoder-only Transformer (GPT; Radford et al. 2018, 2019), small enough to train on a laptop CPU.

Ordered by dependency, as nanoGPT's model.py is:

1. ``GPTConfig``: every size of the model in one frozen dataclass.
2. ``KVCache``: the keys and values of every layer, kept between generation steps.
3. ``CausalSelfAttention``: ``course_lib.attention.MultiHeadAttention``'s
   projections (q_proj, k_proj, v_proj, out_proj) around
   ``scaled_dot_product_attention(..., is_causal=True)``, reading and writing the cache.
4. ``MLP``: GPT-2's feed-forward sublayer (GELU, 4x wider).
5. ``Block``: pre-LayerNorm residual block, x + attn(LN(x)), then x + mlp(LN(x)).
6. ``GPT``: token and learned position embeddings, blocks, final LayerNorm,
   a linear head tied to the token embedding.

``GPTConfig(causal=False)`` builds the same stack without the causal mask:
an encoder that sees both sides, which the masked LM of notebook 07 uses
(``course_lib.gpt.masked``): BERT and GPT differ by one mask and an objective.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validate import check_int
from ..attention import MultiHeadAttention, merge_heads, scaled_dot_product_attention, split_heads

__all__ = ["GPTConfig", "KVCache", "CausalSelfAttention", "MLP", "Block", "GPT"]


@dataclass(frozen=True)
class GPTConfig:
    """The sizes of a GPT. n_embd must be divisible by n_head.

    block_size is the context length: the model has one learned position
    vector per position 0 .. block_size - 1 and cannot read a longer input.
    causal=False removes the causal mask (a bidirectional encoder, BERT-style).
    fast=True runs attention through torch's fused kernel, fast=False through
    the course's readable implementation; both give the same numbers.
    """

    vocab_size: int = 106
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    causal: bool = True
    fast: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_int(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd = {self.n_embd} must be divisible by n_head = {self.n_head}: "
                             "each head gets n_embd / n_head features")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def replace(self, **changes) -> "GPTConfig":
        """A copy with some fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)


class KVCache:
    """The keys and values every layer has computed so far, for generation one token at a time.

    Layout: ``keys`` and ``values`` are each a tensor of shape
    (n_layer, B, n_head, block_size, head_dim), allocated once; the first
    ``length`` positions along dim 3 are filled. Size in bytes:
    2 * n_layer * B * block_size * n_embd * bytes per number (``nbytes``),
    e.g. 2 * 4 * 1 * 128 * 128 * 4 = 0.5 MiB for the default config, batch 1.
    Positions are absolute: slot t holds the key and value of the token at
    position t, computed with position embedding t. That is why the cache
    cannot slide past block_size (see ``GPT.generate``).
    """

    def __init__(self, config: GPTConfig, batch_size: int, device=None, dtype=torch.float32):
        batch_size = check_int("batch_size", batch_size)
        head_dim = config.n_embd // config.n_head
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)  # (n_layer, B, H, block_size, Dh)
        self.values = torch.zeros(shape, device=device, dtype=dtype)  # (n_layer, B, H, block_size, Dh)
        self.length = 0
        self.capacity = config.block_size

    @property
    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size() * 2

    def append(self, layer: int, k: Tensor, v: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """Write k, v (B, H, l, Dh) at positions start .. start + l - 1 of `layer`;
        -> all keys and values so far, each (B, H, start + l, Dh)."""
        end = start + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} positions (block_size); writing up to {end} "
                             "does not fit: learned positions stop at block_size - 1")
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def __repr__(self) -> str:
        return (f"KVCache(length={self.length}/{self.capacity}, shape={tuple(self.keys.shape)} x 2, "
                f"{self.nbytes / 2**20:.2f} MiB)")


class CausalSelfAttention(MultiHeadAttention):
    """Masked multi-head self-attention (Vaswani et al. 2017, sec. 3.2.3), with a KV cache.

    The projections q_proj, k_proj, v_proj, out_proj and their initialisation
    are ``MultiHeadAttention``'s. forward(x (B, l, E), cache=None, layer=0)
    -> (B, l, E). Without a cache, x is the whole sequence and query i sees
    keys j <= i (``is_causal=True``). With a cache holding ``cache.length``
    earlier positions, x holds the l new positions: their keys and values are
    appended, and new query i (absolute position length + i) sees every key
    up to its own position.
    """

    def __init__(self, config: GPTConfig):
        super().__init__(config.n_embd, config.n_head, dropout=config.dropout, batch_first=True, fast=config.fast)
        self.causal = config.causal

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        B, l, E = x.shape
        q = split_heads(self.q_proj(x), self.num_heads)  # (B, H, l, Dh)
        k = split_heads(self.k_proj(x), self.num_heads)  # (B, H, l, Dh)
        v = split_heads(self.v_proj(x), self.num_heads)  # (B, H, l, Dh)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v, past)  # (B, H, past + l, Dh) each
        dropout_p = self.dropout if self.training else 0.0
        if not self.causal or l == 1:
            # one new query may see every cached key: no mask needed
            out = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, fast=self.fast)
        elif past == 0:
            out = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, fast=self.fast)
        else:
            # several new queries after a filled cache: query i sits at position past + i
            keep = torch.ones(l, past + l, dtype=torch.bool, device=x.device).tril(diagonal=past)  # (l, past + l)
            out = scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout_p, fast=self.fast)
        return self.out_proj(merge_heads(out))  # (B, l, E)


class MLP(nn.Module):
    """GPT-2's position-wise feed-forward sublayer: GELU(x W1 + b1) W2 + b2, width 4 * n_embd.

    (The Transformer of notebook 06 uses ReLU; GPT uses GELU, Hendrycks & Gimpel 2016.)
    x (..., E) -> (..., E).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (..., E)


class Block(nn.Module):
    """One pre-LayerNorm Transformer block: x + attn(LN(x)), then x + mlp(LN(x)). (B, l, E) -> (B, l, E)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A decoder-only language model: tokens (B, T) -> logits (B, T, vocab_size).

    logits[:, t] scores the token at position t + 1 given tokens 0 .. t (with
    ``config.causal``). T <= config.block_size. The output head shares its
    weight with the token embedding (Press & Wolf 2017), as GPT-2 does.
    ``generate`` (course_lib.gpt.sampling) samples continuations, with or
    without a KV cache.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT takes a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.wte.weight
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2: N(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2 n_layer)
        # so that the residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith(("out_proj.weight", "mlp.proj.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def num_parameters(self, embeddings: bool = True) -> int:
        """Parameters (the tied head counted once); embeddings=False leaves out both embedding tables."""
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.wte.weight.numel() - self.wpe.weight.numel()

    def _check(self, tokens: Tensor, start: int) -> None:
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
            got = f"shape {tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be a LongTensor of shape (B, T) (token ids), got {got}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.vocab_size):
            raise ValueError(f"tokens must be ids in [0, {self.config.vocab_size}), got values from "
                             f"{int(tokens.min())} to {int(tokens.max())}")
        if start + tokens.shape[1] > self.config.block_size:
            raise ValueError(
                f"positions {start} .. {start + tokens.shape[1] - 1} go past the context length block_size = "
                f"{self.config.block_size}: the model has no position embedding beyond {self.config.block_size - 1}; "
                "crop the input to its last block_size tokens"
            )

    def forward(self, tokens: Tensor, cache: KVCache | None = None) -> Tensor:
        """tokens (B, l) -> logits (B, l, vocab_size).

        With a cache, tokens are the l positions after the cache.length cached
        ones; their keys and values are added and cache.length grows by l.
        """
        start = 0 if cache is None else cache.length
        self._check(tokens, start)
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)  # (l,)
        x = self.drop(self.wte(tokens) + self.wpe(positions))  # (B, l, E)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length = start + tokens.shape[1]
        return self.head(self.ln_f(x))  # (B, l, V)

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty KVCache for this model (on its device and dtype)."""
        w = self.wte.weight
        return KVCache(self.config, batch_size, device=w.device, dtype=w.dtype)

    def generate(self, tokens: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True, generator: torch.Generator | None = None, overflow: str = "recompute",
                 return_logits: bool = False):
        """See course_lib.gpt.sampling.generate: tokens (B, T0) -> (B, T0 + max_new_tokens)."""
        from .sampling import generate

        return generate(self, tokens, max_new_tokens, temperature=temperature, top_k=top_k, use_cache=use_cache,
                        generator=generator, overflow=overflow, return_logits=return_logits)
