"""Checkers for the graded exercises, the release of exercise notebooks, and grading.

For learners, in a notebook::

    from course_lib.checks import check
    check("00.1", softmax)        # shows a report; never stops "Run All"

For programs: ``run_check("00.1", softmax) -> CheckResult`` (fields ``passed``,
``points``, ``max_points``, ``messages``, then ``id``, ``title``, ``function``,
``subchecks``, ``hint``, ``seed``). ``EXERCISES`` maps every exercise ID of the
curriculum to its ``ExerciseSpec(id, title, function, points, notebook)``.

Modules:

* ``framework``  CheckResult, EXERCISES, the checker registry, CheckContext
                 (timed calls, expectations, diagnosis), run_check, check
* ``nbNN``       the checkers of notebook NN (``nb00``: 00.1 softmax, ...)
* ``release``    write exercises/ from solutions/
* ``grading``    run a notebook in a fresh kernel and grade it in a clean process
* ``commands``   the ``release``, ``check`` and ``grade`` subcommands of ``python -m course_lib``

Adding a checker for a new notebook NN
--------------------------------------
1. Create ``course_lib/checks/nbNN.py`` (it is imported on first use of one
   of its IDs; until it exists, ``run_check`` answers "no checker for this
   exercise yet"). Import the reference implementation from course_lib, never
   re-derive it in the checker.
2. Write each misconception as a ``Misconception(name, hint, impl, error=None)``:
   ``impl`` takes the exercise's arguments and returns what that wrong idea
   would return; ``error`` is a regex for an exception it causes. When a
   learner's wrong output matches ``impl``'s output (or the error matches),
   the report shows that hint. Hints name the misconception and never show
   expected numbers.
3. Register the checker and declare its sub-checks, cheap to deep::

       from .framework import CheckContext, Misconception, checker
       from ..masks import causal_mask as reference

       @checker("03.2", misconceptions=[TRANSPOSED, ...], mutation_weight=0.5)
       def check_causal_mask(t: CheckContext, causal_mask):
           @t.subcheck("returns a bool tensor", weight=0.5, essential=True)
           def _():
               out = t.expect_tensor(t.call(causal_mask, 4), "causal_mask(4)")
               t.expect_dtype(out, torch.bool, "causal_mask(4)")

           @t.subcheck("equals the reference for several lengths", weight=2, essential=True)
           def _():
               for L in (1, t.random.randint(2, 9)):
                   expected = reference(L)              # expected values first,
                   out = t.call(causal_mask, L)         # then the learner's call
                   t.expect_equal(out, expected, f"causal_mask({L})", args=(L,))

   ``@t.subcheck`` runs its body immediately; an essential failure skips the
   rest. Always call the learner through ``t.call`` (time limit, exceptions,
   mutation tracking) with inputs it may not spoil (clones), draw random
   inputs from ``t.randn`` / ``t.gen`` / ``t.random`` (seeded per run), and
   pass ``args=``/``kwargs=`` to the ``expect_*`` helpers so misconceptions
   can be diagnosed. ``t.run(lambda: ..., what)`` times other learner code
   (e.g. a backward pass); ``t.expect_raises(fn, args, ValueError, what, hint)``
   checks that bad input is rejected. The exercise's points (``EXERCISES``) are split
   among sub-checks in proportion to their weights.
4. Add ``tests/test_checks_NN.py``: at least five wrong implementations, each
   asserted to be rejected with its hint (a substring of it), and at least two
   valid variants asserted to get full points; then add the misconceptions to
   "Common misconceptions per exercise" in docs/instructor.md.
"""

from .framework import (
    DEFAULT_TIME_LIMIT,
    EXERCISES,
    NOT_IMPLEMENTED,
    CheckContext,
    CheckFailure,
    CheckResult,
    ExerciseSpec,
    Misconception,
    SubCheck,
    check,
    checker,
    exercises_of,
    render_html,
    render_text,
    run_check,
)

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "EXERCISES",
    "NOT_IMPLEMENTED",
    "CheckContext",
    "CheckFailure",
    "CheckResult",
    "ExerciseSpec",
    "Misconception",
    "SubCheck",
    "check",
    "checker",
    "exercises_of",
    "render_html",
    "render_text",
    "run_check",
]
