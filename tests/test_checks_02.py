"""Catalogue for exercises 02.1 (additive_scores), 02.2 (masked_softmax) and
02.3 (bahdanau_attend): common wrong answers, each rejected with its hint, and
valid variants, each accepted with full points.

The wrong answers double as the instructor's list of misconceptions
(docs/instructor.md, "Common misconceptions per exercise").
"""


import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import EXERCISES, NOT_IMPLEMENTED, run_check

SEEDS = (0, 1)


from catalogue import assert_full_points as _assert_full_points
from catalogue import assert_rejected as _assert_rejected
from catalogue import not_implemented


@pytest.mark.parametrize("exercise_id", ["02.1", "02.2", "02.3"])
def test_not_implemented_says_so_and_earns_nothing(exercise_id):
    result = run_check(exercise_id, not_implemented, seed=0)
    assert not result.passed and result.points == 0
    assert result.messages[0] == NOT_IMPLEMENTED


# =============================================================================== 02.1 additive_scores


def _scores(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v


def no_tanh(query, keys, W_q, W_k, v):
    return ((query @ W_q).unsqueeze(1) + keys @ W_k) @ v


def tanh_after_v(query, keys, W_q, W_k, v):
    return torch.tanh(((query @ W_q).unsqueeze(1) + keys @ W_k) @ v)


def weights_transposed(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v


def w_q_transposed(query, keys, W_q, W_k, v):
    return torch.tanh((W_q @ query.unsqueeze(-1)).squeeze(-1).unsqueeze(1) + keys @ W_k) @ v


def swapped_weights(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_k).unsqueeze(1) + keys @ W_q) @ v


def query_not_unsqueezed(query, keys, W_q, W_k, v):
    return torch.tanh(query @ W_q + keys @ W_k) @ v


def sums_instead_of_v(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k).sum(dim=-1)


def softmaxed_scores(query, keys, W_q, W_k, v):
    return torch.softmax(_scores(query, keys, W_q, W_k, v), dim=-1)


def keeps_trailing_axis(query, keys, W_q, W_k, v):
    return torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v.unsqueeze(-1)


def returns_numpy(query, keys, W_q, W_k, v):
    return _scores(query, keys, W_q, W_k, v).detach().numpy()


def detaches_scores(query, keys, W_q, W_k, v):
    return _scores(query, keys, W_q, W_k, v).detach()


def unsqueezes_query_in_place(query, keys, W_q, W_k, v):
    return torch.tanh(query.unsqueeze_(1) @ W_q + keys @ W_k) @ v  # unsqueeze_ reshapes the caller's query


WRONG_SCORES = {
    "forgets tanh": (no_tanh, "without tanh"),
    "tanh after v": (tanh_after_v, "applied to the final score"),
    "weights transposed": (weights_transposed, "applied transposed"),
    "W_q @ query (column-vector habit)": (w_q_transposed, "applied transposed"),
    "W_q and W_k swapped": (swapped_weights, "seem to be swapped"),
    "query without unsqueeze(1)": (query_not_unsqueezed, "position axis"),
    "sums the hidden layer instead of v": (sums_instead_of_v, "summed over its A features"),
    "returns softmax weights": (softmaxed_scores, "softmax-normalised"),
    "keeps a trailing axis (v.unsqueeze(-1))": (keeps_trailing_axis, "trailing axis of size 1"),
    "returns numpy": (returns_numpy, "Stay in torch"),
    "detaches the scores": (detaches_scores, "cut the graph"),
    "unsqueeze_ on the query": (unsqueezes_query_in_place, "in-place operation"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WRONG_SCORES))
def test_wrong_additive_scores_is_rejected_with_its_hint(name, seed):
    fn, hint = WRONG_SCORES[name]
    _assert_rejected("02.1", fn, hint, seed, name)


def scores_einsum(query, keys, W_q, W_k, v):
    hidden = torch.tanh(torch.einsum("bd,da->ba", query, W_q)[:, None, :] + torch.einsum("bsk,ka->bsa", keys, W_k))
    return torch.einsum("bsa,a->bs", hidden, v)


def scores_float64(query, keys, W_q, W_k, v):
    return _scores(query.double(), keys.double(), W_q.double(), W_k.double(), v.double()).to(query.dtype)


def scores_loop_over_positions(query, keys, W_q, W_k, v):
    q = query @ W_q  # (B, A)
    columns = [(torch.tanh(q + keys[:, j] @ W_k) * v).sum(dim=-1) for j in range(keys.shape[1])]
    return torch.stack(columns, dim=1)


def scores_linear(query, keys, W_q, W_k, v):
    hidden = torch.tanh(F.linear(query, W_q.T).unsqueeze(-2) + F.linear(keys, W_k.T))
    return F.linear(hidden, v.unsqueeze(0)).squeeze(-1)


VALID_SCORES = {
    "the formula": _scores,
    "einsum": scores_einsum,
    "float64 inside, cast back": scores_float64,
    "loop over positions": scores_loop_over_positions,
    "F.linear with transposed weights": scores_linear,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(VALID_SCORES))
def test_valid_additive_scores_gets_full_points(name, seed):
    _assert_full_points("02.1", VALID_SCORES[name], seed, name)


# =============================================================================== 02.2 masked_softmax


def _masked_softmax(scores, mask, dim=-1):
    alive = mask.any(dim=dim, keepdim=True)
    filled = scores.masked_fill(~mask, float("-inf")).masked_fill(~alive, 0.0)
    return torch.softmax(filled, dim=dim).masked_fill(~mask, 0.0)


def softmax_over_batch(scores, mask):
    return _masked_softmax(scores, mask, dim=0)


def mask_inverted(scores, mask):
    return _masked_softmax(scores, ~mask)


def big_negative_fill(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)


def small_negative_fill(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, -100.0), dim=-1)


