"""Catalogue for exercises 04.1 (split_heads), 04.2 (merge_heads) and 04.3
(multi_head_attention): common wrong answers, each rejected with its hint, and
valid variants, each accepted with full points.

The wrong answers double as the instructor's list of misconceptions
(docs/instructor.md, "Common misconceptions per exercise").
"""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import NOT_IMPLEMENTED, run_check

SEEDS = (0, 1)


from catalogue import assert_full_points as _assert_full_points
from catalogue import assert_rejected as _assert_rejected
from catalogue import not_implemented


@pytest.mark.parametrize("exercise_id", ["04.1", "04.2", "04.3"])
def test_stub_is_not_implemented_yet_with_zero_points(exercise_id):
    result = run_check(exercise_id, not_implemented, seed=0)
    assert not result.passed and result.points == 0
    assert result.messages[0] == NOT_IMPLEMENTED


# =============================================================================== 04.1 split_heads


def split_ok(x, num_heads):
    B, L, E = x.shape
    if E % num_heads != 0:
        raise ValueError(f"E={E} is not divisible by num_heads={num_heads}")
    return x.view(B, L, num_heads, E // num_heads).transpose(1, 2)


def split_no_transpose(x, num_heads):
    B, L, E = x.shape
    if E % num_heads:
        raise ValueError("indivisible")
    return x.view(B, num_heads, L, E // num_heads)


def split_strided(x, num_heads):
    B, L, E = x.shape
    if E % num_heads:
        raise ValueError("indivisible")
    return x.view(B, L, E // num_heads, num_heads).permute(0, 3, 1, 2)


def split_reshape_error(x, num_heads):  # relies on reshape to complain: RuntimeError
    B, L, E = x.shape
    return x.reshape(B, L, num_heads, -1).transpose(1, 2)


def split_assert(x, num_heads):
    B, L, E = x.shape
    assert E % num_heads == 0, "E must be divisible by num_heads"
    return x.view(B, L, num_heads, E // num_heads).transpose(1, 2)


def split_truncates(x, num_heads):
    B, L, E = x.shape
    Dh = E // num_heads
    return x[..., : num_heads * Dh].reshape(B, L, num_heads, Dh).transpose(1, 2)


def split_no_swap(x, num_heads):
    B, L, E = x.shape
    if E % num_heads:
        raise ValueError("indivisible")
    return x.view(B, L, num_heads, E // num_heads)


def split_head_size(x, num_heads):
    B, L, E = x.shape
    if E % num_heads:
        raise ValueError("indivisible")
    return x.view(B, L, E // num_heads, num_heads).transpose(1, 2)


def split_two_heads(x, num_heads):
    B, L, E = x.shape
    if E % num_heads:
        raise ValueError("indivisible")
    return x.view(B, L, 2, E // 2).transpose(1, 2)


def split_float32(x, num_heads):
    return split_ok(x.float(), num_heads)


def split_detached(x, num_heads):
    return split_ok(x.detach(), num_heads)


def split_tuple(x, num_heads):
    return split_ok(x, num_heads), num_heads


SPLIT_WRONG = {
    "view(B, H, L, Dh) without transpose": (split_no_transpose, "mix positions"),
    "features split as (Dh, H)": (split_strided, "every H-th feature"),
    "no check: reshape's RuntimeError": (split_reshape_error, "is not it"),
    "assert instead of ValueError": (split_assert, "AssertionError"),
    "drops the last features": (split_truncates, "hides the mistake"),
    "returns (B, L, H, Dh)": (split_no_swap, "head axis must come before the positions"),
    "num_heads as the head size": (split_head_size, "size of each head"),
    "hard-coded 2 heads": (split_two_heads, "always split into 2 heads"),
    "always float32": (split_float32, "Keep the input's dtype"),
    "detaches": (split_detached, "cut the graph"),
    "returns a tuple": (split_tuple, "not a tuple"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(SPLIT_WRONG))
def test_split_heads_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = SPLIT_WRONG[name]
    _assert_rejected("04.1", fn, hint, seed, name)


def test_split_heads_partial_credit_only_for_the_error_case():
    result = run_check("04.1", split_reshape_error, seed=0)
    assert 0 < result.points < result.max_points
    assert [s.name for s in result.subchecks if s.status == "failed"] == [
        "raises ValueError when num_heads does not divide E"]
    assert run_check("04.1", lambda x, num_heads: x.unsqueeze(1), seed=0).points == 0


def split_unflatten(x, num_heads):
    if x.shape[-1] % num_heads:
        raise ValueError("num_heads must divide the feature size")
    return x.unflatten(-1, (num_heads, -1)).permute(0, 2, 1, 3)


def split_loop(x, num_heads):
    E = x.shape[-1]
    if E % num_heads:
        raise ValueError("num_heads must divide the feature size")
    Dh = E // num_heads
    return torch.stack([x[:, :, h * Dh:(h + 1) * Dh] for h in range(num_heads)], dim=1)


def split_chunk_float64(x, num_heads):
    if x.shape[-1] % num_heads:
        raise ValueError("num_heads must divide the feature size")
    return torch.stack(x.double().chunk(num_heads, dim=-1), dim=1).to(x.dtype).contiguous()


def split_einsum(x, num_heads):
    B, L, E = x.shape
    if E % num_heads:
        raise ValueError("num_heads must divide the feature size")
    return torch.einsum("blhd->bhld", x.reshape(B, L, num_heads, E // num_heads))


SPLIT_VALID = {
    "view + transpose": split_ok,
    "unflatten + permute": split_unflatten,
    "loop over head slices": split_loop,
    "chunk in float64": split_chunk_float64,
    "einsum": split_einsum,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(SPLIT_VALID))
def test_split_heads_valid_variant_gets_full_points(name, seed):
    _assert_full_points("04.1", SPLIT_VALID[name], seed, name)


# =============================================================================== 04.2 merge_heads


def merge_ok(x):
    B, H, L, Dh = x.shape
    return x.transpose(1, 2).reshape(B, L, H * Dh)


def merge_no_transpose(x):
    B, H, L, Dh = x.shape
    return x.reshape(B, L, H * Dh)


def merge_view_no_transpose(x):  # scrambled on contiguous inputs, an error on split_heads' output
    B, H, L, Dh = x.shape
    return x.contiguous().view(B, L, H * Dh)


def merge_transpose_view(x):  # fails on contiguous inputs such as weights @ v
    B, H, L, Dh = x.shape
    return x.transpose(1, 2).view(B, L, H * Dh)


def merge_dh_h(x):
    B, H, L, Dh = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, L, Dh * H)


def merge_along_positions(x):
    return torch.cat(x.unbind(dim=1), dim=1)


def merge_mean(x):
    return x.mean(dim=1)


def merge_4d(x):
    return x.transpose(1, 2)


def merge_detached(x):
    return merge_ok(x).detach()


def merge_in_place(x):
    x.transpose_(1, 2)
    B, L, H, Dh = x.shape
    return x.reshape(B, L, H * Dh)


def merge_numpy(x):
    B, H, L, Dh = x.shape
    return x.detach().numpy().transpose(0, 2, 1, 3).reshape(B, L, H * Dh)


MERGE_WRONG = {
    "reshape without transpose": (merge_no_transpose, "features of your result seem scrambled"),
    "contiguous().view without transpose": (merge_view_no_transpose, "features of your result seem scrambled"),
    "transpose then view": (merge_transpose_view, "not contiguous"),
    "flattens in (Dh, H) order": (merge_dh_h, "interleaved feature by feature"),
    "concatenates along the positions": (merge_along_positions, "(B, H*L, Dh)"),
    "averages the heads": (merge_mean, "average (or sum) the heads"),
    "does not flatten": (merge_4d, "flatten the last two"),
    "detaches": (merge_detached, "cut the graph"),
    "transposes its input in place": (merge_in_place, "in-place operation"),
    "returns numpy": (merge_numpy, "Stay in torch"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(MERGE_WRONG))
def test_merge_heads_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = MERGE_WRONG[name]
    _assert_rejected("04.2", fn, hint, seed, name)


def merge_permute_contiguous_view(x):
    B, H, L, Dh = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(B, L, H * Dh)


def merge_cat(x):
    return torch.cat(x.unbind(dim=1), dim=-1)


def merge_loop_float64(x):
    B, H, L, Dh = x.shape
    out = torch.zeros(B, L, H * Dh, dtype=torch.float64)
    for h in range(H):
        out = out + F.pad(x[:, h].double(), (h * Dh, (H - 1 - h) * Dh))
    return out.to(x.dtype)


def merge_flatten(x):
    return x.transpose(1, 2).flatten(start_dim=2)


MERGE_VALID = {
    "transpose + reshape": merge_ok,
    "permute + contiguous + view": merge_permute_contiguous_view,
    "cat over heads": merge_cat,
    "loop in float64": merge_loop_float64,
    "flatten": merge_flatten,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(MERGE_VALID))
def test_merge_heads_valid_variant_gets_full_points(name, seed):
    _assert_full_points("04.2", MERGE_VALID[name], seed, name)


# =============================================================================== 04.3 multi_head_attention


def _mask_for_heads(attn_mask):
    if attn_mask is not None and attn_mask.dim() == 3:
        return attn_mask.unsqueeze(1)  # (B, 1, L, S)
    return attn_mask


def _attend(q, k, v, attn_mask, scale):
    scores = q @ k.transpose(-2, -1) * scale  # (B, H, L, S)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    dead = scores.amax(dim=-1, keepdim=True) == float("-inf")
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    return weights @ v, weights


def make_mha(scale_by="head", softmax_dim=-1, mask_mode="ok", out_proj=True, transposed=False,
             weights_mean=False, average_heads=False, dead_rows="zero", split=split_ok):
    """A learner-style multi_head_attention with one thing changed."""

    def mha(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
        if transposed:
            W_q, W_k, W_v, W_o = W_q.T, W_k.T, W_v.T, W_o.T
        q = split(query @ W_q, num_heads)
        k = split(key @ W_k, num_heads)
        v = split(value @ W_v, num_heads)
        Dh = q.shape[-1]
        E = query.shape[-1]
        scale = {"head": 1 / math.sqrt(Dh), "E": 1 / math.sqrt(E), "none": 1.0}[scale_by]
        scores = q @ k.transpose(-2, -1) * scale
        if attn_mask is not None:
            m = attn_mask if mask_mode == "no_head_axis" else _mask_for_heads(attn_mask)
            if mask_mode == "float_ignored":
                if m.dtype == torch.bool:
                    scores = scores.masked_fill(~m, float("-inf"))
            elif mask_mode == "float_as_bool":
                scores = scores.masked_fill(~m, float("-inf"))
            elif mask_mode == "after_softmax":
                pass
            elif m.dtype == torch.bool:
                blocked = m if mask_mode == "inverted" else ~m
                scores = scores.masked_fill(blocked, -1e9 if dead_rows == "large_negative" else float("-inf"))
            else:
                scores = scores + m
        if dead_rows == "zero" and softmax_dim == -1:
            dead = scores.amax(dim=-1, keepdim=True) == float("-inf")
            weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
        else:
            weights = torch.softmax(scores, dim=softmax_dim)
        if mask_mode == "after_softmax" and attn_mask is not None:
            weights = weights * _mask_for_heads(attn_mask)
        if average_heads:
            out = weights.mean(dim=1) @ (value @ W_v)
        else:
            out = merge_ok(weights @ v)
        if out_proj:
            out = out @ W_o
        return out, (weights.mean(dim=1) if weights_mean else weights)

    return mha


def mha_detached(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    with torch.no_grad():
        return mha_ok(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask)


def mha_scales_query_in_place(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    Dh = query.shape[-1] // num_heads
    query /= math.sqrt(Dh)
    q, k, v = split_ok(query @ W_q, num_heads), split_ok(key @ W_k, num_heads), split_ok(value @ W_v, num_heads)
    out, weights = _attend(q, k, v, _mask_for_heads(attn_mask), 1.0)
    return merge_ok(out) @ W_o, weights


def mha_unsqueezes_mask_in_place(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    if attn_mask is not None and attn_mask.dim() == 3:
        attn_mask.unsqueeze_(1)
    q, k, v = split_ok(query @ W_q, num_heads), split_ok(key @ W_k, num_heads), split_ok(value @ W_v, num_heads)
    out, weights = _attend(q, k, v, attn_mask, 1 / math.sqrt(q.shape[-1]))
    return merge_ok(out) @ W_o, weights


def mha_only_output(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    return mha_ok(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask)[0]


def mha_w_q_everywhere(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    return mha_ok(query, key, value, W_q, W_q, W_q, W_o, num_heads, attn_mask)


def mha_float32(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    args = [t.float() for t in (query, key, value, W_q, W_k, W_v, W_o)]
    out, weights = mha_ok(*args, num_heads, attn_mask)
    return out.to(query.dtype), weights.to(query.dtype)


mha_ok = make_mha()

MHA_WRONG = {
    "forgets W_o": (make_mha(out_proj=False), "without the output projection"),
    "scales by sqrt(E)": (make_mha(scale_by="E"), "divided by sqrt(E)"),
    "no scaling": (make_mha(scale_by="none"), "do not seem to be scaled"),
    "softmax over the query axis": (make_mha(softmax_dim=-2), "over the query axis"),
    "softmax over the head axis": (make_mha(softmax_dim=1), "over the head axis"),
    "mask without a head axis": (make_mha(mask_mode="no_head_axis"), "needs a head axis"),
    "inverted mask (nn.MultiheadAttention's convention)": (make_mha(mask_mode="inverted"), "mask seems inverted"),
    "mask applied after the softmax": (make_mha(mask_mode="after_softmax"), "after the softmax"),
    "float mask ignored": (make_mha(mask_mode="float_ignored"), "float mask seems to be ignored"),
    "float mask used as a bool mask": (make_mha(mask_mode="float_as_bool"), "float mask seems to be ignored"),
    "NaN for a fully masked query": (make_mha(dead_rows="nan"), "softmax of a row of -inf is NaN"),
    "masks with -1e9": (make_mha(dead_rows="large_negative"), "large negative number"),
    "averages the heads": (make_mha(average_heads=True), "averaged instead of concatenated"),
    "applies W transposed (x @ W.T)": (make_mha(transposed=True), "applied transposed"),
    "returns weights averaged over heads": (make_mha(weights_mean=True), "averaged over the heads"),
    "split_heads without transpose": (make_mha(split=split_no_transpose), "check your split_heads"),
    "projects key and value with W_q": (mha_w_q_everywhere, "projected with W_q"),
    "computes in float32": (mha_float32, "compute in float32"),
    "runs under torch.no_grad()": (mha_detached, "cut the graph"),
    "scales the query in place": (mha_scales_query_in_place, "in-place operation"),
    "unsqueezes the mask in place": (mha_unsqueezes_mask_in_place, "in-place operation"),
    "returns only the output": (mha_only_output, "return output, weights"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(MHA_WRONG))
def test_multi_head_attention_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = MHA_WRONG[name]
    _assert_rejected("04.3", fn, hint, seed, name)


def test_multi_head_attention_partial_credit():
    # masks are not essential: an implementation that ignores them keeps the points of the rest
    no_masks = make_mha(mask_mode="float_ignored")
    result = run_check("04.3", lambda *a, attn_mask=None: no_masks(*a), seed=0)
    assert 0 < result.points < result.max_points
    # a wrong core earns nothing
    assert run_check("04.3", make_mha(out_proj=False), seed=0).points == 0
    mutation = run_check("04.3", mha_unsqueezes_mask_in_place, seed=0).subchecks[-1]
    assert mutation.status == "failed" and "`attn_mask` in place" in mutation.message


def mha_einsum(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    B, L, E = query.shape
    S = key.shape[1]
    H, Dh = num_heads, E // num_heads
    q = torch.einsum("ble,ef->blf", query, W_q).reshape(B, L, H, Dh)
    k = torch.einsum("bse,ef->bsf", key, W_k).reshape(B, S, H, Dh)
    v = torch.einsum("bse,ef->bsf", value, W_v).reshape(B, S, H, Dh)
    scores = torch.einsum("blhd,bshd->bhls", q, k) / Dh ** 0.5
    if attn_mask is not None:
        mask = attn_mask[:, None] if attn_mask.dim() == 3 else attn_mask
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)  # rows with no key: zeros
    out = torch.einsum("bhls,bshd->blhd", weights, v).reshape(B, L, E)
    return torch.einsum("ble,ef->blf", out, W_o), weights


def mha_head_loop_float64(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    dtype = query.dtype
    query, key, value = query.double(), key.double(), value.double()
    W_q, W_k, W_v, W_o = W_q.double(), W_k.double(), W_v.double(), W_o.double()
    E = query.shape[-1]
    Dh = E // num_heads
    mask = attn_mask
    if mask is not None and mask.dim() == 3:
        mask = mask[:, None]
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.double()
    outs, weights = [], []
    for h in range(num_heads):
        cols = slice(h * Dh, (h + 1) * Dh)
        q, k, v = query @ W_q[:, cols], key @ W_k[:, cols], value @ W_v[:, cols]  # (B, L or S, Dh)
        head_mask = None if mask is None else (mask[:, 0] if mask.dim() == 4 else mask)
        out, w = _attend(q, k, v, head_mask, 1 / math.sqrt(Dh))
        outs.append(out)
        weights.append(w)
    out = torch.cat(outs, dim=-1) @ W_o
    return out.to(dtype), torch.stack(weights, dim=1).to(dtype)


def mha_sdpa_output(query, key, value, W_q, W_k, W_v, W_o, num_heads, attn_mask=None):
    q, k, v = split_unflatten(query @ W_q, num_heads), split_unflatten(key @ W_k, num_heads), \
        split_unflatten(value @ W_v, num_heads)
    mask = _mask_for_heads(attn_mask)
    _, weights = _attend(q, k, v, mask, 1 / math.sqrt(q.shape[-1]))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask if mask is None or mask.dtype == torch.bool
                                         else mask.to(q.dtype))
    return merge_flatten(out) @ W_o, weights


MHA_VALID = {
    "split, attend, merge": mha_ok,
    "einsum, NaN rows zeroed": mha_einsum,
    "loop over heads with weight slices, float64 inside": mha_head_loop_float64,
    "F.scaled_dot_product_attention for the output": mha_sdpa_output,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(MHA_VALID))
def test_multi_head_attention_valid_variant_gets_full_points(name, seed):
    _assert_full_points("04.3", MHA_VALID[name], seed, name)


def test_catalogue_size():
    for wrong, valid in ((SPLIT_WRONG, SPLIT_VALID), (MERGE_WRONG, MERGE_VALID), (MHA_WRONG, MHA_VALID)):
        assert len(wrong) >= 5 and len(valid) >= 2
