"""Running a check: ``run_check(id, fn) -> CheckResult`` (never raises) and ``check(id, fn)``,
which shows the report in a notebook and never stops "Run All".

Points: the exercise's points are shared among its sub-checks in proportion to
their weights, in steps of 0.05 (largest remainders, every weighted sub-check
at least one step), so reports show 0.25 or 0.4, never 0.192. A failed or
skipped sub-check earns nothing, and nothing at all is earned until every
essential sub-check passes (a function that returns its input unchanged has
the right type and shape, and deserves nothing for it). The framework adds
"is callable" first and "leaves its inputs unchanged" last.

The check runs in a standard torch state, whatever the learner's notebook set:
gradients enabled and float32 as the default dtype, restored afterwards.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from contextlib import contextmanager
from typing import Any

import torch

from .context import CheckContext
from .expectations import type_name
from .registry import EXERCISES, ExerciseSpec, _load_checker
from .rendering import render_html, render_text
from .results import ENCOURAGEMENT, NOT_IMPLEMENTED, CheckResult, SubCheck

DEFAULT_TIME_LIMIT = 10.0
GRADING_ENV = "COURSE_LIB_GRADING"  # set by the grader: check() cells then skip (the grader checks itself)
POINT_STEP = 0.05


def _new_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def share_points(total: float, weights: list[float], step: float = POINT_STEP) -> list[float]:
    """``total`` split in proportion to ``weights`` in multiples of ``step`` that add up to
    ``total`` exactly (largest remainders); every positive weight gets at least one step."""
    units = int(round(total / step))
    positive = [i for i, w in enumerate(weights) if w > 0]
    shares = [0] * len(weights)
    if not positive or units <= 0:
        return [0.0] * len(weights)
    wsum = sum(weights[i] for i in positive)
    exact = {i: units * weights[i] / wsum for i in positive}
    for i in positive:
        shares[i] = max(1, math.floor(exact[i]))
    order = sorted(positive, key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    k = 0
    while sum(shares) < units:
        shares[order[k % len(order)]] += 1
        k += 1
    while sum(shares) > units:  # the minimum of one step overshot: take from the largest
        j = max(positive, key=lambda i: shares[i] - exact[i] if shares[i] > 1 else -1e9)
        shares[j] -= 1
    return [round(s * step, 4) for s in shares]


def _summarize(spec: ExerciseSpec, ctx: CheckContext) -> CheckResult:
    subchecks: list[SubCheck] = [s for s, _ in ctx.subchecks]
    for sub, share in zip(subchecks, share_points(spec.points, [w for _, w in ctx.subchecks])):
        sub.max_points = share
        sub.points = share if sub.status == "passed" else 0.0
    failed = [s for s in subchecks if s.status == "failed"]
    passed = not failed and all(s.status == "passed" for s in subchecks)
    if not all(s.status == "passed" for s in subchecks if s.essential):
        for s in subchecks:  # partial credit only once the essential sub-checks pass
            s.points = 0.0
    points = spec.points if passed else round(sum(s.points for s in subchecks), 4)
    hint = failed[0].hint if failed else ""
    if ctx.not_implemented and not any(s.status == "passed" and s.max_points > 0 for s in subchecks):
        messages = [NOT_IMPLEMENTED, ENCOURAGEMENT]
        points = 0.0
    elif failed:
        messages = []
        for i, s in enumerate(failed):
            messages.append(s.message if s.message == NOT_IMPLEMENTED else f"{s.name}: {s.message}")
            if i == 0 and s.hint:
                messages.append(f"Hint: {s.hint}")
    else:
        messages = [f"all {len(subchecks)} checks passed"]
    return CheckResult(passed, points, spec.points, messages, spec.id, spec.title, spec.function,
                       subchecks, hint, ctx.seed)


@contextmanager
def standard_torch_state():
    """Gradients on and float32 as the default dtype while the check runs (a notebook
    may have called torch.set_grad_enabled(False) or torch.set_default_dtype(torch.float64))."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        with torch.enable_grad():
            yield
    finally:
        torch.set_default_dtype(dtype)


