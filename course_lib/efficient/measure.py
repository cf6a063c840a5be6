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
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ._checks import check_int

__all__ = ["quiet_stderr_fd", "peak_allocated_bytes", "median_time", "softmax_decode_step",
           "decode_step_times", "tiled_benchmark", "format_tiled_benchmark", "Intermediates",
           "largest_intermediate"]


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


@dataclass(frozen=True)
class Intermediates:
    """What :func:`largest_intermediate` saw: the largest tensor any torch operation produced
    (numel, the operation, its shape), and the names of every operation called."""

    numel: int
    op: str
    shape: tuple[int, ...]
    ops: frozenset[str]

    def called_sdpa(self) -> bool:
        """Whether torch's own scaled_dot_product_attention ran (its math path shows as _safe_softmax)."""
        return any("scaled_dot_product" in op or op == "_safe_softmax" for op in self.ops)


def largest_intermediate(fn: Callable, *args, **kwargs) -> tuple[object, Intermediates]:
    """Run ``fn(*args, **kwargs)`` and report the largest tensor created on the way -> (result, Intermediates).

    A TorchDispatchMode sees the output of every aten operation (after torch's own
    decompositions), whatever device and however the operation was called, and records the
    largest by number of elements. Deterministic, unlike a memory measurement: an attention
    function that ever materialises the (L, S) scores shows an intermediate of L * S elements.
    Work inside one fused kernel (e.g. a flash-attention kernel) is not seen, only its outputs.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class _Tracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.largest = (0, "", ())
            self.ops: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.ops.add(func.overloadpacket.__name__)
            for t in tree_flatten(out)[0]:
                if isinstance(t, Tensor) and t.numel() > self.largest[0]:
                    self.largest = (t.numel(), str(func.overloadpacket.__name__), tuple(t.shape))
            return out

    tracker = _Tracker()
    with tracker:
        result = fn(*args, **kwargs)
    return result, Intermediates(*tracker.largest, frozenset(tracker.ops))


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 1, clock=time.process_time) -> float:
    """Median time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls.

    ``clock`` defaults to ``time.process_time``: the CPU time of this process, which other programs
    running on the same machine do not inflate (on one thread it is the work done); pass
    ``time.perf_counter`` for wall-clock time."""
    repeats = check_int("repeats", repeats, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def softmax_decode_step(q: Tensor, k_cache: Tensor, v_cache: Tensor) -> Tensor:
    """One decoding step of softmax attention with a KV cache: the new token's query q (..., D)
    against every cached key (..., t, D) and value (..., t, Dv) -> (..., Dv). Work and memory O(t)."""
    scores = (k_cache @ q[..., :, None]).squeeze(-1) / q.shape[-1] ** 0.5  # (..., t)
    return (torch.softmax(scores, dim=-1)[..., None, :] @ v_cache).squeeze(-2)  # (..., Dv)


def decode_step_times(contexts, dim: int = 64, batch: int = 16, repeats: int = 15, steps: int = 8, progress=None,
                      seed: int = 0) -> dict[str, list[float]]:
    """Seconds to decode ONE more token, given ``t`` tokens already seen, for each t in ``contexts``.

    softmax + KV cache: write k, v into a preallocated cache, attend over the t + 1 cached keys.
    linear attention: one :class:`~course_lib.efficient.linear.LinearAttentionState` step.
    ``batch`` independent sequences (think batch x heads), width ``dim``. Each measurement times
    ``steps`` consecutive tokens and divides (a single step is too short for the clock); rounds
    go over all contexts in turn (noise hits every length alike); the median of ``repeats``
    rounds is returned: {"softmax + KV cache": [...], "linear attention": [...]}. Times are CPU
    time of this process (``time.process_time``), which other busy programs do not inflate.
    """
    from .linear import LinearAttentionState

    contexts = [check_int("context", t) for t in contexts]
    steps = check_int("steps", steps)
    g = torch.Generator().manual_seed(seed)
    longest = max(contexts) + steps
    k_cache = torch.randn(batch, longest, dim, generator=g)
    v_cache = torch.randn(batch, longest, dim, generator=g)
    q, k, v = (torch.randn(batch, dim, generator=g) for _ in range(3))
    state = LinearAttentionState(torch.randn(batch, dim, dim, generator=g).abs(),
                                 torch.rand(batch, dim, generator=g) + 1.0)

    def softmax_steps(t):
        for s in range(t, t + steps):
            k_cache[:, s] = k
            v_cache[:, s] = v
            softmax_decode_step(q, k_cache[:, : s + 1], v_cache[:, : s + 1])

    def linear_steps(_t):
        for _ in range(steps):
            state.step(q, k, v)

    kinds = {"softmax + KV cache": softmax_steps, "linear attention": linear_steps}
    runs = {name: {t: [] for t in contexts} for name in kinds}
    rounds = range(repeats) if progress is None else progress(range(repeats))
    with torch.inference_mode():
        for t in contexts:
            softmax_steps(t), linear_steps(t)  # warm-up
        for _ in rounds:
            for t in contexts:
                for name, fn in kinds.items():
                    start = time.process_time()
                    fn(t)
                    runs[name][t].append((time.process_time() - start) / steps)
    return {name: [statistics.median(r[t]) for t in contexts] for name, r in runs.items()}


def tiled_benchmark(lengths=(1024, 4096, 16384), dim: int = 64, block_size: int = 256, repeats: int = 3,
                    threads: int | None = 1, seed: int = 0, progress=None) -> list[dict]:
    """Forward-only peak memory and median time of :func:`tiled_attention` against
    ``F.scaled_dot_product_attention``, side by side in one run, one head of width ``dim``, CPU.

    For each L: one call of each under the profiler (peak allocated bytes), then ``repeats``
    interleaved timed calls (median CPU time of this process, which other busy programs do not inflate;
    the median wall time beside it). ``threads``: torch's intra-op threads during the run (1 by
    default, so that a shared machine disturbs it less; None keeps the current setting). Returns one
    dict per L: L, ours_bytes, torch_bytes, ours_s, torch_s (CPU), ours_wall_s, torch_wall_s, max_error.
    """
    import torch.nn.functional as F

    from .tiled import tiled_attention

    g = torch.Generator().manual_seed(seed)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(check_int("threads", threads))
    rows = []
    try:
        for L in (lengths if progress is None else progress(lengths)):
            L = check_int("L", L)
            q, k, v = (torch.randn(1, L, dim, generator=g) for _ in range(3))
            ours = lambda: tiled_attention(q, k, v, block_size=block_size)  # noqa: E731
            theirs = lambda: F.scaled_dot_product_attention(q, k, v)  # noqa: E731
            with torch.inference_mode():
                error = (ours() - theirs()).abs().max().item()
                ours_bytes, torch_bytes = peak_allocated_bytes(ours), peak_allocated_bytes(theirs)
                cpu, wall = ([], []), ([], [])
                for _ in range(repeats):  # interleaved: a change in the machine's load hits both alike
                    for i, fn in enumerate((ours, theirs)):
                        start, start_wall = time.process_time(), time.perf_counter()
                        fn()
                        cpu[i].append(time.process_time() - start)
                        wall[i].append(time.perf_counter() - start_wall)
            rows.append({"L": L, "ours_bytes": ours_bytes, "torch_bytes": torch_bytes,
                         "ours_s": statistics.median(cpu[0]), "torch_s": statistics.median(cpu[1]),
                         "ours_wall_s": statistics.median(wall[0]), "torch_wall_s": statistics.median(wall[1]),
                         "max_error": error})
    finally:
        torch.set_num_threads(before)
    return rows


def format_tiled_benchmark(rows: list[dict]) -> str:
    """The rows of :func:`tiled_benchmark` as a table with the ratios ours / torch (CPU and wall time)."""
    lines = [f"{'L':>6} {'tiled MiB':>10} {'SDPA MiB':>9} {'ratio':>6} {'tiled CPU-s':>11} {'SDPA CPU-s':>10} "
             f"{'ratio':>6} {'tiled wall-s':>12} {'SDPA wall-s':>11} {'ratio':>6} {'max error':>9}"]
    for r in rows:
        lines.append(f"{r['L']:>6} {r['ours_bytes'] / 2**20:10.2f} {r['torch_bytes'] / 2**20:9.2f} "
                     f"{r['ours_bytes'] / max(r['torch_bytes'], 1):6.2f} {r['ours_s']:11.3f} {r['torch_s']:10.3f} "
                     f"{r['ours_s'] / r['torch_s']:6.2f} {r['ours_wall_s']:12.3f} {r['torch_wall_s']:11.3f} "
                     f"{r['ours_wall_s'] / r['torch_wall_s']:6.2f} {r['max_error']:9.1e}")
    return "\n".join(lines)
