"""The encoder-decoder Transformer (Vaswani et al. 2017, figure 1), configured by a frozen dataclass.

    src (B, S) -> TokenEmbedding -> EncoderBlock x N -> LayerNorm -> memory (B, S, E)
    tgt_in (B, T) -> TokenEmbedding -> DecoderBlock x N (causal self-attention,
                     cross-attention to memory) -> LayerNorm -> Linear -> logits (B, T, V)

``TransformerConfig`` holds every size, nanoGPT style: ``Transformer(config)``,
variants with ``dataclasses.replace``. ``memory="pooled"`` is the ablation of
notebook 06: the decoder's cross-attention sees one vector, the mean of the
encoder's outputs, instead of every source position: the bottleneck of the
RNN encoder-decoder of notebook 01, put back into a Transformer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._validate import check_int as _check_int
from .._validate import check_source_batch
from .._validate import describe as _describe
from ..rnn import greedy_decode
from .blocks import DecoderBlock, EncoderBlock
from .embedding import POSITIONAL_KINDS, TokenEmbedding

__all__ = ["MEMORY_KINDS", "TransformerConfig", "Transformer"]

MEMORY_KINDS = ("attention", "pooled")


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes of an encoder-decoder Transformer. The paper's base model is d_model=512, num_heads=8,
    6 + 6 layers, d_ff=2048, dropout=0.1, post-LN (norm_first=False); the defaults here are a small pre-LN one."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 64
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.0
    max_len: int = 64
    norm_first: bool = True
    positional: str = "sinusoidal"
    memory: str = "attention"
    pad_id: int = 0
    sos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "num_heads", "d_ff", "max_len"):
            _check_int(name, getattr(self, name))
        for name in ("num_encoder_layers", "num_decoder_layers"):
            _check_int(name, getattr(self, name), minimum=0 if name == "num_encoder_layers" else 1)
        for name in ("pad_id", "sos_id", "eos_id"):
            if not 0 <= _check_int(name, getattr(self, name), minimum=0) < self.tgt_vocab_size:
                raise ValueError(f"{name} = {getattr(self, name)} is not an id of the target vocabulary "
                                 f"(size {self.tgt_vocab_size})")
        if self.positional not in POSITIONAL_KINDS:
            raise ValueError(f"positional must be one of {list(POSITIONAL_KINDS)}, got {self.positional!r}")
        if self.memory not in MEMORY_KINDS:
            raise ValueError(f"memory must be one of {list(MEMORY_KINDS)}, got {self.memory!r}")


class Transformer(nn.Module):
    """Sequence-to-sequence Transformer built from EncoderBlock and DecoderBlock.

    forward(src (B, S), src_lengths (B,), tgt_in (B, T)) -> logits (B, T, tgt_vocab_size):
    teacher forcing, every target position at once. ``generate`` decodes
    greedily until every row has written EOS. ``attention_maps`` returns every
    layer's and head's weights for one batch.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = c = config
        self.pad_id, self.sos_id, self.eos_id = c.pad_id, c.sos_id, c.eos_id
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, max_len=c.max_len, positional=c.positional)
        self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, max_len=c.max_len, positional=c.positional)
        for embed in (self.src_embed, self.tgt_embed):
            # Token vectors start at unit scale, like the sinusoidal positions added to them (the paper
            # multiplies its embeddings by sqrt(d_model) for the same reason, sec. 3.4); GPT-2's 0.02
            # would leave the tokens drowned by their positions for the first hundreds of steps.
            nn.init.normal_(embed.token.weight, std=1.0)
        block = dict(d_model=c.d_model, num_heads=c.num_heads, d_ff=c.d_ff, dropout=c.dropout,
                     norm_first=c.norm_first)
        self.encoder = nn.ModuleList(EncoderBlock(**block) for _ in range(c.num_encoder_layers))
        self.decoder = nn.ModuleList(DecoderBlock(**block) for _ in range(c.num_decoder_layers))
        # Pre-LN leaves the residual stream un-normalised: one LayerNorm closes each stack (as nn.Transformer).
        self.encoder_norm = nn.LayerNorm(c.d_model)
        self.decoder_norm = nn.LayerNorm(c.d_model)
        self.out = nn.Linear(c.d_model, c.tgt_vocab_size)

    def extra_repr(self) -> str:
        c = self.config
        return f"memory={c.memory!r}, norm_first={c.norm_first}"

    # -- encoder

    def _check_src(self, src, src_lengths) -> tuple[Tensor, Tensor]:
        check_source_batch(src, src_lengths)
        return src, src_lengths.to(src.device)

    def encode(self, src: Tensor, src_lengths: Tensor, need_weights: bool = False):
        """-> memory (B, S', E), memory padding mask (B, S') bool True = padding (or None), encoder weights.

        S' = S, or 1 with memory="pooled" (the mean over real source positions). Encoder
        weights: one (B, H, S, S) tensor per layer when need_weights, else an empty list.
        """
        src, src_lengths = self._check_src(src, src_lengths)
        padded = torch.arange(src.shape[1], device=src.device) >= src_lengths.unsqueeze(1)  # (B, S) True = pad
        x = self.src_embed(src)  # (B, S, E)
        maps = []
        for block in self.encoder:
            x, w = block.forward_with_weights(x, padded, need_weights=need_weights)
            if need_weights:
                maps.append(w)
        memory = self.encoder_norm(x)
        if self.config.memory == "pooled":
            keep = (~padded).unsqueeze(-1).to(memory.dtype)  # (B, S, 1)
            memory = (memory * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True)  # (B, 1, E)
            padded = None
        return memory, padded, maps

    # -- decoder

    def decode(self, tgt_in: Tensor, memory: Tensor, memory_padding: Tensor | None, need_weights: bool = False):
        """tgt_in (B, T) -> logits (B, T, V), decoder self weights and cross weights (lists per layer)."""
        if not isinstance(tgt_in, Tensor) or tgt_in.dim() != 2 or tgt_in.shape[0] != memory.shape[0]:
            raise ValueError(f"tgt_in must be a LongTensor ({memory.shape[0]}, T): <sos> + target, got "
                             f"{_describe(tgt_in)}")
        x = self.tgt_embed(tgt_in)  # (B, T, E)
        self_maps, cross_maps = [], []
        for block in self.decoder:
            # Padding after EOS needs no mask: causality keeps real positions from seeing it.
            x, ws, wc = block.forward_with_weights(x, memory, None, memory_padding, need_weights=need_weights)
            if need_weights:
                self_maps.append(ws)
                cross_maps.append(wc)
        return self.out(self.decoder_norm(x)), self_maps, cross_maps  # (B, T, V)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        memory, padding, _ = self.encode(src, src_lengths)
        return self.decode(tgt_in, memory, padding)[0]

    @torch.no_grad()
    def attention_maps(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> dict[str, list[Tensor]]:
        """Every attention weight for one teacher-forced batch, each a list with one tensor per layer:
        "encoder" (B, H, S, S), "decoder" (B, H, T, T) (causal), "cross" (B, H, T, S')."""
        was_training = self.training
        self.eval()
        try:
            memory, padding, enc = self.encode(src, src_lengths, need_weights=True)
            _, dec, cross = self.decode(tgt_in, memory, padding, need_weights=True)
        finally:
            self.train(was_training)
        return {"encoder": enc, "decoder": dec, "cross": cross}

    @torch.no_grad()
    def generate(self, src: Tensor, src_lengths: Tensor, max_len: int) -> Tensor:
        """Greedy decoding (course_lib.rnn.greedy_decode): -> tokens (B, max_len); after a row writes
        EOS every later position of that row is EOS, and decoding stops once every row has.

        Each step runs the decoder over the whole prefix written so far (no key/value cache:
        notebook 09 adds one); the encoder runs once.
        """
        max_len = _check_int("max_len", max_len)
        if max_len + 1 > self.config.max_len:
            raise ValueError(f"max_len = {max_len} needs {max_len + 1} target positions, more than the model's "
                             f"max_len = {self.config.max_len}")
        was_training = self.training
        self.eval()
        try:
            memory, padding, _ = self.encode(src, src_lengths)

            def step(tokens, prefix):
                prefix = torch.cat([prefix, tokens.unsqueeze(1)], dim=1)  # (B, t + 1)
                logits = self.decode(prefix, memory, padding)[0]  # (B, t + 1, V)
                return logits[:, -1], prefix

            empty = src.new_zeros((src.shape[0], 0))  # (B, 0): nothing written yet
            return greedy_decode(step, empty, self.sos_id, self.eos_id, max_len)
        finally:
            self.train(was_training)


