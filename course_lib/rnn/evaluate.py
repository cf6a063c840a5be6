"""Training and evaluating the encoder-decoder: teacher-forced training, accuracy by source
length, and how well attention aligns on the reversal task."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .._validate import check_int
from .._validate import describe as _describe
from ..train import train_loop
from .seq2seq import Seq2Seq, seq2seq_loss, translate


def train_seq2seq(model: Seq2Seq, batches: Callable[[int], object], steps: int, lr: float = 3e-3,
                  progress: bool = True, desc: str = "training", schedule: str = "cosine"):
    """Teacher-forced training with ``train.train_loop`` (AdamW, gradient clipping at 1,
    cosine learning-rate decay by default).

    batches(step) -> Seq2SeqBatch. Returns the History (losses, seconds)."""
    dev = next(model.parameters()).device
    return train_loop(model, lambda step: batches(step).to(dev), seq2seq_loss, steps, lr=lr, progress=progress,
                      desc=desc, schedule=schedule)


@torch.no_grad()
def accuracy_by_length(model: Seq2Seq, task, lengths, per_length: int = 100, seed: int = 1234) -> dict[int, float]:
    """Exact-match accuracy of greedy decoding for sources of each length.

    task: a SequenceTask; lengths: iterable of source lengths; per_length
    random sources of each length, drawn from a generator seeded with `seed`
    (the same sources for every model). A row counts as correct when every
    target symbol and the EOS after it are right. -> {length: accuracy}.
    """
    per_length = check_int("per_length", per_length, 1)
    dev = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for length in lengths:
        length = check_int("length", length, 1)
        batch = task.fixed_length_batch(per_length, length, generator).to(dev)
        tokens, _ = translate(model, batch.src, batch.src_lengths, max_len=batch.tgt_out.shape[1])
        correct = (tokens == batch.tgt_out).all(dim=1)  # tgt_out ends with EOS and has no padding here
        result[length] = float(correct.float().mean())
    return result


def bucket_accuracy(by_length: dict[int, float], width: int = 5) -> dict[str, float]:
    """{length: accuracy} -> {"a-b": mean accuracy over lengths a..b}, buckets of `width` lengths
    starting at the shortest length."""
    width = check_int("width", width, 1)
    if not by_length:
        raise ValueError("by_length is empty; expected {length: accuracy}")
    lengths = sorted(by_length)
    buckets: dict[str, float] = {}
    start = lengths[0]
    while start <= lengths[-1]:
        inside = [n for n in lengths if start <= n < start + width]
        if inside:
            buckets[f"{inside[0]}-{inside[-1]}"] = sum(by_length[n] for n in inside) / len(inside)
        start += width
    return buckets


def reversal_alignment(weights: Tensor, src_lengths: Tensor) -> float:
    """Fraction of output steps whose most attended source position is the mirrored one.

    weights (B, T, S) from ``translate`` on a reversal task, src_lengths (B,).
    Output step i of a row of length L should attend to source position
    L - 1 - i; only the L steps that write a symbol are counted (not the EOS step).
    """
    if not isinstance(weights, Tensor) or weights.dim() != 3:
        raise ValueError(f"weights must be a (B, T, S) tensor of attention weights, got {_describe(weights)}")
    B, T, S = weights.shape
    steps = torch.arange(T, device=weights.device)
    lengths = src_lengths.to(weights.device).unsqueeze(1)  # (B, 1)
    counted = steps < torch.minimum(lengths, torch.tensor(T))  # (B, T)
    mirrored = lengths - 1 - steps  # (B, T)
    hits = (weights.argmax(dim=-1) == mirrored) & counted
    return float(hits.sum()) / max(int(counted.sum()), 1)
