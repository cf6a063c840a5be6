"""Checks for notebook 01 (the RNN bottleneck): 01.1 rnn_forward, 01.2 greedy_decode.

01.1 contract: ``rnn_forward(x, h0, W_xh, W_hh, b_h) -> (outputs, h_last)`` with
x (B, T, D), h0 (B, H) and h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h);
outputs (B, T, H) holds h_1..h_T, h_last = h_T.

01.2 contract: ``greedy_decode(step_fn, h0, sos_id, eos_id, max_len)`` ->
LongTensor (B, max_len); ``step_fn(tokens (B,), h) -> (logits (B, V), h)``;
it feeds back its argmax; after a row emits eos_id every later position of that
row is eos_id; it stops calling step_fn once all rows have finished.

01.2 is checked with *scripted* decoders (course_lib/checks/framework/scripted.py): fake
step functions whose outputs are fixed in advance and that record every call,
so the check can see what was fed back, which state was passed in, and how
often step_fn was called. Its misconceptions are wrong decoding loops; the
framework's diagnosis runs them on fresh copies of the same script
(``ScriptedDecoder.fresh_copy``) and compares their tokens with the learner's.
"""

from __future__ import annotations

import torch

from ..rnn import greedy_decode as _reference_decode
from ..rnn import rnn_forward as _reference_rnn
from .framework import CheckContext, Misconception, checker, fmt_shape
from .framework.scripted import ScriptedDecoder

# =========================================================================== 01.1 rnn_forward


def _rnn(x, h0, W_xh, W_hh, b_h, cell=torch.tanh, step=None, keep_h0=False, before=False):
    """A vanilla RNN with a pluggable mistake: ``cell`` the nonlinearity, ``step(x_t, h, h0)``
    the pre-activation, ``keep_h0`` outputs include h0, ``before`` stores h before the update."""
    step = step or (lambda x_t, h, h_init: x_t @ W_xh + h @ W_hh + b_h)
    h, outputs = h0, [h0] if keep_h0 else []
    for i in range(x.shape[1]):
        new = cell(step(x[:, i], h, h0))
        outputs.append(h if before else new)
        h = new
    return torch.stack(outputs, dim=1), h


def _time_major(x, h0, W_xh, W_hh, b_h):
    outputs, h = _reference_rnn(x.transpose(0, 1), h0, W_xh, W_hh, b_h)  # needs B == T
    return outputs, h


_TIME_MAJOR_HINT = ("x is batch-first, (B, T, D): time step t is x[:, t] (shape (B, D)), not x[t] (that is the "
                    "whole sequence of example t). Loop over range(x.shape[1]) and stack the states with "
                    "torch.stack(..., dim=1).")

W_HH_TRANSPOSED = Misconception(
    "h_{t-1} W_hh in the wrong order",
    "The recurrent term seems to be W_hh h_{t-1} (h @ W_hh.T, or W_hh @ h written for column vectors). "
    "In this course matrices are applied as `x @ W` with W (in_features, out_features): use h @ W_hh.",
    lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, step=lambda x_t, h, _: x_t @ W_xh + h @ W_hh.T + b_h),
)
NO_BIAS = Misconception(
    "forgets the bias",
    "The bias b_h seems to be missing: h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h).",
    lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, step=lambda x_t, h, _: x_t @ W_xh + h @ W_hh),
)
BIAS_OUTSIDE = Misconception(
    "adds the bias after tanh",
    "The bias seems to be added after the tanh; it belongs inside: tanh(x_t W_xh + h_{t-1} W_hh + b_h).",
    lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, cell=lambda z: z,
                                        step=lambda x_t, h, _: torch.tanh(x_t @ W_xh + h @ W_hh) + b_h),
)
RELU = Misconception("uses ReLU", "The nonlinearity seems to be ReLU; a vanilla (Elman) RNN uses tanh, which keeps "
                     "every state in (-1, 1).",
                     lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, cell=torch.relu))
SIGMOID = Misconception("uses sigmoid", "The nonlinearity seems to be a sigmoid; the contract uses tanh (values in "
                        "(-1, 1), centred on 0).",
                        lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, cell=torch.sigmoid))
