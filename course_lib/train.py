"""Seeding, device choice, the thread policy, a small training loop with a progress bar, evaluation.

Training never plots (see plots/); every function here returns numbers that a
notebook can assert on and plot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import threads

# OpenMP reads its settings when torch loads: apply the course's thread policy first (see threads.py).
# The venv's course_lib_threads.pth has normally done it already, at interpreter start.
threads.apply()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ = [
    "seed_everything",
    "device",
    "count_parameters",
    "History",
    "train_loop",
    "evaluate",
    "exact_match",
    "model_cache_dir",
    "cache_key",
    "CachedRun",
    "cached_training",
]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a torch.Generator
    seeded the same way, for code that wants its own random stream.

    Not seeded: Python's string hashing (the iteration order of a set of
    strings). Python fixes it once, at interpreter start, from PYTHONHASHSEED in
    the environment; setting that variable in a running process changes nothing,
    so this function leaves it alone; code that must repeat sorts a set of
    strings before relying on its order."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device(prefer: str | None = None) -> torch.device:
    """The best device available: CUDA, then Apple MPS, then the CPU.

    `prefer` ("cpu", "cuda", "mps") forces a choice; the environment variable
    COURSE_DEVICE does the same for a whole session (e.g. COURSE_DEVICE=cpu).
    """
    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        choice = choice.lower()
        if choice not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device must be one of 'cpu', 'cuda', 'mps', got {choice!r}")
        if choice == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
        if choice == "mps" and not _mps_available():
            raise ValueError("device 'mps' was asked for but torch.backends.mps.is_available() is False")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of a module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class History:
    """What a training run measured: loss per step, wall time, and any
    evaluations made along the way as (step, value) pairs."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    evals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    #: steps trained per torch thread count, when the loop chose it (adaptive_threads); not cached
    thread_steps: dict[int, int] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 10% of steps (at least one)."""
        if not self.loss:
            raise ValueError("the history is empty: no step was trained")
        k = max(1, len(self.loss) // 10)
        return float(np.mean(self.loss[-k:]))

    def smoothed(self, window: int = 25) -> np.ndarray:
        """Moving average of the loss, for plots."""
        x = np.asarray(self.loss, dtype=float)
        if len(x) == 0 or window <= 1:
            return x
        window = min(window, len(x))
        kernel = np.ones(window) / window
        head = np.cumsum(x[: window - 1]) / np.arange(1, window)
        return np.concatenate([head, np.convolve(x, kernel, mode="valid")])


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, mininterval=0.5)


def train_loop(
    model: nn.Module,
    batches: Callable[[int], object] | Iterator,
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    steps: int,
    lr: float = 3e-3,
    optimizer: torch.optim.Optimizer | None = None,
    clip_grad: float | None = 1.0,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "training",
    schedule: str = "constant",
    adaptive_threads: bool = False,
) -> History:
    """Train `model` for `steps` optimizer steps and return its History.

    batches: either a function step -> batch or an iterator of batches.
    loss_fn(model, batch) -> scalar loss tensor.
    eval_fn(model) -> {name: value}, called every `eval_every` steps (and at
    the end) under torch.no_grad() with the model in eval mode.
    The optimizer defaults to AdamW(lr). schedule: "constant" keeps the
    learning rate; "cosine" lowers it from its starting value to 0 along half a
    cosine over the run (Loshchilov & Hutter 2017, without restarts), which
    lets a short run settle. A progress bar (tqdm.auto) shows the running
    loss; `progress=False` silences it.

    adaptive_threads: on a 2-core machine under the course's thread policy,
    train each step on one or two torch threads, whichever the timing of the
    last steps says is faster (``course_lib.threads.AdaptiveThreads``): two
    while the other core is free, one when something else needs it. The run
    then matches a one-thread run only up to rounding (LayerNorm's gradient
    sums). Elsewhere, on another device, or with the policy off, it changes
    nothing.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    next_batch = batches if callable(batches) else (lambda _step, it=iter(batches): next(it))
    history = History()
    governor = _adaptive_threads(model) if adaptive_threads else None
    start = time.perf_counter()
    bar = _progress(range(steps), steps, desc, progress)
    model.train()
    with governor if governor is not None else contextlib.nullcontext():
        for step in bar:
            began = time.perf_counter()
            if schedule == "cosine":
                factor = 0.5 * (1.0 + math.cos(math.pi * step / steps))
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
            batch = next_batch(step)
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            history.steps.append(step)
            history.loss.append(loss.item())
            if governor is not None:
                governor.step_done(time.perf_counter() - began)
            if progress and step % 25 == 0:
                shown = {"loss": f"{history.smoothed(25)[-1]:.3f}"}
                if governor is not None:
                    shown["threads"] = governor.current
                bar.set_postfix(shown)
            last = step == steps - 1
            if eval_fn is not None and ((eval_every and (step + 1) % eval_every == 0) or last):
                for name, value in evaluate(model, eval_fn).items():
                    history.evals.setdefault(name, []).append((step + 1, float(value)))
    history.seconds = time.perf_counter() - start
    if governor is not None:
        history.thread_steps = {n: k for n, k in governor.steps_at.items() if k}
    model.eval()
    return history


def _adaptive_threads(model: nn.Module):
    """An AdaptiveThreads for training `model` here, or None where it cannot help."""
    from .threads import AdaptiveThreads, adaptive_possible

    param = next(model.parameters(), None)
    if (param is not None and param.device.type != "cpu") or torch.get_num_threads() != 1:
        return None
    return AdaptiveThreads() if adaptive_possible()[0] else None


def evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], dict[str, float]]) -> dict[str, float]:
    """Run eval_fn(model) in eval mode without gradients, restoring the mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in eval_fn(model).items()}
    finally:
        model.train(was_training)


def exact_match(predicted: torch.Tensor, target: torch.Tensor, pad_id: int | None = None) -> torch.Tensor:
    """Per-row exact match (bool, shape (B,)) of two (B, T) token tensors.

    Positions where target == pad_id are ignored. Shapes must match.
    """
    if predicted.shape != target.shape:
        raise ValueError(
            f"predicted has shape {tuple(predicted.shape)} but target has shape {tuple(target.shape)}; "
            "expected equal (B, T) shapes"
        )
    equal = predicted == target
    if pad_id is not None:
        equal = equal | (target == pad_id)
    return equal.reshape(equal.shape[0], -1).all(dim=1)


# ---------------------------------------------------------------------------
# A local cache of trained models

CACHE_FORMAT = 1  # bump when a change of code makes old cached models wrong


def model_cache_dir() -> Path | None:
    """Where trained models are cached: $COURSE_CACHE_DIR, else .cache/models
    in the course's checkout. COURSE_CACHE_DIR=off disables the cache."""
    env = os.environ.get("COURSE_CACHE_DIR")
    if env is not None and env.strip().lower() in ("", "off", "0", "none"):
        return None
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / ".cache" / "models"


def cache_key(kind: str, config: dict) -> str:
    """A file name for (kind, config): the config, torch's version and the cache format hashed."""
    if not isinstance(kind, str) or not kind.isidentifier():
        raise ValueError(f"kind must be a short identifier such as 'reversal', got {kind!r}")
    try:
        text = json.dumps({"kind": kind, "config": config, "torch": torch.__version__, "format": CACHE_FORMAT},
                          sort_keys=True)
    except TypeError as err:
        raise TypeError(f"config must hold only JSON values (numbers, strings, lists, dicts): {err}") from None
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pt"


@dataclass
class CachedRun:
    """A trained model and how it was obtained."""

    model: nn.Module
    history: History
    from_cache: bool
    path: Path | None

    def describe(self) -> str:
        where = f"loaded from {self.path}" if self.from_cache else "trained now"
        if not self.from_cache and self.path is not None:
            where += f", saved to {self.path}"
        return f"{where} ({len(self.history.loss)} steps, trained in {self.history.seconds:.0f} s)"


class _CacheProbe(Exception):
    """Raised by ``cached_training`` inside ``cache_path_of``: carries the file the run would be cached in."""

    def __init__(self, path: Path | None):
        super().__init__(str(path))
        self.path = path


_probing = False


def cache_path_of(train_or_load: Callable[[], object]) -> Path | None:
    """The cache file that ``train_or_load()`` would read or write through ``cached_training`` (None with
    the cache off), found by running it up to that call, which then stops it: nothing is built or trained."""
    global _probing
    _probing = True
    try:
        train_or_load()
    except _CacheProbe as probe:
        return probe.path
    finally:
        _probing = False
    raise RuntimeError("the function returned without going through course_lib.train.cached_training")


def cached_training(kind: str, config: dict, build: Callable[[], nn.Module],
                    fit: Callable[[nn.Module], History], device_type: str | None = None) -> CachedRun:
    """Build and train a model, or load it if the same (kind, config) was trained before.

    build() -> a fresh (seeded) model; fit(model) -> its History. The file is
    written atomically, so two notebooks training the same model at once
    cannot leave a broken file; an unreadable file is retrained and replaced.
    `config` must describe everything that changes the result (it is hashed
    into the file name), including the seed.
    """
    directory = model_cache_dir()
    if device_type is not None:
        config = {**config, "device_type": device_type}
    path = None if directory is None else directory / cache_key(kind, config)
    if _probing:  # cache_path_of asks where the run would be cached, and nothing more
        raise _CacheProbe(path)
    with _training_lock(path):
        return _load_or_train(config, build, fit, path)


@contextlib.contextmanager
def _training_lock(path: Path | None):
    """While one process trains a model, another that wants the same model waits
    for it and then loads it instead of training it a second time (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; at worst both train, and os.replace keeps one file
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_suffix(".lock"), "a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_or_train(config: dict, build, fit, path: Path | None) -> CachedRun:
    model = build()
    if path is not None and path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["state_dict"])
            evals = {name: [(int(s), float(v)) for s, v in pairs] for name, pairs in saved.get("evals", {}).items()}
            history = History(steps=list(range(len(saved["loss"]))), loss=list(saved["loss"]), evals=evals,
                              seconds=float(saved["seconds"]))
            model.eval()
            return CachedRun(model, history, True, path)
        except Exception as err:  # a partial or foreign file: train again
            warnings.warn(f"could not read the cached model {path} ({err}); training it again", stacklevel=2)
    history = fit(model)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            try:
                torch.save({"config": json.dumps(config, sort_keys=True), "state_dict": state,
                            "loss": [float(x) for x in history.loss], "seconds": float(history.seconds),
                            "evals": {name: [[int(s), float(v)] for s, v in pairs]
                                      for name, pairs in history.evals.items()}}, tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        except OSError as err:
            warnings.warn(f"could not save the trained model to {path} ({err}); it will be retrained next time",
                          stacklevel=2)
            path = None
    return CachedRun(model, history, False, path)
