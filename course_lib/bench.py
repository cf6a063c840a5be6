"""Side-by-side timings of course_lib's attention against torch's own.

``python -m course_lib bench`` prints, for each pair, the median time of
forward+backward of both implementations measured interleaved in one run (so
machine noise hits both alike) and their ratio.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention, scaled_dot_product_attention

__all__ = ["BenchResult", "synchronizer", "time_pair", "attention_benchmarks", "format_results"]


@dataclass
class BenchResult:
    name: str
    ours_ms: float
    torch_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.torch_ms


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """What waits for the queued work of `device` to finish: CUDA and MPS run kernels
    asynchronously, so a timer read without it measures only the launches."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.synchronize
    if kind == "mps":
        return torch.mps.synchronize
    return lambda: None


def time_pair(name: str, ours: Callable[[], None], theirs: Callable[[], None], repeats: int = 15,
              warmup: int = 3, device: torch.device | str = "cpu") -> BenchResult:
    """Median wall time (ms) of two callables, alternating between them on every repeat.

    On an asynchronous device (cuda, mps) each timing waits for the device
    before it starts and before it stops."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    sync = synchronizer(device)
    for _ in range(warmup):
        ours()
        theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((ours, times[0]), (theirs, times[1])):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            bucket.append(time.perf_counter() - start)
    return BenchResult(name, statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3)


def attention_benchmarks(batch: int = 8, length: int = 256, width: int = 256, heads: int = 8,
                         repeats: int = 15, device: torch.device | str = "cpu") -> list[BenchResult]:
    """Forward+backward timings at the given size: SDPA (teaching and fast path)
    against F.scaled_dot_product_attention, and MultiHeadAttention (fast and
    teaching path, with and without weights) against nn.MultiheadAttention."""
    torch.manual_seed(0)
    dev = torch.device(device)
    head_dim = width // heads
    q, k, v = (torch.randn(batch, heads, length, head_dim, device=dev, requires_grad=True) for _ in range(3))

    def sdpa(fn):
        def run():
            fn(q, k, v).sum().backward()
        return run

    results = [
        time_pair("SDPA teaching path vs F.scaled_dot_product_attention",
                  sdpa(scaled_dot_product_attention), sdpa(F.scaled_dot_product_attention), repeats, device=dev),
        time_pair("SDPA fast path vs F.scaled_dot_product_attention",
                  sdpa(lambda *a: scaled_dot_product_attention(*a, fast=True)),
                  sdpa(F.scaled_dot_product_attention), repeats, device=dev),
    ]

    ref = nn.MultiheadAttention(width, heads, batch_first=True).to(dev)
    fast = MultiHeadAttention.from_torch(ref, fast=True)
    teaching = MultiHeadAttention.from_torch(ref, fast=False)
    x = torch.randn(batch, length, width, device=dev, requires_grad=True)

    def mha(module: nn.Module, need_weights: bool):
        def run():
            out, _ = module(x, x, x, need_weights=need_weights)
            out.sum().backward()
        return run

    for need_weights in (False, True):
        label = "need_weights=True" if need_weights else "need_weights=False"
        results.append(time_pair(f"MultiHeadAttention (default) vs nn.MultiheadAttention, {label}",
                                 mha(fast, need_weights), mha(ref, need_weights), repeats, device=dev))
    results.append(time_pair("MultiHeadAttention (teaching path) vs nn.MultiheadAttention, need_weights=False",
                             mha(teaching, False), mha(ref, False), repeats, device=dev))
    return results


def format_results(results: list[BenchResult], header: str = "") -> str:
    width = max(len(r.name) for r in results)
    lines = [header] if header else []
    lines.append(f"{'comparison':<{width}}  {'ours ms':>9}  {'torch ms':>9}  {'ratio':>6}")
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.ours_ms:9.2f}  {r.torch_ms:9.2f}  {r.ratio:6.2f}")
    return "\n".join(lines)