NO_NONLINEARITY = Misconception("no nonlinearity", "The states seem to be computed without any nonlinearity: apply "
                                "torch.tanh to the sum at every step.",
                                lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, cell=lambda z: z))
USES_H0_EVERY_STEP = Misconception(
    "uses h0 at every step",
    "Every step seems to use h0 instead of the previous state: update a variable (h = torch.tanh(...)) and use "
    "it in the next step, so that information flows along the sequence.",
    lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h,
                                        step=lambda x_t, h, h_init: x_t @ W_xh + h_init @ W_hh + b_h),
)
INCLUDES_H0 = Misconception("outputs include h0", "`outputs` seems to start with h0. It holds the T new states "
                            "h_1..h_T, one per input step, so its shape is (B, T, H): do not put h0 in the list.",
                            lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, keep_h0=True))
SHIFTED_OUTPUTS = Misconception("stores the state before updating it", "`outputs` seems to hold h_0..h_{T-1}: the "
                                "state is stored before it is updated. Append the new state h_t after computing it.",
                                lambda x, h0, W_xh, W_hh, b_h: _rnn(x, h0, W_xh, W_hh, b_h, before=True))
TIME_MAJOR = Misconception("time-major confusion", _TIME_MAJOR_HINT, _time_major,
                           error=r"must match the size of tensor b|out of bounds for dimension 0")
TIME_MAJOR_STACKED = Misconception("time-major confusion", _TIME_MAJOR_HINT,
                                   lambda *args: (lambda o, h: (o.transpose(0, 1), h))(*_time_major(*args)))
STACKED_ON_TIME_AXIS = Misconception("stacks the states on axis 0", "`outputs` seems to be (T, B, H): "
                                     "torch.stack(states) stacks on a new first axis. The course is batch-first: "
                                     "use torch.stack(states, dim=1) to get (B, T, H).",
                                     lambda *args: (lambda o, h: (o.transpose(0, 1), h))(*_reference_rnn(*args)))
H_LAST_IS_H0 = Misconception("returns h0 as h_last", "h_last seems to be the initial state h0: return the state "
                             "after the last step (outputs[:, -1]).",
                             lambda x, h0, *w: (_reference_rnn(x, h0, *w)[0], h0))
H_LAST_IS_FIRST = Misconception("returns the first state as h_last", "h_last seems to be the state after the first "
                                "step; it is the state after the last one, outputs[:, -1].",
                                lambda *args: (lambda o, h: (o, o[:, 0]))(*_reference_rnn(*args)))
H_LAST_OF_LAST_EXAMPLE = Misconception("h_last = outputs[-1]", "h_last seems to be outputs[-1], the states of the "
                                       "last example of the batch. outputs is (B, T, H), so the last time step is "
                                       "outputs[:, -1].",
                                       lambda *args: (lambda o, h: (o, o[-1]))(*_reference_rnn(*args)))
WEIGHTS_TRANSPOSED_ERROR = Misconception("transposes a weight matrix", "A matrix product does not fit. Weights are "
                                         "applied as `x @ W` with W of shape (in_features, out_features): x_t @ "
                                         "W_xh maps D to H and h @ W_hh maps H to H, with no transpose.",
                                         error=r"mat1 and mat2 shapes cannot be multiplied")

RNN_MISCONCEPTIONS = [
    W_HH_TRANSPOSED, NO_BIAS, BIAS_OUTSIDE, RELU, SIGMOID, NO_NONLINEARITY, USES_H0_EVERY_STEP, INCLUDES_H0,
    SHIFTED_OUTPUTS, TIME_MAJOR, TIME_MAJOR_STACKED, STACKED_ON_TIME_AXIS, H_LAST_IS_H0, H_LAST_IS_FIRST,
    H_LAST_OF_LAST_EXAMPLE, WEIGHTS_TRANSPOSED_ERROR,
]


