"""Catalogue for exercises 05.1 (sinusoidal encoding) and 05.2 (rotary position
embedding): common wrong answers, each rejected with its hint, and valid
variants, each accepted with full points.

The wrong answers double as the instructor's list of misconceptions
(docs/instructor.md, "Common misconceptions per exercise").
"""

import math

import pytest
import torch

from course_lib.checks import EXERCISES, NOT_IMPLEMENTED, run_check

SEEDS = (0, 1)


from catalogue import assert_full_points as _assert_full_points
from catalogue import assert_rejected as _assert_rejected
from catalogue import not_implemented as _not_implemented


@pytest.mark.parametrize("exercise_id", ["05.1", "05.2"])
def test_not_implemented_yet(exercise_id):
    result = run_check(exercise_id, _not_implemented, seed=0)
    assert result.messages[0] == NOT_IMPLEMENTED == "not implemented yet"
    assert result.points == 0 and not result.passed


# =================================================================== 05.1 sinusoidal_encoding


def _table(max_len, d_model, base=10000.0, exponent=lambda i, d: 2 * i / d, cos_exponent=None,
           start=0, swap=False, concat=False, check_odd=True):
    """The PyTorch-tutorial construction, with a knob for each mistake."""
    if check_odd and d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    i = torch.arange(d_model // 2, dtype=torch.float32)
    pos = torch.arange(start, start + max_len, dtype=torch.float32)[:, None]
    sin = torch.sin(pos / base ** exponent(i, d_model))
    cos = torch.cos(pos / base ** (cos_exponent or exponent)(i, d_model))
    if swap:
        sin, cos = cos, sin
    if concat:
        return torch.cat([sin, cos], dim=1)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2], pe[:, 1::2] = sin, cos
    return pe


def pe_swapped(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base, swap=True)


def pe_exponent_i_over_d(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base, exponent=lambda i, d: i / d)


def pe_column_index_exponent(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base, cos_exponent=lambda i, d: (2 * i + 1) / d)


def pe_multiplies(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base, exponent=lambda i, d: -2 * i / d)


def pe_concatenated(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base, concat=True)


def pe_positions_from_one(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base, start=1)


def pe_no_value_error(max_len, d_model, base=10000.0):
    pe = torch.zeros(max_len, d_model)
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(base) / d_model))
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
    return pe


def pe_value_error_missing_crashes(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base, check_odd=False)


def pe_ignores_base(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, 10000.0)


def pe_transposed(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base).T