def finfo_min_fill(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)


def inf_without_empty_rows(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def zero_fill(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, 0.0), dim=-1)


def multiplies_scores(scores, mask):
    return torch.softmax(scores * mask, dim=-1)


def no_renormalisation(scores, mask):
    return torch.softmax(scores, dim=-1) * mask


def renormalises(scores, mask):
    w = torch.softmax(scores, dim=-1) * mask
    return w / w.sum(dim=-1, keepdim=True)


def ignores_mask(scores, mask):
    return torch.softmax(scores, dim=-1)


def no_max_trick(scores, mask):
    e = torch.exp(scores) * mask
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def nan_to_num_after(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0)


def log_mask_then_nan_to_num(scores, mask):
    return torch.softmax(scores + mask.float().log(), dim=-1).nan_to_num(0.0)


def where_after(scores, mask):
    w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.where(mask.any(dim=-1, keepdim=True), w, torch.zeros_like(w))


def fills_in_place(scores, mask):
    scores.masked_fill_(~mask, float("-inf"))
    alive = mask.any(dim=-1, keepdim=True)
    return torch.softmax(scores.masked_fill(~alive, 0.0), dim=-1).masked_fill(~mask, 0.0)


WRONG_SOFTMAX = {
    "softmax over the batch axis": (softmax_over_batch, "batch axis"),
    "mask inverted": (mask_inverted, "seems inverted"),
    "fills with -1e9 (uniform empty rows)": (big_negative_fill, "large negative number"),
    "fills with finfo.min": (finfo_min_fill, "large negative number"),
    "fills with -100 (tiny nonzero weights)": (small_negative_fill, "tiny but nonzero"),
    "-inf, NaN on empty rows": (inf_without_empty_rows, "comes out NaN"),
    "sets masked scores to 0": (zero_fill, "exp(0) = 1 still gives them weight"),
    "multiplies the scores by the mask": (multiplies_scores, "exp(0) = 1 still gives them weight"),
    "zeroes weights without renormalising": (no_renormalisation, "no longer sum to 1"),
    "renormalises after zeroing (0/0)": (renormalises, "comes out NaN"),
    "ignores the mask": (ignores_mask, "mask seems to be ignored"),
    "no max trick": (no_max_trick, "exp overflows"),
    "scores + mask.log(), then nan_to_num (NaN gradients)": (log_mask_then_nan_to_num, "gradient holds NaN"),
    "masked_fill_ on the scores in place": (fills_in_place, "in-place operation"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WRONG_SOFTMAX))
def test_wrong_masked_softmax_is_rejected_with_its_hint(name, seed):
    fn, hint = WRONG_SOFTMAX[name]
    _assert_rejected("02.2", fn, hint, seed, name)


def test_masked_softmax_partial_credit():
    # right for every row with a valid entry: most of the points
    points = EXERCISES["02.2"].points
    assert 0.5 * points < run_check("02.2", big_negative_fill, seed=0).points < points
    assert 0.9 * points < run_check("02.2", log_mask_then_nan_to_num, seed=0).points < points
    assert run_check("02.2", ignores_mask, seed=0).points == 0


