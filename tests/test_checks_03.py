"""Catalogue for exercises 03.1 (scaled dot-product attention), 03.2 (causal mask)
and 03.3 (padding mask): common wrong answers, each rejected with its hint, and
valid variants, each accepted with full points.

The wrong answers double as the instructor's list of misconceptions
(docs/instructor.md, "Common misconceptions per exercise").
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import EXERCISES, NOT_IMPLEMENTED, run_check

SEEDS = (0, 1)
# key_dot_T below is a wrong answer on purpose; torch warns about x.T on 3-D tensors
pytestmark = pytest.mark.filterwarnings("ignore:The use of `x.T`:UserWarning")


from catalogue import assert_full_points as _assert_full_points
from catalogue import assert_rejected as _assert_rejected
from catalogue import not_implemented as _not_implemented


@pytest.mark.parametrize("exercise_id", ["03.1", "03.2", "03.3"])
def test_not_implemented_yet(exercise_id):
    result = run_check(exercise_id, _not_implemented, seed=0)
    assert result.messages[0] == NOT_IMPLEMENTED == "not implemented yet"
    assert result.points == 0 and not result.passed


# =================================================================== 03.1 scaled_dot_product_attention


def _masked(scores, attn_mask, fill=float("-inf")):
    if attn_mask is None:
        return scores
    if attn_mask.dtype == torch.bool:
        return scores.masked_fill(~attn_mask, fill)
    return scores + attn_mask


def _zero_dead_rows(scores, weights):
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)
    return weights.masked_fill(dead, 0.0)


def _attend(scores, value):
    weights = _zero_dead_rows(scores, torch.softmax(scores, dim=-1))
    return weights @ value, weights


def _good(query, key, value, attn_mask=None):
    scores = _masked(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), attn_mask)
    return _attend(scores, value)


# ---------------------------------------------------------------- wrong answers


def softmax_over_queries(query, key, value, attn_mask=None):
    scores = _masked(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), attn_mask)
    weights = torch.nan_to_num(torch.softmax(scores, dim=-2))
    return weights @ value, weights


def _scaled_by(scale_of):
    def attention(query, key, value, attn_mask=None):
        scores = _masked((query @ key.transpose(-2, -1)) * scale_of(query, key, value), attn_mask)
        return _attend(scores, value)
    return attention


no_scaling = _scaled_by(lambda q, k, v: 1.0)
scales_by_e = _scaled_by(lambda q, k, v: 1.0 / q.shape[-1])
scales_by_value_dim = _scaled_by(lambda q, k, v: 1.0 / math.sqrt(v.shape[-1]))
d_k_is_size_1 = _scaled_by(lambda q, k, v: 1.0 / math.sqrt(q.size(1)))
multiplies_by_sqrt = _scaled_by(lambda q, k, v: math.sqrt(q.shape[-1]))


def mask_inverted(query, key, value, attn_mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return _attend(scores, value)


def masks_with_zero(query, key, value, attn_mask=None):
    scores = _masked(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), attn_mask, fill=0.0)
    return _attend(scores, value)


def multiplies_scores_by_mask(query, key, value, attn_mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores * attn_mask if attn_mask.dtype == torch.bool else scores + attn_mask
    return _attend(scores, value)


def masks_after_softmax(query, key, value, attn_mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        scores = scores + attn_mask
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        weights = weights.masked_fill(~attn_mask, 0.0)
    return weights @ value, weights


def nan_on_fully_masked_rows(query, key, value, attn_mask=None):
    scores = _masked(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), attn_mask)
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


def fills_minus_1e9(query, key, value, attn_mask=None):
    scores = _masked(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), attn_mask, fill=-1e9)
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


def ignores_float_mask(query, key, value, attn_mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return _attend(scores, value)


def annotated_transformer_style(query, key, value, attn_mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask == 0, float("-inf"))
    return _attend(scores, value)


def key_dot_T(query, key, value, attn_mask=None):
    scores = _masked(query @ key.T / math.sqrt(query.shape[-1]), attn_mask)
    return _attend(scores, value)


def transposes_1_2(query, key, value, attn_mask=None):
    scores = _masked(query @ key.transpose(1, 2) / math.sqrt(query.shape[-1]), attn_mask)
    return _attend(scores, value)


def uses_bmm(query, key, value, attn_mask=None):
    scores = _masked(torch.bmm(query, key.transpose(-2, -1)) / math.sqrt(query.shape[-1]), attn_mask)
    weights = _zero_dead_rows(scores, torch.softmax(scores, dim=-1))
    return torch.bmm(weights, value), weights


def reshapes_keys(query, key, value, attn_mask=None):
    key_t = key.reshape(*key.shape[:-2], key.shape[-1], key.shape[-2])
    scores = _masked(query @ key_t / math.sqrt(query.shape[-1]), attn_mask)
    return _attend(scores, value)


def no_softmax(query, key, value, attn_mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    return scores @ value, scores


def adds_bool_mask(query, key, value, attn_mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores + attn_mask
    return _attend(scores, value)


def returns_only_output(query, key, value, attn_mask=None):
    return _good(query, key, value, attn_mask)[0]


def returns_swapped(query, key, value, attn_mask=None):
    output, weights = _good(query, key, value, attn_mask)
    return weights, output


def scales_query_in_place(query, key, value, attn_mask=None):
    query /= math.sqrt(query.shape[-1])
    return _attend(_masked(query @ key.transpose(-2, -1), attn_mask), value)


def always_float32(query, key, value, attn_mask=None):
    output, weights = _good(query.float(), key.float(), value.float(),
                            attn_mask if attn_mask is None or attn_mask.dtype == torch.bool else attn_mask.float())
    return output, weights


def detaches_weights(query, key, value, attn_mask=None):
    output, weights = _good(query, key, value, attn_mask)
    return output, weights.detach()


def mask_with_extra_axis(query, key, value, attn_mask=None):
    """Adds a "head axis" to the mask, as if it had to broadcast over heads."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    return _attend(_masked(scores, None if attn_mask is None else attn_mask.unsqueeze(1)), value)