def run_check(exercise_id: str, fn: Any, *, time_limit: float = DEFAULT_TIME_LIMIT,
              seed: int | None = None) -> CheckResult:
    """Run the checks of ``exercise_id`` on ``fn`` and return a CheckResult.

    Never raises (a KeyboardInterrupt from the user still stops it). ``seed``
    fixes the random inputs (default: fresh ones each run; the result records
    the seed so a run can be reproduced).
    """
    exercise_id = str(exercise_id).strip()
    spec = EXERCISES.get(exercise_id)
    if spec is None:
        close = difflib.get_close_matches(exercise_id, list(EXERCISES), n=1)
        suggestion = f" Did you mean {close[0]!r}?" if close else ""
        return CheckResult(False, 0.0, 0.0,
                           [f"unknown exercise id {exercise_id!r}.{suggestion} "
                            f"Known ids: {', '.join(EXERCISES)}"], id=exercise_id)
    seed = _new_seed() if seed is None else int(seed)
    try:
        entry = _load_checker(exercise_id)
    except Exception as exc:  # noqa: BLE001 - a broken checker module must not stop the notebook
        return CheckResult(False, 0.0, spec.points,
                           [f"internal error while loading the checker of {exercise_id} "
                            f"({type(exc).__name__}: {exc}); not your fault, please tell the course authors"],
                           spec.id, spec.title, spec.function, seed=seed)
    if entry is None:
        return CheckResult(False, 0.0, spec.points,
                           [f"no checker for this exercise yet ({exercise_id} {spec.title}); "
                            "compare with the lecture notebook instead"],
                           spec.id, spec.title, spec.function, seed=seed)
    ctx = CheckContext(spec, seed, time_limit, entry.misconceptions, entry.match_tolerances)
    name = spec.function

    with standard_torch_state():
        @ctx.subcheck(f"`{name}` is callable", weight=0.0, essential=True)
        def _callable():
            if not callable(fn):
                ctx.fail(f"expected a function (or class) named `{name}`, got a {type_name(fn)}",
                         f"Pass the function itself: check({exercise_id!r}, {name}), without calling it.")

        try:
            entry.fn(ctx, fn)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in the checker, outside any sub-check
            return CheckResult(False, 0.0, spec.points,
                               [f"internal error in the checker of {exercise_id} ({type(exc).__name__}: {exc}); "
                                "not your fault, please tell the course authors"],
                               spec.id, spec.title, spec.function, seed=seed)

        @ctx.subcheck("leaves its inputs unchanged", weight=entry.mutation_weight)
        def _not_mutated():
            if ctx.mutations:
                ctx.fail(f"your function modified its input {', '.join(ctx.mutations)} in place",
                         "An in-place operation (x -= ..., x /= ..., x.exp_(), x[...] = ...) changes the caller's "
                         "tensor. Compute into a new tensor instead (x = x - ..., torch.exp(x)).")

    return _summarize(spec, ctx)


def _in_jupyter() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _show(result: CheckResult) -> None:
    if _in_jupyter():
        from IPython.display import display

        display({"text/html": render_html(result), "text/plain": render_text(result)}, raw=True)
    else:
        print(render_text(result), flush=True)


def check(exercise_id: str, fn: Any, *, time_limit: float = DEFAULT_TIME_LIMIT, seed: int | None = None) -> None:
    """Check ``fn`` against exercise ``exercise_id`` and show the report
    (HTML in Jupyter, text elsewhere). Never raises, so "Run All" goes on;
    returns None so the report is not shown twice (use ``run_check`` for the
    CheckResult)."""
    try:
        if os.environ.get(GRADING_ENV) == "1":
            print(f"[{exercise_id}] checks are run by the grader itself, not by this cell.")
            return None
        result = run_check(exercise_id, fn, time_limit=time_limit, seed=seed)
        _show(result)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - check() must never stop a notebook
        print(f"check({exercise_id!r}) could not run: {type(exc).__name__}: {exc}", flush=True)
    return None
