"""course_lib.threads: the thread policy every Python of the course's venv applies at startup (issue 17)."""

import json
import os
import subprocess
import sys
import time
import warnings

import pytest

from course_lib import cli, threads

NAMES = sorted({*threads.LARGE_MACHINE, *threads.SMALL_MACHINE, threads.FILLED})
# What a fresh interpreter reports: the policy's variables as seen before any import, then torch's threads.
PROBE = ("import json, os; print(json.dumps({k: os.environ.get(k) for k in %r})); "
         "import torch; print(torch.get_num_threads())" % NAMES)


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in NAMES and k != threads.OPT_OUT}
    env.update(extra)
    return env


def _probe(env, before=""):
    code = before + PROBE
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen, num_threads = proc.stdout.splitlines()
    return {k: v for k, v in json.loads(seen).items() if v is not None}, int(num_threads)


def test_this_venv_applies_the_policy_at_interpreter_start():
    """What a Jupyter kernel started by any front end from this Python gets, before it imports anything."""
    assert threads.installed_pth() is not None, (
        f"{threads.PTH_NAME} is missing or stale in {threads.site_packages()}: run `make setup`")
    seen, num_threads = _probe(_clean_env())
    assert seen == {**threads.policy(), threads.FILLED: ",".join(threads.policy())}
    default_threads = _probe(_clean_env(COURSE_THREADS="off"))[1]
    if threads.available_cpus() <= threads.SMALL_MACHINE_CPUS:
        assert num_threads == 1
    else:
        assert num_threads == default_threads, "on a larger machine the policy keeps torch's thread count"


def test_the_policy_depends_on_the_cpus_available():
    assert threads.policy(cpus=1) == threads.policy(cpus=2) == {"OMP_NUM_THREADS": "1"}
    assert threads.policy(cpus=8) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert threads.policy() == threads.policy(cpus=threads.available_cpus())


@pytest.mark.parametrize("cpus", [2, 8])
def test_the_pth_line_sets_only_unset_variables_and_honours_the_opt_out(tmp_path, cpus):
    """The line itself in a bare interpreter (-S: no site-packages), loaded as site.py loads it,
    on a machine with `cpus` CPUs (faked through os.sched_getaffinity, which the line reads)."""
    threads.install_pth(tmp_path)
    assert (tmp_path / threads.PTH_NAME).read_text() == threads.pth_line()
    code = (f"import json, os; os.sched_getaffinity = lambda pid: set(range({cpus})); import site; "
            f"site.addsitedir({str(tmp_path)!r}); print(json.dumps({{k: os.environ.get(k) for k in {NAMES!r}}}))")

    def run(env):
        proc = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        return {k: v for k, v in json.loads(proc.stdout).items() if v is not None}

    policy = threads.policy(cpus)
    assert run(_clean_env()) == {**policy, threads.FILLED: ",".join(policy)}
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    filled = ",".join(k for k in policy if k not in mine)  # a learner's explicit choice wins, and is not marked
    assert run(_clean_env(**mine)) == {**policy, **mine, threads.FILLED: filled}
    # a child process (a kernel started by the Jupyter server) keeps its parent's record of what the policy set
    inherited = {**policy, threads.FILLED: ",".join(policy)}
    assert run(_clean_env(**inherited)) == inherited
    assert run(_clean_env(COURSE_THREADS="off")) == {}


def test_opting_out_leaves_the_environment_as_it_is():
    seen, num_threads = _probe(_clean_env(COURSE_THREADS="off"))
    assert seen == {}
    assert 1 <= num_threads <= threads.available_cpus()


def test_apply_fills_in_unset_variables_and_warns_when_torch_is_already_loaded():
    import torch  # noqa: F401  (loaded, as in a notebook that imports torch before course_lib)

    env = {}
    with pytest.warns(RuntimeWarning, match="torch was imported before the course's thread policy"):
        assert threads.apply(env) == threads.policy()
    assert env == {**threads.policy(), threads.FILLED: ",".join(threads.policy())}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert threads.apply(env) == {}  # already in force: nothing to do, no warning
        assert threads.apply({"COURSE_THREADS": "off"}) == {}


