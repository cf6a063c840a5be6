"""The course's thread policy: fast alone, a fair share when something else runs.

torch's CPU build parallelises with OpenMP (GNU libgomp). By default an OpenMP
thread that has finished its part of an operation keeps spinning on its core for
a while, waiting for the next one, and every parallel operation waits for its
slowest thread. On a 2-core laptop with anything else busy (a second notebook, a
video call) the threads and the other process take turns on the cores, and
training becomes many times slower (issue 17: 40 steps of notebook 02's model
took 125.7 s instead of 5.2 s).

Measured on 2 cores (README "Threads", benchmarks/threads.py), the course's
models train as fast or nearly as fast on one thread alone, and one thread
keeps its fair share beside a busy process, where two threads lose it even
with OMP_WAIT_POLICY=PASSIVE (threads that sleep at once pay a wake-up on every
operation instead). So the policy is:

- on a machine with at most 2 CPUs: one thread (OMP_NUM_THREADS=MKL_NUM_THREADS=1);
- everywhere: OMP_WAIT_POLICY=PASSIVE, so that where torch keeps several threads
  (more CPUs, or a learner's explicit OMP_NUM_THREADS) they do not spin against
  everything else. (Not measured beyond 2 cores: this machine has 2.)

The policy is environment variables, and OpenMP reads them once, when torch is
imported; setting them later does nothing. So the course installs
`course_lib_threads.pth` into the virtual environment's site-packages (`make`
does it): Python runs its one line at every start of that interpreter, before
any import, which covers JupyterLab (`make lab`), a kernel started by another
front end from the same venv (VS Code, JupyterHub), `python -m course_lib` and
the tests. `import course_lib` applies it too, for an interpreter without the
file, if torch is not loaded yet.

Values a learner sets explicitly win (only unset variables are filled in), and
COURSE_THREADS=off switches the policy off. `python -m course_lib doctor` shows
the policy in force and warns when the environment defeats it.

This module imports nothing heavy: it runs as a script (`python
course_lib/threads.py install`) before the package can be imported.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import warnings
from pathlib import Path

__all__ = ["POLICY", "SMALL_MACHINE", "OPT_OUT", "PTH_NAME", "available_cpus", "policy", "pth_line", "apply",
           "install_pth", "installed_pth", "diagnose"]

#: Filled in everywhere when unset.
POLICY: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
#: Filled in too, when unset, on a machine with at most SMALL_MACHINE_CPUS CPUs.
SMALL_MACHINE: dict[str, str] = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMALL_MACHINE_CPUS = 2
#: COURSE_THREADS=off (or 0, no, false) leaves the environment as it is.
OPT_OUT = "COURSE_THREADS"
PTH_NAME = "course_lib_threads.pth"
_OFF = ("off", "0", "no", "false")
# The CPUs this process may run on (a container's or taskset's limit, not the host's).
_CPUS = "(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1)"


def available_cpus() -> int:
    return eval(_CPUS)  # the same expression the .pth line runs


def policy(cpus: int | None = None) -> dict[str, str]:
    """The variables the policy fills in on a machine with `cpus` CPUs (default: this one)."""
    cpus = available_cpus() if cpus is None else cpus
    return {**POLICY, **(SMALL_MACHINE if cpus <= SMALL_MACHINE_CPUS else {})}


def enabled(environ=os.environ) -> bool:
    return environ.get(OPT_OUT, "").strip().lower() not in _OFF


def pth_line() -> str:
    """The one line of `course_lib_threads.pth`: site.py executes a line starting with `import`."""
    return (f"import os; os.environ.get({OPT_OUT!r}, '').strip().lower() in {_OFF!r} or "
            f"[os.environ.setdefault(k, v) for k, v in {{**{POLICY!r}, "
            f"**({SMALL_MACHINE!r} if {_CPUS} <= {SMALL_MACHINE_CPUS} else {{}})}}.items()]\n")


def apply(environ=os.environ) -> dict[str, str]:
    """Fill in the policy's unset variables (unless COURSE_THREADS=off); -> what was set.

    Warns when torch is already loaded and a variable had to be set: too late for
    OpenMP to see it in this process."""
    if not enabled(environ):
        return {}
    missing = {k: v for k, v in policy().items() if k not in environ}
    environ.update(missing)
    if missing and "torch" in sys.modules:
        warnings.warn(
            "torch was imported before the course's thread policy was applied, so OpenMP threads in this process "
            "spin while they wait: with anything else busy, training may run many times slower. Start Jupyter "
            "with `make lab`, or run `make setup` so the virtual environment applies the policy at startup "
            "(python -m course_lib doctor checks it).", RuntimeWarning, stacklevel=2)
    return missing


def site_packages() -> Path:
    """The running interpreter's site-packages (inside the venv when run from it)."""
    return Path(sysconfig.get_paths()["purelib"])


