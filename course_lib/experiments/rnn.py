"""The trained models of notebooks 01 and 02: GRU encoder-decoders on reversal and on dates.

Two experiments share one config and one training function, so that the only
difference between them is the attention switch: ``reversal_rnn`` (notebook
01, one context vector) and ``reversal_attention`` (notebook 02, additive
attention) see the same batches in the same order for the same number of
steps. Notebook 02 loads notebook 01's model from the cache (same config, same
key). ``dates_attention`` reads human-written dates in four languages and
writes ISO dates (notebook 02; notebook 06 compares the Transformer with it).

    from course_lib import experiments
    run = experiments.run("reversal_rnn", seed=1)       # a CachedRun: model, history, from_cache
    task = reversal_task(REVERSAL)                       # the data it was trained on
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rnn import Seq2Seq, train_seq2seq
from ..train import CachedRun, device
from .core import cached, register

__all__ = ["ReversalConfig", "DatesConfig", "REVERSAL", "DATES", "reversal_task", "dates_task", "reversal_rnn",
           "reversal_attention", "dates_attention"]


@dataclass(frozen=True)
class ReversalConfig:
    """Reverse strings of `num_symbols` symbols, `min_len`..`max_len` long (lengths uniform in every batch)."""

    num_symbols: int = 10
    min_len: int = 4
    max_len: int = 23
    emb_dim: int = 32
    hidden_dim: int = 64
    attn_dim: int = 32
    attention: bool = False
    steps: int = 600
    batch_size: int = 64
    lr: float = 5e-3
    seed: int = 0


@dataclass(frozen=True)
class DatesConfig:
    """Human-written dates in `languages` -> ISO dates, with additive attention."""

    languages: tuple[str, ...] = ("en", "fr", "de", "es")
    emb_dim: int = 32
    hidden_dim: int = 64
    attn_dim: int = 32
    steps: int = 400
    batch_size: int = 64
    lr: float = 5e-3
    seed: int = 0


#: The reversal experiment notebooks 01 and 02 share (notebook 02 sets attention=True).
REVERSAL = ReversalConfig()
#: The dates experiment of notebook 02.
DATES = DatesConfig()


def reversal_task(config: ReversalConfig = REVERSAL):
    """The SequenceTask a reversal config trains on."""
    from ..data import SequenceTask

    return SequenceTask("reverse", config.num_symbols, config.min_len, config.max_len)


def dates_task(config: DatesConfig = DATES):
    """The DatesTask a dates config trains on (its vocabularies and splits)."""
    from ..data import DatesTask

    return DatesTask(tuple(config.languages), seed=config.seed)


def _reversal(config: ReversalConfig, progress: bool = True) -> CachedRun:
    """GRU encoder-decoder on reversal over mixed lengths."""
    task = reversal_task(config)
    vocab = task.vocab
    dev = device()

    def build():
        torch.manual_seed(config.seed)
        return Seq2Seq(len(vocab), len(vocab), config.emb_dim, config.hidden_dim, config.attention, config.attn_dim,
                       vocab.pad_id, vocab.sos_id, vocab.eos_id).to(dev)

    def fit(model):
        generator = torch.Generator().manual_seed(config.seed)  # the same batches with and without attention
        name = "with attention" if config.attention else "one context vector"
        return train_seq2seq(model, lambda _: task.batch(config.batch_size, generator), config.steps, lr=config.lr,
                             progress=progress, desc=f"reversal, {name}")

    return cached("reversal", config, build, fit)


reversal_rnn = register("reversal_rnn", "01_rnn_bottleneck", REVERSAL,
                        "GRU encoder-decoder with one context vector, reversal of 4-23 symbols")(_reversal)
reversal_attention = register("reversal_attention", "02_bahdanau_attention", ReversalConfig(attention=True),
                              "the same GRU encoder-decoder with additive attention, same batches")(_reversal)


@register("dates_attention", "02_bahdanau_attention", DATES)
def dates_attention(config: DatesConfig, progress: bool = True) -> CachedRun:
    """GRU encoder-decoder with additive attention, human-written dates in four languages -> ISO dates."""
    task = dates_task(config)
    src, tgt = task.src_vocab, task.tgt_vocab
    dev = device()

    def build():
        torch.manual_seed(config.seed)
        return Seq2Seq(len(src), len(tgt), config.emb_dim, config.hidden_dim, True, config.attn_dim,
                       tgt.pad_id, tgt.sos_id, tgt.eos_id).to(dev)

    def fit(model):
        generator = torch.Generator().manual_seed(config.seed)
        return train_seq2seq(model, lambda _: task.batch("train", config.batch_size, generator), config.steps,
                             lr=config.lr, progress=progress, desc="dates, with attention")

    return cached("dates", config, build, fit)
