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
    """Characters per CPU second generating each of `lengths` new tokens after `prompt` (1, T0),
    greedy (temperature 0, so that the work does not depend on the draws); median of `repeats` runs.

    Generation of one sequence is a chain of small steps, so it runs on one
    thread here, timed by the process's CPU clock: other programs sharing the
    machine do not change the result (on an idle machine it equals wall time).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        speeds = []
        for n in lengths:
            times = []
            for _ in range(repeats):
                start = time.process_time()
                generate(model, prompt, int(n), temperature=0.0, use_cache=use_cache)
                times.append(time.process_time() - start)
            speeds.append(int(n) / max(statistics.median(times), 1e-9))
        return speeds
    finally:
        torch.set_num_threads(threads)


def training_benchmark(config: GPTConfig | None = None, batch_size: int = 16, lr: float = 3e-3,
                       target: float = 1.45, max_seconds: float = 300.0, eval_every: int = 50,
                       seed: int = 0) -> dict:
    """Train a GPT on the pydoc corpus until its validation loss reaches `target` (or max_seconds of CPU).

    -> {"parameters", "matmul_flops" (FLOP/s of this process, measured now),
    "train_flops" (FLOP/s achieved by training, training_flops_per_token x
    tokens per CPU second), "fraction" (train / matmul), "seconds_to_target"
    (CPU seconds of training, evaluations excluded; None if not reached),
    "curve" [(CPU seconds, val loss)]}. Times are process CPU seconds: run it
    with one thread for wall-clock-equivalent numbers on an idle machine.
    """
    from ..experiments.gpt import pydoc_corpus
    from .sampling import next_token_loss

    corpus = pydoc_corpus()
    config = (config or GPTConfig(block_size=128, n_layer=4, n_head=4, n_embd=128)).replace(
        vocab_size=corpus.vocab_size)
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    val = corpus.get_batch("val", 64, config.block_size, torch.Generator().manual_seed(1_000))[0]
    peak = matmul_flops()
    spent, tokens, step, reached, curve = 0.0, 0, 0, None, []
    while spent < max_seconds and reached is None:
        start = time.process_time()
        x = corpus.get_batch("train", batch_size, config.block_size, g)[0]
        loss = next_token_loss(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        spent += time.process_time() - start
        tokens += x.numel()
        step += 1
        if step % eval_every == 0:
            with torch.no_grad():
                model.eval()
                v = next_token_loss(model(val), val).item()
                model.train()
            curve.append((spent, v))
            if v <= target:
                reached = spent
    achieved = training_flops_per_token(config) * tokens / spent
    return {"parameters": model.num_parameters(), "matmul_flops": peak, "train_flops": achieved,
            "fraction": achieved / peak, "seconds_to_target": reached, "curve": curve, "steps": step}


if __name__ == "__main__":  # python -m course_lib.gpt.bench (one thread: OMP_NUM_THREADS=1)
    import json
    import sys

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    result = training_benchmark(max_seconds=seconds)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=1))
    print("curve (CPU s, val loss):", [(round(s, 1), round(v, 3)) for s, v in result["curve"]])