def _rnn_inputs(t: CheckContext, B: int, T: int, D: int, H: int, dtype=torch.float32):
    """x, h0, W_xh, W_hh, b_h with weights small enough that tanh does not saturate."""
    return (t.randn(B, T, D, dtype=dtype), t.randn(B, H, dtype=dtype, scale=0.5),
            t.randn(D, H, dtype=dtype, scale=D ** -0.5), t.randn(H, H, dtype=dtype, scale=0.9 * H ** -0.5),
            t.randn(H, dtype=dtype, scale=0.5))


def _describe(args) -> str:
    x, h0 = args[0], args[1]
    return f"rnn_forward(x, h0, ...) with x of shape {fmt_shape(x.shape)}, h0 {fmt_shape(h0.shape)}"


_NAMES = ("outputs", "h_last")


@checker("01.1", misconceptions=RNN_MISCONCEPTIONS, mutation_weight=0.5)
def check_rnn_forward(t: CheckContext, rnn_forward) -> None:
    """Sub-checks of 01.1, cheap to deep."""
    B, T, D, H = t.sizes(4, 2, 7)  # all different: a swapped axis shows up as a wrong shape
    args0 = _rnn_inputs(t, B, T, D, H)
    ex = t.exercise(rnn_forward, _reference_rnn, _describe, names=_NAMES, reference_name="the recurrence")
    ex.opening(args0, shapes=[(B, T, H), (B, H)], optional=(1,), weights=(0.5, 0.5, 0.25),
               shape_titles=["outputs is (B, T, H)", "h_last is (B, H)"],
               returns_title="returns a pair (outputs, h_last) of tensors")
    # B == T once, so that a time-major loop runs and its values can be recognised
    n = t.random.randint(3, 5)
    cases = [_rnn_inputs(t, *shape) for shape in [(n, n, D, H), (1, t.random.randint(2, 6), D, H),
                                                  (t.random.randint(2, 5), 1, H, H), tuple(t.sizes(4, 2, 8))]]
    ex.compare_cases("outputs equal h_1..h_T of the recurrence (random inputs of several shapes)", cases,
                     weight=2.0, essential=True, order=(0,))
    ex.compare_cases("h_last is the state after the last step", cases[::-1], weight=0.75, order=(1,))
    ex.float64(_rnn_inputs(t, *t.sizes(4, 2, 6), dtype=torch.float64))
    ex.gradients(_rnn_inputs(t, *t.sizes(4, 2, 6)), wrt=range(5), arg_names=("x", "h0", "W_xh", "W_hh", "b_h"),
                 weight=0.75, title="gradients reach x, h0 and the weights (backpropagation through time)",
                 hint="The values are right but a gradient is not: is a part of the computation "
                      "detached, or a state overwritten in place?")


# =========================================================================== 01.2 greedy_decode


def _decode_inputs(t: CheckContext, decoder: ScriptedDecoder):
    return decoder, decoder.initial_state(t.gen), decoder.sos_id, decoder.eos_id, decoder.max_len


