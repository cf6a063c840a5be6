"""The checker framework: every way a learner's function can go wrong is a
failed sub-check with a clear message, never a crash, and check() never raises."""

import re
import threading
import time

import numpy as np
import pytest
import torch

from course_lib.checks import (
    EXERCISES,
    NOT_IMPLEMENTED,
    CheckContext,
    CheckResult,
    Misconception,
    check,
    checker,
    render_html,
    render_text,
    run_check,
)
from course_lib.checks import framework
from course_lib.checks.framework import registry, runner

# Every ID of the curriculum's table with its function name.
CURRICULUM = {
    "00.1": "softmax", "01.1": "rnn_forward", "01.2": "greedy_decode", "02.1": "additive_scores",
    "02.2": "masked_softmax", "02.3": "bahdanau_attend", "03.1": "scaled_dot_product_attention",
    "03.2": "causal_mask", "03.3": "padding_mask", "04.1": "split_heads", "04.2": "merge_heads",
    "04.3": "multi_head_attention", "05.1": "sinusoidal_encoding", "05.2": "apply_rope", "06.1": "layer_norm",
    "06.2": "EncoderBlock", "06.3": "decoder_self_mask", "07.1": "next_token_loss", "07.2": "sample_next",
    "08.1": "patchify", "08.2": "add_cls_and_pos", "09.1": "tiled_attention", "09.2": "linear_attention",
    "09.3": "sliding_window_mask", "10.1": "attention_rollout",
}

TEST_ID = "09.3"  # borrowed for a toy checker; the registry is restored after each test

DOUBLED = Misconception("doubles", "It looks like you doubled instead of tripling.", lambda x: 2 * x)
SIZE_ERROR = Misconception("wrong axis", "Your shapes do not line up: is the sum over the right axis?",
                           error=r"size of tensor a")


@pytest.fixture
def toy(monkeypatch):
    """A toy exercise: triple(x) must return 3 * x, checked cheap to deep."""
    monkeypatch.setattr(registry, "_CHECKERS", dict(registry._CHECKERS))

    @checker(TEST_ID, misconceptions=[DOUBLED, SIZE_ERROR])
    def _check_triple(t: CheckContext, fn):
        x = t.randn(3, 4)
        first = {}

        @t.subcheck("returns a tensor", weight=0.0, essential=True)
        def _():
            first["out"] = t.expect_tensor(t.call(fn, x.clone()), "triple(x)")

        @t.subcheck("the output has the input's shape", weight=0.0, essential=True)
        def _():
            t.expect_shape(first["out"], x.shape, "triple(x)", args=(x,))

        @t.subcheck("finite", weight=0.0, essential=True)
        def _():
            t.expect_finite(first["out"], "triple(x)", args=(x,))

        @t.subcheck("values", weight=2.0, essential=True)
        def _():
            for shape in ((5,), (2, 3)):
                y = t.randn(*shape)
                expected = 3 * y
                out = t.expect_tensor(t.call(fn, y.clone()), f"triple of shape {shape}")
                t.expect_close(out, expected, "triple(y)", args=(y,), reference="3 * y")

        @t.subcheck("float64 stays float64", weight=1.0)
        def _():
            out = t.expect_tensor(t.call(fn, x.double()), "triple(x64)")
            t.expect_dtype(out, torch.float64, "triple(x64)")

    return TEST_ID


def test_exercises_registry_lists_the_whole_curriculum():
    assert {i: e.function for i, e in EXERCISES.items()} == CURRICULUM
    for i, e in EXERCISES.items():
        assert e.id == i and e.title and 2 <= e.points <= 5
        assert e.notebook[:2] == i[:2] and e.notebook[2] == "_"


def test_correct_function_gets_full_points(toy):
    result = run_check(toy, lambda x: 3 * x, seed=0)
    assert isinstance(result, CheckResult)
    assert result.passed and result.points == result.max_points == EXERCISES[toy].points
    assert result.messages == [f"all {len(result.subchecks)} checks passed"]
    assert [s.status for s in result.subchecks] == ["passed"] * len(result.subchecks)
    assert result.subchecks[0].name.endswith("is callable")
    assert result.subchecks[-1].name == "leaves its inputs unchanged"


def test_learner_exception_is_a_failed_subcheck_with_type_message_and_line(toy):
    def triple(x):
        y = x * 3
        return y + undefined_name  # noqa: F821

    result = run_check(toy, triple, seed=0)
    assert not result.passed and result.points == 0
    failed = [s for s in result.subchecks if s.status == "failed"]
    assert failed[0].name == "returns a tensor"
    assert "raised NameError" in failed[0].message and "undefined_name" in failed[0].message
    assert "return y + undefined_name" in failed[0].message  # the learner's line
    assert all(s.status == "skipped" for s in result.subchecks[2:])


