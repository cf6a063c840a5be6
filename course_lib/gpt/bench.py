"""Measurements of notebook 07: generation speed with and without the KV cache, training throughput.

Benchmarks, not tests: they return numbers for a notebook to print and plot.
"""

from __future__ import annotations

import time

import torch

from .model import GPT, GPTConfig
from .sampling import generate

__all__ = ["matmul_flops", "training_flops_per_token", "generation_speed", "cache_speedup", "training_benchmark"]


def matmul_flops(n: int = 512, seconds: float = 0.5) -> float:
    """float32 matmul throughput of this process (its current torch threads), in FLOP/s: (n, n) @ (n, n) repeated.

    Timed by the process's CPU clock, like ``training_benchmark``, so that other
    programs sharing the machine do not lower it (at one thread, CPU seconds
    equal wall seconds on an idle machine; with k threads busy, divide by k).
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.process_time() - start)


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
def _generation_seconds(model: GPT, prompt: torch.Tensor, n: int, use_cache: bool) -> float:
    start = time.process_time()
    generate(model, prompt, int(n), temperature=0.0, use_cache=use_cache)
    return time.process_time() - start


def generation_speed(model: GPT, prompt: torch.Tensor, lengths, use_cache: bool, repeats: int = 5) -> list[float]:
    """Characters per CPU second generating each of `lengths` new tokens after `prompt` (1, T0),
    greedy (temperature 0, so that the work does not depend on the draws); fastest of `repeats` runs.

    Generation of one sequence is a chain of small steps, so it runs on one
    thread here, timed by the process's CPU clock. Another program on the
    machine still slows it (the two share caches and, on many laptops, a
    physical core), which is why the fastest run is kept, not the median.
    To compare with and without the cache, use ``cache_speedup``, which
    alternates the two so that both see the same conditions.
    """
    return _speeds(model, prompt, lengths, (use_cache,), repeats)[use_cache]


def cache_speedup(model: GPT, prompt: torch.Tensor, lengths, repeats: int = 5) -> tuple[list[float], list[float]]:
    """(with_cache, without): characters per CPU second for each of `lengths`, as ``generation_speed``,
    the two ways measured in alternation (cache, recompute, cache, ...) and each the fastest of
    `repeats` runs: measured one after the other, a burst of load on the machine during one of the
    two made the speed-up at 127 characters read 0.99 in one run and 2.6 in the next."""
    speeds = _speeds(model, prompt, lengths, (True, False), repeats)
    return speeds[True], speeds[False]


def _speeds(model: GPT, prompt: torch.Tensor, lengths, modes, repeats: int) -> dict:
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        speeds = {mode: [] for mode in modes}
        for n in lengths:
            times = {mode: [] for mode in modes}
            for _ in range(repeats):
                for mode in modes:
                    times[mode].append(_generation_seconds(model, prompt, n, mode))
            for mode in modes:
                speeds[mode].append(int(n) / max(min(times[mode]), 1e-9))
        return speeds
    finally:
        torch.set_num_threads(threads)


def training_benchmark(run=None, target: float = 1.45, eval_every: int = 20, seed: int = 0,
                       progress: bool = False) -> dict:
    """Train notebook 07's GPT (``experiments.gpt.GPTRunConfig``, default the course's) and time it.

    The same model, batches, optimizer and cosine schedule as
    ``experiments.run("gpt")``, timed step by step with the process's CPU
    clock (evaluations excluded), the validation loss measured every
    `eval_every` steps on the run's fixed held-out windows.
    -> {"parameters", "matmul_flops" (FLOP/s of this process, measured now),
    "train_flops" (FLOP/s achieved by training: training_flops_per_token x
    tokens per CPU second), "fraction" (train / matmul), "seconds_to_target"
    (CPU seconds of training until the validation loss first was <= target;
    None if never), "curve" [(CPU seconds, val loss)], "steps", "seconds"}.
    Run it with one thread for wall-clock-equivalent numbers on an idle machine.
    """
    from ..experiments.gpt import GPT_RUN, pydoc_corpus, warmup_cosine
    from .sampling import next_token_loss

    run = GPT_RUN if run is None else run
    corpus = pydoc_corpus()
    config = run.model.replace(vocab_size=corpus.vocab_size)
    torch.manual_seed(seed)
    model = GPT(config)
    # the GPT run's AdamW (torch's default weight decay) and cosine schedule, as train_loop(schedule="cosine")
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr)
    warmup_cosine(optimizer, 0, run.steps)
    g = torch.Generator().manual_seed(seed)
    val = corpus.get_batch("val", run.eval_windows, config.block_size, torch.Generator().manual_seed(1_000))[0]
    peak = matmul_flops()
    spent, tokens, reached, curve = 0.0, 0, None, []
    steps = range(run.steps)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="benchmark", leave=False)
    for step in steps:
        start = time.process_time()
        x = corpus.get_batch("train", run.batch_size, config.block_size, g)[0]  # (B, block)
        loss = next_token_loss(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        spent += time.process_time() - start
        tokens += x.numel()
        if (step + 1) % eval_every == 0 or step == run.steps - 1:
            with torch.no_grad():
                model.eval()
                v = next_token_loss(model(val), val).item()
                model.train()
            curve.append((spent, v))
            if v <= target and reached is None:
                reached = spent
    achieved = training_flops_per_token(config) * tokens / spent
    return {"parameters": model.num_parameters(), "matmul_flops": peak, "train_flops": achieved,
            "fraction": achieved / peak, "seconds_to_target": reached, "curve": curve, "steps": run.steps,
            "seconds": spent}


if __name__ == "__main__":  # python -m course_lib.gpt.bench [steps] (one thread: OMP_NUM_THREADS=1)
    import dataclasses
    import json
    import sys

    from ..experiments.gpt import GPT_RUN

    run = GPT_RUN if len(sys.argv) < 2 else dataclasses.replace(GPT_RUN, steps=int(sys.argv[1]))
    result = training_benchmark(run, progress=True)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=1))
    print("curve (CPU s, val loss):", [(round(s, 1), round(v, 3)) for s, v in result["curve"]])
