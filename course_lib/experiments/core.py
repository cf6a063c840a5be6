"""The experiment registry: name -> (notebook, default config, cached run function)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable

from ..train import CachedRun, cache_path_of, cached_training, device

__all__ = ["Experiment", "REGISTRY", "register", "experiment", "names", "run", "config_dict", "cached"]


@dataclass(frozen=True)
class Experiment:
    """One trained model of the course.

    name: short identifier, also the cache file's prefix ("gpt", "vit", ...).
    notebook: the notebook that introduces it ("07_gpt").
    default: the frozen dataclass config the notebooks use.
    train: config, progress -> CachedRun (trains or loads from the cache).
    """

    name: str
    notebook: str
    default: Any
    train: Callable[..., CachedRun]
    description: str = ""
    variants: tuple = ()  # override dicts of the other runs the notebooks make (seeds, sweeps, ablations)

    def __call__(self, config: Any = None, progress: bool = True, **overrides) -> CachedRun:
        """Train (or load) with `config` (default: the course's), fields replaced by `overrides`."""
        config = self.default if config is None else config
        if type(config) is not type(self.default):
            raise TypeError(f"experiment {self.name!r} takes a {type(self.default).__name__}, "
                            f"got {type(config).__name__}")
        if overrides:
            known = {f.name for f in dataclasses.fields(config)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise TypeError(f"{type(config).__name__} has no field(s) {unknown}; its fields are {sorted(known)}")
            config = dataclasses.replace(config, **overrides)
        return self.train(config, progress=progress)


REGISTRY: dict[str, Experiment] = {}


def register(name: str, notebook: str, default: Any, description: str = "", variants=()) -> Callable:
    """Decorator: declare `fn(config, progress=True) -> CachedRun` as the experiment `name`.

    variants: the overrides (dicts of field -> value) of every other run of it that a notebook makes, so that
    `prepare` trains them too and a live session runs warm."""
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        raise TypeError(f"the default config of {name!r} must be a dataclass instance, got {default!r}")
    if not getattr(type(default), "__dataclass_params__").frozen:
        raise TypeError(f"the config class of {name!r} must be frozen (@dataclass(frozen=True))")

    fields = {f.name for f in dataclasses.fields(default)}
    for overrides in variants:
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"variant {overrides} of {name!r}: {type(default).__name__} has no field(s) {unknown}")

    def wrap(fn: Callable[..., CachedRun]) -> Experiment:
        if name in REGISTRY:
            raise ValueError(f"experiment {name!r} is registered twice")
        exp = Experiment(name, notebook, default, fn, description or (fn.__doc__ or "").strip().split("\n")[0],
                         tuple(dict(v) for v in variants))
        REGISTRY[name] = exp
        return exp

    return wrap


def names() -> list[str]:
    """Every experiment of the course, in notebook order."""
    from . import _load_all

    _load_all()
    return sorted(REGISTRY, key=lambda n: (REGISTRY[n].notebook, n))


def experiment(name: str) -> Experiment:
    """The experiment called `name`, with a clear error for an unknown one."""
    from . import _load_all

    _load_all()
    if name not in REGISTRY:
        raise KeyError(f"no experiment called {name!r}; the course has {names()}")
    return REGISTRY[name]


def run(name: str, config: Any = None, progress: bool = True, **overrides) -> CachedRun:
    """Train or load the experiment `name` (see Experiment.__call__)."""
    return experiment(name)(config, progress=progress, **overrides)


def config_dict(config: Any) -> dict:
    """A config as plain JSON values (nested dataclasses, tuples -> lists), for the cache key."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass config, got {type(config).__name__}")
    data = dataclasses.asdict(config)
    return json.loads(json.dumps(data))


def cached(name: str, config: Any, build: Callable, fit: Callable) -> CachedRun:
    """cached_training keyed by (name, config, device type): the helper each experiment's function calls."""
    return cached_training(name, config_dict(config), build, fit, device().type)


def cache_file(name: str, **overrides):
    """The file the run ``run(name, **overrides)`` is cached in (None with the cache off); nothing is
    built or trained. An experiment that asks for another one first (the masked LM starts from the GPT)
    gives the first file it asks for."""
    return cache_path_of(lambda: run(name, progress=False, **overrides))