def test_system_exit_in_learner_code_does_not_escape(toy):
    def triple(x):
        raise SystemExit(3)

    result = run_check(toy, triple, seed=0)
    assert not result.passed and "SystemExit" in result.messages[0]


def test_error_regex_of_a_misconception_gives_its_hint(toy):
    result = run_check(toy, lambda x: x * 3 + x.sum(1), seed=0)  # (3, 4) + (3,) does not broadcast
    assert not result.passed
    assert result.hint == SIZE_ERROR.hint


def test_nan_output_fails_the_finite_check(toy):
    result = run_check(toy, lambda x: x * float("nan"), seed=0)
    failed = [s for s in result.subchecks if s.status == "failed"]
    assert failed[0].name == "finite" and "NaN" in failed[0].message
    assert result.points == 0


@pytest.mark.parametrize("value, expected", [
    (lambda x: (3 * x).numpy(), "numpy.ndarray"),
    (lambda x: (3 * x, x), "tuple of 2 items"),
    (lambda x: None, "is None"),
    (lambda x: (3 * x).tolist(), "list of 3 items"),
])
def test_wrong_type_fails_with_what_was_returned(toy, value, expected):
    result = run_check(toy, value, seed=0)
    assert not result.passed and result.points == 0
    assert result.subchecks[1].status == "failed" and expected in result.subchecks[1].message
    assert result.hint  # a hint for a wrong type too


def test_wrong_shape_fails_and_skips_the_rest(toy):
    result = run_check(toy, lambda x: 3 * x.sum(-1), seed=0)
    shape = result.subchecks[2]
    assert shape.status == "failed" and "has shape (3,), expected (3, 4)" in shape.message
    assert all(s.status == "skipped" for s in result.subchecks[3:])
    assert "skipped" in render_text(result) or "–" in render_text(result)


def test_infinite_loop_hits_the_time_limit_and_the_check_returns(toy):
    stop = threading.Event()  # lets the test end the runaway thread, which Python cannot kill

    def triple(x):
        while not stop.is_set():
            pass

    start = time.monotonic()
    try:
        result = run_check(toy, triple, seed=0, time_limit=0.3)
        elapsed = time.monotonic() - start
        still_running = any(t.name == f"check-{toy}" and t.is_alive() for t in threading.enumerate())
    finally:
        stop.set()
    assert elapsed < 5 and still_running  # the check returned while the learner's loop went on
    assert not result.passed and result.points == 0
    assert "took longer than 0.3 s: an infinite loop?" in result.messages[0]
    assert all(s.status == "skipped" for s in result.subchecks[2:])


def test_in_place_mutation_is_a_failed_subcheck(toy):
    def triple(x):
        x.mul_(3)
        return x

    result = run_check(toy, triple, seed=0)
    assert not result.passed
    last = result.subchecks[-1]
    assert last.name == "leaves its inputs unchanged" and last.status == "failed"
    assert "modified its input `x` in place" in last.message
    assert 0 < result.points < result.max_points  # the values were right: partial credit


def test_not_implemented_gives_exactly_not_implemented_yet(toy):
    def triple(x):
        # YOUR CODE HERE
        raise NotImplementedError()

    result = run_check(toy, triple, seed=0)
    assert result.messages[0] == NOT_IMPLEMENTED == "not implemented yet"
    assert len(result.messages) == 2 and "NotImplementedError" in result.messages[1]  # the encouraging line
    assert result.points == 0 and not result.passed


def test_diagnosis_names_the_misconception_without_numbers(toy):
    result = run_check(toy, lambda x: 2 * x, seed=0)
    assert not result.passed and result.hint == DOUBLED.hint
    assert "values differ from 3 * y" in result.messages[0]
    assert not re.search(r"\d\.\d", " ".join(result.messages))  # no numbers from the expected output


def test_failing_an_essential_subcheck_earns_nothing(toy):
    result = run_check(toy, lambda x: 3 * x.float(), seed=0)  # right values, float64 lost: partial credit
    # weights: values 2, float64 1, inputs unchanged 1 (the default mutation weight)
    assert not result.passed and result.points == pytest.approx(EXERCISES[toy].points * 3 / 4, abs=1e-3)
    result = run_check(toy, lambda x: x.double(), seed=0)  # right dtype, wrong values: nothing
    assert result.points == 0


def test_unknown_id_is_reported():
    result = run_check("99.9", lambda x: x)
    assert not result.passed and result.points == 0 and "unknown exercise id '99.9'" in result.messages[0]
    assert "09.9" not in result.messages[0] or "Did you mean" in result.messages[0]