def values_as_keys(query, key, value, attn_mask=None):
    scores = query @ value.transpose(-2, -1) / math.sqrt(query.shape[-1])
    return _attend(_masked(scores, attn_mask), value)


ATTENTION_WRONG = {
    "mask given an extra axis": (mask_with_extra_axis, "extra axis"),
    "value passed where key belongs": (values_as_keys, "compare the queries with the *values*"),
    "softmax over the query axis": (softmax_over_queries, "query axis (dim=-2)"),
    "no scaling": (no_scaling, "seem not to be scaled"),
    "scales by E": (scales_by_e, "divided by E itself"),
    "multiplies by sqrt(E)": (multiplies_by_sqrt, "multiplied by sqrt(E)"),
    "scales by sqrt of the value size": (scales_by_value_dim, "size of the values"),
    "d_k = query.size(1)": (d_k_is_size_1, "a length or a batch size"),
    "bool mask inverted (nn.MultiheadAttention convention)": (mask_inverted, "mask seems inverted"),
    "masked scores set to 0": (masks_with_zero, "score of 0"),
    "scores multiplied by the mask": (multiplies_scores_by_mask, "score of 0"),
    "masked after the softmax, not renormalised": (masks_after_softmax, "after the softmax"),
    "NaN on fully masked rows": (nan_on_fully_masked_rows, "gets NaN"),
    "-1e9 fill: uniform weights on fully masked rows": (fills_minus_1e9, "uniform weights"),
    "float mask ignored": (ignores_float_mask, "float attn_mask seems to be ignored"),
    "masked_fill(mask == 0) for every mask": (annotated_transformer_style, "0/1 mask"),
    "key.T on 3-D tensors": (key_dot_T, "Transpose only the last two axes"),
    "key.transpose(1, 2)": (transposes_1_2, "Transpose only the last two axes"),
    "torch.bmm (3-D only)": (uses_bmm, "Transpose only the last two axes"),
    "reshape instead of transpose": (reshapes_keys, "reshaped"),
    "no softmax": (no_softmax, "raw (scaled) scores"),
    "bool mask added to the scores": (adds_bool_mask, "True counts as 1"),
    "returns only the output": (returns_only_output, "Return both results as a tuple"),
    "returns (weights, output)": (returns_swapped, "seem swapped"),
    "scales the query in place": (scales_query_in_place, "in-place operation"),
    "always float32": (always_float32, "Keep the input's dtype"),
    "detaches the weights": (detaches_weights, "cut the graph"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(ATTENTION_WRONG))
def test_attention_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = ATTENTION_WRONG[name]
    _assert_rejected("03.1", fn, hint, seed, name)


def test_attention_partial_credit():
    assert 0 < run_check("03.1", nan_on_fully_masked_rows, seed=0).points < EXERCISES["03.1"].points
    assert 0 < run_check("03.1", ignores_float_mask, seed=0).points < EXERCISES["03.1"].points
    assert run_check("03.1", no_scaling, seed=0).points == 0  # the core computation is wrong
    assert run_check("03.1", lambda q, k, v, attn_mask=None: (v[..., :1, :], q), seed=0).points == 0


# ---------------------------------------------------------------- valid variants


def with_einsum(query, key, value, attn_mask=None):
    scores = torch.einsum("...le,...se->...ls", query, key) / math.sqrt(query.shape[-1])
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = torch.where(attn_mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    elif attn_mask is not None:
        scores = scores + attn_mask
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)
    weights = torch.where(dead, torch.zeros_like(scores), torch.softmax(scores.masked_fill(dead, 0.0), dim=-1))
    return torch.einsum("...ls,...sv->...lv", weights, value), weights


def float64_with_loops(query, key, value, attn_mask=None):
    q, k, v = query.double(), key.double(), value.double()
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    L, S = q.shape[-2], k.shape[-2]
    if attn_mask is None:
        additive = torch.zeros(L, S, dtype=torch.float64)
    elif attn_mask.dtype == torch.bool:
        additive = torch.zeros(attn_mask.shape, dtype=torch.float64).masked_fill(~attn_mask, float("-inf"))
    else:
        additive = attn_mask.double()
    additive = additive.expand(*batch, L, S).reshape(-1, L, S)
    q = q.expand(*batch, L, q.shape[-1]).reshape(-1, L, q.shape[-1])
    k = k.expand(*batch, S, k.shape[-1]).reshape(-1, S, k.shape[-1])
    v = v.expand(*batch, S, v.shape[-1]).reshape(-1, S, v.shape[-1])
    outputs, all_weights = [], []
    for n in range(q.shape[0]):
        rows = []
        for i in range(L):
            scores = k[n] @ q[n, i] / math.sqrt(q.shape[-1]) + additive[n, i]  # (S,)
            if torch.isneginf(scores).all():
                rows.append(torch.zeros(S, dtype=torch.float64))
            else:
                e = torch.exp(scores - scores.max())
                rows.append(e / e.sum())
        w = torch.stack(rows)  # (L, S)
        all_weights.append(w)
        outputs.append(w @ v[n])
    output = torch.stack(outputs).reshape(*batch, L, v.shape[-1]).to(query.dtype)
    weights = torch.stack(all_weights).reshape(*batch, L, S).to(query.dtype)
    return output, weights


def torch_sdpa_for_the_output(query, key, value, attn_mask=None):
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
    scores = query @ key.mT * query.shape[-1] ** -0.5
    if attn_mask is not None:
        additive = attn_mask if attn_mask.is_floating_point() else \
            torch.zeros(attn_mask.shape, dtype=query.dtype).masked_fill(~attn_mask, float("-inf"))
        scores = scores + additive
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return output, weights


def finfo_min_fill_then_zero(query, key, value, attn_mask=None):
    scores = (query / math.sqrt(query.size(-1))) @ key.permute(*range(key.dim() - 2), -1, -2)
    keep = None
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        keep = attn_mask
    elif attn_mask is not None:
        scores = scores + attn_mask
        keep = ~torch.isneginf(attn_mask)
    if keep is not None:
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * keep.any(dim=-1, keepdim=True)
    else:
        weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


def via_logsumexp(query, key, value, attn_mask=None):
    scores = _masked(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), attn_mask)
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    weights = torch.exp(scores - lse.masked_fill(torch.isneginf(lse), 0.0))
    return weights @ value, weights


