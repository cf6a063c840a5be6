"""`python -m course_lib prepare`: train and cache every model of the course before a live session.

Each experiment of :mod:`course_lib.experiments` is trained with the config the
notebooks use, so its cache key is the one the notebooks ask for and every
notebook then runs from the cache. Safe to interrupt and rerun: a model is
written atomically once trained, and a rerun skips what is cached.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .. import experiments

__all__ = ["PreparedModel", "prepare"]


@dataclass(frozen=True)
class PreparedModel:
    name: str
    notebook: str
    from_cache: bool
    seconds: float  # wall time of this call (loading or training)
    trained_seconds: float  # training time recorded with the model


def prepare(names: list[str] | None = None, progress: bool = True, out=None) -> list[PreparedModel]:
    """Train (or find in the cache) the experiments `names` (default: all), in notebook order."""
    out = out or sys.stdout
    known = experiments.names()
    chosen = known if not names else list(names)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise KeyError(f"unknown experiment(s) {unknown}; the course has {known}")
    from ..train import model_cache_dir

    where = model_cache_dir()
    print(f"preparing {len(chosen)} model(s) into {where if where else '(cache disabled: COURSE_CACHE_DIR=off)'}",
          file=out)
    done: list[PreparedModel] = []
    start = time.perf_counter()
    for i, name in enumerate(chosen, 1):
        exp = experiments.experiment(name)
        print(f"[{i}/{len(chosen)}] {name} (notebook {exp.notebook}): {exp.description}", file=out, flush=True)
        for overrides in ({}, *exp.variants):
            t0 = time.perf_counter()
            run = exp(progress=progress, **overrides)
            label = name + "".join(f" {k}={v}" for k, v in overrides.items())
            item = PreparedModel(label, exp.notebook, run.from_cache, time.perf_counter() - t0, run.history.seconds)
            done.append(item)
            state = "already cached" if item.from_cache else f"trained in {item.seconds:.0f} s"
            print(f"      {label}: {state}", file=out, flush=True)
    total = time.perf_counter() - start
    trained = sum(1 for d in done if not d.from_cache)
    print(f"done: {trained} trained, {len(done) - trained} already cached, {total:.0f} s in all", file=out)
    return done