def pe_integer_positions(max_len, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd d_model")
    position = torch.arange(max_len)[:, None]
    pe = torch.zeros_like(position).repeat(1, d_model)  # an integer table: sin and cos get truncated
    div_term = base ** (torch.arange(0, d_model, 2) / d_model)
    pe[:, 0::2] = torch.sin(position / div_term).long()
    pe[:, 1::2] = torch.cos(position / div_term).long()
    return pe


def pe_float64(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base).double()


SINUSOIDAL_WRONG = {
    "sin and cos swapped": (pe_swapped, "seem swapped"),
    "exponent i/d instead of 2i/d": (pe_exponent_i_over_d, "exponent i/d"),
    "exponent (2i+1)/d for the cosines": (pe_column_index_exponent, "own column index"),
    "multiplies by base^(2i/d)": (pe_multiplies, "multiplied by base^(2i/d)"),
    "[sin..., cos...] concatenated": (pe_concatenated, "concatenated halves"),
    "positions start at 1": (pe_positions_from_one, "start at 1"),
    "no ValueError for odd d_model (returns a table)": (pe_no_value_error, "raise ValueError"),
    "no ValueError for odd d_model (crashes with another error)": (pe_value_error_missing_crashes,
                                                                    "raise ValueError"),
    "ignores base": (pe_ignores_base, "`base` argument seems to be ignored"),
    "transposed": (pe_transposed, "seems transposed"),
    "integer positions": (pe_integer_positions, "make the positions float"),
    "returns float64": (pe_float64, "Return a float32 table"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(SINUSOIDAL_WRONG))
def test_sinusoidal_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = SINUSOIDAL_WRONG[name]
    _assert_rejected("05.1", fn, hint, seed, name)


def test_sinusoidal_partial_credit_without_value_error():
    assert 0 < run_check("05.1", pe_no_value_error, seed=0).points < EXERCISES["05.1"].points


def pe_tutorial(max_len, d_model, base=10000.0):
    """The PyTorch tutorial's formulation: exp(-2i log(base) / d)."""
    if d_model % 2 != 0:
        raise ValueError(f"d_model must be even, got {d_model}")
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(base) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def pe_float64_stack(max_len, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("sin/cos pairs need an even d_model")
    p = torch.arange(max_len, dtype=torch.float64)
    freqs = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = torch.outer(p, freqs)  # (max_len, d_model/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).float()


def pe_loops(max_len, d_model, base=10000.0):
    if d_model % 2 == 1:
        raise ValueError("d_model must be even")
    pe = torch.zeros(max_len, d_model)
    for p in range(max_len):
        for i in range(d_model // 2):
            angle = p / base ** (2 * i / d_model)
            pe[p, 2 * i] = math.sin(angle)
            pe[p, 2 * i + 1] = math.cos(angle)
    return pe


def pe_cos_as_shifted_sin(max_len, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd d_model")
    pair = torch.arange(d_model) // 2  # (d_model,): 0, 0, 1, 1, ...
    phase = (torch.arange(d_model) % 2) * (math.pi / 2)  # cos(a) = sin(a + pi/2)
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] / base ** (2 * pair / d_model)
    return torch.sin(angles + phase).float()


SINUSOIDAL_VALID = {
    "PyTorch tutorial (exp of log)": pe_tutorial,
    "float64, stacked and flattened": pe_float64_stack,
    "explicit loops with math": pe_loops,
    "cosine as a phase-shifted sine": pe_cos_as_shifted_sin,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(SINUSOIDAL_VALID))
def test_sinusoidal_valid_variant_gets_full_points(name, seed):
    _assert_full_points("05.1", SINUSOIDAL_VALID[name], seed, name)


# =================================================================== 05.2 apply_rope


def _rope(x, positions, base=10000.0, exponent=lambda i, D: 2 * i / D, sign=1.0, halves=False):
    D = x.shape[-1]
    i = torch.arange(D // 2, dtype=torch.float32)
    angles = sign * torch.as_tensor(positions, dtype=torch.float32)[:, None] * base ** (-exponent(i, D))  # (L, D/2)
    cos, sin = angles.cos(), angles.sin()
    if halves:
        a, b = x[..., : D // 2], x[..., D // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def rope_halves(x, positions, base=10000.0):
    return _rope(x, positions, base, halves=True)


def rope_wrong_sign(x, positions, base=10000.0):
    return _rope(x, positions, base, sign=-1.0)


def rope_exponent_i_over_d(x, positions, base=10000.0):
    return _rope(x, positions, base, exponent=lambda i, D: i / D)


def rope_growing_frequencies(x, positions, base=10000.0):
    return _rope(x, positions, base, exponent=lambda i, D: -2 * i / D)


def rope_ignores_positions(x, positions, base=10000.0):
    return _rope(x, torch.arange(x.shape[-2]), base)


def rope_ignores_base(x, positions, base=10000.0):
    return _rope(x, positions, 10000.0)


def rope_in_place(x, positions, base=10000.0):
    D = x.shape[-1]
    angles = torch.as_tensor(positions, dtype=torch.float32)[:, None] * base ** (-torch.arange(0, D, 2) / D)
    cos, sin = angles.cos(), angles.sin()
    a, b = x[..., 0::2], x[..., 1::2]
    x[..., 0::2], x[..., 1::2] = a * cos - b * sin, a * sin + b * cos
    return x


def rope_swapped_outputs(x, positions, base=10000.0):
    D = x.shape[-1]
    angles = torch.as_tensor(positions, dtype=torch.float32)[:, None] * base ** (-torch.arange(0, D, 2) / D)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * angles.sin() + b * angles.cos(), a * angles.cos() - b * angles.sin()], -1).flatten(-2)


def rope_cos_only(x, positions, base=10000.0):
    D = x.shape[-1]
    angles = torch.as_tensor(positions, dtype=torch.float32)[:, None] * base ** (-torch.arange(0, D, 2) / D)
    return x * angles.cos().repeat_interleave(2, dim=-1)


def rope_float32_always(x, positions, base=10000.0):
    return _rope(x.float(), positions, base)


def rope_detached(x, positions, base=10000.0):
    return _rope(x.detach(), positions, base)


def rope_concatenates(x, positions, base=10000.0):
    """Rotates the interleaved pairs, then writes them back as [evens, odds]."""
    D = x.shape[-1]
    angles = torch.as_tensor(positions, dtype=torch.float32)[:, None] * base ** (-torch.arange(0, D, 2) / D)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.cat([a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()], dim=-1)


def rope_repeat(x, positions, base=10000.0):
    """repeat instead of repeat_interleave to lay out the angles."""
    D = x.shape[-1]
    angles = torch.as_tensor(positions, dtype=torch.float32)[:, None] * base ** (-torch.arange(0, D, 2) / D)
    angles = angles.repeat(1, 2)  # (L, D)
    rotated = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)
    return x * angles.cos() + rotated * angles.sin()


ROPE_WRONG = {
    "[evens, odds] concatenated": (rope_concatenates, "two positions it came from"),
    "repeat instead of repeat_interleave": (rope_repeat, "each angle must appear twice in a row"),
    "rotates halves (GPT-NeoX layout)": (rope_halves, "x[i + D/2]"),
    "rotates the wrong way": (rope_wrong_sign, "minus the angle"),
    "exponent i/D": (rope_exponent_i_over_d, "exponent i/D"),
    "frequencies base^(+2i/D)": (rope_growing_frequencies, "base^(+2i/D)"),
    "ignores positions (arange)": (rope_ignores_positions, "`positions` argument seems to be ignored"),
    "ignores base": (rope_ignores_base, "`base` argument seems to be ignored"),
    "modifies x in place": (rope_in_place, "in-place operation"),
    "outputs of a pair swapped": (rope_swapped_outputs, "outputs of each pair seem swapped"),
    "cos only": (rope_cos_only, "cosine only"),
    "always float32": (rope_float32_always, "Keep the input's dtype"),
    "detaches x": (rope_detached, "cut the graph"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(ROPE_WRONG))
def test_rope_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = ROPE_WRONG[name]
    _assert_rejected("05.2", fn, hint, seed, name)


def test_rope_partial_credit_when_positions_are_ignored():
    assert 0 < run_check("05.2", rope_ignores_positions, seed=0).points < EXERCISES["05.2"].points


def rope_complex(x, positions, base=10000.0):
    """Pairs as complex numbers times exp(j angle) (Meta's Llama code)."""
    D = x.shape[-1]
    real = torch.float64 if x.dtype == torch.float64 else torch.float32
    freqs = 1.0 / base ** (torch.arange(0, D, 2, dtype=real) / D)
    angles = torch.outer(torch.as_tensor(positions).to(real), freqs)  # (L, D/2)
    z = torch.view_as_complex(x.to(real).reshape(*x.shape[:-1], D // 2, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2).to(x.dtype)


def rope_rotate_every_two(x, positions, base=10000.0):
    """cos/sin repeated per pair and a 'rotate every two' helper (GPT-J's layout)."""
    D = x.shape[-1]
    inv = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = (torch.as_tensor(positions, dtype=torch.float64)[:, None] * inv).repeat_interleave(2, dim=-1)
    rotated = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)  # (-x1, x0, -x3, x2, ...)
    return x * angles.cos().to(x.dtype) + rotated * angles.sin().to(x.dtype)


def rope_matrix_loops(x, positions, base=10000.0):
    """One 2x2 rotation matrix per position and pair, explicit loops."""
    out = torch.empty_like(x)
    D = x.shape[-1]
    for l, m in enumerate(torch.as_tensor(positions).tolist()):
        for i in range(D // 2):
            theta = m * base ** (-2 * i / D)
            R = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]],
                             dtype=x.dtype)
            out[..., l, 2 * i: 2 * i + 2] = x[..., l, 2 * i: 2 * i + 2] @ R.T
    return out


ROPE_VALID = {
    "complex multiplication": rope_complex,
    "rotate every two (GPT-J)": rope_rotate_every_two,
    "2x2 rotation matrices in loops": rope_matrix_loops,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(ROPE_VALID))
def test_rope_valid_variant_gets_full_points(name, seed):
    _assert_full_points("05.2", ROPE_VALID[name], seed, name)


def test_catalogue_sizes():
    for wrong, valid in ((SINUSOIDAL_WRONG, SINUSOIDAL_VALID), (ROPE_WRONG, ROPE_VALID)):
        assert len(wrong) >= 5 and len(valid) >= 2


def test_ignoring_positions_fails_one_line_not_a_cascade():
    result = run_check("05.2", rope_ignores_positions, seed=0)
    failed = [s.name for s in result.subchecks if s.status == "failed"]
    assert failed == ["uses the given positions (offset, not consecutive)"], failed