def install_pth(directory: Path | str | None = None) -> Path:
    """Write `course_lib_threads.pth` into `directory` (default: this interpreter's site-packages)."""
    path = Path(directory or site_packages()) / PTH_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pth_line())
    return path


def installed_pth() -> Path | None:
    """The policy file this interpreter runs at startup, if it is up to date; else None."""
    import site

    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    dirs.append(str(site_packages()))
    for directory in dict.fromkeys(dirs):
        path = Path(directory) / PTH_NAME
        if path.is_file() and path.read_text() == pth_line():
            return path
    return None


def diagnose(environ=os.environ) -> tuple[list[str], list[str]]:
    """What the doctor prints: (facts, warnings) about the thread policy of this process."""
    import torch

    cpus = available_cpus()
    threads = torch.get_num_threads()
    pth = installed_pth()
    facts = [f"torch uses {threads} intra-op thread(s) on {cpus} available CPU(s), "
             f"OpenMP wait policy {environ.get('OMP_WAIT_POLICY', 'unset (spins before sleeping)')}",
             f"course policy: {', '.join(f'{k}={v}' for k, v in policy(cpus).items())}"
             f"{' (switched off)' if not enabled(environ) else ''}; "
             f"startup file: {pth if pth else 'not installed in this Python'}"]
    notes = []
    if not enabled(environ):
        notes.append(f"{OPT_OUT}={environ[OPT_OUT]} switches the course's thread policy off: with anything else "
                     "busy, training may run many times slower")
    elif pth is None:
        notes.append(f"{PTH_NAME} is not installed in {site_packages()}: a Jupyter kernel started from this Python "
                     "by another front end (VS Code, JupyterHub) runs without the thread policy. Run `make setup`.")
    wait_policy = environ.get("OMP_WAIT_POLICY", "").upper()
    if wait_policy and wait_policy != POLICY["OMP_WAIT_POLICY"]:
        notes.append(f"OMP_WAIT_POLICY={environ['OMP_WAIT_POLICY']} is set in your environment and overrides the "
                     "course's PASSIVE: waiting threads spin, and training collapses when anything else is busy")
    spin = environ.get("GOMP_SPINCOUNT")
    if spin is not None and spin.strip() not in ("0", ""):
        notes.append(f"GOMP_SPINCOUNT={spin} is set and overrides OMP_WAIT_POLICY: waiting threads spin")
    wanted = policy(cpus).get("OMP_NUM_THREADS")
    if enabled(environ) and wanted and environ.get("OMP_NUM_THREADS", wanted) != wanted:
        notes.append(f"OMP_NUM_THREADS={environ['OMP_NUM_THREADS']} is set in your environment and overrides the "
                     f"course's {wanted} thread(s) on {cpus} CPU(s): several threads wait for each other and "
                     "collapse when anything else is busy")
    if threads > cpus:
        notes.append(f"torch uses {threads} threads on {cpus} CPU(s): more threads than cores only adds waiting; "
                     "unset OMP_NUM_THREADS or lower it")
    return facts, notes


def _main(argv: list[str]) -> int:
    if argv[:1] == ["install"] and len(argv) <= 2:
        print(f"thread policy: wrote {install_pth(argv[1] if len(argv) == 2 else None)}")
        return 0
    print("usage: python course_lib/threads.py install [DIRECTORY]   (default: this Python's site-packages)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
