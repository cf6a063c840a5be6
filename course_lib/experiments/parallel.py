"""Several experiments at once: the ones not in the cache train side by side, one process per idle core.

The course's thread policy (``course_lib.threads``) gives torch one thread on a
2-core laptop, because one thread is as fast alone and far faster beside other
work. A notebook that trains several small models one after the other then
leaves the second core idle. ``run_many`` uses it: the notebook's own process
and worker processes (one torch thread each) take the missing runs from one
shared list, each the next run whenever it is free; every run goes through the
model cache, so the notebook then loads what the workers trained. The models
are the same as those trained one by one: each run seeds its own model and data
(``tests/test_experiments.py`` compares the losses step by step). The exception
is a run whose training loop takes the second core when it is free
(``train_loop(..., adaptive_threads=True)``: the GPT and the masked LM of
notebook 07, the ViT and the CNN of notebook 08): it matches up to rounding,
whichever way it is trained.

It falls back to training one by one, in the notebook's process, when that is
all the machine offers (torch already uses every CPU, as with more than 2
CPUs; the model cache is off; the device is not the CPU), or when worker
processes cannot start.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Mapping, Sequence

import torch

from ..threads import available_cpus
from ..train import CachedRun, device, model_cache_dir
from .core import cache_file, experiment, run

__all__ = ["run_many", "parallel_workers"]


def parallel_workers() -> int:
    """How many runs can train at once here: CPUs available / torch's threads per process (at least 1)."""
    return max(1, available_cpus() // max(1, torch.get_num_threads()))


def _is_cached(name: str, overrides: Mapping[str, Any]) -> bool:
    """Whether the run's file is in the cache (False when unsure: the run is then trained, or loads)."""
    try:
        path = cache_file(name, **overrides)
    except Exception:  # a bad override and the like: run_many's own call of run() reports it
        return False
    return path is not None and path.exists()


def _train_in_worker(name: str, overrides: dict, cache_dir: str) -> None:
    """Runs in a worker process: train the run (or load it) into the shared cache."""
    os.environ["COURSE_CACHE_DIR"] = cache_dir
    run(name, progress=False, **overrides)


def run_many(requests: Sequence[tuple[str, Mapping[str, Any]]], workers: int | None = None,
             progress: bool = True) -> list[CachedRun]:
    """``[experiments.run(name, **overrides) for name, overrides in requests]``, the missing runs trained
    side by side when the machine has idle cores (see the module's docstring).

    requests: (experiment name, overrides or a config of the experiment) pairs, e.g. ``[("transformer_reversal", {"seed": 0}),
    ("transformer_reversal", {"seed": 0, "model": pooled})]``. workers: how many runs at once (default
    ``parallel_workers()``). The notebook's process shows its own progress bar; the workers' runs are
    announced when they start and finish.
    """
    requests = [_check_request(r) for r in requests]
    if workers is None:
        workers = parallel_workers()
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    cache = model_cache_dir()
    if workers > 1 and len(requests) > 1 and cache is not None and device().type == "cpu":
        missing = [r for r in requests if not _is_cached(*r)]
        if len(missing) > 1:
            _train_side_by_side(missing, workers, cache, progress)
    return [run(name, progress=progress, **overrides) for name, overrides in requests]


def _check_request(request) -> tuple[str, dict]:
    """(name, overrides) or (name, config): a config becomes the overrides of all its fields."""
    if isinstance(request, (tuple, list)) and len(request) == 2 and isinstance(request[0], str):
        name, what = request
        if dataclasses.is_dataclass(what) and not isinstance(what, type):
            default = experiment(name).default
            if type(what) is not type(default):
                raise TypeError(f"experiment {name!r} takes a {type(default).__name__}, got {type(what).__name__}")
            return name, {f.name: getattr(what, f.name) for f in dataclasses.fields(what)}
        if isinstance(what, Mapping):
            experiment(name)  # a clear error for an unknown name, before any process starts
            return name, dict(what)
    raise TypeError(f"each request must be a pair (experiment name, dict of overrides or a config), e.g. "
                    f"('gpt', {{'seed': 1}}); got {request!r}")


def _train_side_by_side(todo: list[tuple[str, dict]], workers: int, cache, progress: bool) -> None:
    """Train the runs of `todo` into the cache: the notebook's process and `workers - 1` worker processes
    each take the next run of the list whenever they are free (runs differ in length: a fixed split could
    leave one process with all the long ones)."""
    import threading
    import time
    from collections import deque

    queue, lock = deque(todo), threading.Lock()
    failed: list[tuple[tuple[str, dict], BaseException]] = []
    n_workers = min(workers - 1, len(todo) - 1)

    def take():
        with lock:
            return queue.popleft() if queue else None

    def feed(pool):  # one thread per worker process: hands it the next run until none is left
        while (request := take()) is not None:
            start = time.perf_counter()
            try:
                pool.submit(_train_in_worker, request[0], request[1], str(cache)).result()
            except Exception as err:  # this run is trained in the notebook's process afterwards (run_many)
                failed.append((request, err))
                return  # a broken worker takes nothing more: the notebook's process trains the rest
            if progress:
                print(f"  worker process: {_label(request)} trained in {time.perf_counter() - start:.0f} s",
                      flush=True)

    try:
        pool = _worker_pool(n_workers)
    except (OSError, RuntimeError, ValueError) as err:
        warnings.warn(f"could not start worker processes ({err}); training the runs one by one", stacklevel=3)
        return
    if progress:
        print(f"training {len(todo)} runs side by side: this process and {n_workers} worker process(es) "
              f"each take the next one when free", flush=True)
    feeders = [threading.Thread(target=feed, args=(pool,), daemon=True) for _ in range(n_workers)]
    request = take()  # the first run is this process's: the workers start while it trains
    try:
        for feeder in feeders:
            feeder.start()
        while request is not None:
            run(request[0], progress=progress, **request[1])
            request = take()
    finally:
        with lock:
            queue.clear()  # interrupted: the workers finish their current run and take no other
        for feeder in feeders:
            feeder.join()
        pool.shutdown(wait=True, cancel_futures=True)
    for request, err in failed:
        warnings.warn(f"the worker training {_label(request)} failed ({type(err).__name__}: {err}); "
                      f"training it here instead", stacklevel=3)


def _worker_pool(n: int):
    """n worker processes, started fresh (spawn: no copy of the notebook's torch state or threads)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))


def _label(request: tuple[str, dict]) -> str:
    name, overrides = request
    shown = ", ".join(f"{k}={v!r}" if len(repr(v)) < 30 else f"{k}=..." for k, v in overrides.items())
    return f"{name}({shown})"
