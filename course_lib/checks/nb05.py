"""Checks for notebook 05 (positional encoding): exercises 05.1 and 05.2.

* 05.1 ``sinusoidal_encoding(max_len, d_model, base=10000.0)`` -> (max_len, d_model):
  PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(same); ValueError for
  odd d_model. Reference ``course_lib.positional.sinusoidal_encoding`` (float32).
* 05.2 ``apply_rope(x, positions, base=10000.0)``: x (..., L, D), positions (L,);
  each interleaved pair (x[2i], x[2i+1]) is rotated by positions * base^(-2i/D).
  Reference ``course_lib.positional.apply_rope``.

Each misconception below is one wrong-but-plausible implementation; the
catalogue in tests/test_checks_05.py asserts that each gets its hint.
"""

from __future__ import annotations

import torch

from ..positional import apply_rope as _reference_rope
from ..positional import sinusoidal_encoding as _reference_sinusoidal
from .framework import CheckContext, Misconception, checker, fmt_shape

# Misconceptions are recognised first within the values' tolerance, then within 0.05: a
# misconception such as "multiplies by base^(2i/d)" makes angles of thousands of radians
# whose float32 sines differ from the float64 ones by about 1e-3. The wrong answers differ
# from the right ones by order 1, so 0.05 still tells them apart.
_MATCH = ((1e-4, 1e-6), (1e-4, 1e-4), (0.0, 0.05))


# =========================================================================== 05.1 sinusoidal encoding