def softmax_max_trick_by_hand(scores, mask):
    s = scores.masked_fill(~mask, float("-inf"))
    m = s.max(dim=-1, keepdim=True).values
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # rows with no valid entry
    e = torch.exp(s - m)  # exp(-inf) = 0 exactly
    return e / e.sum(dim=-1, keepdim=True).clamp_min(1e-30)


def softmax_float64(scores, mask):
    return _masked_softmax(scores.double(), mask).to(scores.dtype)


def softmax_row_loop(scores, mask):
    rows = []
    for s, m in zip(scores, mask):
        row = torch.zeros_like(s)
        if m.any():
            row = row.index_put((m.nonzero().squeeze(-1),), torch.softmax(s[m], dim=0))
        rows.append(row)
    return torch.stack(rows)


def softmax_logsumexp(scores, mask):
    s = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    lse = torch.logsumexp(s, dim=-1, keepdim=True)
    lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return torch.where(mask, torch.exp(s - lse), torch.zeros_like(s))


VALID_SOFTMAX = {
    "-inf, empty rows to 0 before the softmax": _masked_softmax,
    "max trick by hand": softmax_max_trick_by_hand,
    "float64 inside, cast back": softmax_float64,
    "python loop over rows": softmax_row_loop,
    "logsumexp": softmax_logsumexp,
    # masked_fill's backward zeroes the masked positions, so the NaN of an empty row never reaches the scores
    "-inf, then nan_to_num": nan_to_num_after,
    "-inf, then torch.where on empty rows": where_after,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(VALID_SOFTMAX))
def test_valid_masked_softmax_gets_full_points(name, seed):
    _assert_full_points("02.2", VALID_SOFTMAX[name], seed, name)


# =============================================================================== 02.3 bahdanau_attend


def _attend(query, keys, mask, W_q, W_k, v):
    weights = _masked_softmax(_scores(query, keys, W_q, W_k, v), mask)
    context = (weights.unsqueeze(-1) * keys).sum(dim=1)
    return context, weights


def attend_ignores_mask(query, keys, mask, W_q, W_k, v):
    weights = torch.softmax(_scores(query, keys, W_q, W_k, v), dim=-1)
    return (weights.unsqueeze(-1) * keys).sum(dim=1), weights


def attend_mask_inverted(query, keys, mask, W_q, W_k, v):
    return _attend(query, keys, ~mask, W_q, W_k, v)


def attend_softmax_over_batch(query, keys, mask, W_q, W_k, v):
    weights = _masked_softmax(_scores(query, keys, W_q, W_k, v), mask, dim=0)
    return (weights.unsqueeze(-1) * keys).sum(dim=1), weights


def attend_no_softmax(query, keys, mask, W_q, W_k, v):
    weights = _scores(query, keys, W_q, W_k, v)
    return (weights.unsqueeze(-1) * keys).sum(dim=1), weights


def attend_no_tanh(query, keys, mask, W_q, W_k, v):
    weights = _masked_softmax(no_tanh(query, keys, W_q, W_k, v), mask)
    return (weights.unsqueeze(-1) * keys).sum(dim=1), weights


def attend_weights_transposed(query, keys, mask, W_q, W_k, v):
    return _attend(query, keys, mask, W_q.T, W_k.T, v)


def context_over_batch(query, keys, mask, W_q, W_k, v):
    _, weights = _attend(query, keys, mask, W_q, W_k, v)
    return (weights.unsqueeze(-1) * keys).sum(dim=0), weights


def context_over_features(query, keys, mask, W_q, W_k, v):
    _, weights = _attend(query, keys, mask, W_q, W_k, v)
    return (weights.unsqueeze(-1) * keys).sum(dim=-1), weights


def context_weights_at_keys(query, keys, mask, W_q, W_k, v):
    _, weights = _attend(query, keys, mask, W_q, W_k, v)
    return weights @ keys, weights


def context_mean(query, keys, mask, W_q, W_k, v):
    _, weights = _attend(query, keys, mask, W_q, W_k, v)
    return (weights.unsqueeze(-1) * keys).mean(dim=1), weights


def context_plain_sum(query, keys, mask, W_q, W_k, v):
    _, weights = _attend(query, keys, mask, W_q, W_k, v)
    return keys.sum(dim=1), weights


