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


# --------------------------------------------------------------------------- run_many: missing runs side by side

def _tiny_ln_requests():
    # notebook 06's LayerNorm stack, 3 steps: real experiments, so that a spawned worker process knows them
    return [("layer_norm_placement", {"seed": s, "steps": 3, "warmup": 1, "num_layers": 2}) for s in (0, 1, 2)]


def test_run_many_trains_the_missing_runs_in_worker_processes_and_gets_the_same_models(monkeypatch, tmp_path):
    from course_lib.experiments import parallel

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "side_by_side"))
    together = E.run_many(_tiny_ln_requests(), workers=2, progress=False)
    assert len(list((tmp_path / "side_by_side").glob("*.pt"))) == 3
    assert all(parallel._is_cached(name, overrides) for name, overrides in _tiny_ln_requests())
    assert not parallel._is_cached("layer_norm_placement", {"seed": 3, "steps": 3})
    assert [r.from_cache for r in together] == [True, True, True]  # all trained before run_many loaded them

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "one_by_one"))
    alone = [E.run(name, progress=False, **overrides) for name, overrides in _tiny_ln_requests()]
    for a, b in zip(together, alone):
        assert a.history.loss == b.history.loss  # same seeds, same steps: the same training, bit for bit
        for (k, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            torch.testing.assert_close(p, q, rtol=0, atol=0, msg=k)


def test_run_many_trains_in_its_own_process_when_one_worker_is_all_there_is(monkeypatch, tmp_path):
    from course_lib.experiments import parallel

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))

    def no_pool(*args, **kwargs):
        raise AssertionError("no worker process may start")

    monkeypatch.setattr(parallel, "_train_side_by_side", no_pool)
    runs = E.run_many(_tiny_ln_requests()[:2], workers=1, progress=False)
    assert [r.from_cache for r in runs] == [False, False]
    monkeypatch.setenv("COURSE_CACHE_DIR", "off")  # no cache to share: nothing to hand over either
    assert len(E.run_many(_tiny_ln_requests()[:2], workers=2, progress=False)) == 2


def _fake_side_by_side(monkeypatch, main_seconds, worker_seconds, worker_fails=()):
    """_train_side_by_side with threads for worker processes and sleeps for trainings: who trained what."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from course_lib.experiments import parallel

    trained = {"main": [], "worker": []}
    main_thread = threading.get_ident()

    def fake_run(name, progress=True, **overrides):
        assert threading.get_ident() == main_thread
        trained["main"].append(overrides["seed"])
        time.sleep(main_seconds(overrides["seed"]))

    def fake_worker(name, overrides, cache_dir):
        if overrides["seed"] in worker_fails:
            raise RuntimeError("out of memory")
        trained["worker"].append(overrides["seed"])
        time.sleep(worker_seconds)

    monkeypatch.setattr(parallel, "run", fake_run)
    monkeypatch.setattr(parallel, "_train_in_worker", fake_worker)
    monkeypatch.setattr(parallel, "_worker_pool", lambda n: ThreadPoolExecutor(max_workers=n))
    return trained


def test_run_many_hands_each_run_to_whichever_process_is_free(monkeypatch, tmp_path):
    from course_lib.experiments import parallel

    # the notebook's process is busy with a long first run: the worker trains all the others, in order
    trained = _fake_side_by_side(monkeypatch, lambda seed: 1.0 if seed == 0 else 0.01, worker_seconds=0.02)
    parallel._train_side_by_side([("layer_norm_placement", {"seed": s}) for s in range(8)], 2, tmp_path, False)
    assert trained == {"main": [0], "worker": [1, 2, 3, 4, 5, 6, 7]}  # a fixed split gave main 0, 2, 4, 6

    # every run once, whatever the timing
    trained = _fake_side_by_side(monkeypatch, lambda seed: 0.01 * (seed % 3), worker_seconds=0.015)
    parallel._train_side_by_side([("layer_norm_placement", {"seed": s}) for s in range(12)], 3, tmp_path, False)
    assert sorted(trained["main"] + trained["worker"]) == list(range(12)) and trained["main"][0] == 0


def test_run_many_trains_a_failed_workers_run_itself_with_a_warning(monkeypatch, tmp_path):
    from course_lib.experiments import parallel

    trained = _fake_side_by_side(monkeypatch, lambda seed: 0.2 if seed == 0 else 0.01, worker_seconds=0.01,
                                 worker_fails={1})
    with pytest.warns(UserWarning, match=r"the worker training layer_norm_placement\(seed=1\) failed "
                                         r"\(RuntimeError: out of memory\); training it here instead"):
        parallel._train_side_by_side([("layer_norm_placement", {"seed": s}) for s in range(4)], 2, tmp_path, False)
    # the broken worker takes nothing more; run_many's own loop trains seed 1 afterwards
    assert trained == {"main": [0, 2, 3], "worker": []}


def test_run_many_refuses_malformed_requests_before_starting_anything():
    with pytest.raises(TypeError, match="pair \\(experiment name, dict of overrides or a config\\)"):
        E.run_many(["gpt"])
    with pytest.raises(TypeError, match="takes a GPTRunConfig"):
        E.run_many([("gpt", E.experiment("vit").default)])
    with pytest.raises(KeyError, match="no experiment called 'nope'"):
        E.run_many([("nope", {})])
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        E.run_many([("gpt", {})], workers=0)


def test_cache_file_finds_a_run_without_training_it(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    for name in E.names():  # every experiment of the course goes through core.cached, and cheaply
        path = core.cache_file(name)
        assert path is not None and path.parent == tmp_path and not path.exists(), name
    assert core.cache_file("gpt", seed=1) != core.cache_file("gpt")
    request = _tiny_ln_requests()[0]
    E.run(request[0], progress=False, **request[1])
    assert core.cache_file(request[0], **request[1]).exists()
    monkeypatch.setenv("COURSE_CACHE_DIR", "off")
    assert core.cache_file("gpt") is None