def test_diagnose_warns_when_the_environment_defeats_the_policy(monkeypatch):
    facts, notes = threads.diagnose({"OMP_WAIT_POLICY": "PASSIVE"})
    assert "OpenMP wait policy PASSIVE" in facts[0] and "intra-op thread" in facts[0]
    assert f"course policy: {', '.join(f'{k}={v}' for k, v in threads.policy().items())}" in facts[1]
    assert not notes or all("PASSIVE" not in n for n in notes)  # sleeping threads are never a problem
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    assert "take the second core while it is free: no, OMP_WAIT_POLICY is set" in threads.diagnose(
        {"OMP_WAIT_POLICY": "PASSIVE", threads.FILLED: "OMP_NUM_THREADS"})[0][1]
    assert "take the second core while it is free: yes" in threads.diagnose({threads.FILLED: "OMP_NUM_THREADS"})[0][1]
    assert any("OMP_NUM_THREADS=2 is set in your environment and overrides the course's 1 thread(s) on 2 CPU(s)"
               in n for n in threads.diagnose({"OMP_NUM_THREADS": "2"})[1])
    assert not any("OMP_NUM_THREADS" in n for n in threads.diagnose({"OMP_NUM_THREADS": "1"})[1])
    defeated = {"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": "infinite"}
    notes = threads.diagnose(defeated)[1]
    assert any("OMP_WAIT_POLICY=active is set in your environment" in n for n in notes)
    assert any("GOMP_SPINCOUNT=infinite" in n for n in notes)
    assert any("COURSE_THREADS=off switches" in n for n in threads.diagnose({"COURSE_THREADS": "off"})[1])
    monkeypatch.setattr(threads, "installed_pth", lambda: None)
    assert any("is not installed" in n and "make setup" in n for n in threads.diagnose({})[1])


def test_doctor_reports_the_policy_and_its_warnings(monkeypatch, capsys):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "threads" in out and "OpenMP wait policy ACTIVE" in out
    assert "warning: OMP_WAIT_POLICY=ACTIVE is set in your environment" in out


