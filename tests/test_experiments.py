"""The experiment registry: configs are frozen dataclasses, overrides are checked, runs go through the cache."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from course_lib import experiments as E
from course_lib.experiments import core
from course_lib.train import History


@dataclass(frozen=True)
class _ToyConfig:
    width: int = 3
    seed: int = 0


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(core, "REGISTRY", {})
    calls = []

    @core.register("toy", "99_test", _ToyConfig())
    def toy_run(config, progress=True):
        def build():
            torch.manual_seed(config.seed)
            return nn.Linear(config.width, 1)

        def fit(model):
            calls.append(config)
            return History(steps=[0], loss=[1.0], evals={"acc": [(1, 0.5)]}, seconds=0.1)

        return core.cached("toy", config, build, fit)

    return toy_run, calls


def test_a_second_run_loads_the_model_and_its_evaluations_from_the_cache(toy):
    toy_run, calls = toy
    first = toy_run()
    second = core.REGISTRY["toy"]()
    assert not first.from_cache and second.from_cache and len(calls) == 1
    assert second.history.evals == {"acc": [(1, 0.5)]}
    torch.testing.assert_close(first.model.weight, second.model.weight)


def test_overrides_change_the_cache_key_and_unknown_fields_are_refused(toy):
    toy_run, calls = toy
    toy_run()
    toy_run(seed=1)
    assert [c.seed for c in calls] == [0, 1]
    with pytest.raises(TypeError, match="no field.*'sede'"):
        toy_run(sede=1)
    with pytest.raises(TypeError, match="takes a _ToyConfig"):
        toy_run({"width": 3})


def test_configs_must_be_frozen_dataclasses(monkeypatch):
    monkeypatch.setattr(core, "REGISTRY", {})

    @dataclass
    class Loose:
        seed: int = 0

    with pytest.raises(TypeError, match="frozen"):
        core.register("loose", "99_test", Loose())
    with pytest.raises(TypeError, match="dataclass instance"):
        core.register("loose", "99_test", {"seed": 0})


def test_an_unknown_experiment_names_the_known_ones():
    with pytest.raises(KeyError, match="no experiment called 'nope'"):
        E.experiment("nope")
