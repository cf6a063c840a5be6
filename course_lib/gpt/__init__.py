"""A character-level GPT and a small masked LM (notebook 07), one file per idea:

* ``model``: ``GPTConfig``, ``GPT`` and the ``KVCache`` it generates with.
* ``sampling``: ``next_token_loss``, ``sample_next`` (temperature, top-k), ``generate``.
* ``masked``: the BERT-style masked LM objective on the same stack without the causal mask.
* ``memorise``: the longest substring of a sample copied from the training text.
* ``bench``: generation speed with and without the cache, training throughput against matmul.
"""

from .masked import fill_in_comparison, mask_tokens, masked_lm_loss
from .memorise import longest_copied_substring
from .model import GPT, MLP, Block, CausalSelfAttention, GPTConfig, KVCache
from .sampling import OVERFLOW_POLICIES, generate, next_token_loss, sample_next, sampling_probs

__all__ = [
    "GPTConfig", "GPT", "KVCache", "CausalSelfAttention", "MLP", "Block",
    "next_token_loss", "sample_next", "sampling_probs", "generate", "OVERFLOW_POLICIES",
    "mask_tokens", "masked_lm_loss", "fill_in_comparison", "longest_copied_substring",
]
