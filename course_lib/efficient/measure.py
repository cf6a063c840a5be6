"""Measuring what attention costs: peak memory of a call, median time, per-token decoding time.

Peak memory on the CPU: torch's profiler with ``profile_memory=True`` records
every allocation (+bytes) and free (-bytes) of the CPU allocator, including
the ones inside fused kernels; replaying them in time order and keeping the
running maximum gives the peak of memory allocated DURING the call (the inputs,
which exist before it, are not counted). This is notebook 03's measurement.
The profiler's C++ side prints two "USDT ... profiler_start/stop" lines on the
process's standard error (file descriptor 2, below Python's sys.stderr), so
:func:`peak_allocated_bytes` points descriptor 2 at /dev/null for the
duration of the call and restores it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from typing import Callable

import torch
from torch import Tensor

from ._checks import check_int

__all__ = ["quiet_stderr_fd", "peak_allocated_bytes", "median_time", "softmax_decode_step",
           "decode_step_times"]


@contextlib.contextmanager
def quiet_stderr_fd():
    """Silence file descriptor 2 (C/C++ writes to stderr) inside the block; Python's sys.stderr is
    flushed first so nothing of ours is lost. Falls back to doing nothing where fd 2 cannot be duplicated."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_allocated_bytes(fn: Callable, *args, **kwargs) -> int:
    """Peak bytes allocated on the CPU during ``fn(*args, **kwargs)``, measured (see the module docstring)."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr_fd():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn(*args, **kwargs)
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    running = peak = 0
    for e in events:
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return peak


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls."""
    repeats = check_int("repeats", repeats)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def softmax_decode_step(q: Tensor, k_cache: Tensor, v_cache: Tensor) -> Tensor:
    """One decoding step of softmax attention with a KV cache: the new token's query q (..., D)
    against every cached key (..., t, D) and value (..., t, Dv) -> (..., Dv). Work and memory O(t)."""
    scores = (k_cache @ q[..., :, None]).squeeze(-1) / q.shape[-1] ** 0.5  # (..., t)
    return (torch.softmax(scores, dim=-1)[..., None, :] @ v_cache).squeeze(-2)  # (..., Dv)


def decode_step_times(contexts, dim: int = 64, batch: int = 16, repeats: int = 25, progress=None,
                      seed: int = 0) -> dict[str, list[float]]:
    """Seconds to decode ONE more token, given ``t`` tokens already seen, for each t in ``contexts``.

    softmax + KV cache: write k, v into a preallocated cache, attend over t + 1 keys.
    linear attention: one :class:`~course_lib.efficient.linear.LinearAttentionState` step.
    ``batch`` independent sequences (think batch x heads), width ``dim``. Measured on the
    CPU, interleaved in rounds over all contexts (noise hits every length alike), median of
    ``repeats`` rounds. Returns {"softmax + KV cache": [...], "linear attention": [...]}.
    """
    from .linear import LinearAttentionState

    contexts = [check_int("context", t) for t in contexts]
    g = torch.Generator().manual_seed(seed)
    longest = max(contexts) + 1
    k_cache = torch.randn(batch, longest, dim, generator=g)
    v_cache = torch.randn(batch, longest, dim, generator=g)
    q, k, v = (torch.randn(batch, dim, generator=g) for _ in range(3))
    state = LinearAttentionState(torch.randn(batch, dim, dim, generator=g).abs(),
                                 torch.rand(batch, dim, generator=g) + 1.0)

    def softmax_step(t):
        k_cache[:, t] = k
        v_cache[:, t] = v
        return softmax_decode_step(q, k_cache[:, : t + 1], v_cache[:, : t + 1])

    def linear_step():
        kv, z = state.kv, state.z
        out = state.step(q, k, v)
        state.kv, state.z = kv, z  # time the step, not a state that keeps growing
        return out

    runs = {"softmax + KV cache": {t: [] for t in contexts}, "linear attention": {t: [] for t in contexts}}
    rounds = range(repeats) if progress is None else progress(range(repeats))
    with torch.inference_mode():
        for t in contexts:
            softmax_step(t), linear_step()  # warm-up
        for _ in rounds:
            for t in contexts:
                start = time.perf_counter()
                softmax_step(t)
                runs["softmax + KV cache"][t].append(time.perf_counter() - start)
                start = time.perf_counter()
                linear_step()
                runs["linear attention"][t].append(time.perf_counter() - start)
    return {name: [statistics.median(r[t]) for t in contexts] for name, r in runs.items()}