def _angles(positions, d, base, exponent=None):
    """(L, d/2) angles positions / base^exponent(i, d) in float64 (right: exponent 2i/d)."""
    i = torch.arange(d // 2, dtype=torch.float64)
    exps = (2 * i / d) if exponent is None else exponent(i, d)
    return torch.as_tensor(positions).to(torch.float64)[:, None] * base ** (-exps)[None, :]


def _pe(max_len, d_model, base=10000.0, *, positions=None, exponent=None, cos_exponent=None,
        swap=False, halves=False):
    """A sinusoidal table built the way a misconception builds it (float64 -> float32).
    exponent(i, d) gives the exponent of `base` for pair i (right: 2i/d)."""
    p = torch.arange(max_len) if positions is None else positions
    sin = torch.sin(_angles(p, d_model, base, exponent))
    cos = torch.cos(_angles(p, d_model, base, cos_exponent or exponent))
    if swap:
        sin, cos = cos, sin
    if halves:
        return torch.cat((sin, cos), dim=-1).float()
    return torch.stack((sin, cos), dim=-1).reshape(max_len, d_model).float()


SIN_COS_SWAPPED = Misconception("sin and cos swapped", "sin and cos seem swapped: the even columns (0, 2, 4, ...) "
                                "hold the sines, the odd columns the cosines.",
                                lambda max_len, d_model, base=10000.0: _pe(max_len, d_model, base, swap=True))
EXPONENT_I_OVER_D = Misconception(
    "exponent i/d",
    "The frequencies seem to use the exponent i/d for pair i. Pair i (columns 2i and 2i+1) uses "
    "base^(2i/d): the exponent runs over the even column indices, from 0 up to (d-2)/d.",
    lambda max_len, d_model, base=10000.0: _pe(max_len, d_model, base, exponent=lambda i, d: i / d),
)
EXPONENT_COLUMN_INDEX = Misconception(
    "exponent from the column index",
    "The cosine columns seem to use their own column index in the exponent ((2i+1)/d). Both columns of a "
    "pair share one frequency: column 2i+1 uses base^(2i/d), the same as column 2i.",
    lambda max_len, d_model, base=10000.0: _pe(max_len, d_model, base, cos_exponent=lambda i, d: (2 * i + 1) / d),
)
MULTIPLIES_BY_BASE_POWER = Misconception(
    "multiplies instead of divides",
    "The positions seem to be multiplied by base^(2i/d) instead of divided by it: the angle is "
    "p / base^(2i/d) = p * base^(-2i/d), so the frequencies go *down* along the columns.",
    lambda max_len, d_model, base=10000.0: _pe(max_len, d_model, base, exponent=lambda i, d: -2 * i / d),
)
CONCATENATED = Misconception("sin and cos concatenated", "The table seems to be [all sines, then all cosines] "
                             "(concatenated halves). The contract interleaves them: column 2i is a sine and column "
                             "2i+1 the cosine of the same angle (fill pe[:, 0::2] and pe[:, 1::2]).",
                             lambda max_len, d_model, base=10000.0: _pe(max_len, d_model, base, halves=True))
POSITIONS_FROM_ONE = Misconception("positions from 1", "The positions seem to start at 1. The first position is 0 "
                                   "(torch.arange(max_len)): its row is sin 0 = 0 and cos 0 = 1 in every pair.",
                                   lambda max_len, d_model, base=10000.0: _pe(max_len, d_model, base,
                                                                              positions=torch.arange(1, max_len + 1)))
IGNORES_BASE = Misconception("ignores base", "The `base` argument seems to be ignored (10000 hard-coded): use base "
                             "in the frequencies base^(-2i/d).",
                             lambda max_len, d_model, base=10000.0: _reference_sinusoidal(max_len, d_model))
TRANSPOSED_TABLE = Misconception(
    "transposed",
    "The table seems transposed: one row per position, one column per feature, (max_len, d_model).",
    lambda max_len, d_model, base=10000.0: _reference_sinusoidal(max_len, d_model, base).T.contiguous(),
)
SINUSOIDAL_MISCONCEPTIONS = [SIN_COS_SWAPPED, EXPONENT_I_OVER_D, EXPONENT_COLUMN_INDEX, MULTIPLIES_BY_BASE_POWER,
                             CONCATENATED, POSITIONS_FROM_ONE, IGNORES_BASE, TRANSPOSED_TABLE]

_ODD_HINT = ("sin and cos come in pairs, so an odd d_model cannot be filled: check it first and "
             "`raise ValueError(...)` with a message that says so.")
# float32 holds an angle of about 60 radians to about 4e-6: a table computed in
# float32 differs from the float64 reference by that much.
_PE_TOL = dict(rtol=1e-4, atol=1e-4)


def _expect_value_error(t: CheckContext, fn, args: tuple, what: str) -> None:
    t.expect_raises(fn, args, ValueError, what, _ODD_HINT)


@checker("05.1", misconceptions=SINUSOIDAL_MISCONCEPTIONS, mutation_weight=0.0, match_tolerances=_MATCH)
def check_sinusoidal_encoding(t: CheckContext, sinusoidal_encoding) -> None:
    """Sub-checks of 05.1, cheap to deep; weights are shares of the exercise's 3 points."""
    d0 = 2 * t.random.randint(3, 6)
    n0 = t.random.choice([n for n in range(5, 13) if n != d0])
    what0 = f"sinusoidal_encoding({n0}, {d0})"

    def case(*args):
        what = f"sinusoidal_encoding({', '.join(f'{a:g}' for a in args)})"
        t.compare(sinusoidal_encoding, _reference_sinusoidal, args, what=what, finite=True,
                  reference_name="the reference table", **_PE_TOL)

    t.opening(sinusoidal_encoding, (n0, d0), what=what0, shapes=(n0, d0), dtype=None,
              shape_titles=["has shape (max_len, d_model) and a floating-point dtype"])

    @t.subcheck("is float32, the dtype of the embeddings it is added to", weight=0.25)
    def _():
        out = t.first["out"]
        if not out.is_floating_point():
            t.fail(f"{what0} has dtype {out.dtype}, expected a floating-point tensor",
                   "torch.arange gives integers: make the positions float (torch.arange(max_len, "
                   "dtype=torch.float32)) before dividing.")
        t.expect_dtype(out, torch.float32, what0,
                       hint="Return a float32 table (compute in float64 if you like, then .float()): added to "
                            "float32 embeddings, a float64 table would turn the whole model into float64.")

    @t.subcheck("PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(same), for several sizes",
                weight=1.5, essential=True)
    def _():
        for max_len, d_model in [(n0, d0), (1, 2), (t.random.randint(20, 60), 2 * t.random.randint(4, 16))]:
            case(max_len, d_model)

    @t.subcheck("uses the `base` argument", weight=0.5)
    def _():
        case(t.random.randint(6, 20), 2 * t.random.randint(3, 8), t.random.choice([100.0, 500.0, 2500.0]))

    @t.subcheck("raises ValueError for an odd d_model", weight=0.5)
    def _():
        max_len, d_model = t.random.randint(3, 9), 2 * t.random.randint(1, 5) + 1
        _expect_value_error(t, sinusoidal_encoding, (max_len, d_model), f"sinusoidal_encoding({max_len}, {d_model})")


# =========================================================================== 05.2 rotary position embedding


def _rotate(x, positions, base=10000.0, *, exponent=None, sign=1.0, halves=False, swap_outputs=False,
            halves_out=False, repeat=False, cos_only=False):
    """RoPE the way a misconception computes it: exponent(i, D) of base for pair i
    (right: 2i/D), rotation angle sign * angle, pairs (2i, 2i+1) or halves (i, i + D/2)
    (``halves_out``: interleaved pairs written back as two halves; ``repeat``: angles laid
    out as [θ0, θ1, ..., θ0, θ1, ...]; ``cos_only``: each feature scaled by its cosine)."""
    D = x.shape[-1]
    angles = sign * _angles(positions, D, base, exponent)  # (L, D/2)
    if repeat or cos_only:
        angles = angles.repeat(1, 2) if repeat else angles.repeat_interleave(2, dim=-1)  # (L, D)
        rotated = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2).double()
        return (x.double() * angles.cos() + (0 if cos_only else rotated * angles.sin())).to(x.dtype)
    cos, sin = angles.cos(), angles.sin()
    xd = x.to(torch.float64)
    if halves:
        a, b = xd[..., : D // 2], xd[..., D // 2:]
    else:
        a, b = xd[..., 0::2], xd[..., 1::2]
    first, second = a * cos - b * sin, a * sin + b * cos
    if swap_outputs:
        first, second = second, first
    if halves or halves_out:
        return torch.cat((first, second), dim=-1).to(x.dtype)
    return torch.stack((first, second), dim=-1).flatten(-2).to(x.dtype)


ROPE_HALVES = Misconception("rotates halves (GPT-NeoX style)", "The rotation seems to pair x[i] with x[i + D/2] "
                            "(the 'rotate halves' layout of GPT-NeoX and Llama's Hugging Face code). The contract "
                            "rotates interleaved pairs: (x[2i], x[2i+1]), i.e. x[..., 0::2] with x[..., 1::2].",
                            lambda x, positions, base=10000.0: _rotate(x, positions, base, halves=True))
ROPE_SIGN = Misconception("rotates the wrong way", "The pairs seem to be rotated by minus the angle: out[2i] = "
                          "x[2i] cos - x[2i+1] sin and out[2i+1] = x[2i] sin + x[2i+1] cos (a counter-clockwise "
                          "rotation, multiplication by exp(+j angle)).",
                          lambda x, positions, base=10000.0: _rotate(x, positions, base, sign=-1.0))
ROPE_SWAPPED_OUTPUTS = Misconception("outputs of a pair swapped", "The two outputs of each pair seem swapped: "
                                     "out[2i] = x[2i] cos - x[2i+1] sin goes to the even column, out[2i+1] = x[2i] "
                                     "sin + x[2i+1] cos to the odd one.",
                                     lambda x, positions, base=10000.0: _rotate(x, positions, base, swap_outputs=True))
ROPE_EXPONENT_I_OVER_D = Misconception(
    "exponent i/D",
    "The frequencies seem to use the exponent i/D for pair i; pair i rotates with base^(-2i/D) "
    "(the exponent runs over the even feature indices 0, 2, 4, ...).",
    lambda x, positions, base=10000.0: _rotate(x, positions, base, exponent=lambda i, D: i / D),
)
ROPE_EXPONENT_SIGN = Misconception(
    "frequencies grow",
    "The frequencies seem to be base^(+2i/D) instead of base^(-2i/D): the first pair turns fastest "
    "(1 radian per position) and the others ever more slowly.",
    lambda x, positions, base=10000.0: _rotate(x, positions, base, exponent=lambda i, D: -2 * i / D),
)
ROPE_IGNORES_POSITIONS = Misconception(
    "ignores positions",
    "The `positions` argument seems to be ignored (torch.arange(L) instead). Rotate row l by "
    "positions[l] times the frequencies: positions need not start at 0 or be consecutive (e.g. with a cache).",
    lambda x, positions, base=10000.0: _reference_rope(x, torch.arange(x.shape[-2]), base),
)
ROPE_IGNORES_BASE = Misconception("ignores base", "The `base` argument seems to be ignored (10000 hard-coded): use "
                                  "base in the frequencies base^(-2i/D).",
                                  lambda x, positions, base=10000.0: _reference_rope(x, positions))
ROPE_COS_ONLY = Misconception("multiplies by cos only", "Each feature seems to be scaled by a cosine only. A "
                              "rotation mixes the two features of a pair: out[2i] = x[2i] cos - x[2i+1] sin, "
                              "out[2i+1] = x[2i] sin + x[2i+1] cos.",
                              lambda x, positions, base=10000.0: _rotate(x, positions, base, cos_only=True))
ROPE_CONCATENATED = Misconception("rotated pairs written back as two halves", "The pairs seem to be rotated "
                                  "correctly but written back as [all first components, then all second "
                                  "components]. Each rotated pair goes back to the two positions it came from (2i "
                                  "and 2i+1): look at how you reassemble the output from the two rotated parts.",
                                  lambda x, positions, base=10000.0: _rotate(x, positions, base, halves_out=True))
ROPE_REPEAT = Misconception("angles laid out with repeat", "The angles seem to be laid out as [θ0, θ1, ..., θ0, θ1, "
                            "...] (the whole row repeated), which pairs feature 2i with the angle of another pair. "
                            "With interleaved pairs, features 2i and 2i+1 share the angle θi, so each angle must "
                            "appear twice in a row: look at how you expand the D/2 angles to D features.",
                            lambda x, positions, base=10000.0: _rotate(x, positions, base, repeat=True))

ROPE_MISCONCEPTIONS = [ROPE_CONCATENATED, ROPE_REPEAT, ROPE_HALVES, ROPE_SIGN, ROPE_SWAPPED_OUTPUTS,
                       ROPE_EXPONENT_I_OVER_D, ROPE_EXPONENT_SIGN, ROPE_IGNORES_POSITIONS, ROPE_IGNORES_BASE,
                       ROPE_COS_ONLY]

# Angles of up to about 60 radians: float32 holds them to about 4e-6.
_ROPE_TOL = dict(rtol=1e-4, atol=1e-4)


def _positions(t: CheckContext, L: int) -> torch.Tensor:
    """L distinct sorted positions, not starting at 0 and not consecutive (as after a cache)."""
    return torch.tensor(sorted(t.random.sample(range(1, 60), L)))


def _rope_case(t: CheckContext, apply_rope, x, positions, base=None, **tolerance):
    args = (x, positions) if base is None else (x, positions, base)
    where = f" base={base:g}" if base is not None else ""
    what = f"apply_rope(x {fmt_shape(x.shape)}, positions {fmt_shape(positions.shape)}{where})"
    t.compare(apply_rope, _reference_rope, args, what=what, finite=True, reference_name="the reference rotation",
              **{**_ROPE_TOL, **tolerance})


@checker("05.2", misconceptions=ROPE_MISCONCEPTIONS, mutation_weight=0.5, match_tolerances=_MATCH)
def check_apply_rope(t: CheckContext, apply_rope) -> None:
    """Sub-checks of 05.2, cheap to deep; weights are shares of the exercise's 4 points. Only the
    positions sub-check uses positions other than 0 .. L-1, so that ignoring them fails once."""
    L0, half = t.random.randint(3, 7), t.random.randint(2, 5)
    x0, p0 = t.randn(L0, 2 * half), torch.arange(L0)
    t.opening(apply_rope, (x0, p0), what=f"apply_rope(x {fmt_shape(x0.shape)}, positions = torch.arange({L0}))",
              shapes=x0.shape, weights=(0.25, 0.25, 0.0), shape_titles=["the output has x's shape and dtype"])

    @t.subcheck("rotates each pair (x[2i], x[2i+1]) by position * base^(-2i/D) (positions 0 .. L-1)",
                weight=1.0, essential=True)
    def _():
        _rope_case(t, apply_rope, x0, p0)
        L, D = t.random.randint(5, 12), 2 * t.random.randint(4, 8)
        _rope_case(t, apply_rope, t.randn(L, D, scale=2.0), torch.arange(L))

    @t.subcheck("uses the given positions (offset, not consecutive)", weight=0.75)
    def _():
        L, D = t.random.randint(4, 9), 2 * t.random.randint(2, 6)
        _rope_case(t, apply_rope, t.randn(L, D), _positions(t, L))
        _rope_case(t, apply_rope, t.randn(L, D), torch.arange(L) + t.random.randint(5, 40))

    @t.subcheck("works with leading dimensions: (B, L, D) and (B, H, L, D)", weight=0.5)
    def _():
        B, H, L, D = t.random.randint(2, 4), t.random.randint(2, 4), t.random.randint(3, 8), 2 * t.random.randint(2, 5)
        _rope_case(t, apply_rope, t.randn(B, L, D), torch.arange(L))
        _rope_case(t, apply_rope, t.randn(B, H, L, D), torch.arange(L))

    @t.subcheck("uses the `base` argument", weight=0.25)
    def _():
        L, D = t.random.randint(3, 8), 2 * t.random.randint(3, 6)
        _rope_case(t, apply_rope, t.randn(L, D), torch.arange(L), base=t.random.choice([100.0, 500.0]))

    L, D = t.random.randint(3, 8), 2 * t.random.randint(2, 5)
    x64 = t.randn(L, D, dtype=torch.float64)
    t.float64_subcheck(apply_rope, _reference_rope, (x64, torch.arange(L)), rtol=1e-5, atol=1e-6,
                       what=f"apply_rope of a float64 x {fmt_shape(x64.shape)}",
                       title="float64 inputs give float64 results")
    x = t.randn(2, L, D)
    t.gradient_subcheck(apply_rope, _reference_rope, (x, torch.arange(L)), wrt=(0,), arg_names=("x", "positions"),
                        what=f"apply_rope(x {fmt_shape(x.shape)}, positions {fmt_shape((L,))})", weight=0.5,
                        title="gradients flow back to x like the reference's", reference_name="the reference gradient",
                        hint="The values are right but the gradient is not: is a part of the computation detached?")
