"""Transformer models, small to large, each module built from the ones before it.

Ordered by dependency, as nanoGPT's model.py is:

1. ``embedding``: ``TokenEmbedding``, token ids -> vectors plus positional
   information of one of three kinds: none, sinusoidal or learned (notebook 05).
2. ``feedforward``: ``FeedForward``, the position-wise two-layer network
   (Vaswani et al. 2017, eq. 2).
3. ``tagger``: ``AttentionLayer`` (one self-attention sublayer, pre-LN,
   optionally with a feed-forward sublayer) and ``AttentionTagger``, which
   labels every position (notebooks 04 and 05).
4. ``blocks``: ``EncoderBlock`` and ``DecoderBlock`` of the Transformer, pre-
   or post-LN, interchangeable with torch's ``nn.TransformerEncoderLayer`` /
   ``nn.TransformerDecoderLayer`` (notebook 06).
5. ``model``: ``TransformerConfig`` and the encoder-decoder ``Transformer``;
   ``encoder``: ``EncoderTagger``, an encoder-only stack of any block class;
   ``decoder_mask``: ``decoder_self_mask``, causal and key-padding mask per sequence.
6. ``training`` (warm-up, label smoothing, exact match) and ``complexity``
   (Vaswani et al.'s Table 1, measured).

Attention itself is ``course_lib.attention.MultiHeadAttention`` (the
interface of ``torch.nn.MultiheadAttention``): its teaching implementation
runs when the weights are asked for, torch's fused kernel when they are not.

Every name is importable from ``course_lib.transformer`` directly.
"""

from .blocks import DecoderBlock, EncoderBlock
from .decoder_mask import decoder_self_mask
from .embedding import POSITIONAL_KINDS, TokenEmbedding
from .encoder import EncoderTagger
from .feedforward import FeedForward
from .model import Transformer, TransformerConfig
from .tagger import AttentionLayer, AttentionTagger, tagging_accuracy, tagging_loss

__all__ = [
    "POSITIONAL_KINDS",
    "TokenEmbedding",
    "FeedForward",
    "AttentionLayer",
    "AttentionTagger",
    "tagging_loss",
    "tagging_accuracy",
    "EncoderBlock",
    "DecoderBlock",
    "TransformerConfig",
    "Transformer",
    "EncoderTagger",
    "decoder_self_mask",
]
