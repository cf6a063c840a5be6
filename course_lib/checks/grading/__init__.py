"""Self-check and grading: run a notebook in a fresh kernel, grade it in a clean process.

How one submission is graded (design, protection and limits: docs/instructor.md):

1. The grader reads the notebook, hashes it and finds its exercises
   (``detect``). It makes the submission a fresh folder and starts a *worker*
   with ``python -I`` from a folder the submission cannot write, in its own
   user, PID, mount and network namespaces on Linux (``isolate``), with a
   time limit (``submission``).
2. The worker imports the canonical checkers first, then runs the notebook in
   a fresh Jupyter kernel (``kernel``), collecting the source of each graded
   function and what it uses as the notebook runs (``collect``).
3. It treats the collected source as untrusted (``policy``): only imports,
   definitions and literals are run; code that reaches for the system is
   flagged for review; an exercise done by ``course_lib`` or by a forbidden
   torch built-in earns nothing (``work``).
4. It checks each exercise in a forked child under a watchdog (``worker``) and
   sends the results over a pipe; the grader validates them.
5. ``batch`` grades a folder into a CSV and feedback files (``report``).
"""

from .batch import grade_folder
from .detect import detect_exercises
from .policy import sanitize_definitions
from .report import SubmissionGrade, feedback_markdown, format_score_table
from .submission import DEFAULT_TIMEOUT, grade_submission
from .work import work_problems
from .worker import load_definitions

__all__ = [
    "DEFAULT_TIMEOUT",
    "SubmissionGrade",
    "detect_exercises",
    "feedback_markdown",
    "format_score_table",
    "grade_folder",
    "grade_submission",
    "load_definitions",
    "sanitize_definitions",
    "work_problems",
]
