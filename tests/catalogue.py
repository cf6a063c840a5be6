"""Shared assertions of the checkers' catalogues (tests/test_checks_NN.py).

A wrong answer must be rejected with its intended hint, and no message may
show expected numbers; a valid variant must earn the exercise's full points.
"""

import re

from course_lib.checks import EXERCISES, run_check


def assert_rejected(exercise_id, fn, hint, seed, name):
    result = run_check(exercise_id, fn, seed=seed)
    assert not result.passed, f"{name} passed"
    assert result.points < result.max_points
    assert hint in result.hint, (f"{name} (seed {seed}): expected a hint containing {hint!r}, "
                                 f"got {result.hint!r}\n{result.messages}")
    assert f"Hint: {result.hint}" in result.messages
    # hints and messages never show expected numbers
    assert not re.search(r"\d\.\d{2,}", " ".join(result.messages)), result.messages
    return result


def assert_full_points(exercise_id, fn, seed, name):
    result = run_check(exercise_id, fn, seed=seed)
    assert result.passed, f"{name} (seed {result.seed}): {result.messages}"
    assert result.points == result.max_points == EXERCISES[exercise_id].points
    return result


def not_implemented(*args, **kwargs):
    """What a pristine exercise's stub does."""
    raise NotImplementedError()
