"""Catalogue for exercises 01.1 (rnn_forward) and 01.2 (greedy_decode): common
wrong answers, each rejected with its hint, and valid variants, each accepted
with full points.

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


@pytest.mark.parametrize("exercise_id", ["01.1", "01.2"])
def test_not_implemented_says_so_and_earns_nothing(exercise_id):
    result = run_check(exercise_id, not_implemented, seed=0)
    assert not result.passed and result.points == 0
    assert result.messages[0] == NOT_IMPLEMENTED


# =============================================================================== 01.1 rnn_forward


def _rnn(x, h0, W_xh, W_hh, b_h, cell=torch.tanh):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = cell(x[:, t] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return torch.stack(states, dim=1), h


def w_hh_transposed(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_xh + h @ W_hh.T + b_h)
        states.append(h)
    return torch.stack(states, dim=1), h


def w_xh_transposed(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_xh.T + h @ W_hh + b_h)
        states.append(h)
    return torch.stack(states, dim=1), h


def no_bias(x, h0, W_xh, W_hh, b_h):
    return _rnn(x, h0, W_xh, W_hh, torch.zeros_like(b_h))


def bias_after_tanh(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_xh + h @ W_hh) + b_h
        states.append(h)
    return torch.stack(states, dim=1), h


def relu(x, h0, W_xh, W_hh, b_h):
    return _rnn(x, h0, W_xh, W_hh, b_h, cell=torch.relu)


def sigmoid(x, h0, W_xh, W_hh, b_h):
    return _rnn(x, h0, W_xh, W_hh, b_h, cell=torch.sigmoid)


def linear_rnn(x, h0, W_xh, W_hh, b_h):
    return _rnn(x, h0, W_xh, W_hh, b_h, cell=lambda z: z)


def h0_every_step(x, h0, W_xh, W_hh, b_h):
    states = [torch.tanh(x[:, t] @ W_xh + h0 @ W_hh + b_h) for t in range(x.shape[1])]
    return torch.stack(states, dim=1), states[-1]


def outputs_include_h0(x, h0, W_xh, W_hh, b_h):
    h, states = h0, [h0]
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return torch.stack(states, dim=1), h


def stores_before_update(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        states.append(h)
        h = torch.tanh(x[:, t] @ W_xh + h @ W_hh + b_h)
    return torch.stack(states, dim=1), h


def time_major(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return torch.stack(states, dim=1), h


def stacked_on_axis_0(x, h0, W_xh, W_hh, b_h):
    outputs, h = _rnn(x, h0, W_xh, W_hh, b_h)
    return outputs.transpose(0, 1), h


def h_last_is_h0(x, h0, W_xh, W_hh, b_h):
    outputs, _ = _rnn(x, h0, W_xh, W_hh, b_h)
    return outputs, h0


def h_last_is_first_state(x, h0, W_xh, W_hh, b_h):
    outputs, _ = _rnn(x, h0, W_xh, W_hh, b_h)
    return outputs, outputs[:, 0]


def h_last_of_last_example(x, h0, W_xh, W_hh, b_h):
    outputs, _ = _rnn(x, h0, W_xh, W_hh, b_h)
    return outputs, outputs[-1]


def returns_only_outputs(x, h0, W_xh, W_hh, b_h):
    return _rnn(x, h0, W_xh, W_hh, b_h)[0]


def returns_list_of_states(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return states, h


def detaches_states(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_xh + h @ W_hh + b_h).detach()
        states.append(h)
    return torch.stack(states, dim=1), h


def updates_h0_in_place(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        h.copy_(torch.tanh(x[:, t] @ W_xh + h @ W_hh + b_h))
        states.append(h.clone())
    return torch.stack(states, dim=1), h.clone()


WRONG_RNN = {
    "W_hh h_{t-1} order (h @ W_hh.T)": (w_hh_transposed, "h @ W_hh"),
    "W_xh transposed": (w_xh_transposed, "applied as `x @ W`"),
    "forgets the bias": (no_bias, "bias b_h seems to be missing"),
    "bias after tanh": (bias_after_tanh, "added after the tanh"),
    "ReLU instead of tanh": (relu, "ReLU"),
    "sigmoid instead of tanh": (sigmoid, "sigmoid"),
    "no nonlinearity": (linear_rnn, "without any nonlinearity"),
    "uses h0 at every step": (h0_every_step, "instead of the previous state"),
    "outputs include h0": (outputs_include_h0, "start with h0"),
    "stores the state before updating it": (stores_before_update, "before it is updated"),
    "time-major loop (x[t])": (time_major, "batch-first"),
    "stacks on axis 0": (stacked_on_axis_0, "torch.stack(states, dim=1)"),
    "h_last = h0": (h_last_is_h0, "initial state h0"),
    "h_last = outputs[:, 0]": (h_last_is_first_state, "after the first step"),
    "h_last = outputs[-1]": (h_last_of_last_example, "last example of the batch"),
    "returns only outputs": (returns_only_outputs, "Return both results"),
    "returns a list of states": (returns_list_of_states, "torch.stack"),
    "detaches the states": (detaches_states, "cut the graph"),
    "updates h0 in place": (updates_h0_in_place, "in-place operation"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WRONG_RNN))
def test_wrong_rnn_forward_is_rejected_with_its_hint(name, seed):
    fn, hint = WRONG_RNN[name]
    _assert_rejected("01.1", fn, hint, seed, name)


def test_rnn_partial_credit():
    # right states, wrong h_last: most of the points; a trivial answer: none
    assert 0 < run_check("01.1", h_last_is_h0, seed=0).points < EXERCISES["01.1"].points
    assert 0 < run_check("01.1", h_last_of_last_example, seed=0).points < EXERCISES["01.1"].points
    trivial = run_check("01.1", lambda x, h0, W_xh, W_hh, b_h: (x.new_zeros(*x.shape[:2], h0.shape[1]), h0), seed=0)
    assert trivial.points == 0


def precomputed_inputs(x, h0, W_xh, W_hh, b_h):
    inputs = x @ W_xh + b_h  # (B, T, H) at once
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(inputs[:, t] + h @ W_hh)
        states.append(h)
    return torch.stack(states, dim=1), h


def with_einsum(x, h0, W_xh, W_hh, b_h):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(torch.einsum("bd,dh->bh", x[:, t], W_xh) + torch.einsum("bk,kh->bh", h, W_hh) + b_h)
        states.append(h)
    return torch.stack(states, dim=1), states[-1]


def float64_inside(x, h0, W_xh, W_hh, b_h):
    outputs, h = _rnn(x.double(), h0.double(), W_xh.double(), W_hh.double(), b_h.double())
    return outputs.to(x.dtype), h.to(x.dtype)


def preallocated(x, h0, W_xh, W_hh, b_h):
    B, T, _ = x.shape
    outputs = x.new_zeros(B, T, h0.shape[1])
    h = h0
    for t in range(T):
        h = torch.tanh(F.linear(x[:, t], W_xh.T, b_h) + torch.addmm(torch.zeros_like(h), h, W_hh))
        outputs[:, t] = h
    return outputs, outputs[:, -1]


def recursive(x, h0, W_xh, W_hh, b_h):
    if x.shape[1] == 1:
        h = torch.tanh(x[:, 0] @ W_xh + h0 @ W_hh + b_h)
        return h.unsqueeze(1), h
    first, h = recursive(x[:, :1], h0, W_xh, W_hh, b_h)
    rest, h = recursive(x[:, 1:], h, W_xh, W_hh, b_h)
    return torch.cat([first, rest], dim=1), h


def time_major_done_right(x, h0, W_xh, W_hh, b_h):
    xs = x.transpose(0, 1)  # (T, B, D)
    h, states = h0, []
    for x_t in xs:
        h = torch.tanh(x_t @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return torch.stack(states).transpose(0, 1), h


VALID_RNN = {
    "the loop of the contract": _rnn,
    "input projections precomputed": precomputed_inputs,
    "einsum": with_einsum,
    "float64 inside, cast back": float64_inside,
    "preallocated outputs, F.linear and addmm": preallocated,
    "recursion over time": recursive,
    "time-major inside, transposed back": time_major_done_right,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(VALID_RNN))
def test_valid_rnn_forward_gets_full_points(name, seed):
    _assert_full_points("01.1", VALID_RNN[name], seed, name)


# =============================================================================== 01.2 greedy_decode


def _greedy(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        out[:, t] = tokens
        finished |= tokens == eos_id
        if finished.all():
            break
    return out


def feeds_sos(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    sos = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(sos, h)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        out[:, t] = tokens
        finished |= tokens == eos_id
        if finished.all():
            break
    return out


def garbage_after_eos(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1)
        out[:, t] = tokens
        finished |= tokens == eos_id
        if finished.all():
            break
    return out


def stops_at_first_eos(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1)
        out[:, t] = tokens
        if (tokens == eos_id).any():
            break
    return out


def never_stops_early(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        out[:, t] = tokens
        finished |= tokens == eos_id
    return out


def includes_sos(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    steps = [tokens]
    finished = torch.zeros(B, dtype=torch.bool)
    h = h0
    for t in range(max_len - 1):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        steps.append(tokens)
        finished |= tokens == eos_id
        if finished.all():
            break
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    out[:, :len(steps)] = torch.stack(steps, dim=1)
    return out


def returns_nested_list(step_fn, h0, sos_id, eos_id, max_len):
    return _greedy(step_fn, h0, sos_id, eos_id, max_len).tolist()


def returns_list_of_steps(step_fn, h0, sos_id, eos_id, max_len):
    return list(_greedy(step_fn, h0, sos_id, eos_id, max_len).T)


def zeros_after_stopping(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.zeros(B, max_len, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        out[:, t] = tokens
        finished |= tokens == eos_id
        if finished.all():
            break
    return out


def passes_h0_every_time(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    for t in range(max_len):
        logits, _ = step_fn(tokens, h0)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        out[:, t] = tokens
        finished |= tokens == eos_id
        if finished.all():
            break
    return out


def argmax_without_dim(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = torch.argmax(logits)
        out[:, t] = tokens
    return out


def argmax_keepdim(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    tokens = torch.full((B, 1), sos_id, dtype=torch.long)
    steps, h = [], h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1, keepdim=True)
        steps.append(tokens)
    return torch.cat(steps, dim=1)


def feeds_max_values(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    h = h0
    for t in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = logits.max(dim=-1).values
        out[:, t] = tokens.long()
    return out


def unbounded_while_loop(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    steps, h = [], h0
    while not finished.all():
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        steps.append(tokens)
        finished |= tokens == eos_id
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    out[:, :len(steps)] = torch.stack(steps, dim=1)[:, :max_len]
    return out


def float_result(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.zeros(B, max_len) + eos_id
    out[:] = _greedy(step_fn, h0, sos_id, eos_id, max_len)
    return out


def transposed_result(step_fn, h0, sos_id, eos_id, max_len):
    return _greedy(step_fn, h0, sos_id, eos_id, max_len).T.contiguous()


WRONG_DECODE = {
    "feeds the sos token at every step": (feeds_sos, "fed the sos token"),
    "garbage after eos": (garbage_after_eos, "later positions must all be eos_id"),
    "stops when the first row finishes": (stops_at_first_eos, "first row emits eos_id"),
    "never stops early": (never_stops_early, "called max_len times"),
    "output starts with sos": (includes_sos, "start with the sos token"),
    "returns a nested list": (returns_nested_list, "Return one tensor, not a list"),
    "returns a list of step tensors": (returns_list_of_steps, "Return one tensor, not a list"),
    "zeros after stopping": (zeros_after_stopping, "must be eos_id too"),
    "passes h0 at every step": (passes_h0_every_time, "not h0 again"),
    "argmax without dim": (argmax_without_dim, "logits.argmax(dim=-1)"),
    "argmax with keepdim": (argmax_keepdim, "no keepdim"),
    "feeds the max values": (feeds_max_values, "token ids"),
    "while loop without max_len": (unbounded_while_loop, "loop at most max_len times"),
    "float result": (float_result, "dtype=torch.long"),
    "(max_len, B) result": (transposed_result, "torch.stack(steps, dim=1)"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WRONG_DECODE))
def test_wrong_greedy_decode_is_rejected_with_its_hint(name, seed):
    fn, hint = WRONG_DECODE[name]
    _assert_rejected("01.2", fn, hint, seed, name)


def test_stopping_too_late_keeps_partial_credit():
    result = run_check("01.2", never_stops_early, seed=0)
    failed = [s.name for s in result.subchecks if s.status == "failed"]
    assert failed == ["stops calling step_fn once every row has finished"], failed
    assert 0 < result.points < result.max_points


def list_then_pad(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    steps, h = [], h0
    for _ in range(max_len):
        logits, h = step_fn(tokens, h)
        tokens = torch.where(finished, torch.full_like(tokens, eos_id), logits.argmax(-1))
        steps.append(tokens)
        finished = finished | (tokens == eos_id)
        if bool(finished.all()):
            break
    out = torch.stack(steps, dim=1)  # (B, steps)
    return F.pad(out, (0, max_len - out.shape[1]), value=eos_id)


def feeds_raw_argmax_to_finished_rows(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    out = torch.full((B, max_len), eos_id, dtype=torch.long)
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    h = h0
    t = 0
    while t < max_len and not finished.all():
        logits, h = step_fn(tokens, h)
        tokens = logits.argmax(dim=1)  # fed back as it is, finished rows included
        out[~finished, t] = tokens[~finished]
        finished = finished | (tokens == eos_id)
        t += 1
    return out


def python_lists(step_fn, h0, sos_id, eos_id, max_len):
    B = h0.shape[0]
    rows = [[] for _ in range(B)]
    done = [False] * B
    tokens, h = torch.tensor([sos_id] * B), h0
    for _ in range(max_len):
        logits, h = step_fn(tokens, h)
        chosen = logits.argmax(dim=-1).tolist()
        for b in range(B):
            rows[b].append(eos_id if done[b] else chosen[b])
            done[b] = done[b] or chosen[b] == eos_id
        tokens = torch.tensor(chosen)
        if all(done):
            break
    return torch.tensor([r + [eos_id] * (max_len - len(r)) for r in rows], dtype=torch.long)


VALID_DECODE = {
    "preallocated eos tensor, masked_fill": _greedy,
    "list of steps, stack, pad": list_then_pad,
    "raw argmax fed to finished rows, while loop": feeds_raw_argmax_to_finished_rows,
    "python lists per row": python_lists,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(VALID_DECODE))
def test_valid_greedy_decode_gets_full_points(name, seed):
    _assert_full_points("01.2", VALID_DECODE[name], seed, name)


def test_catalogue_size():
    assert len(WRONG_RNN) >= 5 and len(VALID_RNN) >= 2
    assert len(WRONG_DECODE) >= 5 and len(VALID_DECODE) >= 2
