"""An encoder-only tagger built from any EncoderBlock class: the stack of notebook 06's
post-LN / pre-LN comparison, and the model the learner's own EncoderBlock (exercise 06.2) trains."""

from __future__ import annotations

from torch import Tensor, nn

from .._validate import check_int as _check_int
from .blocks import EncoderBlock
from .embedding import TokenEmbedding

__all__ = ["EncoderTagger"]


class EncoderTagger(nn.Module):
    """tokens (B, L) -> TokenEmbedding -> block x num_layers -> [LayerNorm] -> Linear -> logits (B, L, C).

    ``block`` is the encoder block class, called as block(d_model, num_heads,
    d_ff, dropout=dropout, norm_first=norm_first): ``EncoderBlock`` by default,
    or a learner's own. With pre-LN (norm_first=True) a final LayerNorm closes
    the stack, as in GPT-2; post-LN blocks already end normalised.
    """

    def __init__(self, vocab_size: int, num_classes: int, d_model: int = 32, num_heads: int = 2, d_ff: int = 64,
                 num_layers: int = 2, max_len: int = 64, positional: str = "learned", norm_first: bool = True,
                 dropout: float = 0.0, block: type = EncoderBlock):
        super().__init__()
        num_layers = _check_int("num_layers", num_layers)
        if not (isinstance(block, type) and issubclass(block, nn.Module)):
            raise TypeError(f"block must be an nn.Module class such as EncoderBlock, got {block!r}")
        self.embed = TokenEmbedding(vocab_size, d_model, max_len=max_len, positional=positional)
        self.blocks = nn.ModuleList(block(d_model, num_heads, d_ff, dropout=dropout, norm_first=norm_first)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, _check_int("num_classes", num_classes))

    def forward(self, tokens: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        x = self.embed(tokens)  # (B, L, E)
        for block in self.blocks:
            x = block(x, key_padding_mask)
        return self.head(self.norm(x))  # (B, L, C)
