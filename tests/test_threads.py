"""course_lib.threads: the thread policy every Python of the course's venv applies at startup (issue 17)."""

import json
import os
import subprocess
import sys
import warnings

import pytest

from course_lib import cli, threads

NAMES = sorted({*threads.POLICY, *threads.SMALL_MACHINE})
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
    assert seen == threads.policy()
    default_threads = _probe(_clean_env(COURSE_THREADS="off"))[1]
    if threads.available_cpus() <= threads.SMALL_MACHINE_CPUS:
        assert num_threads == 1
    else:
        assert num_threads == default_threads, "on a larger machine the policy keeps torch's thread count"


def test_the_policy_depends_on_the_cpus_available():
    assert threads.policy(cpus=1) == threads.policy(cpus=2) == {"OMP_WAIT_POLICY": "PASSIVE",
                                                                 "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
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

    assert run(_clean_env()) == threads.policy(cpus)
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    assert run(_clean_env(**mine)) == {**threads.policy(cpus), **mine}  # a learner's explicit choice wins
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
    assert env == threads.policy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert threads.apply(env) == {}  # already in force: nothing to do, no warning
        assert threads.apply({"COURSE_THREADS": "off"}) == {}


def test_diagnose_warns_when_the_environment_defeats_the_policy(monkeypatch):
    facts, notes = threads.diagnose({"OMP_WAIT_POLICY": "PASSIVE"})
    assert "OpenMP wait policy PASSIVE" in facts[0] and "intra-op thread" in facts[0]
    assert "course policy: OMP_WAIT_POLICY=PASSIVE" in facts[1]
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
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
