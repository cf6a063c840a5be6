"""The trained models of notebook 04: one attention layer with 1 or 2 heads names the token before and after.

Both models have the same number of parameters (splitting into heads only
partitions the width), see the same batches in the same order and start from
the same seed; ``neighbours_1_head`` and ``neighbours_2_heads`` differ only in
``num_heads``.

    run = experiments.run("neighbours_2_heads", seed=1)   # CachedRun: model, history, from_cache
    task = neighbours_task(NEIGHBOURS)                     # the data it was trained on
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..train import CachedRun, device, train_loop
from .core import cached, register

__all__ = ["NeighboursConfig", "NEIGHBOURS", "neighbours_task", "neighbours_1_head", "neighbours_2_heads"]


@dataclass(frozen=True)
class NeighboursConfig:
    """AttentionTagger (one pre-LN attention layer + feed-forward, learned positions, two classifiers)
    on NeighboursTask(num_symbols, length)."""

    num_symbols: int = 10
    length: int = 12
    d_model: int = 32
    d_ff: int = 64
    num_heads: int = 2
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0


#: Notebook 04's experiment (the 2-head model; ``num_heads=1`` gives the other).
NEIGHBOURS = NeighboursConfig()


def neighbours_task(config: NeighboursConfig = NEIGHBOURS):
    """The NeighboursTask a config trains on."""
    from ..data import NeighboursTask

    return NeighboursTask(num_symbols=config.num_symbols, length=config.length)


def _loss(model, batch):
    from ..transformer import tagging_loss

    return tagging_loss(model(batch.tokens), batch.targets)  # logits (B, L, 2, C), targets (B, L, 2)


def _neighbours(config: NeighboursConfig, progress: bool = True) -> CachedRun:
    """One attention layer with `num_heads` heads, trained to name the token before and after every position."""
    from ..transformer import AttentionTagger

    task = neighbours_task(config)
    dev = device()

    def build():
        torch.manual_seed(config.seed)
        return AttentionTagger(vocab_size=len(task.vocab), num_classes=len(task.vocab), d_model=config.d_model,
                               num_heads=config.num_heads, num_layers=1, d_ff=config.d_ff, max_len=config.length,
                               positional="learned", num_outputs=2).to(dev)

    def fit(model):
        generator = torch.Generator().manual_seed(config.seed)  # the same sequences whatever the number of heads
        heads = "1 head" if config.num_heads == 1 else f"{config.num_heads} heads"
        return train_loop(model, lambda step: task.batch(config.batch_size, generator).to(dev), _loss,
                          steps=config.steps, lr=config.lr, progress=progress, desc=heads)

    return cached("neighbours", config, build, fit)


neighbours_1_head = register("neighbours_1_head", "04_multi_head_attention", NeighboursConfig(num_heads=1),
                             "one attention layer with 1 head: the token before and after")(_neighbours)
neighbours_2_heads = register("neighbours_2_heads", "04_multi_head_attention", NEIGHBOURS,
                              "the same layer with 2 heads, same width, batches and seed")(_neighbours)