def test_an_exercise_without_a_checker_says_so(monkeypatch):
    monkeypatch.setattr(registry, "_CHECKERS", {})
    monkeypatch.setattr(registry.importlib, "import_module", lambda name: None)  # as if nb10.py were not written
    result = run_check("10.1", lambda a: a)
    assert not result.passed and result.max_points == EXERCISES["10.1"].points
    assert "no checker for this exercise yet" in result.messages[0]


def test_not_callable_fails_first_subcheck(toy):
    result = run_check(toy, 42, seed=0)
    assert result.subchecks[0].status == "failed" and "got a int" in result.subchecks[0].message


def test_a_checker_bug_is_an_internal_error_not_a_crash(monkeypatch):
    monkeypatch.setattr(registry, "_CHECKERS", dict(registry._CHECKERS))

    @checker(TEST_ID)
    def _broken(t, fn):
        raise ZeroDivisionError("oops")

    result = run_check(TEST_ID, lambda x: x)
    assert not result.passed and "internal error in the checker" in result.messages[0]


def test_check_never_raises_and_shows_one_report(toy, capsys):
    def triple(x):
        raise ValueError("boom")

    for fn in (triple, lambda x: 2 * x, lambda x: 3 * x, "not a function"):
        assert check(toy, fn, seed=0) is None  # None: a cell ending in check(...) shows the report once
    check("99.9", triple)
    out = capsys.readouterr().out
    assert out.count(f"Exercise {TEST_ID}") == 4
    assert "✗" in out and "✓" in out and "raised ValueError: boom" in out
    assert "Hint: It looks like you doubled" in out
    assert "points" in out and "unknown exercise id" in out


