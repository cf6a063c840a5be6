"""The checker framework, one module per responsibility:

* ``registry``      the exercises (``EXERCISES``, ``ExerciseSpec``) and the registered checkers
* ``results``       ``SubCheck``, ``CheckResult``, the failure signals
* ``learner``       running learner code under a time limit; results as plain data
* ``diagnosis``     ``Misconception``; tracing a wrong output or an error to one
* ``expectations``  ``expect_tensor / shape / dtype / finite / close / equal / raises``
* ``standard``      the common sub-checks: opening, compare, float64, gradients; ``Exercise``
                    binds them to one exercise (``CheckContext.exercise``)
* ``kinds``         module classes, scalar functions, samplers
* ``masks``         exercises whose answer is a bool keep mask
* ``scripted``      ``ScriptedDecoder``, a recording stand-in for exercises that drive a decoder
* ``context``       ``CheckContext``: seeded inputs, sub-checks, timed calls
* ``runner``        ``run_check``, ``check``, points
* ``rendering``     text and HTML reports

Everything a checker module or the grader needs is importable from here.
"""

from .context import CheckContext
from .diagnosis import Misconception
from .expectations import fmt_shape, type_name
from .kinds import SAMPLER_ALPHA, chi_square_pvalue
from .learner import Opaque, plain_tensor, sanitize
from .registry import EXERCISES, NOTEBOOKS, Checker, ExerciseSpec, _load_checker, checker, exercises_of
from .rendering import format_points, render_html, render_text
from .results import ENCOURAGEMENT, NOT_IMPLEMENTED, CheckFailure, CheckResult, SubCheck
from .runner import DEFAULT_TIME_LIMIT, GRADING_ENV, check, run_check, share_points

_fmt_shape = fmt_shape  # the name checker modules used before the split

__all__ = [
    "DEFAULT_TIME_LIMIT", "ENCOURAGEMENT", "EXERCISES", "GRADING_ENV", "NOTEBOOKS", "NOT_IMPLEMENTED",
    "SAMPLER_ALPHA", "CheckContext", "CheckFailure", "CheckResult", "Checker", "ExerciseSpec", "Misconception",
    "Opaque", "SubCheck", "check", "checker", "chi_square_pvalue", "exercises_of", "fmt_shape", "format_points",
    "plain_tensor", "render_html", "render_text", "run_check", "sanitize", "share_points", "type_name",
]
