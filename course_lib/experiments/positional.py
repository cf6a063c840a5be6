"""The trained models of notebook 05: reversing strings of a fixed length, with and without positions.

One config, one field that changes: ``positional`` ("none", "sinusoidal",
"learned"). Every run starts from the same seed and sees the same batches, so
the models differ only in what they know about order.

    run = experiments.run("order_sinusoidal", seed=1)
    task = order_task(ORDER)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..train import CachedRun, device, train_loop
from .core import cached, register

__all__ = ["OrderConfig", "ORDER", "order_task", "order_batch", "order_none", "order_sinusoidal", "order_learned"]


@dataclass(frozen=True)
class OrderConfig:
    """AttentionTagger (one attention layer, 1 head, feed-forward) labelling position i of a string of
    `length` symbols with the symbol at position length - 1 - i (reversal as tagging)."""

    positional: str = "sinusoidal"
    length: int = 8
    num_symbols: int = 10
    d_model: int = 32
    num_heads: int = 1
    d_ff: int = 64
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0


#: Notebook 05's experiment (``positional`` varies).
ORDER = OrderConfig()


def order_task(config: OrderConfig = ORDER):
    """The SequenceTask a config draws its strings from (all of length `config.length`)."""
    from ..data import SequenceTask

    return SequenceTask("reverse", num_symbols=config.num_symbols, min_len=config.length, max_len=config.length)


def order_batch(task, batch_size: int, generator: torch.Generator | None = None):
    """-> (src (B, L), target (B, L)): target[:, i] = src[:, L - 1 - i], one label per position (no <eos>)."""
    batch = task.batch(batch_size, generator)
    return batch.src, batch.tgt_out[:, : task.max_len]  # drop the final <eos>


def _order(config: OrderConfig, progress: bool = True) -> CachedRun:
    """One attention layer reversing strings of a fixed length, with `positional` information."""
    from ..transformer import AttentionTagger, tagging_loss

    task = order_task(config)
    V = len(task.vocab)
    dev = device()

    def build():
        torch.manual_seed(config.seed)  # the same starting point for every kind of position
        return AttentionTagger(V, V, d_model=config.d_model, num_heads=config.num_heads, num_layers=1,
                               d_ff=config.d_ff, max_len=config.length, positional=config.positional).to(dev)

    def fit(model):
        generator = torch.Generator().manual_seed(config.seed)  # the same batches for every kind

        def batches(step):
            src, target = order_batch(task, config.batch_size, generator)
            return src.to(dev), target.to(dev)

        return train_loop(model, batches, lambda m, b: tagging_loss(m(b[0]), b[1]), steps=config.steps,
                          lr=config.lr, progress=progress, desc=f"positions: {config.positional}")

    return cached("order", config, build, fit)


order_none = register("order_none", "05_positional_encoding", OrderConfig(positional="none"),
                      "reversal as tagging without positions")(_order)
order_sinusoidal = register("order_sinusoidal", "05_positional_encoding", ORDER,
                            "reversal as tagging with sinusoidal positions")(_order)
order_learned = register("order_learned", "05_positional_encoding", OrderConfig(positional="learned"),
                         "reversal as tagging with learned positions")(_order)