def test_check_survives_an_exception_in_run_check(monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_check", lambda *a, **k: 1 / 0)
    assert check("00.1", lambda x: x) is None
    assert "could not run" in capsys.readouterr().out


def test_check_in_grading_mode_leaves_grading_to_the_grader(monkeypatch, capsys):
    monkeypatch.setenv(framework.GRADING_ENV, "1")
    assert check("00.1", torch.softmax) is None
    assert "run by the grader" in capsys.readouterr().out


def test_html_report_and_round_trip(toy):
    result = run_check(toy, lambda x: 2 * x, seed=0)
    html = render_html(result)
    assert html == result._repr_html_()
    assert "✗" in html and "✓" in html and "<table" in html and "Hint:" in html
    again = CheckResult.from_dict(result.to_dict())
    assert again == result
    assert np.isclose(sum(s.max_points for s in result.subchecks), result.max_points)


def test_check_shows_html_in_a_kernel(monkeypatch, toy):
    shown = []
    monkeypatch.setattr(runner, "_in_jupyter", lambda: True)
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    check(toy, lambda x: 3 * x, seed=0)
    assert len(shown) == 1 and "text/html" in shown[0] and "PASSED" in shown[0]["text/plain"]


def test_seeds_make_inputs_reproducible_and_fresh_by_default(toy):
    seen = []

    def triple(x):
        seen.append(x.sum().item())
        return 3 * x

    run_check(toy, triple, seed=5)
    first = list(seen)
    seen.clear()
    run_check(toy, triple, seed=5)
    assert seen == first
    seen.clear()
    result = run_check(toy, triple)
    assert seen != first and isinstance(result.seed, int)


def test_the_learner_runs_with_gradients_on_whatever_the_caller_set(toy):
    modes = []

    def triple(x):
        modes.append(torch.is_grad_enabled())
        return 3 * x

    with torch.no_grad():
        result = run_check(toy, triple, seed=0)
    assert result.passed and modes and all(modes)
    assert not torch.is_grad_enabled() or True  # the caller's mode is its own again below
    with torch.no_grad():
        run_check(toy, triple, seed=0)
        assert not torch.is_grad_enabled()


# ---------------------------------------------------------------- results are plain tensors; global state


class _Liar(torch.Tensor):
    """A tensor whose .all() (and torch.all) always says True."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.all, torch.all):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize("exercise_id, fn", [
    ("00.1", lambda x, dim=-1: torch.zeros_like(x).as_subclass(_Liar)),
    ("03.2", lambda L: torch.zeros(L, L, dtype=torch.bool).as_subclass(_Liar)),
])
def test_a_tensor_subclass_cannot_judge_its_own_result(exercise_id, fn):
    result = run_check(exercise_id, fn, seed=0)
    assert not result.passed and result.points == 0, result.messages


def test_a_parameter_or_a_subclass_with_right_values_still_passes():
    result = run_check("00.1", lambda x, dim=-1: torch.softmax(x, dim).as_subclass(_Liar), seed=0)
    assert result.passed, result.messages


@pytest.mark.parametrize("exercise_id, fn", [
    ("00.1", torch.softmax),
    ("03.1", lambda q, k, v, attn_mask=None: __import__("course_lib.attention", fromlist=["x"])
     .attention_with_weights(q, k, v, attn_mask)),
    ("04.1", lambda x, num_heads: __import__("course_lib.attention", fromlist=["x"]).split_heads(x, num_heads)),
])
@pytest.mark.parametrize("state", ["default float64", "grad disabled"])
def test_the_learners_global_torch_state_does_not_fail_correct_answers(exercise_id, fn, state):
    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    try:
        if state == "default float64":
            torch.set_default_dtype(torch.float64)
        else:
            torch.set_grad_enabled(False)
        result = run_check(exercise_id, fn, seed=0)
        after = (torch.get_default_dtype(), torch.is_grad_enabled())
    finally:
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
    assert result.passed, result.messages
    assert after == ((torch.float64, grad) if state == "default float64" else (dtype, False))  # restored


def test_a_result_whose_len_never_returns_hits_the_time_limit():
    stop = threading.Event()

    class Endless(tuple):
        def __len__(self):
            while not stop.is_set():
                pass
            return 2

        def __iter__(self):
            len(self)
            return super().__iter__()

    try:
        start = time.monotonic()
        result = run_check("03.1", lambda q, k, v, attn_mask=None: Endless((q, k)), seed=0, time_limit=0.5)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
    assert elapsed < 10 and not result.passed and result.points == 0
    assert "took longer than 0.5 s" in " ".join(result.messages)


def test_keyboard_interrupt_from_the_result_is_a_failed_check(capsys):
    class Boom(tuple):
        def __iter__(self):
            raise KeyboardInterrupt

    result = run_check("03.1", lambda q, k, v, attn_mask=None: Boom((q, k)), seed=0)
    assert not result.passed and "KeyboardInterrupt" in " ".join(result.messages)
    assert check("03.1", lambda q, k, v, attn_mask=None: Boom((q, k)), seed=0) is None
    assert "KeyboardInterrupt" in capsys.readouterr().out


def test_keyboard_interrupt_from_the_function_is_a_failed_check():
    def softmax(x, dim=-1):
        raise KeyboardInterrupt

    result = run_check("00.1", softmax, seed=0)
    assert not result.passed and "raised KeyboardInterrupt" in result.messages[0]


# ---------------------------------------------------------------- reports


def test_html_shows_backticks_as_code_and_escapes_the_rest(toy):
    result = run_check(toy, lambda x: x.mul_(3), seed=0)
    html = render_html(result)
    assert "<code>x</code>" in html and "`" not in html.replace("&#x27;", "")
    assert "<code>&lt;" not in html or "&lt;" in html  # escaped inside code too


def test_points_have_the_cli_precision_and_no_noisy_fractions():
    from course_lib.checks.framework import format_points, share_points

    result = run_check("00.1", torch.softmax, seed=0)
    for s in result.subchecks:
        assert abs(s.max_points * 20 - round(s.max_points * 20)) < 1e-9, s  # multiples of 0.05
    assert sum(s.max_points for s in result.subchecks) == pytest.approx(result.max_points)
    assert format_points(1 / 3) == f"{1 / 3:.4g}"  # the grader's CLI and CSV use .4g
    assert share_points(2.0, [0, 0.25, 0.25, 2.0, 1.0]) == [0.0, 0.15, 0.15, 1.15, 0.55]
    assert share_points(3.0, [1e-3, 10.0]) == [0.05, 2.95]  # every weighted line gets at least one step


def test_after_an_essential_failure_the_report_says_why_the_rest_was_skipped(toy):
    result = run_check(toy, lambda x: 3 * x.sum(-1), seed=0)
    text = render_text(result)
    skipped = [s for s in result.subchecks if s.status == "skipped"]
    assert skipped and all("skipped" in s.message for s in skipped)
    assert "needs the failed check above to pass first" in text
    assert "the output has the input's shape" in skipped[0].message or "shape" in text


def test_instructor_points_table_matches_the_registry():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "instructor.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d\d\.\d) \| `(\w+)` \| ([^|]+) \| (\w+) \| ([\d.]+) \|$", text, flags=re.M)
    table = {i: (fn, title.strip(), nb, float(p)) for i, fn, title, nb, p in rows}
    assert table == {i: (e.function, e.title, e.notebook, e.points) for i, e in EXERCISES.items()}


def test_the_checkers_refer_only_to_files_of_the_project():
    """Docstrings and comments of course_lib/checks name files that exist in the repository
    (nb04.py used to point at ../shared/CURRICULUM.md, which is not part of the project)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    missing = []
    for path in sorted((root / "course_lib" / "checks").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for ref in re.findall(r"(?<![\w/.])((?:\.\./)*[\w.-]+/[\w./-]*\.(?:md|py|ipynb))\b", text):
            if "NN" not in ref and (".." in ref or not (root / ref).is_file()):
                missing.append(f"{path.relative_to(root)}: {ref}")
    assert not missing, missing
