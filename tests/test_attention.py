"""course_lib.attention against torch's built-ins (copied weights) and its properties."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import attention as A

TOL = dict(atol=1e-5, rtol=1e-5)


def rand(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# --------------------------------------------------------------------------- additive attention


def test_additive_scores_match_a_loop():
    B, S, Hd, Hk, Ad = 2, 5, 3, 4, 6
    q, keys = rand(B, Hd, seed=1), rand(B, S, Hk, seed=2)
    W_q, W_k, v = rand(Hd, Ad, seed=3), rand(Hk, Ad, seed=4), rand(Ad, seed=5)
    expected = torch.empty(B, S)
    for b in range(B):
        for j in range(S):
            expected[b, j] = torch.dot(v, torch.tanh(q[b] @ W_q + keys[b, j] @ W_k))
    torch.testing.assert_close(A.additive_scores(q, keys, W_q, W_k, v), expected, **TOL)


def test_masked_softmax_zeros_masked_entries_and_dead_rows():
    scores = rand(3, 4, seed=1)
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    w = A.masked_softmax(scores, mask)
    assert torch.isfinite(w).all()
    assert (w[~mask] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(w[0, :2], torch.softmax(scores[0, :2], -1))
    torch.testing.assert_close(w[2], torch.softmax(scores[2], -1))


def test_masked_softmax_rejects_float_mask():
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        A.masked_softmax(rand(2, 3), torch.ones(2, 3))


def test_bahdanau_attend_and_module_agree():
    B, S, Hd, Hk, Ad = 3, 6, 5, 4, 7
    module = A.AdditiveAttention(Hd, Hk, Ad)
    with torch.no_grad():
        module.W_k.bias.zero_()
    q, keys = rand(B, Hd, seed=1), rand(B, S, Hk, seed=2)
    mask = torch.arange(S) < torch.tensor([[6], [3], [1]])
    ctx, w = module(q, keys, mask)
    ctx2, w2 = A.bahdanau_attend(q, keys, mask, module.W_q.weight.T, module.W_k.weight.T,
                                 module.v.weight.squeeze(0))
    torch.testing.assert_close(w, w2, **TOL)
    torch.testing.assert_close(ctx, ctx2, **TOL)
    torch.testing.assert_close(ctx, torch.einsum("bs,bsh->bh", w, keys), **TOL)
    assert (w[1, 3:] == 0).all() and (w[2, 1:] == 0).all()


def test_luong_scores():
    q, keys, W = rand(2, 4, seed=1), rand(2, 5, 4, seed=2), rand(4, 4, seed=3)
    torch.testing.assert_close(A.dot_scores(q, keys), torch.einsum("bh,bsh->bs", q, keys), **TOL)
    torch.testing.assert_close(A.general_scores(q, keys, W), torch.einsum("bh,hk,bsk->bs", q, W, keys), **TOL)


# --------------------------------------------------------------------------- scaled dot-product attention

SHAPES = [((2, 5, 8), (2, 7, 8), (2, 7, 3)), ((2, 3, 4, 16), (2, 3, 6, 16), (2, 3, 6, 16)), ((1, 1, 4), (1, 1, 4), (1, 1, 2))]


def masks_for(L, S, seed):
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(L, S, generator=g) > 0.3
    keep[:, 0] = True  # no fully masked row here; those have their own test
    additive = torch.randn(L, S, generator=g)
    additive[~keep] = float("-inf")
    return {"none": None, "bool": keep, "float": additive}


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
@pytest.mark.parametrize("fast", [False, True])
def test_sdpa_matches_torch(shapes, mask_kind, fast):
    (qs, ks, vs) = shapes
    q, k, v = rand(*qs, seed=1), rand(*ks, seed=2), rand(*vs, seed=3)
    L, S = qs[-2], ks[-2]
    causal = mask_kind == "causal"
    mask = None if causal else masks_for(L, S, seed=4)[mask_kind]
    ours = A.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, fast=fast)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    assert isinstance(ours, torch.Tensor)
    torch.testing.assert_close(ours, ref, **TOL)


@pytest.mark.parametrize("fast", [False, True])
def test_sdpa_custom_scale_and_float64(fast):
    q, k, v = (rand(2, 3, 5, dtype=torch.float64, seed=s) for s in (1, 2, 3))
    ours = A.scaled_dot_product_attention(q, k, v, scale=0.3, fast=fast)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, scale=0.3))


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_rows_give_zeros_like_torch(fast, kind):
    q, k, v = rand(2, 4, 8, seed=1), rand(2, 6, 8, seed=2), rand(2, 6, 8, seed=3)
    keep = torch.ones(4, 6, dtype=torch.bool)
    keep[2] = False
    mask = keep if kind == "bool" else torch.zeros(4, 6).masked_fill(~keep, float("-inf"))
    ours = A.scaled_dot_product_attention(q, k, v, attn_mask=mask, fast=fast)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.isfinite(ours).all()
    assert (ours[:, 2] == 0).all()
    torch.testing.assert_close(ours, ref, **TOL)


def test_sdpa_gradients_match_torch_with_masks():
    q, k, v = (rand(2, 2, 5, 8, seed=s).requires_grad_() for s in (1, 2, 3))
    keep = masks_for(5, 5, seed=7)["bool"]
    A.scaled_dot_product_attention(q, k, v, attn_mask=keep).square().sum().backward()
    ours = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v, attn_mask=keep).square().sum().backward()
    for a, b in zip(ours, (q.grad, k.grad, v.grad)):
        torch.testing.assert_close(a, b, **TOL)


def test_attention_with_weights_rows_sum_to_one_and_reproduce_output():
    q, k, v = rand(3, 7, 16, seed=1), rand(3, 9, 16, seed=2), rand(3, 9, 4, seed=3)
    out, w = A.attention_with_weights(q, k, v)
    assert w.shape == (3, 7, 9)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 7), **TOL)
    assert (w >= 0).all()
    torch.testing.assert_close(out, w @ v, **TOL)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(16), -1)
    torch.testing.assert_close(w, expected, **TOL)


def test_causal_output_ignores_future_tokens():
    q, k, v = rand(1, 10, 8, seed=1), rand(1, 10, 8, seed=2), rand(1, 10, 8, seed=3)
    out = A.scaled_dot_product_attention(q, k, v, is_causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, 6:] = rand(1, 4, 8, seed=9)
    v2[:, 6:] = rand(1, 4, 8, seed=10)
    out2 = A.scaled_dot_product_attention(q, k2, v2, is_causal=True)
    torch.testing.assert_close(out[:, :6], out2[:, :6])
    assert not torch.allclose(out[:, 6:], out2[:, 6:])


def test_self_attention_is_permutation_equivariant():
    x = rand(1, 6, 8, seed=1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    out = A.scaled_dot_product_attention(x, x, x)
    out_perm = A.scaled_dot_product_attention(x[:, perm], x[:, perm], x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm], **TOL)


def test_dropout_in_sdpa_zeroes_weights_when_active():
    torch.manual_seed(0)
    q, k, v = rand(1, 50, 8, seed=1), rand(1, 50, 8, seed=2), rand(1, 50, 8, seed=3)
    _, w = A.attention_with_weights(q, k, v, dropout_p=0.5)
    frac_zero = (w == 0).float().mean().item()
    assert 0.4 < frac_zero < 0.6


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((rand(4), rand(3, 4), rand(3, 4)), ValueError, r"query must have at least 2 dimensions.*got shape \(4\)"),
        ((rand(2, 3, 4), rand(2, 5, 6), rand(2, 5, 4)), ValueError, r"same feature size E"),
        ((rand(2, 3, 4), rand(2, 5, 4), rand(2, 6, 4)), ValueError, r"same number of positions S"),
        ((rand(2, 3, 4).numpy(), rand(2, 5, 4), rand(2, 5, 4)), TypeError, r"query must be a torch.Tensor"),
        ((torch.ones(2, 3, 4, dtype=torch.long), rand(2, 5, 4), rand(2, 5, 4)), TypeError, r"query must be a floating-point"),
    ],
)
def test_sdpa_bad_input_messages(args, error, match):
    with pytest.raises(error, match=match):
        A.scaled_dot_product_attention(*args)


def test_sdpa_bad_mask_messages():
    q, k, v = rand(2, 3, 4), rand(2, 5, 4), rand(2, 5, 4)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\) does not broadcast .*\(2, 3, 5\)"):
        A.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"attn_mask must be a bool mask or a float mask.*torch.int64"):
        A.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        A.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(3, 5, dtype=torch.bool), is_causal=True)


# --------------------------------------------------------------------------- heads


def test_split_merge_heads_round_trip_and_layout():
    x = rand(2, 5, 12)
    h = A.split_heads(x, 3)
    assert h.shape == (2, 3, 5, 4)
    torch.testing.assert_close(h[:, 1], x[..., 4:8])  # head 1 owns features 4..7
    torch.testing.assert_close(A.merge_heads(h), x)


def test_split_heads_rejects_indivisible_width():
    with pytest.raises(ValueError, match=r"E=10 .*num_heads=3 does not divide"):
        A.split_heads(rand(2, 5, 10), 3)


def test_functional_multi_head_matches_torch_without_bias():
    E, H = 16, 4
    ref = nn.MultiheadAttention(E, H, bias=False, batch_first=True)
    W_q, W_k, W_v = (w.T for w in ref.in_proj_weight.detach().split(E))
    W_o = ref.out_proj.weight.detach().T
    q, k = rand(2, 5, E, seed=1), rand(2, 7, E, seed=2)
    blocked = torch.rand(5, 7, generator=torch.Generator().manual_seed(3)) > 0.7
    blocked[:, 0] = False
    out, w = A.multi_head_attention(q, k, k, W_q, W_k, W_v, W_o, H, attn_mask=~blocked)
    ref_out, ref_w = ref(q, k, k, attn_mask=blocked, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(w, ref_w, **TOL)
    assert w.shape == (2, H, 5, 7)


# --------------------------------------------------------------------------- MultiHeadAttention module


def pair(E=16, H=4, bias=True, batch_first=True, kdim=None, vdim=None, fast=True, seed=0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(E, H, bias=bias, batch_first=batch_first, kdim=kdim, vdim=vdim)
    if bias:
        with torch.no_grad():  # torch initialises biases to zero; make them count
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    return ref, A.MultiHeadAttention.from_torch(ref, fast=fast)


def mha_inputs(B=3, L=5, S=7, E=16, seed=1, self_attention=False):
    q = rand(B, L, E, seed=seed)
    if self_attention:
        return q, q, q
    return q, rand(B, S, E, seed=seed + 1), rand(B, S, E, seed=seed + 2)


def test_submodules_are_named_like_the_contract():
    m = A.MultiHeadAttention(8, 2)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert isinstance(getattr(m, name), nn.Linear)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("masks", ["none", "padding", "attn_bool", "attn_float", "both", "per_head"])
def test_mha_matches_torch(fast, need_weights, average, masks):
    B, L, S, E, H = 3, 5, 7, 16, 4
    ref, ours = pair(E, H, fast=fast)
    q, k, v = mha_inputs(B, L, S, E)
    kw = {}
    if masks in ("padding", "both"):
        kw["key_padding_mask"] = torch.arange(S) >= torch.tensor([[7], [4], [2]])  # True = padding
    if masks in ("attn_bool", "both"):
        blocked = torch.rand(L, S, generator=torch.Generator().manual_seed(5)) > 0.6
        blocked[:, 0] = False
        kw["attn_mask"] = blocked
    if masks == "attn_float":
        kw["attn_mask"] = rand(L, S, seed=6)
    if masks == "per_head":
        blocked = torch.rand(B * H, L, S, generator=torch.Generator().manual_seed(7)) > 0.6
        blocked[..., 0] = False
        kw["attn_mask"] = blocked
    out, w = ours(q, k, v, need_weights=need_weights, average_attn_weights=average, **kw)
    ref_out, ref_w = ref(q, k, v, need_weights=need_weights, average_attn_weights=average, **kw)
    torch.testing.assert_close(out, ref_out, **TOL)
    if need_weights:
        torch.testing.assert_close(w, ref_w, **TOL)
        assert w.shape == ((B, L, S) if average else (B, H, L, S))
    else:
        assert w is None and ref_w is None


@pytest.mark.parametrize("fast", [True, False])
def test_mha_self_attention_batch_second_unbatched_and_grads(fast):
    ref, ours = pair(16, 2, batch_first=False, fast=fast)
    x = rand(6, 3, 16, seed=2).requires_grad_()  # (L, B, E)
    out, w = ours(x, x, x)
    ref_out, ref_w = ref(x, x, x)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(w, ref_w, **TOL)
    g_ours = torch.autograd.grad(out.square().sum(), [x, ours.q_proj.weight])
    g_ref = torch.autograd.grad(ref_out.square().sum(), [x, ref.in_proj_weight])
    torch.testing.assert_close(g_ours[0], g_ref[0], **TOL)
    torch.testing.assert_close(g_ours[1], g_ref[1][:16], **TOL)
    xu = rand(6, 16, seed=3)  # unbatched
    torch.testing.assert_close(ours(xu, xu, xu)[0], ref(xu, xu, xu)[0], **TOL)


def test_mha_kdim_vdim_and_no_bias():
    ref, ours = pair(16, 4, bias=False, kdim=6, vdim=10)
    q, k, v = rand(2, 5, 16, seed=1), rand(2, 7, 6, seed=2), rand(2, 7, 10, seed=3)
    torch.testing.assert_close(ours(q, k, v)[0], ref(q, k, v)[0], **TOL)
    assert ours.q_proj.bias is None


@pytest.mark.parametrize("fast", [True, False])
def test_mha_is_causal_matches_explicit_mask(fast):
    ref, ours = pair(16, 4, fast=fast)
    x = rand(2, 6, 16)
    blocked = torch.ones(6, 6, dtype=torch.bool).triu(1)
    ref_out, _ = ref(x, x, x, attn_mask=blocked, is_causal=True, need_weights=False)
    out, _ = ours(x, x, x, is_causal=True, need_weights=False)
    torch.testing.assert_close(out, ref_out, **TOL)


@pytest.mark.parametrize("fast", [True, False])
def test_mha_fully_padded_query_rows_are_zero_not_nan(fast):
    ref, ours = pair(16, 4, bias=False, fast=fast)
    q, k, v = mha_inputs(2, 3, 4)
    blocked = torch.zeros(3, 4, dtype=torch.bool)
    blocked[1] = True  # query 1 may attend to nothing
    for need_weights in (True, False):
        out, w = ours(q, k, v, attn_mask=blocked, need_weights=need_weights)
        assert torch.isfinite(out).all()
        assert (out[:, 1] == 0).all()
        ref_out, _ = ref(q, k, v, attn_mask=blocked, need_weights=need_weights)
        keep_rows = torch.tensor([0, 2])
        torch.testing.assert_close(out[:, keep_rows], ref_out[:, keep_rows], **TOL)


def test_mha_teaching_and_fast_paths_agree_in_training_mode_without_dropout():
    _, fast = pair(32, 4, fast=True)
    slow = A.MultiHeadAttention(32, 4, fast=False)
    slow.load_state_dict(fast.state_dict())
    x = rand(2, 9, 32)
    pad = torch.arange(9) >= torch.tensor([[9], [5]])
    a, _ = fast(x, x, x, key_padding_mask=pad, need_weights=False)
    b, _ = slow(x, x, x, key_padding_mask=pad, need_weights=False)
    torch.testing.assert_close(a, b, **TOL)


def test_mha_dropout_only_in_training():
    m = A.MultiHeadAttention(16, 2, dropout=0.5)
    x = rand(2, 8, 16)
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    torch.testing.assert_close(a, b)
    m.train()
    torch.manual_seed(0)
    c, _ = m(x, x, x)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: A.MultiHeadAttention(10, 3), ValueError, "embed_dim=10 must be divisible by num_heads=3"),
        (lambda: A.MultiHeadAttention(0, 1), ValueError, "embed_dim must be a positive int"),
        (lambda: A.MultiHeadAttention.from_torch(nn.Linear(2, 2)), TypeError, "must be a torch.nn.MultiheadAttention"),
    ],
)
def test_mha_constructor_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_mha_forward_errors_name_the_argument():
    m = A.MultiHeadAttention(16, 4)
    x = rand(2, 5, 16)
    with pytest.raises(ValueError, match=r"query has 8 features \(shape \(2, 5, 8\)\), expected embed_dim=16"):
        m(rand(2, 5, 8), x, x)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, S\) = \(2, 5\), got \(2, 4\)"):
        m(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"2-D attn_mask must have shape \(L, S\) = \(5, 5\), got \(4, 5\)"):
        m(x, x, x, attn_mask=torch.zeros(4, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"key_padding_mask must be a bool mask or a float mask.*torch.int64"):
        m(x, x, x, key_padding_mask=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"query must be 2-D or 3-D"):
        m(rand(5), x, x)