def context_of_projected_keys(query, keys, mask, W_q, W_k, v):
    _, weights = _attend(query, keys, mask, W_q, W_k, v)
    return (weights.unsqueeze(-1) * (keys @ W_k)).sum(dim=1), weights


def returns_weights_first(query, keys, mask, W_q, W_k, v):
    context, weights = _attend(query, keys, mask, W_q, W_k, v)
    return weights, context


def returns_only_context(query, keys, mask, W_q, W_k, v):
    return _attend(query, keys, mask, W_q, W_k, v)[0]


def attend_nan_on_empty_rows(query, keys, mask, W_q, W_k, v):
    weights = inf_without_empty_rows(_scores(query, keys, W_q, W_k, v), mask)
    return (weights.unsqueeze(-1) * keys).sum(dim=1), weights


def attend_detached_weights(query, keys, mask, W_q, W_k, v):
    context, weights = _attend(query, keys, mask, W_q, W_k, v)
    return context.detach(), weights.detach()


WRONG_ATTEND = {
    "ignores the mask": (attend_ignores_mask, "ignore the mask"),
    "mask inverted": (attend_mask_inverted, "seems inverted"),
    "softmax over the batch axis": (attend_softmax_over_batch, "batch axis"),
    "no softmax": (attend_no_softmax, "raw scores"),
    "forgets tanh": (attend_no_tanh, "without tanh"),
    "weights transposed": (attend_weights_transposed, "applied transposed"),
    "context sums over the batch": (context_over_batch, "sum over the wrong axis"),
    "context sums over the features": (context_over_features, "sum over the wrong axis"),
    "context = weights @ keys": (context_weights_at_keys, "(B, B, Hk)"),
    "context is a mean": (context_mean, "mean over the positions"),
    "context ignores the weights": (context_plain_sum, "ignore the attention weights"),
    "context of the projected keys": (context_of_projected_keys, "projected keys"),
    "returns (weights, context)": (returns_weights_first, "swapped"),
    "returns only the context": (returns_only_context, "Return both results"),
    "NaN for a source with no valid position": (attend_nan_on_empty_rows, "comes out NaN"),
    "detaches the results": (attend_detached_weights, "cut the graph"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WRONG_ATTEND))
def test_wrong_bahdanau_attend_is_rejected_with_its_hint(name, seed):
    fn, hint = WRONG_ATTEND[name]
    _assert_rejected("02.3", fn, hint, seed, name)


def test_right_weights_wrong_context_keeps_partial_credit():
    for wrong_context in (context_mean, context_weights_at_keys):
        result = run_check("02.3", wrong_context, seed=0)
        assert 0 < result.points < result.max_points


def attend_einsum(query, keys, mask, W_q, W_k, v):
    weights = _masked_softmax(scores_einsum(query, keys, W_q, W_k, v), mask)
    return torch.einsum("bs,bsh->bh", weights, keys), weights


def attend_bmm(query, keys, mask, W_q, W_k, v):
    weights = softmax_max_trick_by_hand(_scores(query, keys, W_q, W_k, v), mask)
    return torch.bmm(weights.unsqueeze(1), keys).squeeze(1), weights


def attend_float64(query, keys, mask, W_q, W_k, v):
    context, weights = _attend(query.double(), keys.double(), mask, W_q.double(), W_k.double(), v.double())
    return context.to(query.dtype), weights.to(query.dtype)


def attend_batch_loop(query, keys, mask, W_q, W_k, v):
    contexts, all_weights = [], []
    for b in range(query.shape[0]):
        w, c = _attend(query[b:b + 1], keys[b:b + 1], mask[b:b + 1], W_q, W_k, v)[::-1]
        contexts.append(c[0])
        all_weights.append(w[0])
    return torch.stack(contexts), torch.stack(all_weights)


VALID_ATTEND = {
    "weighted sum with unsqueeze": _attend,
    "einsum": attend_einsum,
    "bmm": attend_bmm,
    "float64 inside, cast back": attend_float64,
    "loop over the batch": attend_batch_loop,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(VALID_ATTEND))
def test_valid_bahdanau_attend_gets_full_points(name, seed):
    _assert_full_points("02.3", VALID_ATTEND[name], seed, name)


def test_catalogue_size():
    for wrong, valid in ((WRONG_SCORES, VALID_SCORES), (WRONG_SOFTMAX, VALID_SOFTMAX), (WRONG_ATTEND, VALID_ATTEND)):
        assert len(wrong) >= 5 and len(valid) >= 2