ATTENTION_VALID = {
    "einsum and torch.where": with_einsum,
    "float64 inside, loops over batch and queries": float64_with_loops,
    "F.scaled_dot_product_attention for the output": torch_sdpa_for_the_output,
    "finfo.min fill, dead rows zeroed": finfo_min_fill_then_zero,
    "logsumexp": via_logsumexp,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(ATTENTION_VALID))
def test_attention_valid_variant_gets_full_points(name, seed):
    _assert_full_points("03.1", ATTENTION_VALID[name], seed, name)


# =================================================================== 03.2 causal_mask


def causal_upper(L):
    return torch.ones(L, L, dtype=torch.bool).triu()


def causal_strict(L):
    return torch.ones(L, L, dtype=torch.bool).tril(diagonal=-1)


def causal_inverted(L):
    return torch.ones(L, L, dtype=torch.bool).triu(diagonal=1)


def causal_float(L):
    return torch.tril(torch.ones(L, L))


def causal_int(L):
    return torch.tril(torch.ones(L, L, dtype=torch.long))


def causal_additive(L):
    return torch.zeros(L, L).masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))


def causal_all_true(L):
    return torch.ones(L, L, dtype=torch.bool)


def causal_eye(L):
    return torch.eye(L, dtype=torch.bool)


