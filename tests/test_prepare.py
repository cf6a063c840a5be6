"""prepare: trains every registered experiment once, then finds it in the cache (the notebooks' own keys)."""

import io
from dataclasses import dataclass

import pytest
from torch import nn

from course_lib import experiments
from course_lib.experiments import core
from course_lib.teaching.prepare import prepare
from course_lib.train import History


@dataclass(frozen=True)
class _Cfg:
    seed: int = 0


@pytest.fixture
def two_experiments(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(core, "REGISTRY", {})
    monkeypatch.setattr(experiments, "_load_all", lambda: None)
    trained = []
    for name, notebook in (("beta", "02_b"), ("alpha", "01_a")):
        @core.register(name, notebook, _Cfg(), variants=({"seed": 1},) if name == "alpha" else ())
        def run(config, progress=True, name=name):
            def fit(model):
                trained.append(name)
                return History(steps=[0], loss=[0.5], seconds=0.01)
            return core.cached(name, config, lambda: nn.Linear(2, 2), fit)
    return trained


def test_prepare_trains_in_notebook_order_then_everything_is_cached(two_experiments):
    out = io.StringIO()
    first = prepare(progress=False, out=out)
    assert [p.name for p in first] == ["alpha", "alpha seed=1", "beta"] and not any(p.from_cache for p in first)
    assert two_experiments == ["alpha", "alpha", "beta"]
    again = prepare(progress=False, out=out)
    assert all(p.from_cache for p in again) and len(two_experiments) == 3
    # the notebooks ask with the default config: the same key, so they load what prepare trained
    assert core.REGISTRY["alpha"]().from_cache
    assert core.REGISTRY["alpha"](seed=1).from_cache
    assert "3 already cached" in out.getvalue()


def test_a_variant_with_an_unknown_field_is_refused(monkeypatch):
    monkeypatch.setattr(core, "REGISTRY", {})
    with pytest.raises(TypeError, match="no field.*'sed'"):
        core.register("x", "01_a", _Cfg(), variants=({"sed": 1},))


def test_prepare_names_unknown_experiments(two_experiments):
    with pytest.raises(KeyError, match="unknown experiment.*'gamma'"):
        prepare(["gamma"], progress=False, out=io.StringIO())


def test_every_experiment_has_a_notebook_that_exists():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for name in experiments.names():
        notebook = experiments.experiment(name).notebook
        assert (root / "notebooks" / f"{notebook}.ipynb").exists(), f"experiment {name}: no notebook {notebook}"
