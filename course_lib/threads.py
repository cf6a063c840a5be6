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
operation instead, which makes two of them no faster than one). So the policy is:

- on a machine with at most 2 CPUs: one thread (OMP_NUM_THREADS=1; MKL follows
  OpenMP's count), and OpenMP's own wait policy (a short spin, then sleep), so
  that a training loop that opts in (``train_loop(..., adaptive_threads=True)``:
  the GPTs of notebooks 07 and 10, the ViT and CNN of notebook 08) can take the
  second core while that is faster: `AdaptiveThreads` times its steps with one
  and with two threads and keeps the faster, watching for the slow-down that
  anything else running brings. It changes the count with `set_torch_threads`,
  not torch.set_num_threads (see there why);
- on a larger machine: torch's thread count, with OMP_WAIT_POLICY=PASSIVE so that
  its threads do not spin against everything else. (Not measured beyond 2
  cores: this machine has 2.)

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

import functools
import os
import statistics
import sys
import sysconfig
import time
import warnings
from pathlib import Path

__all__ = ["SMALL_MACHINE", "LARGE_MACHINE", "OPT_OUT", "FILLED", "PTH_NAME", "available_cpus", "policy",
           "pth_line", "apply", "install_pth", "installed_pth", "adaptive_possible", "set_torch_threads",
           "AdaptiveThreads", "CpuElsewhere", "diagnose"]

#: Filled in, when unset, on a machine with at most SMALL_MACHINE_CPUS CPUs.
#: (Not MKL_NUM_THREADS: MKL follows OpenMP's count unless it is set, and a count set there stays when
#: `set_torch_threads` gives OpenMP a second thread; measured on notebook 08's ViT, see set_torch_threads.)
SMALL_MACHINE: dict[str, str] = {"OMP_NUM_THREADS": "1"}
#: Filled in, when unset, on a machine with more CPUs.
LARGE_MACHINE: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
SMALL_MACHINE_CPUS = 2
#: The policy records here which variables it filled in (comma-separated), so that a learner's own
#: OMP_NUM_THREADS=1 is told apart from the policy's: only the policy's one thread may become two.
FILLED = "COURSE_THREADS_FILLED"
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
    return dict(SMALL_MACHINE if cpus <= SMALL_MACHINE_CPUS else LARGE_MACHINE)


def enabled(environ=os.environ) -> bool:
    return environ.get(OPT_OUT, "").strip().lower() not in _OFF


def pth_line() -> str:
    """The one line of `course_lib_threads.pth`: site.py executes a line starting with `import`."""
    return (f"import os; os.environ.get({OPT_OUT!r}, '').strip().lower() in {_OFF!r} or "
            f"os.environ.setdefault({FILLED!r}, ','.join([k for k, v in ({SMALL_MACHINE!r} if {_CPUS} <= "
            f"{SMALL_MACHINE_CPUS} else {LARGE_MACHINE!r}).items() if k not in os.environ and "
            f"os.environ.setdefault(k, v)]))\n")


def apply(environ=os.environ) -> dict[str, str]:
    """Fill in the policy's unset variables (unless COURSE_THREADS=off); -> what was set.

    Warns when torch is already loaded and a variable had to be set: too late for
    OpenMP to see it in this process."""
    if not enabled(environ):
        return {}
    missing = {k: v for k, v in policy().items() if k not in environ}
    environ.update(missing)
    environ.setdefault(FILLED, ",".join(missing))
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


def adaptive_possible(environ=os.environ, cpus: int | None = None) -> tuple[bool, str]:
    """Whether a training loop that opts in may take the second core -> (yes or no, why).

    Only on a 2-CPU machine where the policy itself set one thread (not a learner's own
    OMP_NUM_THREADS) and OpenMP keeps its default wait policy: two threads that sleep at once
    (PASSIVE) are no faster than one, and threads told to spin (ACTIVE, GOMP_SPINCOUNT) would keep
    the idle one busy after the loop goes back to one thread."""
    cpus = available_cpus() if cpus is None else cpus
    if not enabled(environ):
        return False, f"{OPT_OUT}={environ.get(OPT_OUT)} switches the policy off"
    if not 1 < cpus <= SMALL_MACHINE_CPUS:
        return False, f"only on a machine with 2 CPUs ({cpus} available)"
    if "OMP_NUM_THREADS" not in environ.get(FILLED, "").split(","):
        return False, "OMP_NUM_THREADS is not the policy's (set by you, or the startup file is missing)"
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if name in environ:
            return False, f"{name} is set"
    return True, "on"


@functools.lru_cache(maxsize=None)
def _openmp_runtime():
    """The OpenMP runtime torch loaded (GNU libgomp in the Linux wheels, LLVM libomp on macOS), through
    ctypes (loading a library that is already loaded returns it), or None where there is none to find."""
    import ctypes

    import torch

    for pattern in ("libgomp*.so*", "libomp*.dylib", "libomp*.so*", "libiomp5*"):
        for path in sorted((Path(torch.__file__).parent / "lib").glob(pattern)):
            try:
                handle = ctypes.CDLL(str(path))
                handle.omp_set_num_threads.argtypes = [ctypes.c_int]
                return handle
            except (OSError, AttributeError):
                continue
    return None


def set_torch_threads(n: int) -> None:
    """Give torch `n` intra-op threads, as OpenMP's omp_set_num_threads does, not torch.set_num_threads.

    torch.set_num_threads also switches MKL's dynamic threading off (MKL may then no longer use fewer
    threads than it is given for a small matrix product) and fixes MKL's own count. Measured on notebook 08's
    ViT on 2 CPUs (150 training steps, 8 alternating runs, medians): torch's untouched default of 2
    threads 5.95 s; one thread 6.22 s; torch.set_num_threads(2) 6.94 s, slower than one thread;
    omp_set_num_threads(2) in a process started with OMP_NUM_THREADS=1 5.76 s. So this calls the
    OpenMP runtime torch loaded (torch.get_num_threads() reads OpenMP's count back), and calls
    torch.set_num_threads only where it finds none or the count did not take."""
    import torch

    runtime = _openmp_runtime()
    if runtime is not None:
        runtime.omp_set_num_threads(int(n))
        if torch.get_num_threads() == n:
            return
    torch.set_num_threads(n)


class AdaptiveThreads:
    """Between training steps, use whichever of 1 and 2 torch threads is faster right now.

    On a 2-core machine two OpenMP threads train a GPT-sized model about 1.2-1.4x faster than one
    while nothing else runs, and up to several times slower beside one busy process: every
    operation waits for the thread that lost its core. So the loop reports the wall time of each
    step (`step_done`), and this object:

    1. after `skip` warm-up steps, and once the load of the machine is known (below), measures
       `block` steps with each count (the current one first);
    2. keeps two threads if their median step is below `gain` times one thread's, else one;
    3. while on two threads, goes back to one as soon as other processes used more than `busy`
       of a core over the last half second (`elsewhere`, from /proc/stat); where /proc/stat cannot
       tell, it measures again as soon as the median of the last `block` steps is above `slowdown`
       times one thread's (the same news, later);
    4. measures again after `period` steps anyway (something else stopped): 25 steps after a
       change, doubling up to `max_period` while the choice holds; it skips a measurement, and
       waits another period, while other processes keep more than `busy` of a core.

    So beside a busy process it trains on one thread and only measures two when the other
    process seems to have stopped; alone, it spends `block` steps in `period` on one thread.
    Use it as a context manager: the thread count is restored on exit. `set_threads`,
    `get_threads`, `elsewhere` and `clock` default to `set_torch_threads`, torch.get_num_threads,
    `CpuElsewhere` and perf_counter (tests pass fakes).

    Two threads do not give bit-identical results to one: LayerNorm's weight and bias gradients
    are sums that torch splits between the threads, so a run differs from a one-thread run in the
    last bits (measured on the GPT of notebook 07: 1e-9 in those gradients), and which steps ran on
    two threads depends on what else the machine did meanwhile.
    """

    def __init__(self, low: int = 1, high: int = 2, block: int = 4, gain: float = 0.9, slowdown: float = 1.2,
                 first_period: int = 25, max_period: int = 200, skip: int = 2, busy: float = 0.5,
                 set_threads=None, get_threads=None, elsewhere=None, clock=time.perf_counter):
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low < high):
            raise ValueError(f"need whole numbers 1 <= low < high, got low={low!r}, high={high!r}")
        if not (isinstance(block, int) and block >= 1 and isinstance(skip, int) and skip >= 0):
            raise ValueError(f"block must be a positive int and skip a non-negative one, got {block!r}, {skip!r}")
        if not (0 < gain <= 1 and slowdown >= 1 and 1 <= first_period <= max_period):
            raise ValueError("need 0 < gain <= 1, slowdown >= 1 and 1 <= first_period <= max_period")
        if set_threads is None or get_threads is None:
            import torch

            set_threads, get_threads = set_threads or set_torch_threads, get_threads or torch.get_num_threads
        self.low, self.high, self.block, self.gain, self.slowdown = low, high, block, gain, slowdown
        self.first_period, self.max_period, self.busy = first_period, max_period, busy
        self._set_threads, self._get_threads = set_threads, get_threads
        #: callable -> CPU seconds other processes have used so far (a running total), or None if unknown
        self._elsewhere = elsewhere if elsewhere is not None else CpuElsewhere()
        self._clock = clock
        self._load: list[tuple[float, float]] = []  # (wall, elsewhere) after each step of the last `window` s
        self.window = 0.5
        self._skip = skip
        self.current = low
        self.steps_at: dict[int, int] = {low: 0, high: 0}
        #: median step seconds per thread count at the last measurement
        self.reference: dict[int, float] = {}
        self.measurements = 0
        self._plan: list[int] | None = None
        self._probe: dict[int, list[float]] = {}
        self._recent: list[float] = []
        self._period = first_period
        self._countdown = 0
        self._choice: int | None = None
        self._before: int | None = None

    def __enter__(self) -> "AdaptiveThreads":
        self._before = self._get_threads()
        self._use(self.low)
        return self

    def __exit__(self, *exc) -> None:
        if self._before is not None:
            self._set_threads(self._before)

    def _use(self, n: int) -> None:
        if n != self.current or self._get_threads() != n:
            self._set_threads(n)
        self.current = n

    def _measure(self) -> None:
        other = self.high if self.current == self.low else self.low
        self._plan = [self.current] * (self.block - 1) + [other] * self.block
        self._probe = {self.low: [], self.high: []}

    def busy_elsewhere(self) -> float | None:
        """Cores' worth of CPU that other processes used over about the last `window` seconds (None: unknown,
        or not yet measured over half of it: /proc/stat counts in ticks of 10 ms)."""
        if len(self._load) < 2:
            return None
        (t0, c0), (t1, c1) = self._load[0], self._load[-1]
        return (c1 - c0) / (t1 - t0) if t1 - t0 >= self.window / 2 else None

    def step_done(self, seconds: float) -> int:
        """Record the wall time of the step just trained; -> the thread count for the next one."""
        self.steps_at[self.current] += 1
        other, now = self._elsewhere(), self._clock()
        if other is None:
            self._load = []
        else:
            self._load.append((now, other))
            while len(self._load) > 2 and now - self._load[1][0] >= self.window:
                del self._load[0]
        if self._skip > 0:
            self._skip -= 1
            return self.current
        if self._plan is not None:
            self._probe[self.current].append(seconds)
            if self._plan:
                self._use(self._plan.pop(0))
            else:
                self._decide()
            return self.current
        self._recent = (self._recent + [seconds])[-self.block:]
        self._countdown -= 1
        load = self.busy_elsewhere()
        crowded = load is not None and load > self.busy
        if self.current == self.high and crowded:  # something else started: give its core back
            self._use(self.low)
            self._choice, self._period, self._countdown, self._recent = self.low, self.first_period, \
                self.first_period, []
            return self.current
        # without /proc/stat, a slow-down of the two-thread steps is the only sign of another process
        slowed = (other is None and self.current == self.high and len(self._recent) == self.block
                  and statistics.median(self._recent) > self.slowdown * self.reference[self.low])
        if slowed:
            self._period = self.first_period
        if slowed or self._countdown <= 0:
            if other is not None and load is None:
                pass  # the load is not known yet (the first steps): measure as soon as it is
            elif self.current == self.low and crowded:
                self._countdown = self._period  # busy elsewhere: no use measuring two threads now
            else:
                self._measure()
        return self.current

    def _decide(self) -> None:
        self.reference = {n: statistics.median(times) for n, times in self._probe.items()}
        best = self.high if self.reference[self.high] < self.gain * self.reference[self.low] else self.low
        self._period = self.first_period if best != self._choice else min(2 * self._period, self.max_period)
        self._choice, self._countdown, self._plan, self._recent = best, self._period, None, []
        self.measurements += 1
        self._use(best)


