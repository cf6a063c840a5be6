"""Measurements of notebook 07: generation speed with and without the KV cache, training throughput.

Benchmarks, not tests: they return numbers for a notebook to print and plot.
"""

from __future__ import annotations

import statistics
import time

import torch

from .model import GPT, GPTConfig
from .sampling import generate

__all__ = ["matmul_flops", "training_flops_per_token", "generation_speed"]


def matmul_flops(n: int = 512, seconds: float = 0.5) -> float:
    """float32 matmul throughput of this process (its current torch threads), in FLOP/s: (n, n) @ (n, n) repeated."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def training_flops_per_token(config: GPTConfig) -> float:
    """Floating-point operations of one training step (forward + backward) per token.

    6 per weight and token for the matrix multiplies (2 forward, 4 backward;
    Kaplan et al. 2020), the output head included, plus attention's QK^T and
    AV over the whole window (computed in full, masked afterwards):
    3 * 4 * block_size * n_embd per token and layer.
    """
    d, L = config.n_embd, config.n_layer
    weights = L * 12 * d * d + d * config.vocab_size  # attention 4 d^2, MLP 8 d^2, head
    return 6 * weights + 12 * L * config.block_size * d


@torch.no_grad()
def generation_speed(model: GPT, prompt: torch.Tensor, lengths, use_cache: bool, repeats: int = 5) -> list[float]:
    """Characters per second generating each of `lengths` new tokens after `prompt` (1, T0),
    greedy (temperature 0, so that the work does not depend on the draws); median of `repeats` runs."""
    speeds = []
    for n in lengths:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            generate(model, prompt, int(n), temperature=0.0, use_cache=use_cache)
            times.append(time.perf_counter() - start)
        speeds.append(int(n) / statistics.median(times))
    return speeds
