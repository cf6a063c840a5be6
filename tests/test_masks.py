"""Tests for course_lib.masks: values against loops and torch's own masking."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.masks import (
    blocked_to_keep,
    bool_to_additive,
    causal_mask,
    combine_masks,
    keep_to_blocked,
    key_padding_mask,
    padding_mask,
    padding_to_attn_mask,
    sliding_window_mask,
)


def _loop_mask(rows, cols, rule):
    return torch.tensor([[bool(rule(i, j)) for j in range(cols)] for i in range(rows)], dtype=torch.bool)


# --- causal -----------------------------------------------------------------


@pytest.mark.parametrize("L", [1, 2, 5])
def test_causal_mask_square_matches_loop(L):
    mask = causal_mask(L)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, _loop_mask(L, L, lambda i, j: j <= i))


@pytest.mark.parametrize("L,S", [(3, 3), (3, 5), (5, 3), (1, 4)])
def test_causal_mask_equals_sdpa_is_causal(L, S):
    g = torch.Generator().manual_seed(L * 10 + S)
    q, k, v = (torch.randn(2, 2, n, 4, generator=g) for n in (L, S, S))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(L, S))
    torch.testing.assert_close(got, expected)
    assert torch.equal(causal_mask(L, S), torch.ones(L, S, dtype=torch.bool).tril())


@pytest.mark.parametrize("L,S", [(3, 3), (2, 5), (1, 4)])
def test_causal_mask_lower_right_matches_torch_bias(L, S):
    from torch.nn.attention.bias import causal_lower_right

    g = torch.Generator().manual_seed(S)
    q, k, v = (torch.randn(1, 2, n, 4, generator=g) for n in (L, S, S))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(L, S))
    mask = causal_mask(L, S, align="lower_right")
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=mask), expected)
    assert torch.equal(mask, _loop_mask(L, S, lambda i, j: j <= i + S - L))


@pytest.mark.parametrize(
    "call,exc,words",
    [
        (lambda: causal_mask(0), ValueError, "L must be"),
        (lambda: causal_mask(2.0), TypeError, "L must be an int"),
        (lambda: causal_mask(3, -1), ValueError, "S must be"),
        (lambda: causal_mask(3, align="diagonal"), ValueError, "align"),
    ],
)
def test_causal_mask_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# --- padding ----------------------------------------------------------------


@pytest.mark.parametrize("lengths", [[3, 1, 0, 4], torch.tensor([2, 2]), torch.tensor([5], dtype=torch.int32)])
def test_padding_mask_matches_loop(lengths):
    values = [int(n) for n in lengths]
    mask = padding_mask(lengths)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, _loop_mask(len(values), max(values), lambda b, t: t < values[b]))


def test_padding_mask_max_len_and_device():
    mask = padding_mask([1, 2], max_len=4, device="cpu")
    assert mask.shape == (2, 4)
    assert mask.device == torch.device("cpu")
    assert mask.tolist() == [[True, False, False, False], [True, True, False, False]]


def test_key_padding_mask_is_the_blocked_convention():
    lengths = [3, 1]
    assert torch.equal(key_padding_mask(lengths, max_len=4), ~padding_mask(lengths, max_len=4))
    assert key_padding_mask(lengths).tolist() == [[False, False, False], [False, True, True]]


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(lengths=[[1, 2]]), ValueError, r"lengths must be a 1-D integer tensor, got shape \(1, 2\)"),
        (dict(lengths=[1.0, 2.0]), ValueError, "float32"),
        (dict(lengths=torch.tensor([True, False])), ValueError, "integer"),
        (dict(lengths=[2, -1]), ValueError, ">= 0"),
        (dict(lengths=[3, 1], max_len=2), ValueError, "max_len must be >= max"),
        (dict(lengths=[]), ValueError, "empty"),
        (dict(lengths="12"), TypeError, "lengths"),
    ],
)
def test_padding_mask_errors(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        padding_mask(**kwargs)


def test_the_two_torch_conventions_side_by_side():
    """SDPA with a KEEP mask == nn.MultiheadAttention with a BLOCKED mask; handing
    MultiheadAttention the keep mask silently gives a different answer."""
    torch.manual_seed(0)
    B, L, E, H = 2, 5, 8, 2
    lengths = [5, 3]
    x = torch.randn(B, L, E)
    mha = nn.MultiheadAttention(E, H, batch_first=True).eval()
    expected, _ = mha(x, x, x, key_padding_mask=key_padding_mask(lengths))

    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

    def heads(t):
        return t.view(B, L, H, E // H).transpose(1, 2)  # (B, H, L, Dh)

    q, k, v = heads(x @ w_q.T + b_q), heads(x @ w_k.T + b_k), heads(x @ w_v.T + b_v)
    keep = padding_to_attn_mask(padding_mask(lengths))  # (B, 1, 1, L)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # (B, H, L, Dh)
    out = mha.out_proj(out.transpose(1, 2).reshape(B, L, E))  # (B, L, E)
    torch.testing.assert_close(out, expected)

    wrong, _ = mha(x, x, x, key_padding_mask=padding_mask(lengths))
    assert not torch.allclose(wrong[1], expected[1], atol=1e-3)


# --- sliding window ---------------------------------------------------------


@pytest.mark.parametrize("L,window", [(1, 0), (6, 0), (6, 1), (6, 2), (4, 10)])
def test_sliding_window_mask_matches_loop(L, window):
    assert torch.equal(sliding_window_mask(L, window), _loop_mask(L, L, lambda i, j: abs(i - j) <= window))
    causal = sliding_window_mask(L, window, causal=True)
    assert torch.equal(causal, _loop_mask(L, L, lambda i, j: j <= i and i - j <= window))
    assert torch.equal(causal, sliding_window_mask(L, window) & causal_mask(L))


def test_sliding_window_mask_wide_window_is_full():
    assert bool(sliding_window_mask(5, 4).all())
    assert torch.equal(sliding_window_mask(5, 4, causal=True), causal_mask(5))


@pytest.mark.parametrize(
    "call,exc,words",
    [
        (lambda: sliding_window_mask(4, -1), ValueError, "window must be"),
        (lambda: sliding_window_mask(4, 1.5), TypeError, "window must be an int"),
        (lambda: sliding_window_mask(0, 1), ValueError, "L must be"),
        (lambda: sliding_window_mask(4, 1, causal="yes"), TypeError, "causal"),
    ],
)
def test_sliding_window_mask_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# --- converters and combinations --------------------------------------------


def test_keep_blocked_round_trip():
    keep = padding_mask([2, 3])
    blocked = keep_to_blocked(keep)
    assert torch.equal(blocked, ~keep)
    assert torch.equal(blocked_to_keep(blocked), keep)


@pytest.mark.parametrize("fn", [keep_to_blocked, blocked_to_keep])
def test_converters_refuse_non_bool(fn):
    with pytest.raises(TypeError, match="float mask .*ADDED"):
        fn(torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"bool tensor, got shape \(2,\) int64"):
        fn(torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fn([True, False])


def test_padding_to_attn_mask_broadcasts_over_heads_and_queries():
    keep = padding_mask([3, 1])
    mask = padding_to_attn_mask(keep)
    assert mask.shape == (2, 1, 1, 3)
    full = mask.expand(2, 4, 5, 3)  # (B, H, L, S)
    assert torch.equal(full[:, 2, 4], keep)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        padding_to_attn_mask(keep[0])
    with pytest.raises(TypeError, match="keep must be a bool"):
        padding_to_attn_mask(keep.float())


def test_combine_masks_causal_and_padding():
    lengths = [4, 2]
    mask = combine_masks(causal_mask(4), padding_to_attn_mask(padding_mask(lengths)))
    assert mask.shape == (2, 1, 4, 4)
    for b, n in enumerate(lengths):
        assert torch.equal(mask[b, 0], _loop_mask(4, 4, lambda i, j: j <= i and j < n))


def test_combine_masks_none_and_errors():
    causal = causal_mask(3)
    combined = combine_masks(None, causal, None)
    assert torch.equal(combined, causal)
    assert combined.data_ptr() != causal.data_ptr()
    assert combine_masks(None, None) is None
    with pytest.raises(ValueError, match=r"broadcast.*\(3, 3\), \(2,\)"):
        combine_masks(causal, torch.ones(2, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"masks\[1\]"):
        combine_masks(causal, torch.zeros(3, 3))


def test_bool_to_additive_values_and_sdpa_equivalence():
    keep = combine_masks(causal_mask(4), padding_to_attn_mask(padding_mask([4, 3])))  # (2, 1, 4, 4)
    additive = bool_to_additive(keep)
    assert additive.dtype == torch.float32
    assert torch.equal(additive == 0, keep)
    assert torch.equal(torch.isneginf(additive), ~keep)
    assert bool_to_additive(keep, dtype=torch.float64).dtype == torch.float64

    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 4, 8, generator=g) for _ in range(3))
    torch.testing.assert_close(
        F.scaled_dot_product_attention(q, k, v, attn_mask=additive),
        F.scaled_dot_product_attention(q, k, v, attn_mask=keep),
    )
    with pytest.raises(TypeError, match="dtype must be a floating"):
        bool_to_additive(keep, dtype=torch.int64)
    with pytest.raises(TypeError, match="keep must be a bool"):
        bool_to_additive(additive)
