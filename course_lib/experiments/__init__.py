"""Every model the course trains, declared in one place: one frozen config and one cached run each.

A notebook never trains a model of its own making: it asks for an experiment by
name, e.g. ``experiments.run("gpt")`` or ``experiments.run("gpt", seed=1)``,
and gets a :class:`~course_lib.train.CachedRun` (the model, its history, and
whether it came from the cache). The cache key is derived from the config, so
a notebook that reuses another's model (notebook 10 reuses 07's GPT and 08's
ViT), a second run of the same notebook, and a live session prepared with
``python -m course_lib prepare`` all start warm.

To add an experiment, write a module here (one per notebook) with a frozen
dataclass config and a function ``config -> CachedRun`` registered with
:func:`register`, and import the module below.
"""

from __future__ import annotations

from .core import REGISTRY, Experiment, config_dict, experiment, names, register, run
from .parallel import run_many

__all__ = ["REGISTRY", "Experiment", "config_dict", "experiment", "names", "register", "run", "run_many"]


def _load_all() -> None:
    """Import every experiment module so that REGISTRY is complete (each registers itself)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "core":
            importlib.import_module(f"{__name__}.{info.name}")