def test_script_entry_point_installs_and_explains(tmp_path):
    script = threads.__file__
    proc = subprocess.run([sys.executable, script, "install", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and (tmp_path / threads.PTH_NAME).is_file()
    proc = subprocess.run([sys.executable, script, "bogus"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage: python course_lib/threads.py install" in proc.stderr


# --------------------------------------------------------------------------- adaptive threads (one or two)


class FakeMachine:
    """Step times of a GPT-like model on 2 cores: two threads 25% faster alone, 3x slower beside a busy process."""

    def __init__(self, with_load_signal=True):
        self.threads, self.busy, self.now, self.others = 1, False, 0.0, 0.0
        self.with_load_signal = with_load_signal

    def set_threads(self, n):
        self.threads = n

    def step(self) -> float:
        seconds = {(1, False): 0.060, (2, False): 0.045, (1, True): 0.063, (2, True): 0.180}[self.threads, self.busy]
        self.now += seconds
        self.others += seconds if self.busy else 0.02 * seconds  # a busy process takes a core; idle: a little noise
        return seconds

    def elsewhere(self):
        return self.others if self.with_load_signal else None


def _governor(machine, **kw):
    return threads.AdaptiveThreads(set_threads=machine.set_threads, get_threads=lambda: machine.threads,
                                   elsewhere=machine.elsewhere, clock=lambda: machine.now, **kw)


def _train(governor, machine, steps):
    """-> how many of these steps ran on two threads."""
    on_two = 0
    for _ in range(steps):
        on_two += machine.threads == 2
        governor.step_done(machine.step())
    return on_two


@pytest.mark.parametrize("with_load_signal", [True, False])
def test_adaptive_threads_take_the_free_core_and_give_it_back(with_load_signal):
    machine = FakeMachine(with_load_signal)
    with _governor(machine) as governor:
        assert _train(governor, machine, 400) >= 0.9 * 400  # alone: two threads nearly all the time
        assert governor.reference[2] < governor.reference[1]
        machine.busy = True
        busy_on_two = _train(governor, machine, 1000)
        assert machine.threads == 1
        # measured two threads again only at growing intervals (or never, with /proc/stat's signal)
        assert busy_on_two <= (4 if with_load_signal else 40), busy_on_two
        machine.busy = False
        back = _train(governor, machine, 400)
        assert back >= 400 - 200 - 8, back  # within one longest period and a measurement
        machine.threads = 2
    assert machine.threads == 1  # the count from before the loop


def test_adaptive_threads_keep_one_thread_when_two_are_not_faster():
    machine = FakeMachine(with_load_signal=False)
    machine.step = lambda: (setattr(machine, "now", machine.now + 0.05), 0.05)[1]  # same speed either way
    with _governor(machine) as governor:
        assert _train(governor, machine, 1000) <= 4 * 8  # only the measurements
        assert governor.measurements >= 5


def test_set_torch_threads_changes_torch_s_count_without_torch_set_num_threads():
    """In a fresh interpreter started as the policy starts one: two threads and back through OpenMP
    (torch.set_num_threads is not called: its MKL side effect is what set_torch_threads avoids), also
    after a torch.set_num_threads."""
    code = ("import json, torch; from course_lib import threads; calls = []; real = torch.set_num_threads; "
            "torch.set_num_threads = lambda n: (calls.append(n), real(n)); seen = [torch.get_num_threads()]; "
            "threads.set_torch_threads(2); seen.append(torch.get_num_threads()); "
            "threads.set_torch_threads(1); seen.append(torch.get_num_threads()); "
            "real(1); threads.set_torch_threads(2); seen.append(torch.get_num_threads()); "
            "print(json.dumps([seen, calls, threads._openmp_runtime() is not None]))")
    env = _clean_env(OMP_NUM_THREADS="1", COURSE_THREADS="off")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen, calls, found = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == [1, 2, 1, 2]
    # torch's OpenMP runtime is found in the Linux and macOS wheels; elsewhere torch.set_num_threads does it
    assert calls == ([] if found else [2, 1, 2])
    if sys.platform == "linux":
        assert found


def test_adaptive_threads_check_their_settings():
    for bad in (dict(low=2, high=2), dict(low=0), dict(block=0), dict(gain=1.5), dict(first_period=300)):
        with pytest.raises(ValueError):
            threads.AdaptiveThreads(set_threads=lambda n: None, get_threads=lambda: 1, **bad)


def test_adaptive_threads_only_where_the_policy_set_one_thread_on_two_cpus():
    mine = {threads.FILLED: "OMP_NUM_THREADS,MKL_NUM_THREADS", "OMP_NUM_THREADS": "1"}
    assert threads.adaptive_possible(mine, cpus=2) == (True, "on")
    assert not threads.adaptive_possible(mine, cpus=1)[0]
    assert not threads.adaptive_possible(mine, cpus=8)[0]
    assert "set by you" in threads.adaptive_possible({"OMP_NUM_THREADS": "1"}, cpus=2)[1]
    assert "OMP_WAIT_POLICY is set" in threads.adaptive_possible({**mine, "OMP_WAIT_POLICY": "PASSIVE"}, cpus=2)[1]
    assert "GOMP_SPINCOUNT is set" in threads.adaptive_possible({**mine, "GOMP_SPINCOUNT": "0"}, cpus=2)[1]
    assert "switches the policy off" in threads.adaptive_possible({**mine, "COURSE_THREADS": "off"}, cpus=2)[1]


def test_cpu_elsewhere_reads_proc_stat_minus_this_process(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 10 50 900 5 1 2 7 0 0\ncpu0 1 1 1 1 1 1 1\ncpu1 1 1 1 1 1 1 1\nintr 1\n")
    reader = threads.CpuElsewhere(str(stat))
    tick = os.sysconf("SC_CLK_TCK")
    assert reader.ok
    assert reader() == pytest.approx((100 + 10 + 50 + 1 + 2) / tick - time.process_time(), abs=0.05)
    stat.write_text("cpu  1 1 1 1 1 1 1 1 0 0\n" + "".join(f"cpu{i} 1 1 1 1 1 1 1\n" for i in range(64)))
    assert threads.CpuElsewhere(str(stat))() is None  # a larger host's counts: unknown, not wrong
    assert threads.CpuElsewhere(str(tmp_path / "missing"))() is None


def test_train_loop_with_adaptive_threads_restores_the_thread_count(monkeypatch):
    import torch
    from torch import nn

    from course_lib.train import train_loop

    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 1))
    x, y = torch.randn(64, 8), torch.randn(64, 1)

    def loss_fn(m, batch):
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "adaptive_possible", lambda *a, **k: (True, "on"))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # as under the policy, whatever this run uses
    history = train_loop(model, lambda step: (x, y), loss_fn, 40, progress=False, adaptive_threads=True)
    monkeypatch.undo()
    assert sum(history.thread_steps.values()) == 40 and set(history.thread_steps) <= {1, 2}
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)
    fixed = train_loop(model, lambda step: (x, y), loss_fn, 5, progress=False)
    assert fixed.thread_steps == {}


def test_adaptive_threads_beside_a_busy_process_never_try_two_threads():
    """With the machine's load known, a busy neighbour from the start means no slow two-thread step at all."""
    machine = FakeMachine()
    machine.busy = True
    with _governor(machine) as governor:
        assert _train(governor, machine, 500) == 0
        assert governor.measurements == 0
