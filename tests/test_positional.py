"""Tests for course_lib.positional: formulas checked against loops, complex numbers and properties."""

import math

import pytest
import torch

from course_lib.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rope,
    sinusoidal_encoding,
    sinusoidal_shift_matrix,
)

# --- sinusoidal ---------------------------------------------------------------


@pytest.mark.parametrize("max_len,d_model,base", [(1, 2, 10000.0), (12, 8, 10000.0), (7, 6, 100.0)])
def test_sinusoidal_encoding_matches_loop(max_len, d_model, base):
    pe = sinusoidal_encoding(max_len, d_model, base)
    assert pe.dtype == torch.float32 and pe.shape == (max_len, d_model)
    expected = torch.zeros(max_len, d_model, dtype=torch.float64)
    for p in range(max_len):
        for i in range(d_model // 2):
            angle = p / base ** (2 * i / d_model)
            expected[p, 2 * i] = math.sin(angle)
            expected[p, 2 * i + 1] = math.cos(angle)
    torch.testing.assert_close(pe, expected.float())


@pytest.mark.parametrize(
    "args,exc,words",
    [
        ((10, 7), ValueError, "d_model must be even"),
        ((0, 8), ValueError, "max_len must be"),
        ((10, 0), ValueError, "d_model must be"),
        ((10, 8.0), TypeError, "d_model must be an int"),
        ((10, 8, -1.0), ValueError, "base must be"),
    ],
)
def test_sinusoidal_encoding_errors(args, exc, words):
    with pytest.raises(exc, match=words):
        sinusoidal_encoding(*args)


@pytest.mark.parametrize("k", [1, 2, 5, 17, -3])
def test_shift_matrix_moves_encodings_by_k(k):
    d_model = 16
    pe = sinusoidal_encoding(64, d_model)
    M = sinusoidal_shift_matrix(k, d_model)
    assert M.shape == (d_model, d_model) and M.dtype == torch.float32
    for p in range(max(0, -k), 64 - max(k, 0), 7):
        torch.testing.assert_close(M @ pe[p], pe[p + k], atol=1e-5, rtol=0)
    if k > 0:
        torch.testing.assert_close(pe[:-k] @ M.T, pe[k:], atol=1e-5, rtol=0)
    torch.testing.assert_close(M @ M.T, torch.eye(d_model), atol=1e-6, rtol=0)
    assert torch.count_nonzero(M) <= 2 * d_model


def test_shift_matrix_composes_and_inverts():
    torch.testing.assert_close(
        sinusoidal_shift_matrix(2, 8) @ sinusoidal_shift_matrix(3, 8), sinusoidal_shift_matrix(5, 8), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(sinusoidal_shift_matrix(-4, 8), sinusoidal_shift_matrix(4, 8).T)
    with pytest.raises(ValueError, match="d_model must be even"):
        sinusoidal_shift_matrix(1, 5)
    with pytest.raises(TypeError, match="k must be"):
        sinusoidal_shift_matrix("1", 4)


def test_sinusoidal_module_adds_buffer_and_offset():
    module = SinusoidalPositionalEncoding(8, max_len=20)
    assert list(module.parameters()) == []
    assert "pe" in dict(module.named_buffers())
    assert "pe" not in module.state_dict()
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(module(x), x + sinusoidal_encoding(20, 8)[:5])
    torch.testing.assert_close(module(x[:, :1], offset=4), x[:, :1] + sinusoidal_encoding(20, 8)[4])
    assert module(x.double()).dtype == torch.float64


def test_sinusoidal_module_dropout_only_in_training():
    module = SinusoidalPositionalEncoding(8, max_len=10, dropout=0.5)
    x = torch.randn(4, 6, 8)
    module.eval()
    torch.testing.assert_close(module(x), x + sinusoidal_encoding(10, 8)[:6])
    module.train()
    assert (module(x) == 0).any()


@pytest.mark.parametrize(
    "make", [lambda: SinusoidalPositionalEncoding(8, max_len=6), lambda: LearnedPositionalEmbedding(6, 8)]
)
def test_position_modules_errors(make):
    module = make()
    with pytest.raises(ValueError, match=r"L = 7 positions .*max_len = 6"):
        module(torch.randn(2, 7, 8))
    with pytest.raises(ValueError, match=r"offset 3.*max_len = 6"):
        module(torch.randn(2, 4, 8), offset=3)
    with pytest.raises(ValueError, match=r"E = 4 features .*d_model = 8"):
        module(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, L, E\), got shape \(3, 8\)"):
        module(torch.randn(3, 8))
    with pytest.raises(ValueError, match="int64"):
        module(torch.ones(2, 3, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        module([[0.0] * 8])


def test_learned_embedding_adds_rows_and_gets_gradients():
    module = LearnedPositionalEmbedding(max_len=10, d_model=4)
    assert module.weight is module.embedding.weight and module.weight.shape == (10, 4)
    assert module.weight.std().item() < 0.1
    x = torch.randn(3, 5, 4)
    out = module(x, offset=2)
    torch.testing.assert_close(out, x + module.weight[2:7])
    out.pow(2).sum().backward()
    grad = module.weight.grad
    assert grad is not None
    assert grad[2:7].abs().sum() > 0
    assert torch.equal(grad[:2], torch.zeros(2, 4)) and torch.equal(grad[7:], torch.zeros(3, 4))


# --- rotary -------------------------------------------------------------------


def _rope_complex(x, positions, base=10000.0):
    """Independent formulation: pairs as complex numbers times exp(j m w_i)."""
    x64 = x.double()
    D = x.shape[-1]
    z = torch.view_as_complex(x64.reshape(*x.shape[:-1], D // 2, 2).contiguous())  # (..., L, D/2)
    freqs = torch.tensor([base ** (-2 * i / D) for i in range(D // 2)], dtype=torch.float64)
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * freqs[None, :]
    rotated = z * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(rotated).reshape(x.shape)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 6, 8), (1, 7, 16)])
def test_rope_equals_complex_formulation(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g)
    positions = torch.randint(0, 100, (shape[-2],), generator=g)
    out = apply_rope(x, positions)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out.double(), _rope_complex(x, positions), atol=1e-5, rtol=1e-5)


def test_rope_accepts_float_positions_lists_and_float64():
    x = torch.randn(3, 4, dtype=torch.float64)
    out = apply_rope(x, [0.5, 1.0, 2.25], base=100.0)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, _rope_complex(x, [0.5, 1.0, 2.25], base=100.0))


def test_rope_position_zero_is_identity_and_norms_are_preserved():
    x = torch.randn(2, 6, 8)
    torch.testing.assert_close(apply_rope(x, torch.zeros(6)), x)
    out = apply_rope(x, torch.arange(6) * 13)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    pair_norms = lambda t: t.reshape(2, 6, 4, 2).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pair_norms(out), pair_norms(x))


def test_rope_dot_product_depends_only_on_offset():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)

    def score(m, n):
        qm = apply_rope(q[None], torch.tensor([m]))[0]
        kn = apply_rope(k[None], torch.tensor([n]))[0]
        return torch.dot(qm, kn).item()

    for offset in (0, 1, 3, -2, 10):
        values = [score(m, m - offset) for m in (10, 11, 25, 40, 97)]
        assert max(values) - min(values) < 1e-9, (offset, values)
    assert abs(score(5, 5) - torch.dot(q, k).item()) < 1e-9
    assert abs(score(5, 4) - score(5, 2)) > 1e-3


@pytest.mark.parametrize(
    "x,positions,exc,words",
    [
        (torch.randn(4, 5), torch.arange(4), ValueError, "even last dimension"),
        (torch.randn(4, 6), torch.arange(3), ValueError, r"positions must have shape \(4,\)"),
        (torch.randn(4, 6), torch.arange(4)[None], ValueError, r"got shape \(1, 4\)"),
        (torch.randn(6), torch.arange(1), ValueError, r"\(\.\.\., L, D\)"),
        (torch.ones(4, 6, dtype=torch.long), torch.arange(4), ValueError, "int64"),
        (torch.randn(4, 6), torch.ones(4, dtype=torch.bool), TypeError, "integers or floats"),
    ],
)
def test_rope_errors(x, positions, exc, words):
    with pytest.raises(exc, match=words):
        apply_rope(x, positions)


def test_rotary_module_matches_apply_rope_and_caches():
    rope = RotaryEmbedding(8, base=500.0)
    assert list(rope.parameters()) == [] and rope.state_dict() == {}
    q, k = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    q_rot, k_rot = rope(q, k)
    torch.testing.assert_close(q_rot, apply_rope(q, torch.arange(6), base=500.0))
    torch.testing.assert_close(k_rot, apply_rope(k, torch.arange(6), base=500.0))
    cos_table = rope._cache[0]
    assert cos_table.shape == (6, 4)
    q_short, _ = rope(q[..., :4, :], k[..., :4, :])
    assert rope._cache[0] is cos_table  # reused, not recomputed
    torch.testing.assert_close(q_short, q_rot[..., :4, :])
    rope(torch.randn(1, 9, 8), torch.randn(1, 9, 8))
    assert rope._cache[0].shape == (9, 4)


def test_rotary_module_explicit_positions_for_a_cached_step():
    rope = RotaryEmbedding(8)
    q, k = torch.randn(2, 1, 8), torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="L = 1 .*S = 5"):
        rope(q, k)
    q_rot, k_rot = rope(q, k, positions=[4], k_positions=torch.arange(5))
    torch.testing.assert_close(q_rot, apply_rope(q, [4]))
    torch.testing.assert_close(k_rot, apply_rope(k, torch.arange(5)))
    q2, k2 = rope(k, k, positions=torch.arange(5) + 3)
    torch.testing.assert_close(q2, apply_rope(k, torch.arange(5) + 3))
    torch.testing.assert_close(k2, q2)
    with pytest.raises(ValueError, match="head_dim = 8"):
        rope(torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    with pytest.raises(ValueError, match="head_dim must be even"):
        RotaryEmbedding(7)