class CpuElsewhere:
    """Running total of the CPU seconds used by every other process: all CPUs' busy time in
    /proc/stat (user, nice, system, irq, softirq) minus this process's own CPU time. Calling it
    returns the total, or None where /proc/stat is missing or counts other CPUs than this process
    may use (a container on a larger host), so that only the timing of the steps is left."""

    def __init__(self, path: str = "/proc/stat"):
        self._path = path
        try:
            with open(path) as f:
                cpus = sum(1 for line in f if line[:3] == "cpu" and line[3:4].isdigit())
            self._tick = os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, AttributeError):
            cpus, self._tick = 0, 0
        self.ok = cpus == available_cpus() and self._tick > 0

    def __call__(self) -> float | None:
        if not self.ok:
            return None
        try:
            with open(self._path) as f:
                fields = f.readline().split()
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
        except (OSError, ValueError):
            return None
        return (user + nice + system + irq + softirq) / self._tick - time.process_time()


def diagnose(environ=os.environ) -> tuple[list[str], list[str]]:
    """What the doctor prints: (facts, warnings) about the thread policy of this process."""
    import torch

    cpus = available_cpus()
    threads = torch.get_num_threads()
    pth = installed_pth()
    adaptive, why = adaptive_possible(environ, cpus)
    facts = [f"torch uses {threads} intra-op thread(s) on {cpus} available CPU(s), "
             f"OpenMP wait policy {environ.get('OMP_WAIT_POLICY', 'unset (a short spin, then sleep)')}",
             f"course policy: {', '.join(f'{k}={v}' for k, v in policy(cpus).items())}"
             f"{' (switched off)' if not enabled(environ) else ''}; "
             f"startup file: {pth if pth else 'not installed in this Python'}; "
             f"training loops that opt in take the second core while it is free: "
             f"{'yes' if adaptive else 'no, ' + why}"]
    notes = []
    if not enabled(environ):
        notes.append(f"{OPT_OUT}={environ[OPT_OUT]} switches the course's thread policy off: with anything else "
                     "busy, training may run many times slower")
    elif pth is None:
        notes.append(f"{PTH_NAME} is not installed in {site_packages()}: a Jupyter kernel started from this Python "
                     "by another front end (VS Code, JupyterHub) runs without the thread policy. Run `make setup`.")
    wait_policy = environ.get("OMP_WAIT_POLICY", "").upper()
    if wait_policy and wait_policy != "PASSIVE":
        notes.append(f"OMP_WAIT_POLICY={environ['OMP_WAIT_POLICY']} is set in your environment: waiting threads "
                     "spin instead of sleeping, and training collapses when anything else is busy")
    spin = environ.get("GOMP_SPINCOUNT")
    if spin is not None and spin.strip() not in ("0", ""):
        notes.append(f"GOMP_SPINCOUNT={spin} is set and overrides OpenMP's wait policy: waiting threads spin")
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