def _expected(decoder: ScriptedDecoder, h0: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The reference's tokens and number of calls on a fresh copy of the script."""
    fresh = decoder.fresh(h0)
    return _reference_decode(fresh, h0.clone(), decoder.sos_id, decoder.eos_id, decoder.max_len), fresh.calls


# Wrong decoding loops: (step_fn, h0, sos_id, eos_id, max_len) -> tokens. Written as learners write them.


def _loop(step_fn, h0, sos_id, eos_id, max_len, *, feed_sos=False, fill_eos=True, stop="all", fill=None,
          with_sos=False, truncate=False, length=None):
    B = h0.shape[0]
    tokens = torch.full((B,), sos_id, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    steps, h = [], h0
    for _ in range(max_len if length is None else length):
        logits, h = step_fn(tokens, h)
        nxt = logits.argmax(dim=-1)
        if fill_eos:
            nxt = nxt.masked_fill(finished, eos_id)
        steps.append(nxt)
        finished = finished | (nxt == eos_id)
        tokens = torch.full((B,), sos_id, dtype=torch.long) if feed_sos else nxt
        if (stop == "all" and bool(finished.all())) or (stop == "any" and bool(finished.any())):
            break
    out = torch.stack(steps, dim=1)
    if with_sos:
        out = torch.cat([torch.full((B, 1), sos_id, dtype=torch.long), out], dim=1)
    if truncate:
        return out
    full = torch.full((B, max(max_len, out.shape[1])), eos_id if fill is None else fill, dtype=torch.long)
    full[:, :out.shape[1]] = out
    return full


_FEEDS_SOS_HINT = ("Every step seems to be fed the sos token. Greedy decoding feeds each step the token chosen at the "
                   "previous step: tokens = logits.argmax(dim=-1), then step_fn(tokens, h).")
_NO_EOS_HINT = ("After a row emits eos_id, its later positions must all be eos_id, but yours hold whatever the "
                "decoder emitted next. Keep a per-row `finished` flag (finished |= tokens == eos_id) and write "
                "eos_id for finished rows (tokens.masked_fill(finished, eos_id)).")
_STOPS_AT_FIRST_HINT = ("Decoding seems to stop as soon as the first row emits eos_id. Stop only when every row has "
                        "finished: `if finished.all(): break` (not .any()).")
_NEVER_STOPS_HINT = ("step_fn seems to be called max_len times even though every row had finished earlier. Once "
                     "finished.all() is True, break out of the loop (the remaining positions are eos_id).")
_WITH_SOS_HINT = ("The output seems to start with the sos token. It holds the generated tokens only: position 0 is "
                  "the first prediction, and the sos token is just the first input.")
_PADDING_HINT = ("The positions after decoding stopped must be eos_id too (every position after a row's eos is "
                 "eos_id): start from torch.full((B, max_len), eos_id, dtype=torch.long).")

DECODE_MISCONCEPTIONS = [
    Misconception("feeds back the sos token", _FEEDS_SOS_HINT, lambda *a: _loop(*a, feed_sos=True)),
    Misconception("garbage after eos", _NO_EOS_HINT, lambda *a: _loop(*a, fill_eos=False)),
    Misconception("garbage after eos, never stops", _NO_EOS_HINT, lambda *a: _loop(*a, fill_eos=False, stop="never")),
    Misconception("stops when the first row finishes", _STOPS_AT_FIRST_HINT, lambda *a: _loop(*a, stop="any")),
    Misconception("stops when the first row finishes (zeros after)", _STOPS_AT_FIRST_HINT,
                  lambda *a: _loop(*a, stop="any", fill=0)),
    Misconception("stops when the first row finishes (truncated)", _STOPS_AT_FIRST_HINT,
                  lambda *a: _loop(*a, stop="any", truncate=True)),
    Misconception("output starts with sos", _WITH_SOS_HINT, lambda *a: _loop(*a, with_sos=True)[:, :a[-1]]),
    Misconception("output starts with sos (one column too many)", _WITH_SOS_HINT,
                  lambda *a: _loop(*a, with_sos=True, stop="never")),
    Misconception("output starts with sos (max_len - 1 steps)", _WITH_SOS_HINT,
                  lambda *a: _loop(*a, with_sos=True, length=a[-1] - 1)),
    Misconception("zeros after stopping", _PADDING_HINT, lambda *a: _loop(*a, fill=0)),
    Misconception("returns only the decoded steps", _PADDING_HINT, lambda *a: _loop(*a, truncate=True)),
    Misconception("(max_len, B) instead of (B, max_len)",
                  "The result seems to be (max_len, B): torch.stack(steps) stacks on a new first axis. "
                  "Use torch.stack(steps, dim=1) to get one row per sequence.",
                  lambda *a: _loop(*a).T),
    Misconception("not passing h", "step_fn returns the new state h: pass that one in at the next step "
                  "(logits, h = step_fn(tokens, h)), not h0 again.", None),
    Misconception("loops past max_len",
                  "step_fn was called more than max_len times: loop at most max_len times (for t in "
                  "range(max_len)), even when a row never emits eos_id.", None,
                  error=r"more than max_len"),
    Misconception("tokens of the wrong shape",
                  "step_fn takes the tokens as a (B,) LongTensor of ids: logits.argmax(dim=-1) gives exactly that "
                  "(no keepdim, no unsqueeze, no argmax over the whole tensor or over dim=0).", None,
                  error=r"step_fn expects tokens of shape"),
    Misconception("feeds values instead of ids",
                  "step_fn takes token ids (integers): logits.argmax(dim=-1) gives the index of the largest "
                  "logit, logits.max(dim=-1).values its value.", None,
                  error=r"step_fn expects (integer token ids|tokens as a LongTensor)"),
]
def _describe_decode(decoder: ScriptedDecoder) -> str:
    return (f"greedy_decode(step_fn, h0, sos_id={decoder.sos_id}, eos_id={decoder.eos_id}, "
            f"max_len={decoder.max_len}) with a scripted decoder, batch of {decoder.B}")


def _check_feeding(t: CheckContext, decoder: ScriptedDecoder, what: str) -> None:
    """The first call got sos_id; each later call got the previous argmax for every unfinished row."""
    if not decoder.fed:
        t.fail(f"{what}: step_fn was never called", "Call step_fn(tokens, h) in a loop, starting with the sos token.")
    if not bool((decoder.fed[0] == decoder.sos_id).all()):
        t.fail(f"{what}: the first call of step_fn did not get sos_id for every row",
               "Start decoding with the sos token for every row: torch.full((B,), sos_id, dtype=torch.long).")
    finished = torch.zeros(decoder.B, dtype=torch.bool)
    for k in range(1, len(decoder.fed)):
        previous = decoder.logits[k - 1].argmax(dim=-1)
        finished |= previous == decoder.eos_id
        wrong = (decoder.fed[k] != previous) & ~finished
        if bool(wrong.any()):
            hint = (_FEEDS_SOS_HINT if bool((decoder.fed[k][wrong] == decoder.sos_id).all())
                    else "Feed each step the argmax of the previous step's logits: "
                         "tokens = logits.argmax(dim=-1) (over the vocabulary axis, for every row).")
            t.fail(f"{what}: call {k + 1} of step_fn was not fed the previous step's argmax "
                   f"for {int(wrong.sum())} of {decoder.B} unfinished rows", hint)


def _ends(t: CheckContext, B: int, max_len: int, all_finish: bool) -> list[int]:
    ends = [t.random.randint(0, max_len - 2) for _ in range(B)]
    if all_finish:
        ends[t.random.randrange(B)] = 0 if B > 2 else ends[0]  # one row finishes right away
    else:
        ends[t.random.randrange(B)] = max_len  # this row never emits eos
    if all_finish and len(set(ends)) == 1 and B > 1:
        ends[-1] = min(ends[0] + 1, max_len - 2)
    return ends


@checker("01.2", misconceptions=DECODE_MISCONCEPTIONS, mutation_weight=0.25)
def check_greedy_decode(t: CheckContext, greedy_decode) -> None:
    """Sub-checks of 01.2, cheap to deep."""
    B, max_len = t.random.randint(3, 5), t.random.randint(7, 10)
    decoder = ScriptedDecoder.random(t, B, max_len, V=t.random.randint(8, 12),
                                     ends=_ends(t, B, max_len, all_finish=True))
    args0 = _decode_inputs(t, decoder)
    h0 = args0[1].clone()
    expected0, expected_calls = _expected(decoder, h0)
    what0 = _describe_decode(decoder)

    t.opening(greedy_decode, args0, what=what0, shapes=(B, max_len), clone=False,  # the learner drives `decoder`
              weights=(0.25, 0.5, 0.25), returns_title="returns a tensor",
              returns_hint="Return one tensor, not a list: collect the (B,) token tensors of each step in a list and "
                           "torch.stack(steps, dim=1) them (then pad to max_len with eos_id), or write into "
                           "torch.full((B, max_len), eos_id, dtype=torch.long).",
              shape_titles=["the result is (B, max_len)"],
              shape_hints=["One row per sequence and exactly max_len columns, even when decoding stops early "
                           "(the remaining positions are eos_id)."],
              dtype=torch.long, dtype_title="the result is a LongTensor (token ids)",
              dtype_hint="Token ids are integers: create the result with dtype=torch.long (argmax already returns "
                         "int64; torch.zeros gives float32 by default).")

    @t.subcheck("feeds sos_id first, then each step's argmax", weight=1.0, essential=True)
    def _():
        _check_feeding(t, decoder, what0)

    @t.subcheck("passes the state h returned by step_fn to the next call", weight=0.5)
    def _():
        if any(decoder.h_is_h0):
            t.fail(f"{what0}: step_fn was given h0 again instead of the state it returned",
                   "step_fn returns the new state h: pass that one in at the next step "
                   "(logits, h = step_fn(tokens, h)), not h0 again.")
        if not all(decoder.h_ok):
            t.fail(f"{what0}: step_fn was not given the state h it returned at the previous call",
                   "Pass the state returned by step_fn, unchanged, into the next call: logits, h = step_fn(tokens, h).")

    @t.subcheck("the tokens equal greedy decoding's, with eos_id after each row's eos (several scripts)",
                weight=1.5, essential=True)
    def _():
        def expect_tokens(out, args, expected, what):
            t.expect_shape(out, expected.shape, what, args=args,
                           hint="The result is (B, max_len) whatever the batch size and max_len.")
            t.expect_equal(out, expected, what, args=args, reference="greedy decoding",
                           hint="Work through the smallest case by hand: which token is fed at each step, and "
                                "what is written after a row's eos?")

        expect_tokens(t.first["out"], args0, expected0, what0)
        scripts = [  # (B, max_len, all rows finish)
            (t.random.randint(2, 4), t.random.randint(5, 8), False),  # a row never emits eos
            (1, t.random.randint(4, 7), True),
            (t.random.randint(2, 4), 1, False),
            (t.random.randint(4, 6), t.random.randint(8, 12), True),
        ]
        for b, length, all_finish in scripts:
            ends = [length] * b if length == 1 else _ends(t, b, length, all_finish)
            dec = ScriptedDecoder.random(t, b, length, V=t.random.randint(6, 12), ends=ends)
            args = _decode_inputs(t, dec)
            expected, _ = _expected(dec, args[1].clone())
            what = _describe_decode(dec)
            expect_tokens(t.expect_tensor(t.call(greedy_decode, *args), what), args, expected, what)

    @t.subcheck("stops calling step_fn once every row has finished", weight=0.75)
    def _():
        if decoder.calls > expected_calls:
            t.fail(f"{what0}: step_fn was called {decoder.calls} times; every row had finished after "
                   f"{expected_calls} calls", _NEVER_STOPS_HINT)
        if decoder.calls < expected_calls:
            t.fail(f"{what0}: step_fn was called only {decoder.calls} times, before every row had finished",
                   _STOPS_AT_FIRST_HINT)

    @t.subcheck("works with a real GRU decoder", weight=0.5)
    def _():
        b, V, H = t.random.randint(2, 5), t.random.randint(6, 10), t.random.randint(4, 8)
        with torch.random.fork_rng():
            torch.manual_seed(t.random.randrange(2 ** 31))
            embed, cell, head = torch.nn.Embedding(V, H), torch.nn.GRUCell(H, H), torch.nn.Linear(H, V)
        sos_id, eos_id = t.random.sample(range(V), 2)
        with torch.no_grad():  # make eos likely enough that rows end at different steps
            head.bias[eos_id] += 1.0

        @torch.no_grad()
        def step_fn(tokens, h):
            h = cell(embed(tokens), h)
            return head(h), h

        h_init = t.randn(b, H)
        length = t.random.randint(6, 12)
        expected = _reference_decode(step_fn, h_init.clone(), sos_id, eos_id, length)
        what = f"greedy_decode on a GRU decoder (batch {b}, vocabulary {V}, max_len={length})"
        got = t.expect_tensor(t.call(greedy_decode, step_fn, h_init.clone(), sos_id, eos_id, length), what)
        t.expect_equal(got, expected, what, reference="greedy decoding")