def causal_numpy(L):
    return np.tril(np.ones((L, L), dtype=bool))


def causal_hard_coded(L):
    return torch.ones(4, 4, dtype=torch.bool).tril()


def causal_one_ahead(L):
    return torch.ones(L, L, dtype=torch.bool).tril(diagonal=1)


def causal_one_too_big(L):
    return torch.ones(L + 1, L + 1, dtype=torch.bool).tril()


CAUSAL_WRONG = {
    "tril(diagonal=1): one key ahead": (causal_one_ahead, "one key in the future"),
    "(L+1, L+1) mask": (causal_one_too_big, "one row and one column too many"),
    "upper triangle (transposed)": (causal_upper, "seems transposed"),
    "diagonal excluded": (causal_strict, "diagonal seems to be excluded"),
    "inverted (True = hidden)": (causal_inverted, "mask seems inverted"),
    "float 0/1 mask": (causal_float, "Return a bool tensor"),
    "integer 0/1 mask": (causal_int, "Return a bool tensor"),
    "additive 0/-inf mask": (causal_additive, "additive float mask"),
    "no triangle": (causal_all_true, "Every entry seems to be True"),
    "only the diagonal": (causal_eye, "Only the diagonal"),
    "returns numpy": (causal_numpy, "Stay in torch"),
    "hard-coded size": (causal_hard_coded, "dimensions"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(CAUSAL_WRONG))
def test_causal_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = CAUSAL_WRONG[name]
    _assert_rejected("03.2", fn, hint, seed, name)


def test_causal_partial_credit_for_a_non_bool_mask():
    assert 0 < run_check("03.2", causal_float, seed=0).points < EXERCISES["03.2"].points


def causal_tril(L):
    return torch.tril(torch.ones(L, L, dtype=torch.bool))


def causal_compare(L):
    i = torch.arange(L)
    return i[None, :] <= i[:, None]  # (L, L): key j <= query i


def causal_loops(L):
    mask = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        for j in range(i + 1):
            mask[i, j] = True
    return mask


def causal_not_triu(L):
    return ~torch.ones(L, L).triu(1).bool()


CAUSAL_VALID = {
    "tril of ones": causal_tril,
    "index comparison": causal_compare,
    "explicit loops": causal_loops,
    "negated strict upper triangle": causal_not_triu,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(CAUSAL_VALID))
def test_causal_valid_variant_gets_full_points(name, seed):
    _assert_full_points("03.2", CAUSAL_VALID[name], seed, name)


# =================================================================== 03.3 padding_mask


def _max(lengths, max_len):
    return int(lengths.max()) if max_len is None else max_len


def padding_le(lengths, max_len=None):
    return torch.arange(_max(lengths, max_len))[None, :] <= lengths[:, None]


def padding_from_one(lengths, max_len=None):
    return torch.arange(1, _max(lengths, max_len) + 1)[None, :] < lengths[:, None]


def padding_inverted(lengths, max_len=None):
    return torch.arange(_max(lengths, max_len))[None, :] >= lengths[:, None]


def padding_float(lengths, max_len=None):
    return (torch.arange(_max(lengths, max_len))[None, :] < lengths[:, None]).float()


def padding_default_batch_size(lengths, max_len=None):
    max_len = len(lengths) if max_len is None else max_len
    return torch.arange(max_len)[None, :] < lengths[:, None]


def padding_default_plus_one(lengths, max_len=None):
    max_len = int(lengths.max()) + 1 if max_len is None else max_len
    return torch.arange(max_len)[None, :] < lengths[:, None]


def padding_ignores_max_len(lengths, max_len=None):
    return torch.arange(int(lengths.max()))[None, :] < lengths[:, None]


def padding_transposed(lengths, max_len=None):
    return torch.arange(_max(lengths, max_len))[:, None] < lengths[None, :]


def padding_in_place(lengths, max_len=None):
    max_len = _max(lengths, max_len)
    lengths.unsqueeze_(1)
    mask = torch.arange(max_len)[None, :] < lengths
    lengths.squeeze_(1)
    lengths.clamp_(max=max_len - 1)
    return mask


def padding_assumes_sorted(lengths, max_len=None):
    max_len = int(lengths[0]) if max_len is None else max_len  # "the first sequence is the longest"
    return torch.arange(max_len)[None, :] < lengths[:, None]


def padding_float_mask(lengths, max_len=None):
    max_len = int(lengths.max()) if max_len is None else max_len
    return (torch.arange(max_len)[None, :] < lengths[:, None]).float()


PADDING_WRONG = {
    "assumes sorted lengths (width from the first)": (padding_assumes_sorted, "as if the lengths were sorted"),
    "0/1 float mask (the hint speaks of positions)": (padding_float_mask, "position < length"),
    "<= instead of <": (padding_le, "position <= length"),
    "positions counted from 1": (padding_from_one, "one position too few"),
    "inverted (True = padding)": (padding_inverted, "mask seems inverted"),
    "float mask": (padding_float, "Return a bool tensor"),
    "max_len defaults to the batch size": (padding_default_batch_size, "len(lengths) columns"),
    "max_len defaults to max(lengths) + 1": (padding_default_plus_one, "one column too many"),
    "ignores max_len": (padding_ignores_max_len, "ignore a given max_len"),
    "transposed": (padding_transposed, "seems transposed"),
    "modifies lengths in place": (padding_in_place, "in-place operation"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(PADDING_WRONG))
def test_padding_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = PADDING_WRONG[name]
    _assert_rejected("03.3", fn, hint, seed, name)


def padding_broadcast(lengths, max_len=None):
    if max_len is None:
        max_len = int(lengths.max())
    return torch.arange(max_len) < lengths.unsqueeze(-1)  # (B, max_len)


def padding_loops(lengths, max_len=None):
    lengths = [int(n) for n in lengths]
    max_len = max(lengths) if max_len is None else max_len
    return torch.tensor([[p < n for p in range(max_len)] for n in lengths], dtype=torch.bool)


def padding_cumsum(lengths, max_len=None):
    max_len = int(lengths.max()) if max_len is None else max_len
    ones = torch.ones(len(lengths), max_len, dtype=torch.long)
    return ones.cumsum(dim=1) <= lengths[:, None]


def padding_rows_filled(lengths, max_len=None):
    max_len = int(lengths.max().item()) if max_len is None else max_len
    mask = torch.zeros(lengths.shape[0], max_len, dtype=torch.bool)
    for b, n in enumerate(lengths.tolist()):
        mask[b, :n] = True
    return mask


PADDING_VALID = {
    "broadcast comparison": padding_broadcast,
    "list comprehension": padding_loops,
    "cumsum of ones": padding_cumsum,
    "rows filled with slices": padding_rows_filled,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(PADDING_VALID))
def test_padding_valid_variant_gets_full_points(name, seed):
    _assert_full_points("03.3", PADDING_VALID[name], seed, name)


def test_catalogue_sizes():
    for wrong, valid in ((ATTENTION_WRONG, ATTENTION_VALID), (CAUSAL_WRONG, CAUSAL_VALID),
                         (PADDING_WRONG, PADDING_VALID)):
        assert len(wrong) >= 5 and len(valid) >= 2
