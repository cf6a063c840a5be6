"""Checkers for the graded exercises, the release of exercise notebooks, and grading.

For learners, in a notebook::

    from course_lib.checks import check
    check("00.1", softmax)        # shows a report; never stops "Run All"

For programs: ``run_check("00.1", softmax) -> CheckResult`` (fields ``passed``,
``points``, ``max_points``, ``messages``, then ``id``, ``title``, ``function``,
``subchecks``, ``hint``, ``seed``). ``EXERCISES`` maps every exercise ID of the
curriculum to its ``ExerciseSpec(id, title, function, points, notebook)``.

Modules:

* ``framework/``  the checker framework (registry, results, learner calls, diagnosis,
                 expectations, standard sub-checks, kinds, context, runner, rendering;
                 see its ``__init__``)
* ``nbNN``       the checkers of notebook NN (``nb00``: 00.1 softmax, ...)
* ``release``    write exercises/ from solutions/
* ``grading``    run a notebook in a fresh kernel and grade it in a clean process
* ``commands``   the ``release``, ``check`` and ``grade`` subcommands of ``python -m course_lib``

How to add an exercise
----------------------
An exercise is four things: a reference, an argument factory, misconceptions, a catalogue.

1. Its entry in ``course_lib/checks/framework/registry.py`` (``_TABLE``: ID, title, function, points, the
   torch built-ins it forbids) is already there for every ID of the curriculum; until
   ``nbNN.py`` registers a checker, ``run_check`` answers "no checker for this exercise yet".
2. In ``course_lib/checks/nbNN.py`` (a package ``nbNN/`` with one file per exercise once it outgrows
   ~400 lines, as nb06 and nb09): import the **reference** from course_lib (never
   re-derive it), write an **argument factory** (seeded inputs of given sizes and dtype, drawn
   from ``t.randn`` / ``t.randint`` / ``t.random``), and the **misconceptions**:
   ``Misconception(name, hint, impl, error=None)`` where ``impl`` takes the exercise's
   arguments and returns what that wrong idea returns (a tuple when the exercise returns
   several tensors; for a module class ``impl(reference_module, *inputs)``; for a sampler the
   probabilities it samples from). A hint names the misconception and where to look; it never
   hands over the line of code or the expected numbers. Then the checker::

       @checker("07.1", misconceptions=[NO_SHIFT, SHIFT_REVERSED, SUMS])
       def check_next_token_loss(t: CheckContext, fn):
           def make(B, T, V, dtype=torch.float32):                 # the argument factory
               return t.randn(B, T, V, dtype=dtype), t.randint(0, V, (B, T))
           ex = t.exercise(fn, reference, lambda args: f"next_token_loss(logits {fmt_shape(args[0].shape)}, ...)")
           args = make(*t.sizes(3))
           t.scalar_opening(fn, args, what=ex.describe(args))
           ex.compare_cases("equals the mean next-token cross-entropy", [args, make(*t.sizes(3)), make(1, 2, 5)],
                            weight=2, essential=True)
           ex.float64(make(*t.sizes(3), dtype=torch.float64))
           ex.gradients(make(*t.sizes(3)), wrt=(0,), arg_names=("logits", "tokens"))

   The standard sub-checks: ``t.opening`` (returns a tensor or a tuple of ``names``, shapes,
   dtype), ``t.compare`` (one case: shapes, finite, values, with diagnosis element by
   element), ``t.float64_subcheck``, ``t.gradient_subcheck``; ``t.exercise(fn, reference,
   describe, **shared)`` binds them to one exercise (``ex.opening / compare / compare_cases /
   float64 / gradients``: each call states only what differs). Inputs: ``t.sizes``,
   ``t.randn``, ``t.keep_mask`` (random keep masks with a kept and a hidden key per row).
   ``Misconception.mapped`` turns a mistake in one part into the whole result (the weights
   into the (output, weights) pair). Mask exercises: ``framework.masks``; exercises that drive
   a decoder: ``framework.scripted.ScriptedDecoder``. The kinds:
   ``t.build_module / expect_same_submodules / compare_module / module_gradients /
   module_float64`` (a module class), ``t.scalar_opening`` (a scalar), ``t.sampler_subcheck
   / expect_reproducible`` (a sampler). Anything else goes in ``@t.subcheck(name, weight,
   essential)`` with ``t.call`` and the ``t.expect_*`` methods. An essential failure skips
   the rest, with the reason shown; points are shared by weight in steps of 0.05.
3. The **catalogue** ``tests/test_checks_NN.py``: at least five wrong answers, each asserted
   to be rejected with its hint (``catalogue.assert_rejected``), and valid variants (float64,
   einsum, loops) asserted to get full points; add it to ``tests/test_checks_docs.py``'s
   ``CATALOGUES`` and its misconceptions to docs/instructor.md (a test compares the counts).
   ``tests/test_checks_kinds.py`` shows a complete toy checker of each kind.
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
